/*
 * test_text.c: the one hex codec (common/hex.h) and the one quoting rule for
 * untrusted text in messages (common/log.c): what each byte becomes, where a
 * quote is cut, and that a decoder names the first bad digit.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/hex.h"
#include "common/log.h"

static void test_hex_roundtrip(void **state)
{
	uint8_t in[256], out[256];
	char hex[513];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	sigfs_hex_encode(in, sizeof(in), hex);
	assert_int_equal(strlen(hex), 512);
	assert_memory_equal(hex, "fffefdfc", 8);
	assert_int_equal(sigfs_hex_decode_lower(hex, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	memset(out, 0, sizeof(out));
	assert_int_equal(sigfs_hex_decode(hex, out, sizeof(out), NULL), 0);
	assert_memory_equal(in, out, sizeof(in));
}

static void test_hex_cases_and_bad_digits(void **state)
{
	uint8_t out[4];
	size_t bad = 99;

	(void)state;
	/* Either case where a person may type it; one spelling where sigfs wrote it. */
	assert_int_equal(sigfs_hex_decode("DeadBEEF", out, 4, &bad), 0);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	assert_int_equal(bad, 99);
	assert_int_equal(sigfs_hex_decode_lower("DEADBEEF", out, 4), -EBADMSG);
	assert_int_equal(sigfs_hex_decode_lower("deadbeef", out, 4), 0);
	assert_int_equal(sigfs_hex_decode("dead beef", out, 4, &bad), -EBADMSG);
	assert_int_equal(bad, 4);
	assert_int_equal(sigfs_hex_decode("g0", out, 1, &bad), -EBADMSG);
	assert_int_equal(bad, 0);
	assert_int_equal(sigfs_hex_decode("0g", out, 1, &bad), -EBADMSG);
	assert_int_equal(bad, 1);
	/* A NUL is a bad digit, not the end: the length is the caller's. */
	assert_int_equal(sigfs_hex_decode("ab\0d", out, 2, &bad), -EBADMSG);
	assert_int_equal(bad, 2);
}

static void test_quote_escapes_every_unsafe_byte(void **state)
{
	char q[SIGFS_QUOTE_LEN];

	(void)state;
	assert_string_equal(sigfs_quote("fw.bin", 6, q), "fw.bin");
	assert_string_equal(sigfs_quote("a\nb", 3, q), "a\\x0ab");
	assert_string_equal(sigfs_quote("\x1b[31mred", 8, q), "\\x1b[31mred");
	assert_string_equal(sigfs_quote("back\\slash", 10, q), "back\\x5cslash");
	assert_string_equal(sigfs_quote("\xff\x7f", 2, q), "\\xff\\x7f");
	/* Bytes after a NUL are still the caller's text: quoted, not dropped. */
	assert_string_equal(sigfs_quote("a\0b", 3, q), "a\\x00b");
	assert_string_equal(sigfs_quote("", 0, q), "");
}

static void test_quote_is_cut_with_dots(void **state)
{
	char in[SIGFS_QUOTE_MAX + 1], want[SIGFS_QUOTE_MAX + 4], q[SIGFS_QUOTE_LEN];
	uint8_t worst[SIGFS_QUOTE_MAX + 10];

	(void)state;
	memset(in, 'x', sizeof(in));
	assert_int_equal(strlen(sigfs_quote(in, SIGFS_QUOTE_MAX, q)), SIGFS_QUOTE_MAX);
	memset(want, 'x', SIGFS_QUOTE_MAX);
	memcpy(want + SIGFS_QUOTE_MAX, "...", 4);
	assert_string_equal(sigfs_quote(in, sizeof(in), q), want);
	/* The longest quote (every byte escaped, then the dots) fits its buffer. */
	memset(worst, 0x01, sizeof(worst));
	assert_int_equal(strlen(sigfs_quote(worst, sizeof(worst), q)), SIGFS_QUOTE_LEN - 1);
}

static void test_escape_stays_in_its_buffer(void **state)
{
	char out[10];

	(void)state;
	assert_string_equal(sigfs_escape("abc", out, sizeof(out)), "abc");
	/* Only whole escapes: "\x01" needs 4 bytes, and the NUL one more. */
	assert_string_equal(sigfs_escape("abcd\x01zzzzzz", out, sizeof(out)), "abcd\\x01");
	assert_string_equal(sigfs_escape("abcdefghijk", out, sizeof(out)), "abcdef");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_hex_cases_and_bad_digits),
		cmocka_unit_test(test_quote_escapes_every_unsafe_byte),
		cmocka_unit_test(test_quote_is_cut_with_dots),
		cmocka_unit_test(test_escape_stays_in_its_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
