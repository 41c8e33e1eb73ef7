/*
 * test_keymeta.c: the key settings file <state>/keys/NAME/meta, parsed by
 * sigfs_key_meta_parse() (signer/keys.h): a file as the store writes it, the
 * names a key has by default, settings it does not know, and every bad
 * value refused with an error naming the setting, never read as something
 * else (a created= that is not a number, a value cut to fit its field).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "signer/keys.h"

/* Parse text (len bytes; 0: strlen) as the settings of key "fw"; the result. */
static bool auto_seen;

static int parse(const char *text, size_t len, struct sigfs_key *k, char *err)
{
	memset(k, 0, sizeof(*k));
	strcpy(k->name, "fw");
	err[0] = '\0';
	return sigfs_key_meta_parse((const uint8_t *)text, len ? len : strlen(text), k, &auto_seen,
				    err);
}

static void test_as_written(void **state)
{
	char err[SIGFS_ERRLEN];
	struct sigfs_key k;

	(void)state;
	assert_int_equal(parse("algorithm=rsa-3072\ndigest=sha512\nformat=openpgp\npadding=pkcs1\n"
			       "allow_sha1=yes\ndigest_files=no\nbackend=hsm1\ncreated=1733400000\n"
			       "uid=Release key <release@example.org>\nnamespace=git\n", 0, &k, err),
			 0);
	assert_string_equal(k.alg->name, "rsa-3072");
	assert_string_equal(k.digest->name, "sha512");
	assert_string_equal(k.format->name, "openpgp");
	assert_int_equal(k.padding, SIGFS_PAD_PKCS1);
	assert_true(k.allow_sha1);
	assert_false(k.digest_files);
	assert_string_equal(k.backend, "hsm1");
	assert_int_equal(k.created, 1733400000);
	assert_string_equal(k.uid, "Release key <release@example.org>");
	assert_string_equal(k.ssh_namespace, "git");
}

/* digest_auto= is read when there; its absence is told, not guessed (keys.c decides). */
static void test_digest_auto(void **state)
{
	char err[SIGFS_ERRLEN];
	struct sigfs_key k;

	(void)state;
	assert_int_equal(parse("algorithm=ecdsa-p384\ndigest=sha384\ndigest_auto=yes\n"
			       "format=raw\nbackend=soft\n", 0, &k, err), 0);
	assert_true(auto_seen);
	assert_true(k.digest_auto);
	assert_int_equal(parse("algorithm=ecdsa-p384\ndigest=sha256\ndigest_auto=no\n"
			       "format=raw\nbackend=soft\n", 0, &k, err), 0);
	assert_true(auto_seen);
	assert_false(k.digest_auto);
	assert_int_equal(parse("algorithm=ecdsa-p384\ndigest=sha384\nformat=raw\nbackend=soft\n",
			       0, &k, err), 0);
	assert_false(auto_seen);
	assert_false(k.digest_auto);
	assert_int_equal(parse("algorithm=ecdsa-p384\ndigest=sha384\ndigest_auto=maybe\n"
			       "format=raw\nbackend=soft\n", 0, &k, err), -EINVAL);
	assert_non_null(strstr(err, "bad digest_auto=maybe"));
}

static void test_defaults_and_unknown_lines(void **state)
{
	char err[SIGFS_ERRLEN];
	struct sigfs_key k;

	(void)state;
	/* No uid, namespace or created; a line of a later version and one without '='. */
	assert_int_equal(parse("algorithm=ed25519\ndigest=sha256\nformat=raw\npadding=none\n"
			       "backend=soft\nrotation=yearly\n\njunk", 0, &k, err), 0);
	assert_string_equal(k.uid, "fw (sigfs)");
	assert_string_equal(k.ssh_namespace, "file");
	assert_int_equal(k.created, 0);
	assert_int_equal(k.padding, SIGFS_PAD_NONE);
	/* Before 1970 is a time too. */
	assert_int_equal(parse("algorithm=ed25519\ndigest=sha256\nformat=raw\nbackend=soft\n"
			       "created=-86400", 0, &k, err), 0);
	assert_int_equal(k.created, -86400);
	/* Every 64-bit time, the smallest included. */
	assert_int_equal(parse("algorithm=ed25519\ndigest=sha256\nformat=raw\nbackend=soft\n"
			       "created=-9223372036854775808", 0, &k, err), 0);
	assert_true(k.created == INT64_MIN);
}

static void test_bad_values(void **state)
{
	static const struct {
		const char *line, *err;
	} cases[] = {
		{ "created=abc", "bad created=abc" },
		{ "created=", "bad created=" },
		{ "created=17334x", "bad created=17334x" },
		{ "created= 1733400000", "bad created= 1733400000" },
		{ "created=+1733400000", "bad created=+1733400000" },
		{ "created=99999999999999999999", "bad created=99999999999999999999" },
		/* One past the largest 64-bit time, a lone or doubled sign. */
		{ "created=9223372036854775808", "bad created=9223372036854775808" },
		{ "created=-", "bad created=-" },
		{ "created=--1", "bad created=--1" },
		{ "algorithm=rsa-1024", "bad algorithm=rsa-1024" },
		{ "digest=md5", "bad digest=md5" },
		{ "format=pdf", "bad format=pdf" },
		{ "padding=oaep", "bad padding=oaep" },
		{ "allow_sha1=maybe", "bad allow_sha1=maybe" },
		{ "digest_files=\x1b[1m", "bad digest_files=\\x1b[1m" },
		/* 64 characters do not fit a backend name: never cut to another name. */
		{ "backend=hsm-012345678901234567890123456789012345678901234567890123456789",
		  "bad backend=hsm-01234" },
		{ "namespace=0123456789012345678901234567890123456789012345678901234567890123",
		  "bad namespace=01234" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[512], err[SIGFS_ERRLEN];
		struct sigfs_key k;

		snprintf(text, sizeof(text), "algorithm=ed25519\ndigest=sha256\nformat=raw\n"
			 "backend=soft\n%s\n", cases[i].line);
		if (parse(text, 0, &k, err) != -EINVAL)
			fail_msg("%s: accepted", cases[i].line);
		if (!strstr(err, cases[i].err) || !strstr(err, "key fw: "))
			fail_msg("%s: err \"%s\" lacks \"%s\"", cases[i].line, err, cases[i].err);
	}
}

static void test_bad_files(void **state)
{
	static const char nul[] = "algorithm=ed25519\ndigest=sha256\0\nformat=raw\nbackend=soft\n";
	char big[3000], err[SIGFS_ERRLEN];
	struct sigfs_key k;
	size_t o;

	(void)state;
	assert_int_equal(parse("algorithm=ed25519\ndigest=sha256\nformat=raw\n", 0, &k, err),
			 -EINVAL);
	assert_non_null(strstr(err, "key fw: incomplete settings file"));
	/* Everything after a NUL byte was once ignored. */
	assert_int_equal(parse(nul, sizeof(nul) - 1, &k, err), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	/* A file larger than the store ever writes was once cut short. */
	o = (size_t)snprintf(big, sizeof(big), "algorithm=ed25519\ndigest=sha256\nformat=raw\n");
	while (o + 30 < sizeof(big))
		o += (size_t)snprintf(big + o, sizeof(big) - o, "comment=xx\n");
	o += (size_t)snprintf(big + o, sizeof(big) - o, "backend=b\n");
	assert_int_equal(parse(big, o, &k, err), -EINVAL);
	assert_non_null(strstr(err, "larger than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_as_written),
		cmocka_unit_test(test_digest_auto),
		cmocka_unit_test(test_defaults_and_unknown_lines),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
