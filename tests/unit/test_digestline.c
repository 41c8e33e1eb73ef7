/*
 * test_digestline.c: the rules of signer/digestline.h, as tables of contents
 * a user may write into NAME.<digest>, for every digest of the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "signer/digestline.h"

static const struct sigfs_digest *digest(const char *name)
{
	const struct sigfs_digest *d = sigfs_digest_by_name(name);

	assert_non_null(d);
	return d;
}

static void to_hex(const uint8_t *p, size_t n, bool upper, char *out)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static enum sigfs_dl_result parse(const struct sigfs_digest *d, const char *base,
				  const char *content, uint8_t *value, char *err)
{
	return sigfs_dl_parse(d, base, (const uint8_t *)content, strlen(content), value, err);
}

static void test_suffix(void **state)
{
	static const struct {
		const char *name;
		const char *digest;     /* NULL: not a digest file name */
		size_t base_len;
	} cases[] = {
		{ "fw.bin.sha1", "sha1", 6 },
		{ "fw.bin.sha224", "sha224", 6 },
		{ "fw.bin.sha256", "sha256", 6 },
		{ "fw.bin.sha384", "sha384", 6 },
		{ "fw.bin.sha512", "sha512", 6 },
		{ "fw.bin.sha512-224", "sha512-224", 6 },
		{ "fw.bin.sha512-256", "sha512-256", 6 },
		{ "fw.bin.sha3-224", "sha3-224", 6 },
		{ "fw.bin.sha3-256", "sha3-256", 6 },
		{ "fw.bin.sha3-384", "sha3-384", 6 },
		{ "fw.bin.sha3-512", "sha3-512", 6 },
		{ "x.sha512-256", "sha512-256", 1 },
		{ "x.sha256.sha512", "sha512", 8 },
		{ "a b.sha384", "sha384", 3 },
		{ "..sha256", "sha256", 1 },
		{ ".sha256", NULL, 0 },
		{ ".sha512-256", NULL, 0 },
		{ "sha256", NULL, 0 },
		{ "fwsha256", NULL, 0 },
		{ "fw.bin", NULL, 0 },
		{ "fw.SHA256", NULL, 0 },
		{ "fw.sha256x", NULL, 0 },
		{ "fw.sha256.", NULL, 0 },
		{ "fw.sha", NULL, 0 },
		{ "fw.sha2", NULL, 0 },
		{ "fw.md5", NULL, 0 },
		{ "fw.sha512-", NULL, 0 },
		{ "fw.sig", NULL, 0 },
		{ "", NULL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t base_len = 12345;
		const struct sigfs_digest *d = sigfs_dl_suffix(cases[i].name, &base_len);

		if (!cases[i].digest) {
			if (d)
				fail_msg("%s: recognised as %s", cases[i].name, d->name);
			continue;
		}
		if (!d)
			fail_msg("%s: not recognised", cases[i].name);
		assert_string_equal(d->name, cases[i].digest);
		assert_int_equal(base_len, cases[i].base_len);
	}
}

/* Every digest, every accepted spelling: the value must come out exactly. */
static void test_good_lines_every_digest(void **state)
{
	static const char *const forms[] = {
		"%s", "%s\n", "%s\r\n", "%s  fw.bin", "%s  fw.bin\n", "%s *fw.bin\n",
		"%s  fw.bin\r\n", "%s *fw.bin\r\n", "%s  dir/fw.bin\n", "%s *./out/x/fw.bin\n",
		"%s  /abs/path/fw.bin\n",
	};
	const struct sigfs_digest *d;
	size_t ndigests = 0;

	(void)state;
	for (size_t i = 0; (d = sigfs_digest_at(i)) != NULL; i++, ndigests++) {
		uint8_t want[SIGFS_MAX_DIGEST];
		unsigned int wlen = 0;
		char content[512], hex[2 * SIGFS_MAX_DIGEST + 1];

		/* A real digest of real data, computed with OpenSSL. */
		assert_int_equal(EVP_Digest("sigfs", 5, want, &wlen, sigfs_digest_md(d), NULL), 1);
		assert_int_equal(wlen, d->len);
		for (int upper = 0; upper < 2; upper++) {
			to_hex(want, d->len, upper, hex);
			for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
				uint8_t value[SIGFS_MAX_DIGEST];
				char err[SIGFS_ERRLEN] = "";

				memset(value, 0, sizeof(value));
				snprintf(content, sizeof(content), forms[f], hex);
				if (parse(d, "fw.bin", content, value, err) != SIGFS_DL_OK)
					fail_msg("%s: \"%s\" refused: %s", d->name, content, err);
				assert_memory_equal(value, want, d->len);
			}
		}
	}
	assert_int_equal(ndigests, 11);
}

static void test_mixed_case_hex(void **state)
{
	uint8_t value[SIGFS_MAX_DIGEST];
	char err[SIGFS_ERRLEN];
	const char *line =
		"AbCdEf0123456789aBcDeF0123456789abcdef0123456789ABCDEF0123456789  fw.bin\n";

	(void)state;
	assert_int_equal(parse(digest("sha256"), "fw.bin", line, value, err), SIGFS_DL_OK);
	assert_int_equal(value[0], 0xab);
	assert_int_equal(value[1], 0xcd);
	assert_int_equal(value[2], 0xef);
	assert_int_equal(value[31], 0x89);
}

struct bad_case {
	const char *digest;
	const char *content;
	enum sigfs_dl_result want;
	const char *err;        /* for BAD: a part of the message */
};

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H40 "0123456789abcdef0123456789abcdef01234567"

static void test_bad_and_not_lines(void **state)
{
	static const struct bad_case cases[] = {
		{ "sha256", "", SIGFS_DL_BAD, "fw.bin.sha256: empty digest file" },
		{ "sha256", "\n", SIGFS_DL_BAD, "fw.bin.sha256: empty digest file" },
		{ "sha256", "\r\n", SIGFS_DL_BAD, "empty digest file" },
		{ "sha256", H64 "0", SIGFS_DL_BAD, "fw.bin.sha256: sha256 needs 64 hex digits, found 65" },
		{ "sha256", H40 "0123456789abcdef0123456\n", SIGFS_DL_BAD,
		  "fw.bin.sha256: sha256 needs 64 hex digits, found 63" },
		{ "sha256", H40 "  fw.bin\n", SIGFS_DL_BAD, "sha256 needs 64 hex digits, found 40" },
		{ "sha512", H64 "  fw.bin\n", SIGFS_DL_BAD,
		  "fw.bin.sha512: sha512 needs 128 hex digits, found 64" },
		{ "sha1", H64, SIGFS_DL_BAD, "sha1 needs 40 hex digits, found 64" },
		{ "sha256", "cafe\n", SIGFS_DL_BAD, "needs 64 hex digits, found 4" },
		{ "sha256", "0123g56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  fw.bin\n",
		  SIGFS_DL_BAD, "fw.bin.sha256: not a hex digit at position 5" },
		{ "sha256", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeX",
		  SIGFS_DL_BAD, "not a hex digit at position 64" },
		{ "sha256", H64 "  other.bin\n", SIGFS_DL_BAD,
		  "fw.bin.sha256: the line names other.bin, not fw.bin" },
		{ "sha256", H64 " *dir/other.bin\n", SIGFS_DL_BAD, "the line names dir/other.bin, not fw.bin" },
		{ "sha256", H64 "  fw.bin/\n", SIGFS_DL_BAD, "the line names fw.bin/, not fw.bin" },
		{ "sha256", H64 "  fw.bin.sha256\n", SIGFS_DL_BAD, "names fw.bin.sha256, not fw.bin" },
		{ "sha256", H64 "  FW.BIN\n", SIGFS_DL_BAD, "names FW.BIN, not fw.bin" },
		{ "sha256", H64 "  fw.bin \n", SIGFS_DL_BAD, "names fw.bin , not fw.bin" },
		{ "sha256", H64 "  a\001b\n", SIGFS_DL_BAD, "names a\\x01b, not" },
		{ "sha256", H64 " fw.bin\n", SIGFS_DL_BAD, "after the digest expected" },
		{ "sha256", H64 "   fw.bin\n", SIGFS_DL_BAD, "names  fw.bin, not fw.bin" },
		{ "sha256", H64 "  \n", SIGFS_DL_BAD, "after the digest expected" },
		{ "sha256", H64 " *\n", SIGFS_DL_BAD, "after the digest expected" },
		{ "sha256", H64 " \n", SIGFS_DL_BAD, "after the digest expected" },
		{ "sha256", H64 "x  fw.bin\n", SIGFS_DL_NOT_A_LINE, NULL },
		/* Not meant as a digest line: signed as an ordinary file. */
		{ "sha256", H64 "  fw.bin\n" H64 "  fw.bin\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", H64 "  fw.bin\n\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", H64 "\r\n\r\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", "\n" H64 "\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", "hello world\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", "SHA256 (fw.bin) = " H64 "\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", " " H64 "  fw.bin\n", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", "\xff\xfe\x80 binary \x7f stuff", SIGFS_DL_NOT_A_LINE, NULL },
		{ "sha256", "#!/bin/sh\necho hi\n", SIGFS_DL_NOT_A_LINE, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		uint8_t value[SIGFS_MAX_DIGEST];
		char err[SIGFS_ERRLEN] = "";
		enum sigfs_dl_result r;

		memset(value, 0xaa, sizeof(value));
		r = parse(digest(c->digest), "fw.bin", c->content, value, err);
		if (r != c->want)
			fail_msg("case %zu (%s): result %d, want %d (err: %s)", i, c->content, r,
				 c->want, err);
		if (c->err && !strstr(err, c->err))
			fail_msg("case %zu: err \"%s\" lacks \"%s\"", i, err, c->err);
		if (c->err && strchr(err, '\n'))
			fail_msg("case %zu: err has a newline", i);
		/* Nothing is written to value unless the line is good. */
		for (size_t j = 0; j < sizeof(value); j++)
			assert_int_equal(value[j], 0xaa);
	}
}

static void test_binary_with_nul(void **state)
{
	static const uint8_t content[] = { '0', '1', 0, '2', '3', '\n' };
	static const uint8_t line_then_nul[] = H64 "  fw.bin\n";
	uint8_t value[SIGFS_MAX_DIGEST], buf[sizeof(line_then_nul) + 1];
	char err[SIGFS_ERRLEN];

	(void)state;
	assert_int_equal(sigfs_dl_parse(digest("sha256"), "fw.bin", content, sizeof(content),
					value, err), SIGFS_DL_NOT_A_LINE);
	/* sizeof includes the terminating NUL: a NUL after a good line. */
	memcpy(buf, line_then_nul, sizeof(line_then_nul));
	assert_int_equal(sigfs_dl_parse(digest("sha256"), "fw.bin", buf, sizeof(line_then_nul),
					value, err), SIGFS_DL_NOT_A_LINE);
	assert_int_equal(sigfs_dl_parse(digest("sha256"), "fw.bin", buf,
					sizeof(line_then_nul) - 1, value, err), SIGFS_DL_OK);
}

static void test_size_limit(void **state)
{
	const struct sigfs_digest *d = digest("sha256");
	uint8_t value[SIGFS_MAX_DIGEST];
	char err[SIGFS_ERRLEN] = "";
	size_t huge = 1 << 20;
	uint8_t *buf = malloc(huge);

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', huge);
	/* 4096 bytes of hex is still a (bad) digest line ... */
	assert_int_equal(sigfs_dl_parse(d, "fw.bin", buf, 4096, value, err), SIGFS_DL_BAD);
	assert_non_null(strstr(err, "found 4096"));
	/* ... one byte more is an artifact, whatever it holds. */
	assert_int_equal(sigfs_dl_parse(d, "fw.bin", buf, 4097, value, err), SIGFS_DL_NOT_A_LINE);
	assert_int_equal(sigfs_dl_parse(d, "fw.bin", buf, huge, value, err), SIGFS_DL_NOT_A_LINE);
	/* A good line padded with a long name over the limit. */
	memcpy(buf, H64 "  ", 66);
	assert_int_equal(sigfs_dl_parse(d, "fw.bin", buf, 5000, value, err), SIGFS_DL_NOT_A_LINE);
	/* A long mismatching name is quoted shortened, and err stays one line. */
	assert_int_equal(sigfs_dl_parse(d, "fw.bin", buf, 4000, value, err), SIGFS_DL_BAD);
	assert_non_null(strstr(err, "the line names aaaa"));
	assert_true(strlen(err) < SIGFS_ERRLEN);
	free(buf);
}

static void test_null_err_is_allowed(void **state)
{
	uint8_t value[SIGFS_MAX_DIGEST];

	(void)state;
	assert_int_equal(parse(digest("sha256"), "fw.bin", "", value, NULL), SIGFS_DL_BAD);
	assert_int_equal(parse(digest("sha256"), "fw.bin", "abc", value, NULL), SIGFS_DL_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suffix),
		cmocka_unit_test(test_good_lines_every_digest),
		cmocka_unit_test(test_mixed_case_hex),
		cmocka_unit_test(test_bad_and_not_lines),
		cmocka_unit_test(test_binary_with_nul),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_null_err_is_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
