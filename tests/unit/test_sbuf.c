/*
 * test_sbuf.c: the bounds of common/sbuf.c: getters never read past the end,
 * putters never grow past max, views are never written.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/sbuf.h"

static void test_put_get_roundtrip(void **state)
{
	static const uint8_t want[] = { 0x7f, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 'a', 'b', 'c' };
	struct sbuf b;
	uint8_t u8, rest[3];
	uint16_t u16;
	uint32_t u32;

	(void)state;
	sbuf_init(&b, 64);
	assert_int_equal(sbuf_put_u8(&b, 0x7f), 0);
	assert_int_equal(sbuf_put_u16be(&b, 0x1234), 0);
	assert_int_equal(sbuf_put_u32be(&b, 0xdeadbeef), 0);
	assert_int_equal(sbuf_put(&b, "abc", 3), 0);
	assert_int_equal(b.len, sizeof(want));
	/* Big-endian on the wire, whatever the host. */
	assert_memory_equal(b.d, want, sizeof(want));
	assert_int_equal(sbuf_avail(&b), sizeof(want));
	assert_ptr_equal(sbuf_ptr(&b), b.d);

	assert_int_equal(sbuf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 0x7f);
	assert_int_equal(sbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(sbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(sbuf_avail(&b), 3);
	assert_ptr_equal(sbuf_ptr(&b), b.d + 7);
	assert_int_equal(sbuf_get(&b, rest, 3), 0);
	assert_memory_equal(rest, "abc", 3);
	assert_int_equal(sbuf_avail(&b), 0);
	sbuf_free(&b);
}

static void test_get_past_end(void **state)
{
	static const uint8_t data[] = { 1, 2, 3 };
	struct sbuf b;
	uint8_t out[8] = { 0 };
	uint16_t u16 = 0x5555;
	uint32_t u32 = 0x55555555;
	uint8_t u8;

	(void)state;
	sbuf_view(&b, data, sizeof(data));
	assert_int_equal(sbuf_get_u32be(&b, &u32), -EBADMSG);
	assert_int_equal(u32, 0x55555555);
	assert_int_equal(sbuf_avail(&b), 3);
	assert_int_equal(sbuf_get(&b, out, 4), -EBADMSG);
	assert_int_equal(sbuf_get(&b, out, SIZE_MAX), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 3);
	assert_int_equal(sbuf_get(&b, NULL, 1), 0);       /* skip one byte */
	assert_int_equal(sbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 0x0203);
	assert_int_equal(sbuf_get_u8(&b, &u8), -EBADMSG);
	assert_int_equal(sbuf_get_u16be(&b, &u16), -EBADMSG);
	assert_int_equal(sbuf_get(&b, NULL, 1), -EBADMSG);
	assert_int_equal(sbuf_get(&b, out, 0), 0);
	assert_int_equal(b.off, b.len);
}

static void test_put_bounded_by_max(void **state)
{
	uint8_t data[100];
	struct sbuf b;

	(void)state;
	memset(data, 0xa5, sizeof(data));
	sbuf_init(&b, 10);
	assert_int_equal(sbuf_put(&b, data, 11), -ENOSPC);
	assert_int_equal(b.len, 0);
	assert_int_equal(sbuf_put(&b, data, 8), 0);
	assert_int_equal(sbuf_put_u32be(&b, 1), -ENOSPC);
	assert_int_equal(b.len, 8);
	assert_int_equal(sbuf_put_u16be(&b, 0x0102), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(sbuf_put_u8(&b, 1), -ENOSPC);
	assert_int_equal(sbuf_put(&b, data, SIZE_MAX), -ENOSPC);
	assert_true(b.cap <= 10);
	assert_int_equal(b.d[9], 0x02);
	sbuf_free(&b);

	sbuf_init(&b, 0);
	assert_int_equal(sbuf_put_u8(&b, 1), -ENOSPC);
	assert_int_equal(sbuf_put(&b, data, 0), 0);
	sbuf_free(&b);
}

static void test_growth_doubles_up_to_max(void **state)
{
	uint8_t chunk[100] = { 0 };
	struct sbuf b;
	size_t caps[16], ncaps = 0;

	(void)state;
	sbuf_init(&b, 5000);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(sbuf_put(&b, chunk, sizeof(chunk)), 0);
		if (ncaps == 0 || caps[ncaps - 1] != b.cap)
			caps[ncaps++] = b.cap;
		assert_true(b.cap >= b.len);
		assert_true(b.cap <= 5000);
	}
	assert_int_equal(b.len, 5000);
	/* 256, 512, 1024, 2048, 4096, then clamped at max. */
	assert_int_equal(ncaps, 6);
	for (size_t i = 1; i + 1 < ncaps; i++)
		assert_int_equal(caps[i], 2 * caps[i - 1]);
	assert_int_equal(caps[ncaps - 1], 5000);
	assert_int_equal(sbuf_put_u8(&b, 0), -ENOSPC);
	sbuf_free(&b);
}

static void test_large_single_put(void **state)
{
	static uint8_t big[70000];
	struct sbuf b;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	sbuf_init(&b, 1 << 20);
	assert_int_equal(sbuf_put_u8(&b, 0xff), 0);
	assert_int_equal(sbuf_put(&b, big, sizeof(big)), 0);
	assert_true(b.cap >= sizeof(big) + 1);
	assert_true(b.cap <= 1 << 20);
	assert_memory_equal(b.d + 1, big, sizeof(big));
	sbuf_free(&b);
}

static void test_view_is_read_only(void **state)
{
	static const char text[] = "hello";
	struct sbuf b;
	char out[6] = { 0 };

	(void)state;
	sbuf_view(&b, text, 5);
	assert_ptr_equal(b.d, text);    /* borrowed, not copied */
	assert_int_equal(sbuf_put_u8(&b, 'x'), -ENOSPC);
	assert_int_equal(sbuf_put(&b, "x", 1), -ENOSPC);
	assert_string_equal(text, "hello");
	assert_int_equal(sbuf_get(&b, out, 5), 0);
	assert_string_equal(out, "hello");
	/* Freeing a view must not free the borrowed memory (ASan would tell). */
	sbuf_free(&b);
	assert_null(b.d);
	assert_int_equal(sbuf_avail(&b), 0);
}

static void test_free_empties_and_reuses(void **state)
{
	struct sbuf b;

	(void)state;
	sbuf_init(&b, 16);
	assert_int_equal(sbuf_put(&b, "secret", 6), 0);
	sbuf_free(&b);
	assert_null(b.d);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(sbuf_avail(&b), 0);
	/* Still bounded by the same max after free. */
	assert_int_equal(sbuf_put(&b, "0123456789abcdef", 16), 0);
	assert_int_equal(sbuf_put_u8(&b, 0), -ENOSPC);
	sbuf_free(&b);
	sbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_roundtrip),
		cmocka_unit_test(test_get_past_end),
		cmocka_unit_test(test_put_bounded_by_max),
		cmocka_unit_test(test_growth_doubles_up_to_max),
		cmocka_unit_test(test_large_single_put),
		cmocka_unit_test(test_view_is_read_only),
		cmocka_unit_test(test_free_empties_and_reuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
