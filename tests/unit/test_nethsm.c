/*
 * test_nethsm.c: the nethsm backend without a NetHSM. The reply parsers of
 * nethsm_reply.h get good and malformed replies: not JSON, missing fields,
 * wrong types, bad base64, a signature too long for the buffer, empty and
 * huge ones. The backend's open checks the tags setting, and its list op
 * fails at once (no retries) when nothing answers. Signing against a
 * NetHSM-compatible server is tests/e2e/nethsm_backend.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backends/backend.h"
#include "backends/nethsm_reply.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "testlib.h"

static char tmpdir[4096];
static char pass_path[4200];
static const char *tags_setting;
static const char *url_setting = "https://127.0.0.1:1";

/* A reply buffer holding the string s (without its NUL). */
static struct sbuf *reply(const char *s)
{
	static struct sbuf b;

	sbuf_view(&b, s, strlen(s));
	return &b;
}

static int sig_of(const char *json, uint8_t *sig, size_t *siglen)
{
	return nethsm_reply_signature(reply(json), sig, siglen);
}

static void test_signature_ok(void **state)
{
	uint8_t sig[64];
	size_t n;

	(void)state;
	n = sizeof(sig);
	assert_int_equal(sig_of("{\"signature\":\"AQIDBA==\"}", sig, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(sig, "\x01\x02\x03\x04", 4);
	n = sizeof(sig);
	assert_int_equal(sig_of("{\"signature\":\"AQIDBAU=\"}", sig, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(sig, "\x01\x02\x03\x04\x05", 5);
	n = sizeof(sig);
	assert_int_equal(sig_of(" {\"signature\" : \"AQID\" }\n", sig, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(sig, "\x01\x02\x03", 3);
	/* Exactly the room there is. */
	n = 3;
	assert_int_equal(sig_of("{\"signature\":\"AQID\"}", sig, &n), 0);
	assert_int_equal(n, 3);
}

static void test_signature_malformed(void **state)
{
	static const char *const bad[] = {
		"",                                     /* empty */
		"not json",
		"{\"signature\":\"AQID\"",              /* truncated */
		"[\"AQID\"]",                           /* not an object */
		"{}",                                   /* no signature */
		"{\"sig\":\"AQID\"}",
		"{\"signature\":null}",                 /* wrong types */
		"{\"signature\":1234}",
		"{\"signature\":[\"AQID\"]}",
		"{\"signature\":\"\"}",                 /* empty signature */
		"{\"signature\":\"AQI\"}",              /* not a multiple of 4 */
		"{\"signature\":\"AQIDB\"}",
		"{\"signature\":\"AQ ID\"}",            /* whitespace */
		"{\"signature\":\"AQID\\nBA==\"}",
		"{\"signature\":\"AQ=D\"}",             /* '=' inside */
		"{\"signature\":\"A===\"}",
		"{\"signature\":\"====\"}",
		"{\"signature\":\"AQ*D\"}",             /* outside the alphabet */
		"{\"signature\":\"AQ-_\"}",             /* base64url is not the spec's base64 */
		"{\"signature\":\"AQID\\u0000AAA\"}",   /* a NUL inside */
	};
	uint8_t sig[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = sizeof(sig);

		if (sig_of(bad[i], sig, &n) != -EBADMSG)
			fail_msg("reply %zu (%s) was not refused with -EBADMSG", i, bad[i]);
		assert_int_equal(n, sizeof(sig));
	}
}

static void test_signature_too_long(void **state)
{
	uint8_t sig[8];
	size_t n = 4;

	(void)state;
	/* Five bytes do not fit four: -ENOSPC, and how many it has. */
	assert_int_equal(sig_of("{\"signature\":\"AQIDBAU=\"}", sig, &n), -ENOSPC);
	assert_int_equal(n, 5);
	n = 0;
	assert_int_equal(sig_of("{\"signature\":\"AQ==\"}", sig, &n), -ENOSPC);
	assert_int_equal(n, 1);
}

/* A reply of about 1 MB (the backend's limit): a huge signature is refused, never copied. */
static void test_signature_huge(void **state)
{
	const size_t b64len = 1 << 20;
	char *json = malloc(b64len + 32);
	uint8_t sig[SIGFS_MAX_SIG];
	size_t n = sizeof(sig);

	(void)state;
	assert_non_null(json);
	strcpy(json, "{\"signature\":\"");
	memset(json + strlen(json), 'A', b64len);
	strcpy(json + 14 + b64len, "\"}");
	assert_int_equal(sig_of(json, sig, &n), -ENOSPC);
	assert_int_equal(n, b64len / 4 * 3);
	free(json);
}

/* Every length a real signature has round-trips through OpenSSL's encoder. */
static void test_signature_roundtrip(void **state)
{
	uint8_t raw[SIGFS_MAX_SIG], sig[SIGFS_MAX_SIG];
	char b64[2 * SIGFS_MAX_SIG], json[2 * SIGFS_MAX_SIG + 32];

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 7 + 3);
	for (size_t len = 1; len <= sizeof(raw); len += len < 80 ? 1 : 61) {
		size_t n = sizeof(sig);

		EVP_EncodeBlock((unsigned char *)b64, raw, (int)len);
		snprintf(json, sizeof(json), "{\"signature\":\"%s\"}", b64);
		assert_int_equal(sig_of(json, sig, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(sig, raw, len);
	}
}

static void test_key_ids(void **state)
{
	char **ids = NULL;
	size_t n = 99;

	(void)state;
	assert_int_equal(nethsm_reply_key_ids(reply("[{\"id\":\"a\"},{\"id\":\"k-2.x\"}]"), &ids,
					      &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "a");
	assert_string_equal(ids[1], "k-2.x");
	sigfs_backend_list_free(ids, n);
	assert_int_equal(nethsm_reply_key_ids(reply(" [ ] "), &ids, &n), 0);
	assert_int_equal(n, 0);
	sigfs_backend_list_free(ids, n);
}

static void test_key_ids_malformed(void **state)
{
	static const char *const bad[] = {
		"", "not json", "[{\"id\":\"a\"}", "{}", "{\"id\":\"a\"}", "\"a\"", "null",
		"[\"a\"]", "[{}]", "[{\"key\":\"a\"}]", "[{\"id\":1}]", "[{\"id\":null}]",
		"[{\"id\":\"\"}]", "[{\"id\":\"a\"},{\"id\":[]}]", "[{\"id\":\"a\"},7]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char **ids = NULL;
		size_t n = 99;

		if (nethsm_reply_key_ids(reply(bad[i]), &ids, &n) != -EBADMSG)
			fail_msg("reply %zu (%s) was not refused with -EBADMSG", i, bad[i]);
		assert_null(ids);
		assert_int_equal(n, 99);
	}
}

static void test_key_ids_many(void **state)
{
	const size_t count = 20000;
	char *json = malloc(count * 16 + 2), *p = json, **ids = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(json);
	*p++ = '[';
	for (size_t i = 0; i < count; i++)
		p += sprintf(p, "%s{\"id\":\"k%zu\"}", i ? "," : "", i);
	strcpy(p, "]");
	assert_int_equal(nethsm_reply_key_ids(reply(json), &ids, &n), 0);
	assert_int_equal(n, count);
	assert_string_equal(ids[count - 1], "k19999");
	sigfs_backend_list_free(ids, n);
	free(json);
}

static void test_message(void **state)
{
	char msg[32];

	(void)state;
	nethsm_reply_message(reply("{\"message\":\"tags restriction not met\"}"), msg, sizeof(msg));
	assert_string_equal(msg, "tags restriction not met");
	nethsm_reply_message(reply("{\"message\":\"two\\nlines\\tand\\u001b[31m\"}"), msg,
			     sizeof(msg));
	assert_string_equal(msg, "two lines and [31m");
	nethsm_reply_message(reply("{\"message\":\"a message longer than the buffer is\"}"), msg,
			     sizeof(msg));
	assert_int_equal(strlen(msg), sizeof(msg) - 1);
	for (const char *const *s = (const char *const[]){ "", "<html>502</html>", "{}",
			"{\"message\":5}", "[\"message\"]", NULL }; *s; s++) {
		strcpy(msg, "x");
		nethsm_reply_message(reply(*s), msg, sizeof(msg));
		assert_string_equal(msg, "");
	}
}

static void test_public_pem(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *got = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, *cut;
	long len;

	(void)state;
	assert_non_null(key);
	assert_true(PEM_write_bio_PUBKEY(bio, key));
	len = BIO_get_mem_data(bio, &pem);
	pem = strndup(pem, (size_t)len);
	assert_int_equal(nethsm_reply_public_pem(reply(pem), &got), 0);
	assert_int_equal(EVP_PKEY_eq(key, got), 1);
	EVP_PKEY_free(got);
	for (const char *const *s = (const char *const[]){ "", "not pem",
			"{\"message\":\"key not found\"}",
			"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", NULL };
	     *s; s++) {
		got = (EVP_PKEY *)1;
		assert_int_equal(nethsm_reply_public_pem(reply(*s), &got), -EBADMSG);
		assert_null(got);
	}
	cut = strndup(pem, (size_t)len / 2);
	assert_int_equal(nethsm_reply_public_pem(reply(cut), &got), -EBADMSG);
	free(cut);
	free(pem);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

/* --- the backend: open and list, with nothing listening ------------------------------- */

static const char *conf_get(const struct sigfs_backend_conf *c, const char *key, const char *def)
{
	(void)c;
	if (strcmp(key, "url") == 0)
		return url_setting;
	if (strcmp(key, "user") == 0)
		return "ns~op";
	if (strcmp(key, "password_file") == 0)
		return pass_path;
	if (strcmp(key, "tags") == 0)
		return tags_setting ? tags_setting : def;
	if (strcmp(key, "retry_seconds") == 0)
		return "10";
	return def;
}

static int open_backend(struct sigfs_backend **b, char *err)
{
	struct sigfs_backend_conf conf = {
		.name = "nh", .state_dir = tmpdir, .get = conf_get, .workers = 2,
	};

	return sigfs_backend_type("nethsm")->open(&conf, b, err);
}

static int setup(void **state)
{
	(void)state;
	if (t_mkdtemp(tmpdir, sizeof(tmpdir), "nethsm") < 0)
		return -1;
	snprintf(pass_path, sizeof(pass_path), "%s/op.pass", tmpdir);
	t_write_file(pass_path, "secret\n", 7);
	return chmod(pass_path, 0600);
}

static int teardown(void **state)
{
	(void)state;
	t_run("rm -rf '%s'", tmpdir);
	return 0;
}

static void test_tags_setting(void **state)
{
	static const char *const good[] = { "", "t1", "t1, t2", "a,b,c", " berlin ,munich ",
					     "A.b_c-9" };
	static const char *const bad[] = { "t 1", "t1,", ",t1", "t1,,t2", "_t", ".t", "-t",
					   "t/1", "t~1", "tä" };
	struct sigfs_backend *b;
	char err[SIGFS_ERRLEN], longtag[140];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		tags_setting = good[i];
		err[0] = '\0';
		if (open_backend(&b, err) != 0)
			fail_msg("tags = %s refused: %s", good[i], err);
		b->ops->close(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tags_setting = bad[i];
		err[0] = '\0';
		b = NULL;
		if (open_backend(&b, err) != -EINVAL)
			fail_msg("tags = %s accepted", bad[i]);
		assert_null(b);
		assert_non_null(strstr(err, "nethsm backend nh: tags = "));
	}
	memset(longtag, 'x', 129);
	longtag[129] = '\0';
	tags_setting = longtag;
	assert_int_equal(open_backend(&b, err), -EINVAL);
	longtag[128] = '\0';
	assert_int_equal(open_backend(&b, err), 0);
	b->ops->close(b);
	tags_setting = NULL;
}

/* retry_seconds is 10, but the list of .ctl/status tries once. */
static void test_list_unreachable_fails_at_once(void **state)
{
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN] = "", **ids = NULL;
	struct timespec t0, t1;
	size_t n = 0;

	(void)state;
	assert_int_equal(open_backend(&b, err), 0);
	assert_non_null(b->ops->list);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(b->ops->list(b, &ids, &n, err), -EHOSTUNREACH);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	assert_null(ids);
	assert_non_null(strstr(err, "nethsm backend nh: GET /keys: "));
	assert_non_null(strstr(err, "(1 tries in "));
	b->ops->close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_ok),
		cmocka_unit_test(test_signature_malformed),
		cmocka_unit_test(test_signature_too_long),
		cmocka_unit_test(test_signature_huge),
		cmocka_unit_test(test_signature_roundtrip),
		cmocka_unit_test(test_key_ids),
		cmocka_unit_test(test_key_ids_malformed),
		cmocka_unit_test(test_key_ids_many),
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_public_pem),
		cmocka_unit_test(test_tags_setting),
		cmocka_unit_test(test_list_unreachable_fails_at_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
