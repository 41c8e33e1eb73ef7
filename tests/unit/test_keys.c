/*
 * test_keys.c: the key store (signer/keys.c) on the in-memory backend and
 * the test clocks of testenv.h: creating and deleting keys, the attribute
 * files, the times it records and how long it reuses the backends' status.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "signer/keys.h"
#include "testenv.h"
#include "testlib.h"

static struct t_store st;

static int setup(void **state)
{
	(void)state;
	t_wall_now = 1700000000;
	t_store_open(&st, "keys");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_store_close(&st);
	return 0;
}

/* Attribute attr of key as text (a static buffer), asserting it can be read. */
static const char *attr(const char *key, const char *name)
{
	static char text[4096];
	int i = sigfs_key_attr_find(name);
	size_t len = 0;
	char *buf = NULL;

	assert_true(i >= 0);
	assert_int_equal(sigfs_keys_attr_read(st.ks, key, (size_t)i, &buf, &len), 0);
	assert_true(len < sizeof(text));
	memcpy(text, buf, len);
	text[len] = '\0';
	free(buf);
	return text;
}

/* Write value into attribute name of key: the store's result, with its reason in err. */
static int set_attr(const char *key, const char *name, const char *value, char *err)
{
	int i = sigfs_key_attr_find(name);

	assert_true(i >= 0);
	err[0] = '\0';
	return sigfs_keys_attr_write(st.ks, key, (size_t)i, (const uint8_t *)value,
				     strlen(value), 1000, err);
}

static void create(const char *key)
{
	char err[SIGFS_ERRLEN] = "";

	if (sigfs_keys_create(st.ks, key, NULL, 1000, err) != 0)
		fail_msg("create %s: %s", key, err);
}

static void test_create_defaults(void **state)
{
	char err[SIGFS_ERRLEN], path[600];
	struct sigfs_key k;
	struct stat sb;

	(void)state;
	t_wall_now = 1712345678;
	create("alpha");
	assert_int_equal(t_mem_count(), 1);
	assert_int_equal(sigfs_keys_get(st.ks, "alpha", &k), 0);
	assert_string_equal(k.backend, "soft");
	assert_int_equal(k.created, 1712345678);
	assert_true(k.digest_auto);
	assert_string_equal(attr("alpha", "algorithm"), "ecdsa-p256\n");
	assert_string_equal(attr("alpha", "digest"), "sha256\n");
	assert_string_equal(attr("alpha", "format"), "raw\n");
	assert_string_equal(attr("alpha", "padding"), "none\n");
	assert_string_equal(attr("alpha", "count"), "0\n");
	assert_string_equal(attr("alpha", "created"), "1712345678\n");
	assert_string_equal(attr("alpha", "uid"), "alpha (sigfs)\n");
	assert_string_equal(attr("alpha", "namespace"), "file\n");
	assert_string_equal(attr("alpha", "last-error"), "");
	assert_memory_equal(attr("alpha", "pubkey.pem"), "-----BEGIN PUBLIC KEY-----\n", 27);
	snprintf(path, sizeof(path), "%s/inbox/alpha", st.dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, st.cfg.inbox_mode);
	snprintf(path, sizeof(path), "%s/keys/alpha/meta", st.dir);
	assert_int_equal(stat(path, &sb), 0);

	assert_int_equal(sigfs_keys_create(st.ks, "alpha", NULL, 1000, err), -EEXIST);
	assert_string_equal(err, "key alpha exists");
	assert_int_equal(sigfs_keys_create(st.ks, "../x", NULL, 1000, err), -EINVAL);
	assert_string_equal(err, "key names must not start with '.'");
	assert_int_equal(t_mem.generated, 1);
}

/* Settings are files: a second store on the same directory finds them. */
static void test_reopen_keeps_settings(void **state)
{
	char err[SIGFS_ERRLEN];
	struct sigfs_key *keys;

	(void)state;
	create("beta");
	create("alpha");
	assert_int_equal(set_attr("alpha", "uid", "Release <rel@example.org>\n", err), 0);
	t_store_close_keys(&st);
	assert_int_equal(sigfs_keys_open_env(&st.cfg, st.state_fd, st.audit, &t_env, &st.ks, err),
			 0);
	assert_int_equal(sigfs_keys_list(st.ks, &keys), 2);
	assert_string_equal(keys[0].name, "alpha");
	assert_string_equal(keys[1].name, "beta");
	assert_string_equal(keys[0].uid, "Release <rel@example.org>");
	assert_int_equal(keys[0].created, 1700000000);
	free(keys);
}

static void test_delete(void **state)
{
	char err[SIGFS_ERRLEN], path[600];
	struct sigfs_key k;
	struct stat sb;

	(void)state;
	create("gamma");
	snprintf(path, sizeof(path), "%s/inbox/gamma/fw.bin", st.dir);
	t_write_file(path, "x", 1);
	assert_int_equal(sigfs_keys_delete(st.ks, "gamma", 1000, err), -ENOTEMPTY);
	assert_string_equal(err, "key gamma: its inbox is not empty; empty it first");
	assert_int_equal(sigfs_keys_get(st.ks, "gamma", &k), 0);
	assert_int_equal(t_mem_count(), 1);
	/* The refused delete gave the inbox back. */
	assert_int_equal(stat(path, &sb), 0);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(sigfs_keys_delete(st.ks, "gamma", 1000, err), 0);
	assert_int_equal(sigfs_keys_get(st.ks, "gamma", &k), -ENOENT);
	assert_int_equal(t_mem_count(), 0);
	snprintf(path, sizeof(path), "%s/inbox/gamma", st.dir);
	assert_int_equal(stat(path, &sb), -1);
	snprintf(path, sizeof(path), "%s/keys/gamma", st.dir);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(sigfs_keys_delete(st.ks, "gamma", 1000, err), -ENOENT);
	assert_string_equal(err, "no key gamma");
}

static void test_digest_and_sha1(void **state)
{
	char err[SIGFS_ERRLEN];

	(void)state;
	create("alpha");
	assert_int_equal(set_attr("alpha", "digest", "sha1", err), -EPERM);
	assert_string_equal(err, "key alpha does not allow sha1: write yes into allow_sha1 first");
	assert_string_equal(attr("alpha", "digest"), "sha256\n");
	assert_int_equal(set_attr("alpha", "allow_sha1", "yes\n", err), 0);
	assert_int_equal(set_attr("alpha", "digest", "sha1\n", err), 0);
	assert_string_equal(attr("alpha", "digest"), "sha1\n");
	assert_int_equal(set_attr("alpha", "allow_sha1", "no", err), -EINVAL);
	assert_string_equal(err, "key alpha uses sha1: change its digest first");
	assert_int_equal(set_attr("alpha", "allow_sha1", "maybe", err), -EINVAL);
	assert_string_equal(err, "allow_sha1 is yes or no, not maybe");
	assert_int_equal(set_attr("alpha", "digest", "md5", err), -EINVAL);
	assert_string_equal(err, "unknown digest md5");
	assert_int_equal(set_attr("alpha", "digest", "two\nlines", err), -EINVAL);
	assert_string_equal(err, "digest takes one word on one line");
}

static void test_settings_refused(void **state)
{
	char err[SIGFS_ERRLEN];

	(void)state;
	create("alpha");
	assert_int_equal(set_attr("alpha", "padding", "pss", err), -EINVAL);
	assert_string_equal(err, "padding applies to RSA keys only; key alpha is ecdsa-p256");
	assert_int_equal(set_attr("alpha", "format", "pdf", err), -EINVAL);
	assert_memory_equal(err, "unknown or unsupported format pdf (this version offers: raw, ", 61);
	assert_int_equal(set_attr("alpha", "format", "minisign", err), -EINVAL);
	assert_string_equal(err, "minisign signs with ed25519 keys only, not ecdsa-p256; use an "
			    "ed25519 key or another format");
	assert_int_equal(set_attr("alpha", "namespace", "a b", err), -EINVAL);
	assert_int_equal(set_attr("alpha", "uid", "a\tb", err), -EINVAL);
	assert_int_equal(set_attr("alpha", "count", "5", err), -EPERM);
	assert_string_equal(err, "count is read-only");
	assert_int_equal(set_attr("alpha", "import", "-----BEGIN PRIVATE KEY-----\n", err),
			 -EOPNOTSUPP);
	assert_string_equal(err, "backend soft cannot import keys");
	assert_int_equal(set_attr("nosuch", "digest", "sha256", err), -ENOENT);
	assert_string_equal(err, "no key nosuch");
}

/* A new algorithm is a new key on the backend; the digest follows it while it is automatic. */
static void test_algorithm_regenerates(void **state)
{
	char err[SIGFS_ERRLEN];
	struct sigfs_key k;

	(void)state;
	create("alpha");
	assert_int_equal(set_attr("alpha", "algorithm", "ecdsa-p384", err), 0);
	assert_int_equal(t_mem.generated, 2);
	assert_int_equal(t_mem_count(), 1);
	assert_string_equal(attr("alpha", "algorithm"), "ecdsa-p384\n");
	assert_string_equal(attr("alpha", "digest"), "sha384\n");
	assert_int_equal(set_attr("alpha", "algorithm", "ed25519", err), 0);
	assert_string_equal(attr("alpha", "digest"), "sha256\n");
	assert_int_equal(set_attr("alpha", "format", "minisign", err), 0);
	sigfs_keys_count(st.ks, "alpha");
	assert_string_equal(attr("alpha", "count"), "1\n");
	assert_int_equal(set_attr("alpha", "algorithm", "ecdsa-p256", err), -EPERM);
	assert_string_equal(err, "key alpha has signed 1 times: its algorithm is fixed; create a "
			    "new key instead");
	assert_int_equal(sigfs_keys_get(st.ks, "alpha", &k), 0);
	assert_string_equal(k.alg->name, "ed25519");
	assert_int_equal(t_mem.generated, 3);
}

/* last-error says when, by the store's wall clock. */
static void test_last_error_time(void **state)
{
	(void)state;
	create("alpha");
	t_wall_now = 1700000000;
	sigfs_keys_set_last_error(st.ks, "alpha", 1000, "rmdir", "its inbox is not empty");
	assert_string_equal(attr("alpha", "last-error"),
			    "2023-11-14T22:13:20Z uid 1000: rmdir: its inbox is not empty\n");
	t_wall_now = 1700000061;
	sigfs_keys_set_last_error(st.ks, "alpha", 0, "digest", "unknown digest md5");
	assert_string_equal(attr("alpha", "last-error"),
			    "2023-11-14T22:14:21Z uid 0: digest: unknown digest md5\n");
}

static const char *status_text(void)
{
	static char text[4096];
	struct sbuf b;

	sbuf_init(&b, sizeof(text) - 1);
	assert_int_equal(sigfs_keys_backends_status(st.ks, &b), 0);
	memcpy(text, b.d, b.len);
	text[b.len] = '\0';
	sbuf_free(&b);
	return text;
}

/* The backend lines are reused for a second of the monotonic clock, unless a key came or went. */
static void test_status_reused_for_a_second(void **state)
{
	(void)state;
	t_mono_ms = 5000000;
	create("alpha");
	assert_string_equal(status_text(), "backend soft: mem, 1 key\n");
	assert_int_equal(t_mem.lists, 1);
	t_mono_ms += 999;
	assert_string_equal(status_text(), "backend soft: mem, 1 key\n");
	assert_int_equal(t_mem.lists, 1);
	t_mono_ms += 1;
	assert_string_equal(status_text(), "backend soft: mem, 1 key\n");
	assert_int_equal(t_mem.lists, 2);
	create("beta");
	assert_string_equal(status_text(), "backend soft: mem, 2 keys\n");
	assert_int_equal(t_mem.lists, 3);
	assert_string_equal(status_text(), "backend soft: mem, 2 keys\n");
	assert_int_equal(t_mem.lists, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest_and_sha1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settings_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_algorithm_regenerates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_error_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_reused_for_a_second, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
