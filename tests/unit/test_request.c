/*
 * test_request.c: signing requests (signer/request.h). Signstar's real
 * sample and requests built from our own SHA-512 states parse into a state
 * that finishes to OpenSSL's SHA-512; our digest requests give the digest;
 * every malformed request is refused with the errno and the reason that
 * reach NAME.err; "optional" is ignored except for file-name.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/sha.h>

#include "common/err.h"
#include "signer/request.h"
#include "signer/sha512.h"

static const char text[] = "this is sample text";

static int parse(const char *json, struct sigfs_request *req, char *err)
{
	return sigfs_request_parse((const uint8_t *)json, strlen(json), req, err);
}

/* A request as text: input is the JSON of "input", output the output type. */
static char *request(const char *version, const char *input, const char *output,
		     const char *extra_required, const char *optional)
{
	size_t n = strlen(input) + strlen(output) + strlen(extra_required) + strlen(optional) +
		   strlen(version) + 200;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "{\"version\":\"%s\",\"required\":{\"input\":%s,\"output\":{\"type\":\"%s\"}%s}"
		 "%s%s}", version, input, output, extra_required, *optional ? "," : "", optional);
	return s;
}

/* The "input" of a state request for the first n bytes of data. */
static char *state_input(const uint8_t *data, size_t n)
{
	struct sigfs_hasher *h = sigfs_sha512_new();
	uint8_t st[SIGFS_SHA512_STATE_LEN];
	char *s = malloc(2000), *p;

	assert_non_null(s);
	assert_int_equal(sigfs_hasher_update(h, data, n), 0);
	assert_int_equal(sigfs_sha512_state(h, st), 0);
	sigfs_hasher_free(h);
	p = s + sprintf(s, "{\"type\":\"sha2-0.11-SHA512-state\",\"content\":[");
	for (size_t i = 0; i < sizeof(st); i++)
		p += sprintf(p, "%s%u", i ? "," : "", st[i]);
	strcpy(p, "]}");
	return s;
}

static char *read_sample(void)
{
	char path[4096], *buf = malloc(SIGFS_REQUEST_MAX);
	FILE *f;
	size_t n;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus-request/signstar-sample.json",
		 getenv("SIGFS_SRC"));
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, SIGFS_REQUEST_MAX - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Signstar's sample unchanged: an OpenPGPv4 signature over its SHA-512 state. */
static void test_signstar_sample(void **state)
{
	struct sigfs_request req;
	char err[SIGFS_ERRLEN] = "", *json = read_sample();
	uint8_t want[64], got[64];
	int r = parse(json, &req, err);

	(void)state;
	free(json);
	if (r != 0)
		fail_msg("the sample is refused: %s", err);
	assert_int_equal(r, 0);
	assert_ptr_equal(req.format, sigfs_format_by_name("openpgp"));
	assert_non_null(req.state);
	assert_null(req.digest);
	/* The random grease key and request-time are ignored; there is no file-name. */
	assert_string_equal(req.file_name, "");
	assert_int_equal(sigfs_hasher_peek(req.state, got), 0);
	SHA512((const uint8_t *)text, strlen(text), want);
	assert_memory_equal(got, want, 64);
	sigfs_request_free(&req);
	assert_null(req.state);
}

/* States we build, for the sizes the e2e test signs, with our own output types. */
static void test_state_requests(void **state)
{
	static const size_t sizes[] = { 0, 1, 111, 112, 127, 128, 129, 4096, 10000 };
	static uint8_t data[10000];
	uint8_t want[64], got[64];

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *in = state_input(data, sizes[i]), err[SIGFS_ERRLEN] = "";
		char *json = request("1.2.3", in, "sigfs-raw", "",
				     "\"optional\":{\"file-name\":\"fw.bin\",\"x\":[1,{}]}");
		struct sigfs_request req;

		if (parse(json, &req, err) != 0)
			fail_msg("%zu bytes: %s", sizes[i], err);
		assert_ptr_equal(req.format, sigfs_format_by_name("raw"));
		assert_string_equal(req.file_name, "fw.bin");
		assert_int_equal(sigfs_hasher_peek(req.state, got), 0);
		SHA512(data, sizes[i], want);
		assert_memory_equal(got, want, 64);
		sigfs_request_free(&req);
		free(json);
		free(in);
	}
}

static void test_digest_request(void **state)
{
	static const char hex[] =
		"B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9";
	struct sigfs_request req;
	char err[SIGFS_ERRLEN] = "", in[300], *json;
	uint8_t want[32];

	(void)state;
	snprintf(in, sizeof(in), "{\"algorithm\":\"sha256\",\"type\":\"sigfs-digest-v1\","
		 "\"digest\":\"%s\"}", hex);
	json = request("1.0.0", in, "sigfs-raw", "", "");
	assert_int_equal(parse(json, &req, err), 0);
	free(json);
	assert_null(req.state);
	assert_ptr_equal(req.digest, sigfs_digest_by_name("sha256"));
	SHA256((const uint8_t *)"hello world", 11, want);
	assert_memory_equal(req.digest_value, want, 32);
	assert_ptr_equal(req.format, sigfs_format_by_name("raw"));
	sigfs_request_free(&req);
}

/* File names that cannot be a plain name are ignored, not refused (they are hints). */
static void test_file_name_hints(void **state)
{
	static const char *const names[] = { "\"../etc/x\"", "\"a\\u0001b\"", "17", "\"\"",
					     "\"a\\u0000b\"" };
	char *in = state_input((const uint8_t *)text, 3);

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char opt[100], err[SIGFS_ERRLEN] = "", *json;
		struct sigfs_request req;
		int r;

		snprintf(opt, sizeof(opt), "\"optional\":{\"file-name\":%s}", names[i]);
		json = request("1.0.0", in, "sigfs-raw", "", opt);
		r = parse(json, &req, err);
		free(json);
		if (strstr(names[i], "\\u0000")) {
			/* jansson refuses NUL in strings: the whole request is malformed. */
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(req.file_name, "");
		sigfs_request_free(&req);
	}
	free(in);
}

/* parse must fail with code, and err must contain why and no control character. */
static void refused(const char *json, size_t len, int code, const char *why)
{
	struct sigfs_request req;
	char err[SIGFS_ERRLEN] = "";
	int r = sigfs_request_parse((const uint8_t *)json, len, &req, err);

	if (r != code)
		fail_msg("got %d, want %d (err \"%s\") for: %.200s", r, code, err, json);
	if (!strstr(err, why))
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
	for (const char *p = err; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	assert_null(req.state);
	assert_null(req.format);
}

static void refused_s(const char *json, int code, const char *why)
{
	refused(json, strlen(json), code, why);
}

/* Build a request around input/output/extras and expect it refused. */
static void refused_req(const char *version, const char *input, const char *output,
			const char *extra, const char *optional, int code, const char *why)
{
	char *json = request(version, input, output, extra, optional);

	refused_s(json, code, why);
	free(json);
}

static void test_malformed_envelope(void **state)
{
	char *in = state_input((const uint8_t *)text, 19), *big;
	size_t n;

	(void)state;
	refused_s("", -EINVAL, "not valid JSON");
	refused_s("{\"version\":", -EINVAL, "not valid JSON");
	refused_s("[1,2]", -EINVAL, "not a JSON object");
	refused_s("\"1.0.0\"", -EINVAL, "not valid JSON");
	refused_s("{}", -EINVAL, "no \"version\"");
	refused_s("{\"version\":1,\"required\":{}}", -EINVAL, "\"version\" in the request's the "
		  "top level is not a string");
	refused_s("{\"version\":\"1.0.0\"}", -EINVAL, "no \"required\"");
	refused_s("{\"version\":\"1.0.0\",\"required\":[]}", -EINVAL, "not an object");
	refused_s("{\"version\":\"1.0.0\",\"required\":{\"output\":{\"type\":\"sigfs-raw\"}}}",
		  -EINVAL, "no \"input\"");
	refused_s("{\"version\":\"1.0.0\",\"version\":\"1.0.0\",\"required\":{}}", -EINVAL,
		  "duplicate");
	refused(("{\"version\":\"1.0.0\"}\0{}"), 22, -EINVAL, "not valid JSON");
	refused_req("2.0.0", in, "sigfs-raw", "", "", -EPROTONOSUPPORT, "version 1 only");
	refused_req("0.9.1", in, "sigfs-raw", "", "", -EPROTONOSUPPORT, "version 1 only");
	refused_req("10.0.0", in, "sigfs-raw", "", "", -EPROTONOSUPPORT, "version 1 only");
	refused_req("1.0", in, "sigfs-raw", "", "", -EINVAL, "not MAJOR.MINOR.PATCH");
	refused_req("1.0.0x", in, "sigfs-raw", "", "", -EINVAL, "not MAJOR.MINOR.PATCH");
	refused_req("1.0.9999999999", in, "sigfs-raw", "", "", -EINVAL, "MAJOR.MINOR.PATCH");
	refused_req("1.0.0", in, "sigfs-raw", ",\"policy\":\"strict\"", "", -EPROTONOSUPPORT,
		    "field \"policy\"");
	refused_req("1.0.0", in, "sigfs-raw", ",\"\\u001b[31mred\":1", "", -EPROTONOSUPPORT,
		    "field \"\\x1b[31mred\"");
	refused_req("1.0.0", in, "sigfs-raw", "", "\"optional\":[]", -EINVAL, "\"optional\"");
	refused_req("1.0.0", in, "sigfs-raw", "", "\"extra\":{}", -EPROTONOSUPPORT,
		    "top level has the field \"extra\"");
	refused_req("1.0.0", in, "OpenPGPv5", "", "", -EPROTONOSUPPORT, "output type \"OpenPGPv5\"");
	refused_req("1.0.0", in, "sigfs-nosuch", "", "", -EPROTONOSUPPORT, "sigfs-raw");
	refused_req("1.0.0", "{\"type\":\"sha3-state\"}", "sigfs-raw", "", "", -EPROTONOSUPPORT,
		    "input type \"sha3-state\"");
	/* Larger than SIGFS_REQUEST_MAX: refused before parsing. */
	n = SIGFS_REQUEST_MAX + 1;
	big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	refused(big, n, -EFBIG, "larger than");
	free(big);
	free(in);
}

/* State content variants: input is "content":[...] made by mutating a good state. */
static void test_malformed_states(void **state)
{
	char *good = state_input((const uint8_t *)text, 19), *in, *p;
	size_t n = SIGFS_REQUEST_MAX - 200, k;

	(void)state;
	refused_req("1.0.0", "{\"type\":\"sha2-0.11-SHA512-state\"}", "sigfs-raw", "", "",
		    -EINVAL, "no \"content\" array");
	refused_req("1.0.0", "{\"type\":\"sha2-0.11-SHA512-state\",\"content\":\"AAAA\"}",
		    "sigfs-raw", "", "", -EINVAL, "no \"content\" array");
	/* An unknown key beside content is part of "required": refused. */
	in = malloc(strlen(good) + 20);
	strcpy(in, good);
	strcpy(in + strlen(in) - 1, ",\"salt\":1}");
	refused_req("1.0.0", in, "sigfs-raw", "", "", -EPROTONOSUPPORT, "field \"salt\"");
	free(in);

	/* Wrong lengths: drop one byte, add one, the old 210-byte layout, huge. */
	in = strdup(good);
	p = strstr(in, ",0]");
	memmove(p, p + 2, strlen(p + 2) + 1);
	refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL, "207 bytes");
	free(in);
	in = malloc(strlen(good) + 10);
	strcpy(in, good);
	strcpy(strstr(in, "]}"), ",0]}");
	refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL, "209 bytes");
	strcpy(strstr(in, "]}"), ",0]}");
	refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL, "pre-release");
	free(in);
	in = malloc(n);
	p = in + sprintf(in, "{\"type\":\"sha2-0.11-SHA512-state\",\"content\":[0");
	for (k = 1; (size_t)(p - in) < n - 100; k++)
		p += sprintf(p, ",0");
	strcpy(p, "]}");
	refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL, "not 208");
	free(in);

	/* Bytes out of range or not integers: change the first number (8 for "this ..."). */
	{
		static const char *const bad[] = { "256", "-1", "8.0", "\"8\"", "true", "null",
						   "[8]", "1e2", "99999999999999999999" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *q = strstr(good, "[") + 1;
			size_t head = (size_t)(q - good), tail_at = head + strcspn(q, ",");

			in = malloc(strlen(good) + 40);
			memcpy(in, good, head);
			strcpy(in + head, bad[i]);
			strcat(in, good + tail_at);
			/* jansson itself refuses integers beyond 64 bits. */
			refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL,
				    i == 8 ? "not valid JSON" : "byte 0 of");
			free(in);
		}
	}
	free(good);
}

/* Corrupt state fields reach sigfs_sha512_from_state's checks through JSON. */
static void test_state_field_checks(void **state)
{
	uint8_t st[SIGFS_SHA512_STATE_LEN] = { 0 };
	char in[2000], *p;

	(void)state;
	for (int variant = 0; variant < 3; variant++) {
		memset(st, 0, sizeof(st));
		st[80] = 5;
		memset(st + 81, 'a', 5);
		if (variant == 0)
			st[80] = 128;          /* pos >= 128 */
		else if (variant == 1)
			st[200] = 1;           /* non-zero padding */
		else
			st[86] = 'x';          /* the byte right after the buffered ones */
		p = in + sprintf(in, "{\"type\":\"sha2-0.11-SHA512-state\",\"content\":[");
		for (size_t i = 0; i < sizeof(st); i++)
			p += sprintf(p, "%s%u", i ? "," : "", st[i]);
		strcpy(p, "]}");
		refused_req("1.0.0", in, "sigfs-raw", "", "", -EINVAL,
			    variant == 0 ? "128 bytes are buffered" :
			    variant == 1 ? "non-zero byte at offset 200" :
			    "non-zero byte at offset 86");
	}
}

static void test_malformed_digests(void **state)
{
	(void)state;
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"md5\",\"digest\":\"00\"}",
		    "sigfs-raw", "", "", -EPROTONOSUPPORT, "\"md5\" is not one sigfs knows");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\",\"digest\":\"00\"}",
		    "sigfs-raw", "", "", -EINVAL, "has 2 hex digits, not 64");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\","
		    "\"digest\":\"zz4d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\"}",
		    "sigfs-raw", "", "", -EINVAL, "not hexadecimal (at digit 0)");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\","
		    "\"digest\":\"b9 d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\"}",
		    "sigfs-raw", "", "", -EINVAL, "not hexadecimal (at digit 2)");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\"}",
		    "sigfs-raw", "", "", -EINVAL, "no \"digest\"");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":256,\"digest\":\"00\"}",
		    "sigfs-raw", "", "", -EINVAL, "\"algorithm\" in the request's input is not a string");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\",\"digest\":\"00\","
		    "\"salt\":\"\"}", "sigfs-raw", "", "", -EPROTONOSUPPORT, "field \"salt\"");
}

/*
 * A format that hashes files its own way (minisign: BLAKE2b) cannot sign
 * what a request carries: refused at parse time, not with a wrong signature.
 */
static void test_format_that_cannot_take_a_hash(void **state)
{
	char *in = state_input((const uint8_t *)text, 19);

	(void)state;
	assert_non_null(sigfs_format_by_name("minisign"));
	refused_req("1.0.0", in, "sigfs-minisign", "", "", -EPROTONOSUPPORT,
		    "minisign format cannot sign a sha512 hash");
	refused_req("1.0.0", "{\"type\":\"sigfs-digest-v1\",\"algorithm\":\"sha256\","
		    "\"digest\":\"b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\"}",
		    "sigfs-minisign", "", "", -EPROTONOSUPPORT, "cannot sign a sha256 hash");
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signstar_sample),
		cmocka_unit_test(test_state_requests),
		cmocka_unit_test(test_digest_request),
		cmocka_unit_test(test_file_name_hints),
		cmocka_unit_test(test_malformed_envelope),
		cmocka_unit_test(test_malformed_states),
		cmocka_unit_test(test_state_field_checks),
		cmocka_unit_test(test_malformed_digests),
		cmocka_unit_test(test_format_that_cannot_take_a_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
