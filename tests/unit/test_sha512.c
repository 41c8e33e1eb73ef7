/*
 * test_sha512.c: the resumable SHA-512 of signer/sha512.h. A state written
 * after any number of bytes, read back and continued, must give OpenSSL's
 * one-shot SHA-512 of the whole input; the real Signstar sample state must
 * finish to SHA-512("this is sample text"); corrupt states are refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/err.h"
#include "signer/sha512.h"

#define DATA_LEN 6000
static uint8_t data[DATA_LEN];

static int setup(void **state)
{
	uint32_t x = 12345;

	(void)state;
	/* Fixed pseudo-random bytes: a failure reproduces. */
	for (size_t i = 0; i < sizeof(data); i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	return 0;
}

/* State after split bytes, resumed, fed the rest up to total: must equal OpenSSL. */
static void check_split(size_t split, size_t total)
{
	uint8_t st[SIGFS_SHA512_STATE_LEN], want[64], got[64];
	struct sigfs_hasher *h = sigfs_sha512_new(), *r = NULL;
	char err[SIGFS_ERRLEN] = "";

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, data, split), 0);
	assert_int_equal(sigfs_sha512_state(h, st), 0);
	sigfs_hasher_free(h);
	/* The layout: block count LE at 64, pos at 80, buffered bytes at 81, zeros. */
	assert_int_equal(st[64] | st[65] << 8, split / 128);
	assert_int_equal(st[80], split % 128);
	assert_memory_equal(st + 81, data + split - split % 128, split % 128);
	for (size_t i = 81 + split % 128; i < sizeof(st); i++)
		assert_int_equal(st[i], 0);

	assert_int_equal(sigfs_sha512_from_state(st, sizeof(st), &r, err), 0);
	assert_non_null(r);
	assert_string_equal(r->name, "SHA2-512");
	assert_int_equal(r->len, 64);
	assert_int_equal(sigfs_hasher_update(r, data + split, total - split), 0);
	assert_int_equal(sigfs_hasher_final(r, got), 0);
	sigfs_hasher_free(r);
	SHA512(data, total, want);
	if (memcmp(want, got, 64) != 0)
		fail_msg("split %zu of %zu bytes: SHA-512 differs from OpenSSL's", split, total);
}

static void test_splits_against_openssl(void **state)
{
	static const size_t splits[] = { 0, 1, 111, 112, 127, 128, 129, 255, 256, 1000, 4096 };
	static const size_t tails[] = { 0, 1, 16, 111, 112, 113, 127, 128, 129, 1000 };
	uint32_t x = 99;

	(void)state;
	for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++)
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++)
			check_split(splits[i], splits[i] + tails[t]);
	for (int n = 0; n < 300; n++) {
		size_t total, split;

		x = x * 1103515245u + 12345u;
		total = (x >> 8) % (DATA_LEN + 1);
		x = x * 1103515245u + 12345u;
		split = total ? (x >> 8) % (total + 1) : 0;
		check_split(split, total);
	}
}

/* Many small updates, dup and peek agree with OpenSSL too. */
static void test_chunks_dup_peek(void **state)
{
	struct sigfs_hasher *h = sigfs_sha512_new(), *c;
	uint8_t want[64], got[64], half[64];

	(void)state;
	assert_non_null(h);
	assert_true(sigfs_hasher_is(h, EVP_sha512()));
	assert_false(sigfs_hasher_is(h, EVP_sha256()));
	for (size_t off = 0; off < 3000; off += 7)
		assert_int_equal(sigfs_hasher_update(h, data + off, 7), 0);
	c = sigfs_hasher_dup(h);
	assert_non_null(c);
	assert_int_equal(sigfs_hasher_peek(h, half), 0);
	SHA512(data, 3003, want);
	assert_memory_equal(half, want, 64);
	/* The copy goes on alone; the original still finishes to the first value. */
	assert_int_equal(sigfs_hasher_update(c, data + 3003, 997), 0);
	assert_int_equal(sigfs_hasher_final(c, got), 0);
	SHA512(data, 4000, want);
	assert_memory_equal(got, want, 64);
	assert_int_equal(sigfs_hasher_final(h, got), 0);
	assert_memory_equal(got, half, 64);
	sigfs_hasher_free(c);
	sigfs_hasher_free(h);
}

/* Only states of this kind can be written out. */
static void test_state_of_evp_hasher_refused(void **state)
{
	struct sigfs_hasher *h = sigfs_hasher_new(EVP_sha512());
	uint8_t st[SIGFS_SHA512_STATE_LEN];

	(void)state;
	assert_non_null(h);
	assert_int_equal(sigfs_sha512_state(h, st), -EINVAL);
	sigfs_hasher_free(h);
}

/* The state inside Signstar's real sample request (tests/fuzz/corpus-request). */
static void test_signstar_sample(void **state)
{
	static const char text[] = "this is sample text";
	char path[4096], err[SIGFS_ERRLEN] = "";
	uint8_t st[SIGFS_SHA512_STATE_LEN], mine[SIGFS_SHA512_STATE_LEN], want[64], got[64];
	struct sigfs_hasher *h = NULL;
	json_t *root, *content;
	json_error_t jerr;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus-request/signstar-sample.json",
		 getenv("SIGFS_SRC"));
	root = json_load_file(path, 0, &jerr);
	if (!root)
		fail_msg("cannot read %s: %s", path, jerr.text);
	content = json_object_get(json_object_get(json_object_get(root, "required"), "input"),
				  "content");
	assert_int_equal(json_array_size(content), sizeof(st));
	for (size_t i = 0; i < sizeof(st); i++)
		st[i] = (uint8_t)json_integer_value(json_array_get(content, i));
	json_decref(root);
	assert_int_equal(sigfs_sha512_from_state(st, sizeof(st), &h, err), 0);
	assert_int_equal(sigfs_hasher_final(h, got), 0);
	sigfs_hasher_free(h);
	SHA512((const uint8_t *)text, strlen(text), want);
	assert_memory_equal(got, want, 64);

	/* And our encoder writes exactly Signstar's state for those bytes. */
	h = sigfs_sha512_new();
	assert_int_equal(sigfs_hasher_update(h, text, strlen(text)), 0);
	assert_int_equal(sigfs_sha512_state(h, mine), 0);
	sigfs_hasher_free(h);
	assert_memory_equal(mine, st, sizeof(st));
}

static void refused(const uint8_t *st, size_t len, const char *why)
{
	struct sigfs_hasher *h = (struct sigfs_hasher *)1;
	char err[SIGFS_ERRLEN] = "";

	assert_int_equal(sigfs_sha512_from_state(st, len, &h, err), -EINVAL);
	assert_null(h);
	if (!strstr(err, why))
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
}

static void test_corrupt_states_refused(void **state)
{
	uint8_t st[SIGFS_SHA512_STATE_LEN + 4], good[SIGFS_SHA512_STATE_LEN];
	struct sigfs_hasher *h = sigfs_sha512_new(), *r = NULL;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_int_equal(sigfs_hasher_update(h, data, 300), 0);   /* 2 blocks, pos 44 */
	assert_int_equal(sigfs_sha512_state(h, good), 0);
	sigfs_hasher_free(h);
	memset(st, 0, sizeof(st));
	memcpy(st, good, sizeof(good));
	refused(st, 207, "207 bytes");
	refused(st, 209, "209 bytes");
	refused(st, 210, "210 bytes");
	refused(st, 0, "0 bytes");

	memcpy(st, good, sizeof(good));
	st[80] = 128;
	refused(st, sizeof(good), "128 bytes are buffered");
	st[80] = 255;
	refused(st, sizeof(good), "255 bytes are buffered");

	memcpy(st, good, sizeof(good));
	st[81 + 44] = 1;                      /* first byte after the buffered ones */
	refused(st, sizeof(good), "non-zero byte at offset 125");
	memcpy(st, good, sizeof(good));
	st[207] = 0x80;                       /* the very last byte */
	refused(st, sizeof(good), "non-zero byte at offset 207");

	memcpy(st, good, sizeof(good));
	st[72] = 1;                           /* high half of the u128 block count */
	refused(st, sizeof(good), "more than 2^64");

	/* A full buffer of 127 non-zero bytes is fine. */
	memset(st, 0, sizeof(st));
	memcpy(st, good, 80);
	st[80] = 127;
	memset(st + 81, 0xff, 127);
	assert_int_equal(sigfs_sha512_from_state(st, sizeof(good), &r, err), 0);
	sigfs_hasher_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_splits_against_openssl),
		cmocka_unit_test(test_chunks_dup_peek),
		cmocka_unit_test(test_state_of_evp_hasher_refused),
		cmocka_unit_test(test_signstar_sample),
		cmocka_unit_test(test_corrupt_states_refused),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
