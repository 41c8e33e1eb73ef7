/*
 * test_sbuf.c: the bounds of common/sbuf.c: getters never read past the end,
 * putters never grow past max, views are never written; the text getters
 * (lines, tokens, hex, decimal numbers) at their bounds.
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

static void test_reset_keeps_storage(void **state)
{
	static const char text[] = "abc";
	struct sbuf b;
	uint8_t *d;

	(void)state;
	sbuf_init(&b, 8);
	sbuf_reset(&b);                 /* nothing allocated yet */
	assert_int_equal(sbuf_avail(&b), 0);
	assert_int_equal(sbuf_put(&b, "secret", 6), 0);
	assert_int_equal(sbuf_get(&b, NULL, 2), 0);
	d = b.d;
	sbuf_reset(&b);
	assert_ptr_equal(b.d, d);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0);
	assert_memory_equal(d, "\0\0\0\0\0\0", 6);  /* wiped */
	assert_int_equal(sbuf_put(&b, "12345678", 8), 0);
	assert_int_equal(sbuf_put_u8(&b, 0), -ENOSPC);
	sbuf_free(&b);

	/* A view is never written: it only becomes empty. */
	sbuf_view(&b, text, 3);
	sbuf_reset(&b);
	assert_int_equal(sbuf_avail(&b), 0);
	assert_string_equal(text, "abc");
}

static void test_put_u32be_at(void **state)
{
	static const uint8_t want[] = { 9, 0x01, 0x02, 0x03, 0x04, 7 };
	static const uint8_t ro[4] = { 0 };
	struct sbuf b;

	(void)state;
	sbuf_init(&b, 16);
	assert_int_equal(sbuf_put_u32be_at(&b, 0, 1), -EINVAL);   /* empty */
	assert_int_equal(sbuf_put_u8(&b, 9), 0);
	assert_int_equal(sbuf_put_u32be(&b, 0), 0);
	assert_int_equal(sbuf_put_u8(&b, 7), 0);
	assert_int_equal(sbuf_put_u32be_at(&b, 1, 0x01020304), 0);
	assert_memory_equal(b.d, want, sizeof(want));
	/* The last 4 bytes exactly; one further would pass the end. */
	assert_int_equal(sbuf_put_u32be_at(&b, 2, 0x02030407), 0);
	assert_int_equal(sbuf_put_u32be_at(&b, 3, 0), -EINVAL);
	assert_int_equal(sbuf_put_u32be_at(&b, 6, 0), -EINVAL);
	assert_int_equal(sbuf_put_u32be_at(&b, SIZE_MAX, 0), -EINVAL);
	assert_int_equal(b.len, sizeof(want));
	sbuf_free(&b);

	sbuf_view(&b, ro, sizeof(ro));
	assert_int_equal(sbuf_put_u32be_at(&b, 0, 1), -EINVAL);
	assert_int_equal(ro[3], 0);
}

static void test_get_view(void **state)
{
	static const char text[] = "headbody";
	struct sbuf b, sub;
	uint8_t c;

	(void)state;
	sbuf_view(&b, text, 8);
	assert_int_equal(sbuf_get_view(&b, 9, &sub), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 8);
	assert_int_equal(sbuf_get_view(&b, 4, &sub), 0);
	assert_true(sbuf_eq(&sub, "head"));
	assert_ptr_equal(sbuf_ptr(&sub), text);     /* borrowed, not copied */
	assert_int_equal(sbuf_put_u8(&sub, 'x'), -ENOSPC);
	assert_int_equal(sbuf_get(&sub, NULL, 4), 0);
	assert_int_equal(sbuf_get_u8(&sub, &c), -EBADMSG);  /* bounded by the view */
	assert_int_equal(sbuf_get_view(&b, 0, &sub), 0);
	assert_int_equal(sbuf_avail(&sub), 0);
	assert_int_equal(sbuf_get_view(&b, 4, &sub), 0);
	assert_true(sbuf_eq(&sub, "body"));
	assert_int_equal(sbuf_avail(&b), 0);
	assert_int_equal(sbuf_get_view(&b, 1, &sub), -EBADMSG);
	assert_int_equal(sbuf_get_view(&b, 0, &sub), 0);
}

static void test_get_token(void **state)
{
	static const char text[] = "a b\t\tc";
	struct sbuf b, tok, empty;

	(void)state;
	sbuf_view(&b, text, strlen(text));
	assert_int_equal(sbuf_get_token(&b, " \t", &tok), 0);
	assert_true(sbuf_eq(&tok, "a"));
	assert_int_equal(sbuf_get_token(&b, " \t", &tok), 0);
	assert_true(sbuf_eq(&tok, "b"));
	/* Two separators in a row: an empty token between them. */
	assert_int_equal(sbuf_get_token(&b, " \t", &tok), 0);
	assert_true(sbuf_eq(&tok, ""));
	/* No separator left: an error, and nothing consumed. */
	assert_int_equal(sbuf_get_token(&b, " \t", &tok), -EBADMSG);
	assert_true(sbuf_eq(&b, "c"));

	/* The set's NUL terminator is no separator. */
	sbuf_view(&b, "x\0y", 3);
	assert_int_equal(sbuf_get_token(&b, ",", &tok), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 3);

	sbuf_init(&empty, 16);
	assert_int_equal(sbuf_get_token(&empty, ",", &tok), -EBADMSG);
	sbuf_view(&b, ",", 1);
	assert_int_equal(sbuf_get_token(&b, ",", &tok), 0);
	assert_int_equal(sbuf_avail(&tok), 0);
	assert_int_equal(sbuf_avail(&b), 0);
}

static void test_get_line(void **state)
{
	static const char text[] = "one\n\nlast";
	struct sbuf b, line;

	(void)state;
	sbuf_view(&b, text, strlen(text));
	assert_int_equal(sbuf_get_line(&b, &line), 0);
	assert_true(sbuf_eq(&line, "one"));
	assert_int_equal(sbuf_get_line(&b, &line), 0);
	assert_true(sbuf_eq(&line, ""));
	/* The last line has no terminator. */
	assert_int_equal(sbuf_get_line(&b, &line), -EBADMSG);
	assert_true(sbuf_eq(&b, "last"));
	assert_int_equal(sbuf_get_line_or_rest(&b, &line), 0);
	assert_true(sbuf_eq(&line, "last"));
	assert_int_equal(sbuf_avail(&b), 0);
	assert_int_equal(sbuf_get_line_or_rest(&b, &line), -EBADMSG);
	assert_int_equal(sbuf_get_line(&b, &line), -EBADMSG);

	/* A NUL is a byte like any other; the parser decides. */
	sbuf_view(&b, "a\0b\nc\n", 6);
	assert_int_equal(sbuf_get_line_or_rest(&b, &line), 0);
	assert_int_equal(sbuf_avail(&line), 3);
	assert_int_equal(sbuf_find(&line, '\0', NULL), 0);
	assert_int_equal(sbuf_get_line_or_rest(&b, &line), 0);
	assert_true(sbuf_eq(&line, "c"));
	assert_int_equal(sbuf_get_line_or_rest(&b, &line), -EBADMSG);
}

static void test_get_hex(void **state)
{
	static const uint8_t want[] = { 0x01, 0xab, 0xcd, 0xef };
	uint8_t out[4];
	struct sbuf b;
	size_t bad = 99;

	(void)state;
	sbuf_view(&b, "01aBcDeF!", 9);
	assert_int_equal(sbuf_get_hex(&b, out, 4, &bad), 0);
	assert_memory_equal(out, want, 4);
	assert_true(sbuf_eq(&b, "!"));
	/* Lowercase only refuses B, D, F; nothing is consumed. */
	sbuf_view(&b, "01aBcDeF", 8);
	assert_int_equal(sbuf_get_hex_lower(&b, out, 4), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 8);
	assert_int_equal(sbuf_get_hex_lower(&b, out, 1), 0);
	assert_int_equal(out[0], 0x01);
	/* Not a digit: its index. */
	sbuf_view(&b, "0g", 2);
	assert_int_equal(sbuf_get_hex(&b, out, 1, &bad), -EBADMSG);
	assert_int_equal(bad, 1);
	assert_int_equal(sbuf_avail(&b), 2);
	/* Too few digits, an odd one left, absurd lengths. */
	sbuf_view(&b, "abc", 3);
	assert_int_equal(sbuf_get_hex(&b, out, 2, NULL), -EBADMSG);
	assert_int_equal(sbuf_get_hex(&b, out, SIZE_MAX, NULL), -EBADMSG);
	assert_int_equal(sbuf_get_hex(&b, out, 1, NULL), 0);
	assert_int_equal(sbuf_get_hex(&b, out, 1, NULL), -EBADMSG);
	assert_int_equal(sbuf_get_hex(&b, out, 0, NULL), 0);
	sbuf_view(&b, NULL, 0);
	assert_int_equal(sbuf_get_hex(&b, out, 0, NULL), 0);
	assert_int_equal(sbuf_get_hex_lower(&b, out, 1), -EBADMSG);
}

static void test_get_u64dec(void **state)
{
	struct sbuf b;
	uint64_t v = 7;

	(void)state;
	sbuf_view(&b, "0042 x", 6);
	assert_int_equal(sbuf_get_u64dec(&b, &v), 0);
	assert_int_equal(v, 42);
	assert_true(sbuf_eq(&b, " x"));
	/* No sign, no space, no digit: refused, nothing consumed, v untouched. */
	v = 7;
	assert_int_equal(sbuf_get_u64dec(&b, &v), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 2);
	sbuf_view(&b, "+1", 2);
	assert_int_equal(sbuf_get_u64dec(&b, &v), -EBADMSG);
	sbuf_view(&b, "-1", 2);
	assert_int_equal(sbuf_get_u64dec(&b, &v), -EBADMSG);
	sbuf_view(&b, NULL, 0);
	assert_int_equal(sbuf_get_u64dec(&b, &v), -EBADMSG);
	assert_int_equal(v, 7);
	/* 2^64-1 is the largest; 2^64 and more are -ERANGE. */
	sbuf_view(&b, "18446744073709551615", 20);
	assert_int_equal(sbuf_get_u64dec(&b, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(sbuf_avail(&b), 0);
	sbuf_view(&b, "18446744073709551616", 20);
	assert_int_equal(sbuf_get_u64dec(&b, &v), -ERANGE);
	assert_int_equal(sbuf_avail(&b), 20);
	sbuf_view(&b, "99999999999999999999999", 23);
	assert_int_equal(sbuf_get_u64dec(&b, &v), -ERANGE);
	/* Leading zeros do not count against the range. */
	sbuf_view(&b, "000000000000000000000000001", 27);
	assert_int_equal(sbuf_get_u64dec(&b, &v), 0);
	assert_int_equal(v, 1);
}

static void test_get_i64dec(void **state)
{
	struct sbuf b;
	int64_t v = 7;

	(void)state;
	sbuf_view(&b, "-12,", 4);
	assert_int_equal(sbuf_get_i64dec(&b, &v), 0);
	assert_int_equal(v, -12);
	assert_true(sbuf_eq(&b, ","));
	sbuf_view(&b, "-0", 2);
	assert_int_equal(sbuf_get_i64dec(&b, &v), 0);
	assert_int_equal(v, 0);
	sbuf_view(&b, "9223372036854775807", 19);
	assert_int_equal(sbuf_get_i64dec(&b, &v), 0);
	assert_true(v == INT64_MAX);
	sbuf_view(&b, "-9223372036854775808", 20);
	assert_int_equal(sbuf_get_i64dec(&b, &v), 0);
	assert_true(v == INT64_MIN);
	/* One past either end, and past 2^64. */
	v = 7;
	sbuf_view(&b, "9223372036854775808", 19);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -ERANGE);
	sbuf_view(&b, "-9223372036854775809", 20);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -ERANGE);
	sbuf_view(&b, "-18446744073709551616", 21);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -ERANGE);
	assert_int_equal(sbuf_avail(&b), 21);
	/* A lone or doubled sign, '+', a space: refused, nothing consumed. */
	sbuf_view(&b, "-", 1);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -EBADMSG);
	assert_int_equal(sbuf_avail(&b), 1);
	sbuf_view(&b, "--1", 3);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -EBADMSG);
	sbuf_view(&b, "+1", 2);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -EBADMSG);
	sbuf_view(&b, " 1", 2);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -EBADMSG);
	sbuf_view(&b, NULL, 0);
	assert_int_equal(sbuf_get_i64dec(&b, &v), -EBADMSG);
	assert_int_equal(v, 7);
}

static void test_span_find_eq(void **state)
{
	struct sbuf b;
	size_t at = 99;

	(void)state;
	sbuf_view(&b, "123a\0", 5);
	assert_int_equal(sbuf_span(&b, "0123456789"), 3);
	assert_int_equal(sbuf_span(&b, "x"), 0);
	/* The set's terminator never matches a NUL byte. */
	assert_int_equal(sbuf_span(&b, "0123456789a"), 4);
	assert_int_equal(sbuf_find(&b, 'a', &at), 0);
	assert_int_equal(at, 3);
	assert_int_equal(sbuf_find(&b, '\0', &at), 0);
	assert_int_equal(at, 4);
	assert_int_equal(sbuf_find(&b, 'z', &at), -ENOENT);
	assert_false(sbuf_eq(&b, "123a"));      /* the NUL is a byte too */
	assert_int_equal(sbuf_get(&b, NULL, 1), 0);
	assert_int_equal(sbuf_find(&b, '1', NULL), -ENOENT);   /* only unread bytes */
	assert_int_equal(sbuf_find(&b, '2', &at), 0);
	assert_int_equal(at, 0);

	sbuf_view(&b, "ab", 2);
	assert_true(sbuf_eq(&b, "ab"));
	assert_false(sbuf_eq(&b, "a"));
	assert_false(sbuf_eq(&b, "abc"));
	sbuf_view(&b, NULL, 0);
	assert_true(sbuf_eq(&b, ""));
	assert_int_equal(sbuf_span(&b, "a"), 0);
	assert_int_equal(sbuf_find(&b, 'a', NULL), -ENOENT);
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
		cmocka_unit_test(test_reset_keeps_storage),
		cmocka_unit_test(test_put_u32be_at),
		cmocka_unit_test(test_get_view),
		cmocka_unit_test(test_get_token),
		cmocka_unit_test(test_get_line),
		cmocka_unit_test(test_get_hex),
		cmocka_unit_test(test_get_u64dec),
		cmocka_unit_test(test_get_i64dec),
		cmocka_unit_test(test_span_find_eq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
