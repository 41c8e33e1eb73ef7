/*
 * test_format_raw.c: the format table and the "raw" format. A fake signer
 * pins what raw hands to a backend; the soft backend plus the `openssl`
 * command line pin that NAME.sig verifies the way users check it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "testlib.h"

static const uint8_t msg[] = "an artifact to sign with the raw format\n";

/* What the fake signer saw, and what it answers. */
struct fake {
	struct sigfs_sign_input in;
	uint8_t seen[SIGFS_MAX_DIGEST];   /* the bytes asked to t_be signed (digest mode) */
	int calls;
	int ret;
};

static const uint8_t fake_sig[] = { 0xde, 0xad, 0xbe, 0xef, 0x01 };

static int fake_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	struct fake *f = ctx;

	f->in = *in;
	if (in->digest && in->len <= sizeof(f->seen))
		memcpy(f->seen, in->data, in->len);
	f->calls++;
	if (f->ret)
		return sigfs_seterr(err, f->ret, "fake backend down");
	assert_true(*siglen >= sizeof(fake_sig));
	memcpy(sig, fake_sig, sizeof(fake_sig));
	*siglen = sizeof(fake_sig);
	return 0;
}

static const struct sigfs_format *raw(void)
{
	const struct sigfs_format *f = sigfs_format_by_name("raw");

	assert_non_null(f);
	return f;
}

static void test_table(void **state)
{
	(void)state;
	assert_string_equal(raw()->name, "raw");
	assert_string_equal(raw()->suffix, ".sig");
	assert_ptr_equal(sigfs_format_at(0), raw());
	for (size_t i = 0; sigfs_format_at(i); i++)
		assert_ptr_equal(sigfs_format_by_name(sigfs_format_at(i)->name), sigfs_format_at(i));
	assert_null(sigfs_format_by_name("nosuch"));
	/* ".minisig" is the longest suffix: names are at most 255 - 8 bytes. */
	assert_int_equal(sigfs_format_max_suffix(), 8);
}

static void test_check_and_needs_message(void **state)
{
	const struct sigfs_alg *a;
	const struct sigfs_digest *d;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		for (size_t j = 0; (d = sigfs_digest_at(j)); j++)
			assert_int_equal(raw()->check(a, d, err), 0);
		assert_int_equal(raw()->needs_message(a), a->kind == SIGFS_KIND_ED25519);
	}
}

static void test_digest_mode_input(void **state)
{
	const struct sigfs_digest *d = sigfs_digest_by_name("sha384");
	uint8_t dv[48];
	struct fake f = { 0 };
	struct sigfs_format_input in = {
		.key = &(struct sigfs_format_key){ .alg = sigfs_alg_by_name("rsa-3072"), .padding = SIGFS_PAD_PSS },
		.digest = d, .digest_value = dv, .message = msg, .message_len = sizeof(msg),
	};
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	memset(dv, 0x5a, sizeof(dv));
	sbuf_init(&out, SIGFS_MAX_SIG);
	assert_int_equal(raw()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_int_equal(f.calls, 1);
	assert_ptr_equal(f.in.alg, in.key->alg);
	assert_int_equal(f.in.padding, SIGFS_PAD_PSS);
	assert_ptr_equal(f.in.digest, d);
	/* A digest key signs the digest even when the message is at hand. */
	assert_ptr_equal(f.in.data, dv);
	assert_int_equal(f.in.len, 48);
	assert_int_equal(out.len, sizeof(fake_sig));
	assert_memory_equal(out.d, fake_sig, sizeof(fake_sig));
	sbuf_free(&out);
}

/* From a hash state (a file hashed while written): the digest of that state is signed. */
static void test_state_input(void **state)
{
	const struct sigfs_digest *d = sigfs_digest_by_name("sha512-256");
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_digest_md(d));
	uint8_t want[32];
	unsigned wlen = 0;
	struct fake f = { 0 };
	struct sigfs_format_input in = {
		.key = &(struct sigfs_format_key){ .alg = sigfs_alg_by_name("ecdsa-p384") },
		.state = h,
	};
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, msg, sizeof(msg)), 0);
	assert_int_equal(EVP_Digest(msg, sizeof(msg), want, &wlen, sigfs_digest_md(d), NULL), 1);
	sbuf_init(&out, SIGFS_MAX_SIG);
	assert_int_equal(raw()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_int_equal(f.calls, 1);
	assert_ptr_equal(f.in.digest, d);
	assert_int_equal(f.in.len, 32);
	assert_memory_equal(f.seen, want, 32);
	/* The state itself goes on: more bytes give another digest. */
	assert_int_equal(sigfs_hasher_update(h, "x", 1), 0);
	sbuf_free(&out);
	sigfs_hasher_free(h);
}

static void test_ed25519_message_mode(void **state)
{
	uint8_t dv[32] = { 0 };
	struct fake f = { 0 };
	struct sigfs_format_input in = {
		.key = &(struct sigfs_format_key){ .alg = sigfs_alg_by_name("ed25519") },
		.digest = sigfs_digest_by_name("sha256"),
		.digest_value = dv, .message = msg, .message_len = sizeof(msg),
	};
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	sbuf_init(&out, SIGFS_MAX_SIG);
	assert_int_equal(raw()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_int_equal(f.calls, 1);
	assert_null(f.in.digest);
	assert_ptr_equal(f.in.data, msg);
	assert_int_equal(f.in.len, sizeof(msg));

	/* Without the message there is nothing Ed25519 can sign. */
	sbuf_free(&out);
	in.message = NULL;
	f.calls = 0;
	assert_int_equal(raw()->produce(&in, fake_sign, &f, &out, err), -EINVAL);
	assert_int_equal(f.calls, 0);
	assert_int_equal(strncmp(err, "Ed25519 cannot sign a digest", 28), 0);
	assert_int_equal(out.len, 0);
	sbuf_free(&out);
}

static void test_errors_pass_through(void **state)
{
	const struct sigfs_digest *d = sigfs_digest_by_name("sha256");
	uint8_t dv[32] = { 0 };
	struct fake f = { .ret = -EIO };
	struct sigfs_format_input in = {
		.key = &(struct sigfs_format_key){ .alg = sigfs_alg_by_name("ecdsa-p256") },
		.digest = d, .digest_value = dv,
	};
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	sbuf_init(&out, SIGFS_MAX_SIG);
	assert_int_equal(raw()->produce(&in, fake_sign, &f, &out, err), -EIO);
	assert_string_equal(err, "fake backend down");
	assert_int_equal(out.len, 0);
	sbuf_free(&out);

	/* An output that cannot hold the signature is an error, not a short .sig. */
	f.ret = 0;
	err[0] = '\0';
	sbuf_init(&out, 2);
	assert_int_not_equal(raw()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_true(strlen(err) > 0);
	sbuf_free(&out);
}

/* End to end with the soft backend and the openssl command line. */

static char tmpdir[1024];

static int setup(void **state)
{
	(void)state;
	return t_soft_setup(tmpdir, sizeof(tmpdir), "format_raw");
}

static int teardown(void **state)
{
	(void)state;
	t_soft_teardown(tmpdir);
	return 0;
}

/* Produce NAME.sig for msg with a fresh key of alg, check it with openssl. */
static void cli_case(const char *alg, const char *digest, enum sigfs_padding pad)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(alg);
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	const char *sigopt = pad == SIGFS_PAD_PSS ?
		"-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2" : "";
	char id[64], pub[1200], data[1200], sigf[1200], verify[4096], err[SIGFS_ERRLEN] = "";
	uint8_t dv[SIGFS_MAX_DIGEST];
	unsigned dlen;
	EVP_PKEY *pk = NULL;
	struct sbuf out;
	FILE *f;
	struct sigfs_format_input in = {
		.key = &(struct sigfs_format_key){ .alg = a, .padding = pad },
		.digest = d, .digest_value = dv, .name = "artifact",
	};

	snprintf(id, sizeof(id), "%s-%s-%s", alg, digest, sigfs_padding_name(pad));
	assert_int_equal(t_be->ops->generate(t_be, id, a, err), 0);
	assert_int_equal(t_be->ops->public_key(t_be, id, &pk, err), 0);
	snprintf(pub, sizeof(pub), "%s/%s.pub.pem", tmpdir, id);
	snprintf(data, sizeof(data), "%s/%s", tmpdir, id);
	snprintf(sigf, sizeof(sigf), "%s/%s%s", tmpdir, id, raw()->suffix);
	f = fopen(pub, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, pk), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	t_write_file(data, msg, sizeof(msg));

	assert_int_equal(EVP_Digest(msg, sizeof(msg), dv, &dlen, sigfs_digest_md(d), NULL), 1);
	if (raw()->needs_message(a)) {
		in.message = msg;
		in.message_len = sizeof(msg);
	}
	sbuf_init(&out, SIGFS_MAX_SIG);
	if (raw()->produce(&in, t_soft_sign, id, &out, err) != 0)
		fail_msg("%s: %s", id, err);
	t_write_file(sigf, out.d, out.len);

	if (a->kind == SIGFS_KIND_ED25519)
		snprintf(verify, sizeof(verify),
			 "openssl pkeyutl -verify -pubin -inkey '%s' -rawin -in '%s' -sigfile '%s' >/dev/null 2>&1",
			 pub, data, sigf);
	else
		snprintf(verify, sizeof(verify),
			 "openssl dgst %s -verify '%s' %s -signature '%s' '%s' >/dev/null 2>&1",
			 d->cli, pub, sigopt, sigf, data);
	assert_int_equal(t_run("%s", verify), 0);
	out.d[out.len - 1] ^= 0x01;
	t_write_file(sigf, out.d, out.len);
	assert_int_not_equal(t_run("%s", verify), 0);
	sbuf_free(&out);
}

static void test_openssl_verifies_raw_sig(void **state)
{
	(void)state;
	cli_case("ed25519", "sha256", SIGFS_PAD_NONE);
	cli_case("ecdsa-p256", "sha256", SIGFS_PAD_NONE);
	cli_case("ecdsa-p384", "sha3-384", SIGFS_PAD_NONE);
	cli_case("rsa-2048", "sha256", SIGFS_PAD_PSS);
	cli_case("rsa-2048", "sha512-256", SIGFS_PAD_PKCS1);
	cli_case("rsa-3072", "sha1", SIGFS_PAD_PKCS1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_check_and_needs_message),
		cmocka_unit_test(test_digest_mode_input),
		cmocka_unit_test(test_state_input),
		cmocka_unit_test(test_ed25519_message_mode),
		cmocka_unit_test(test_errors_pass_through),
		cmocka_unit_test(test_openssl_verifies_raw_sig),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
