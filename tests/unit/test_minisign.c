/*
 * test_minisign.c: the "minisign" format. The output and pubkey.minisign are
 * taken apart line by line, both signatures checked with OpenSSL's Ed25519
 * over exactly the bytes minisign checks (BLAKE2b-512 of the file; signature
 * || trusted comment), and `minisign -V` pins that users can verify NAME.minisig.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "testlib.h"

static const uint8_t msg[] = "an artifact to sign with the minisign format\n";

static const struct sigfs_format *minisign(void)
{
	const struct sigfs_format *f = sigfs_format_by_name("minisign");

	assert_non_null(f);
	return f;
}

static char tmpdir[1024];
static int sign_calls;

/* The soft backend, counting calls and pinning that minisign signs in message mode. */
static int soft_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	sign_calls++;
	assert_null(in->digest);
	return t_soft_sign(ctx, in, sig, siglen, err);
}

/* Split text into lines (each ends in '\n'); returns how many. */
static int split_lines(const struct sbuf *b, char *text, size_t cap, char **lines, int max)
{
	int n = 0;

	assert_true(b->len < cap);
	memcpy(text, b->d, b->len);
	text[b->len] = '\0';
	assert_true(b->len > 0 && text[b->len - 1] == '\n');
	for (char *p = text, *nl; n < max && (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		lines[n++] = p;
	}
	return n;
}

/* Strict base64 of one line: exactly want bytes, and it encodes back to itself. */
static void unbase64(const char *s, uint8_t *out, size_t want)
{
	uint8_t buf[256];
	unsigned char back[512];
	int len;

	assert_true(strlen(s) == 4 * ((want + 2) / 3));
	len = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)strlen(s));
	assert_true(len >= (int)want);
	memcpy(out, buf, want);
	EVP_EncodeBlock(back, out, (int)want);
	assert_string_equal((char *)back, s);
}

static void ed25519_verifies(EVP_PKEY *pk, const uint8_t *sig, const uint8_t *m, size_t n, int ok)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	assert_non_null(c);
	assert_int_equal(EVP_DigestVerifyInit(c, NULL, NULL, NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(c, sig, 64, m, n) == 1, ok);
	EVP_MD_CTX_free(c);
}

static struct sigfs_hasher *blake_state(const uint8_t *p, size_t n)
{
	const struct sigfs_alg *ed = sigfs_alg_by_name("ed25519");
	struct sigfs_hasher *h =
		sigfs_hasher_new(sigfs_format_file_md(minisign(), ed, sigfs_digest_by_name("sha256")));

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, p, n), 0);
	return h;
}

static int setup(void **state)
{
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	if (t_soft_setup(tmpdir, sizeof(tmpdir), "minisign") != 0)
		return -1;
	if (t_be->ops->generate(t_be, "rel", sigfs_alg_by_name("ed25519"), err) != 0) {
		fprintf(stderr, "generate: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_soft_teardown(tmpdir);
	return 0;
}

static void test_table_and_check(void **state)
{
	const struct sigfs_alg *a;
	char err[SIGFS_ERRLEN];

	(void)state;
	assert_string_equal(minisign()->suffix, ".minisig");
	assert_int_equal(minisign()->nattrs, 1);
	assert_string_equal(minisign()->attrs[0].name, "pubkey.minisign");
	/* The longest suffix bounds inbox names: 255 - 8 = 247 bytes. */
	assert_true(sigfs_format_max_suffix() >= strlen(".minisig"));
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		err[0] = '\0';
		assert_false(minisign()->needs_message(a));
		assert_true(EVP_MD_is_a(sigfs_format_file_md(minisign(), a, sigfs_digest_by_name("sha256")),
					"BLAKE2B-512"));
		if (a->kind == SIGFS_KIND_ED25519) {
			assert_int_equal(minisign()->check(a, sigfs_digest_by_name("sha384"), err), 0);
		} else {
			assert_int_equal(minisign()->check(a, sigfs_digest_by_name("sha256"), err), -EINVAL);
			assert_non_null(strstr(err, "ed25519 keys only"));
			assert_non_null(strstr(err, a->name));
		}
	}
}

/* Key id: first 8 bytes of BLAKE2b-512 of the public key. */
static void keyid_of(EVP_PKEY *pk, uint8_t pkraw[32], uint8_t id[8])
{
	uint8_t h[64];
	size_t n = 32;

	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, pkraw, &n), 1);
	assert_int_equal(EVP_Digest(pkraw, 32, h, NULL, EVP_blake2b512(), NULL), 1);
	memcpy(id, h, 8);
}

static void test_pubkey_file(void **state)
{
	EVP_PKEY *pk = NULL;
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519") };
	uint8_t pkraw[32], id[8], blob[42];
	char text[512], *lines[4], want[128], err[SIGFS_ERRLEN] = "";
	struct sbuf out, again;
	uint64_t num = 0;

	(void)state;
	assert_int_equal(t_be->ops->public_key(t_be, "rel", &pk, err), 0);
	k.pub = pk;
	keyid_of(pk, pkraw, id);
	sbuf_init(&out, 4096);
	assert_int_equal(minisign()->attrs[0].render(&k, soft_sign, "rel", &out, err), 0);
	assert_int_equal(split_lines(&out, text, sizeof(text), lines, 4), 2);
	for (int i = 7; i >= 0; i--)
		num = num << 8 | id[i];
	snprintf(want, sizeof(want), "untrusted comment: minisign public key %016" PRIX64, num);
	assert_string_equal(lines[0], want);
	unbase64(lines[1], blob, sizeof(blob));
	assert_memory_equal(blob, "Ed", 2);
	assert_memory_equal(blob + 2, id, 8);
	assert_memory_equal(blob + 10, pkraw, 32);
	/* Rendering again gives the same file: the key id never changes. */
	sbuf_init(&again, 4096);
	assert_int_equal(minisign()->attrs[0].render(&k, soft_sign, "rel", &again, err), 0);
	assert_int_equal(again.len, out.len);
	assert_memory_equal(again.d, out.d, out.len);
	sbuf_free(&again);
	sbuf_free(&out);

	/* No minisign key for an RSA key: -ENODATA with a reason. */
	k.alg = sigfs_alg_by_name("rsa-2048");
	sbuf_init(&out, 4096);
	assert_int_equal(minisign()->attrs[0].render(&k, soft_sign, "rel", &out, err), -ENODATA);
	assert_non_null(strstr(err, "ed25519"));
	sbuf_free(&out);
	EVP_PKEY_free(pk);
}

/* Produce one signature of msg at time `now`; out holds NAME.minisig. */
static void produce(EVP_PKEY *pk, time_t now, struct sbuf *out)
{
	struct sigfs_hasher *h = blake_state(msg, sizeof(msg));
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519"), .pub = pk };
	struct sigfs_format_input in = { .key = &k, .state = h, .name = "fw-1.0.bin", .now = now };
	char err[SIGFS_ERRLEN] = "";

	sign_calls = 0;
	sbuf_init(out, 1 << 16);
	if (minisign()->produce(&in, soft_sign, "rel", out, err) != 0)
		fail_msg("produce: %s", err);
	assert_int_equal(sign_calls, 2);
	/* The state is peeked, not finished: it can go on. */
	assert_int_equal(sigfs_hasher_update(h, "x", 1), 0);
	sigfs_hasher_free(h);
}

static void test_signature_lines_verify_with_openssl(void **state)
{
	EVP_PKEY *pk = NULL;
	uint8_t pkraw[32], id[8], line2[74], global[64], hash[64], gm[64 + 512];
	char text[2048], *lines[5], err[SIGFS_ERRLEN] = "";
	const char *tc = "timestamp:1700000000\tfile:fw-1.0.bin\thashed";
	struct sbuf out;

	(void)state;
	assert_int_equal(t_be->ops->public_key(t_be, "rel", &pk, err), 0);
	keyid_of(pk, pkraw, id);
	produce(pk, 1700000000, &out);
	assert_int_equal(split_lines(&out, text, sizeof(text), lines, 5), 4);
	assert_string_equal(lines[0], "untrusted comment: signature from sigfs key rel");
	unbase64(lines[1], line2, sizeof(line2));
	assert_memory_equal(line2, "ED", 2);
	assert_memory_equal(line2 + 2, id, 8);
	assert_int_equal(strncmp(lines[2], "trusted comment: ", 17), 0);
	assert_string_equal(lines[2] + 17, tc);
	unbase64(lines[3], global, sizeof(global));

	/* The signature is Ed25519 over BLAKE2b-512 of the file, not over the file. */
	assert_int_equal(EVP_Digest(msg, sizeof(msg), hash, NULL, EVP_blake2b512(), NULL), 1);
	ed25519_verifies(pk, line2 + 10, hash, sizeof(hash), 1);
	ed25519_verifies(pk, line2 + 10, msg, sizeof(msg), 0);
	hash[0] ^= 1;
	ed25519_verifies(pk, line2 + 10, hash, sizeof(hash), 0);
	/* The global signature covers signature || trusted comment. */
	memcpy(gm, line2 + 10, 64);
	memcpy(gm + 64, tc, strlen(tc));
	ed25519_verifies(pk, global, gm, 64 + strlen(tc), 1);
	gm[64 + 10] ^= 1;
	ed25519_verifies(pk, global, gm, 64 + strlen(tc), 0);
	sbuf_free(&out);
	EVP_PKEY_free(pk);
}

static void test_without_blake2b_refused(void **state)
{
	EVP_PKEY *pk = NULL;
	uint8_t dv[64] = { 0 };
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519") };
	struct sigfs_format_input in = { .key = &k, .digest = sigfs_digest_by_name("sha512"),
					 .digest_value = dv, .name = "fw.bin" };
	struct sigfs_hasher *h = sigfs_hasher_new(EVP_sha512());
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_int_equal(t_be->ops->public_key(t_be, "rel", &pk, err), 0);
	k.pub = pk;
	sign_calls = 0;
	sbuf_init(&out, 4096);
	assert_int_equal(minisign()->produce(&in, soft_sign, "rel", &out, err), -EINVAL);
	assert_non_null(strstr(err, "BLAKE2b-512"));
	assert_non_null(strstr(err, "sha512"));
	/* A SHA-512 state (a Signstar request) cannot give a BLAKE2b hash either. */
	in.digest = NULL;
	in.state = h;
	err[0] = '\0';
	assert_int_equal(minisign()->produce(&in, soft_sign, "rel", &out, err), -EINVAL);
	assert_non_null(strstr(err, "BLAKE2b-512"));
	/* An RSA key never gets here (check refuses it) but is refused here too. */
	k.alg = sigfs_alg_by_name("rsa-2048");
	err[0] = '\0';
	assert_int_equal(minisign()->produce(&in, soft_sign, "rel", &out, err), -EINVAL);
	assert_non_null(strstr(err, "ed25519"));
	assert_int_equal(sign_calls, 0);
	assert_int_equal(out.len, 0);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(pk);
}

static void test_minisign_verifies(void **state)
{
	EVP_PKEY *pk = NULL;
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519") };
	char pubf[1200], data[1200], sigf[1200], other[1200], outf[1200], err[SIGFS_ERRLEN] = "";
	struct sbuf out, pub;

	(void)state;
	assert_int_equal(t_be->ops->public_key(t_be, "rel", &pk, err), 0);
	k.pub = pk;
	snprintf(pubf, sizeof(pubf), "%s/pubkey.minisign", tmpdir);
	snprintf(data, sizeof(data), "%s/fw-1.0.bin", tmpdir);
	snprintf(sigf, sizeof(sigf), "%s/fw-1.0.bin.minisig", tmpdir);
	snprintf(other, sizeof(other), "%s/other.bin", tmpdir);
	snprintf(outf, sizeof(outf), "%s/minisign.out", tmpdir);
	sbuf_init(&pub, 4096);
	assert_int_equal(minisign()->attrs[0].render(&k, soft_sign, "rel", &pub, err), 0);
	t_write_file(pubf, pub.d, pub.len);
	produce(pk, 1700000001, &out);
	t_write_file(sigf, out.d, out.len);
	t_write_file(data, msg, sizeof(msg));
	t_write_file(other, msg, sizeof(msg) - 1);

	assert_int_equal(t_run("minisign -Vm '%s' -p '%s' > '%s' 2>&1", data, pubf, outf), 0);
	assert_int_equal(t_run("grep -qx 'Trusted comment: timestamp:1700000001\tfile:fw-1.0.bin\thashed' '%s'",
			     outf), 0);
	assert_int_equal(t_run("minisign -Vm '%s' -x '%s' -p '%s' >/dev/null 2>&1", other, sigf, pubf), 1);
	sbuf_free(&out);
	sbuf_free(&pub);
	EVP_PKEY_free(pk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_and_check),
		cmocka_unit_test(test_pubkey_file),
		cmocka_unit_test(test_signature_lines_verify_with_openssl),
		cmocka_unit_test(test_without_blake2b_refused),
		cmocka_unit_test(test_minisign_verifies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
