/*
 * test_cms.c: the key's X.509 certificate (signer/x509.c) and the "cms"
 * format. A fake backend signs with a real OpenSSL key held by the test, so
 * OpenSSL itself judges the results: X509_verify for certificates,
 * d2i_CMS_ContentInfo + CMS_verify (with the certificate as the only trust
 * anchor) for SignedData, over every algorithm, digest and RSA padding the
 * format accepts.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "signer/x509.h"

static const uint8_t content[] = "firmware image v1.2.3, signed as CMS\n";
static const time_t created = 1700000000;   /* 2023-11-14 */
static const time_t now = 1750000000;

/* The "backend": a private key in the test; counts calls, may fail or lie. */
struct fake {
	EVP_PKEY *key;
	EVP_PKEY *liar;      /* when set, signs with this key instead */
	int calls;
	int ret;
	struct sigfs_sign_input last;
};

static int fake_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	struct fake *f = ctx;
	EVP_PKEY *key = f->liar ? f->liar : f->key;
	EVP_PKEY_CTX *pc;
	EVP_MD_CTX *m;
	int ok;

	f->calls++;
	f->last = *in;
	if (f->ret)
		return sigfs_seterr(err, f->ret, "fake backend down");
	if (!in->digest) {
		m = EVP_MD_CTX_new();
		ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestSign(m, sig, siglen, in->data, in->len) == 1;
		EVP_MD_CTX_free(m);
		assert_true(ok);
		return 0;
	}
	assert_int_equal(in->len, in->digest->len);
	pc = EVP_PKEY_CTX_new(key, NULL);
	assert_non_null(pc);
	assert_int_equal(EVP_PKEY_sign_init(pc), 1);
	assert_int_equal(EVP_PKEY_CTX_set_signature_md(pc, sigfs_digest_md(in->digest)), 1);
	if (in->padding == SIGFS_PAD_PSS) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST), 1);
	} else if (in->padding == SIGFS_PAD_PKCS1) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING), 1);
	}
	assert_int_equal(EVP_PKEY_sign(pc, sig, siglen, in->data, in->len), 1);
	EVP_PKEY_CTX_free(pc);
	return 0;
}

static EVP_PKEY *keygen(const struct sigfs_alg *a)
{
	EVP_PKEY *k = NULL;

	switch (a->kind) {
	case SIGFS_KIND_ED25519:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case SIGFS_KIND_EC:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", a->group);
		break;
	case SIGFS_KIND_RSA:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)a->bits);
		break;
	}
	assert_non_null(k);
	return k;
}

/* The public half only, as the key store hands it to formats. */
static EVP_PKEY *public_of(EVP_PKEY *k)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n = i2d_PUBKEY(k, &der);
	EVP_PKEY *pub;

	assert_true(n > 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	assert_non_null(pub);
	return pub;
}

static const struct sigfs_format *cms(void)
{
	const struct sigfs_format *f = sigfs_format_by_name("cms");

	assert_non_null(f);
	return f;
}

/* A key of algorithm alg (RSA: rsa-2048, bigger ones only cost time here). */
struct tkey {
	struct fake fake;
	struct sigfs_format_key fk;
	X509 *cert;
};

static void tkey_init(struct tkey *t, const char *alg, enum sigfs_padding pad)
{
	memset(t, 0, sizeof(*t));
	t->fk.name = "release-key";
	t->fk.alg = sigfs_alg_by_name(alg);
	assert_non_null(t->fk.alg);
	t->fk.padding = t->fk.alg->kind == SIGFS_KIND_RSA ? pad : SIGFS_PAD_NONE;
	t->fk.digest = sigfs_digest_by_name("sha256");
	t->fk.created = created;
	t->fake.key = keygen(t->fk.alg);
	t->fk.pub = public_of(t->fake.key);
}

/* Render cert.pem through the format's attribute, as the key store does. */
static int render_cert(struct tkey *t, X509 **x, char *err)
{
	const struct sigfs_format_attr *a = &cms()->attrs[0];
	struct sbuf out;
	BIO *bio;
	int r;

	sbuf_init(&out, 1 << 20);
	r = a->render(&t->fk, fake_sign, &t->fake, &out, err);
	*x = NULL;
	if (r == 0) {
		assert_non_null(out.d);
		assert_memory_equal(out.d, "-----BEGIN CERTIFICATE-----\n", 28);
		bio = BIO_new_mem_buf(out.d, (int)out.len);
		*x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		assert_non_null(*x);
	}
	sbuf_free(&out);
	return r;
}

/* Give the key its certificate, DER, as sigfs_keys_format_key() does. */
static void tkey_cert(struct tkey *t, X509 *x)
{
	int n;

	X509_free(t->cert);
	OPENSSL_free((void *)t->fk.cert);
	t->fk.cert = NULL;
	t->cert = x;
	n = i2d_X509(x, (unsigned char **)&t->fk.cert);
	assert_true(n > 0);
	t->fk.cert_len = (size_t)n;
}

static void tkey_free(struct tkey *t)
{
	X509_free(t->cert);
	OPENSSL_free((void *)t->fk.cert);
	EVP_PKEY_free(t->fk.pub);
	EVP_PKEY_free(t->fake.key);
}

static void test_table(void **state)
{
	(void)state;
	assert_string_equal(cms()->suffix, ".p7s");
	assert_true(cms()->needs_cert);
	assert_int_equal(cms()->nattrs, 1);
	assert_string_equal(cms()->attrs[0].name, "cert.pem");
	assert_true(cms()->attrs[0].writable);
	for (size_t i = 0; sigfs_alg_at(i); i++)
		assert_false(cms()->needs_message(sigfs_alg_at(i)));
}

static void test_check(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	const struct sigfs_digest *d;

	(void)state;
	assert_int_equal(cms()->check(sigfs_alg_by_name("ed25519"), sigfs_digest_by_name("sha512"),
				      err), -EINVAL);
	assert_non_null(strstr(err, "Ed25519"));
	for (size_t i = 0; (d = sigfs_digest_at(i)); i++) {
		bool no_ecdsa_oid = strncmp(d->name, "sha512-", 7) == 0;

		err[0] = 0;
		assert_int_equal(cms()->check(sigfs_alg_by_name("ecdsa-p384"), d, err),
				 no_ecdsa_oid ? -EINVAL : 0);
		if (no_ecdsa_oid)
			assert_non_null(strstr(err, d->name));
		assert_int_equal(cms()->check(sigfs_alg_by_name("rsa-3072"), d, err), 0);
	}
}

static bool has_ext(X509 *x, int nid, bool critical)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i)) == critical;
}

static void check_cert(struct tkey *t, X509 *x)
{
	X509_NAME *sub = X509_get_subject_name(x);
	BASIC_CONSTRAINTS *bc;
	char cn[80], o[80];

	assert_int_equal(X509_verify(x, t->fk.pub), 1);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_NAME_cmp(sub, X509_get_issuer_name(x)), 0);
	assert_true(X509_NAME_get_text_by_NID(sub, NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "release-key");
	assert_true(X509_NAME_get_text_by_NID(sub, NID_organizationName, o, sizeof(o)) > 0);
	assert_string_equal(o, "sigfs");
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), created), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), created + 30 * 365 * 86400L),
			 1);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), t->fk.pub), 1);
	assert_true(has_ext(x, NID_basic_constraints, true));
	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(has_ext(x, NID_key_usage, true));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_true(has_ext(x, NID_subject_key_identifier, false));
	assert_int_equal(ASN1_STRING_length(X509_get0_subject_key_id(x)), 20);
}

static void test_cert_every_algorithm(void **state)
{
	static const struct { const char *alg; enum sigfs_padding pad; int sig_nid; } cases[] = {
		{ "ed25519", SIGFS_PAD_NONE, NID_ED25519 },
		{ "ecdsa-p256", SIGFS_PAD_NONE, NID_ecdsa_with_SHA256 },
		{ "ecdsa-p384", SIGFS_PAD_NONE, NID_ecdsa_with_SHA384 },
		{ "ecdsa-p521", SIGFS_PAD_NONE, NID_ecdsa_with_SHA512 },
		{ "rsa-2048", SIGFS_PAD_PSS, NID_rsassaPss },
		{ "rsa-2048", SIGFS_PAD_PKCS1, NID_sha256WithRSAEncryption },
	};
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tkey t;
		X509 *x, *again;

		tkey_init(&t, cases[i].alg, cases[i].pad);
		assert_int_equal(render_cert(&t, &x, err), 0);
		assert_int_equal(t.fake.calls, 1);
		check_cert(&t, x);
		assert_int_equal(X509_get_signature_nid(x), cases[i].sig_nid);
		/* Rendered again (key settings changed): same serial, still verifies. */
		assert_int_equal(render_cert(&t, &again, err), 0);
		assert_int_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
						  X509_get0_serialNumber(again)), 0);
		assert_int_equal(X509_verify(again, t.fk.pub), 1);
		X509_free(again);
		X509_free(x);
		tkey_free(&t);
	}
}

static void test_cert_errors(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct tkey t;
	X509 *x;

	(void)state;
	tkey_init(&t, "ecdsa-p256", SIGFS_PAD_NONE);
	t.fake.ret = -EIO;
	assert_int_equal(render_cert(&t, &x, err), -EIO);
	assert_string_equal(err, "fake backend down");
	assert_null(x);
	/* A backend that answers with another key's signature gives no certificate. */
	t.fake.ret = 0;
	t.fake.liar = keygen(t.fk.alg);
	assert_int_equal(render_cert(&t, &x, err), -EIO);
	assert_non_null(strstr(err, "does not verify"));
	assert_null(x);
	EVP_PKEY_free(t.fake.liar);
	tkey_free(&t);
}

/* Produce NAME.p7s for content, from a hash state or from a finished digest. */
static int produce(struct tkey *t, const struct sigfs_digest *d, bool as_digest, struct sbuf *out,
		   char *err)
{
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_digest_md(d));
	uint8_t dv[SIGFS_MAX_DIGEST];
	struct sigfs_format_input in = { .key = &t->fk, .name = "fw.bin", .now = now };
	int r;

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, content, sizeof(content)), 0);
	if (as_digest) {
		assert_int_equal(sigfs_hasher_peek(h, dv), 0);
		in.digest = d;
		in.digest_value = dv;
	} else {
		in.state = h;
	}
	sbuf_init(out, 1 << 20);
	r = cms()->produce(&in, fake_sign, &t->fake, out, err);
	/* The hash state is the engine's: produce must leave it usable. */
	assert_int_equal(sigfs_hasher_update(h, "x", 1), 0);
	sigfs_hasher_free(h);
	return r;
}

/* `openssl cms -verify -binary -CAfile ca`: 1 if it verifies over data. */
static int cms_verify(const struct sbuf *p7s, X509 *ca, const uint8_t *data, size_t len)
{
	const unsigned char *p = p7s->d;
	CMS_ContentInfo *ci = d2i_CMS_ContentInfo(NULL, &p, (long)p7s->len);
	X509_STORE *st = X509_STORE_new();
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	int ok;

	assert_non_null(ci);
	assert_ptr_equal(p, p7s->d + p7s->len);
	assert_true(X509_STORE_add_cert(st, ca));
	ok = CMS_verify(ci, NULL, st, bio, NULL, CMS_BINARY);
	ERR_clear_error();
	BIO_free(bio);
	X509_STORE_free(st);
	CMS_ContentInfo_free(ci);
	return ok;
}

/* The SignerInfo says what it should: digest, messageDigest, signingTime, signer. */
static void check_signer_info(const struct sbuf *p7s, const struct tkey *t,
			      const struct sigfs_digest *d)
{
	const unsigned char *p = p7s->d;
	CMS_ContentInfo *ci = d2i_CMS_ContentInfo(NULL, &p, (long)p7s->len);
	uint8_t dv[SIGFS_MAX_DIGEST];
	CMS_SignerInfo *si;
	X509_ALGOR *dig, *sig;
	ASN1_OCTET_STRING *md;
	ASN1_TIME *tm;

	assert_non_null(ci);
	assert_int_equal(OBJ_obj2nid(CMS_get0_type(ci)), NID_pkcs7_signed);
	assert_int_equal(OBJ_obj2nid(CMS_get0_eContentType(ci)), NID_pkcs7_data);
	assert_null(CMS_get0_content(ci) ? *CMS_get0_content(ci) : NULL);
	assert_int_equal(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(ci)), 1);
	si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(ci), 0);
	assert_int_equal(CMS_SignerInfo_cert_cmp(si, t->cert), 0);
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, &sig);
	assert_int_equal(OBJ_obj2nid(dig->algorithm), EVP_MD_get_type(sigfs_digest_md(d)));
	assert_int_equal(CMS_signed_get_attr_count(si), 3);
	md = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_messageDigest), -3,
					 V_ASN1_OCTET_STRING);
	assert_non_null(md);
	assert_int_equal(EVP_Digest(content, sizeof(content), dv, NULL, sigfs_digest_md(d), NULL), 1);
	assert_int_equal(ASN1_STRING_length(md), (int)d->len);
	assert_memory_equal(ASN1_STRING_get0_data(md), dv, d->len);
	tm = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_signingTime), -3, V_ASN1_UTCTIME);
	assert_non_null(tm);
	assert_int_equal(ASN1_TIME_cmp_time_t(tm, now), 0);
	CMS_ContentInfo_free(ci);
}

/* Every algorithm, padding and digest cms accepts verifies with OpenSSL's CMS_verify. */
static void test_cms_verifies_everywhere(void **state)
{
	static const struct { const char *alg; enum sigfs_padding pad; } keys[] = {
		{ "ecdsa-p256", SIGFS_PAD_NONE }, { "ecdsa-p384", SIGFS_PAD_NONE },
		{ "ecdsa-p521", SIGFS_PAD_NONE }, { "rsa-2048", SIGFS_PAD_PSS },
		{ "rsa-2048", SIGFS_PAD_PKCS1 },
	};
	char err[SIGFS_ERRLEN] = "";
	const struct sigfs_digest *d;
	int made = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct tkey t;
		X509 *x;

		tkey_init(&t, keys[i].alg, keys[i].pad);
		assert_int_equal(render_cert(&t, &x, err), 0);
		tkey_cert(&t, x);
		for (size_t j = 0; (d = sigfs_digest_at(j)); j++) {
			if (cms()->check(t.fk.alg, d, err) < 0)
				continue;
			for (int as_digest = 0; as_digest < 2; as_digest++) {
				struct sbuf out;

				t.fake.calls = 0;
				assert_int_equal(produce(&t, d, as_digest, &out, err), 0);
				assert_int_equal(t.fake.calls, 1);
				assert_ptr_equal(t.fake.last.digest, d);
				assert_int_equal(t.fake.last.padding, t.fk.padding);
				if (cms_verify(&out, t.cert, content, sizeof(content)) != 1)
					fail_msg("%s/%s/%s: CMS_verify failed", keys[i].alg,
						 sigfs_padding_name(keys[i].pad), d->name);
				assert_int_equal(cms_verify(&out, t.cert, content,
							    sizeof(content) - 1), 0);
				check_signer_info(&out, &t, d);
				sbuf_free(&out);
				made++;
			}
		}
		tkey_free(&t);
	}
	/* 9 digests for ECDSA keys, all 11 for RSA ones; each from a state and a digest. */
	assert_int_equal(made, 2 * (3 * 9 + 2 * 11));
}

/* An admin's certificate from their own CA: signatures name it and chain to the CA. */
static void test_cms_with_ca_issued_cert(void **state)
{
	EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca = X509_new(), *leaf = X509_new();
	X509_NAME *n = X509_NAME_new();
	char err[SIGFS_ERRLEN] = "";
	struct sbuf out;
	struct tkey t;

	(void)state;
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Test CA",
					       -1, -1, 0));
	assert_true(X509_set_version(ca, X509_VERSION_3) && X509_set_subject_name(ca, n) &&
		    X509_set_issuer_name(ca, n) && X509_set_pubkey(ca, ca_key));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(ca), 1));
	assert_true(X509_gmtime_adj(X509_getm_notBefore(ca), -3600) &&
		    X509_gmtime_adj(X509_getm_notAfter(ca), 86400));
	assert_true(X509_add1_ext_i2d(ca, NID_basic_constraints,
				      &(BASIC_CONSTRAINTS){ .ca = 0xff }, 1, 0));
	assert_true(X509_sign(ca, ca_key, EVP_sha256()) > 0);

	tkey_init(&t, "rsa-2048", SIGFS_PAD_PSS);
	assert_true(X509_set_version(leaf, X509_VERSION_3) && X509_set_subject_name(leaf, n) &&
		    X509_set_issuer_name(leaf, n) && X509_set_pubkey(leaf, t.fk.pub));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(leaf), 4242));
	assert_true(X509_gmtime_adj(X509_getm_notBefore(leaf), -3600) &&
		    X509_gmtime_adj(X509_getm_notAfter(leaf), 86400));
	assert_true(X509_sign(leaf, ca_key, EVP_sha256()) > 0);
	tkey_cert(&t, leaf);

	assert_int_equal(produce(&t, sigfs_digest_by_name("sha384"), false, &out, err), 0);
	assert_int_equal(cms_verify(&out, ca, content, sizeof(content)), 1);
	check_signer_info(&out, &t, sigfs_digest_by_name("sha384"));
	sbuf_free(&out);
	X509_NAME_free(n);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	tkey_free(&t);
}

static void test_produce_errors(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct sbuf out;
	struct tkey t;
	X509 *x;

	(void)state;
	tkey_init(&t, "ecdsa-p256", SIGFS_PAD_NONE);
	/* No certificate: a clear error, and nothing asked of the backend. */
	assert_int_equal(produce(&t, sigfs_digest_by_name("sha256"), false, &out, err), -EINVAL);
	assert_non_null(strstr(err, "cert.pem"));
	assert_int_equal(t.fake.calls, 0);
	sbuf_free(&out);
	assert_int_equal(render_cert(&t, &x, err), 0);
	tkey_cert(&t, x);
	/* A digest the format cannot name (a request may carry one). */
	assert_int_equal(produce(&t, sigfs_digest_by_name("sha512-256"), true, &out, err), -EINVAL);
	assert_non_null(strstr(err, "sha512-256"));
	assert_null(out.d);
	sbuf_free(&out);
	/* The backend's error comes through, with no output. */
	t.fake.ret = -EIO;
	assert_int_equal(produce(&t, sigfs_digest_by_name("sha256"), false, &out, err), -EIO);
	assert_string_equal(err, "fake backend down");
	assert_null(out.d);
	sbuf_free(&out);
	tkey_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_cert_every_algorithm),
		cmocka_unit_test(test_cert_errors),
		cmocka_unit_test(test_cms_verifies_everywhere),
		cmocka_unit_test(test_cms_with_ca_issued_cert),
		cmocka_unit_test(test_produce_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
