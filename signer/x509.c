/*
 * x509.c: the key's self-signed X.509 certificate and the signature
 * AlgorithmIdentifiers of x509.h.
 *
 * OpenSSL's X509 API signs only with a private key it holds, and 3.0 has no
 * public setter for a certificate's signature algorithm. So the
 * TBSCertificate is assembled here as a DER SEQUENCE of parts that OpenSSL
 * encodes (names, serial, times, public key, extensions), signed through the
 * callback, wrapped into a Certificate, and parsed back with d2i_X509 and
 * checked with X509_verify before anyone sees it.
 */
#include <errno.h>
#include <string.h>
#include <stdbool.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "signer/x509.h"

/* RFC 5280 allows any validity; 30 years outlives the artifacts signed. */
#define CERT_DAYS (30 * 365 + 7)
#define CERT_MAX (64 * 1024)

/* DER tags of what is assembled here; OpenSSL encodes everything inside. */
#define DER_SEQUENCE 0x30
#define DER_BIT_STRING 0x03
#define DER_EXTENSIONS 0xa3        /* [3] EXPLICIT in a TBSCertificate */

/* [0] EXPLICIT INTEGER 2: X.509 v3. */
static const uint8_t version_v3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };

/* Append a DER TLV: tag, definite length, n bytes of content. */
static int der_put(struct sbuf *b, uint8_t tag, const uint8_t *p, size_t n)
{
	uint8_t hdr[5];
	size_t h = 0;
	int r;

	hdr[h++] = tag;
	if (n < 0x80) {
		hdr[h++] = (uint8_t)n;
	} else if (n <= 0xff) {
		hdr[h++] = 0x81;
		hdr[h++] = (uint8_t)n;
	} else if (n <= 0xffff) {
		hdr[h++] = 0x82;
		hdr[h++] = (uint8_t)(n >> 8);
		hdr[h++] = (uint8_t)n;
	} else {
		return -E2BIG;
	}
	r = sbuf_put(b, hdr, h);
	return r ? r : sbuf_put(b, p, n);
}

/* Append OpenSSL's DER encoding of v, an ASN1 item of type it. */
static int put_item(struct sbuf *b, const ASN1_ITEM *it, const void *v)
{
	unsigned char *d = NULL;
	int n = ASN1_item_i2d((const ASN1_VALUE *)v, &d, it);
	int r = n > 0 ? sbuf_put(b, d, (size_t)n) : -ENOMEM;

	OPENSSL_free(d);
	return r;
}

/*
 * Signature OIDs per digest (RFC 5758, 4055, NIST CSOR). OpenSSL 3.0's
 * OBJ_find_sigid_by_algs() lacks the SHA-3 and SHA-512/t ones, hence a table.
 * There is no ECDSA OID for SHA-512/224 and SHA-512/256.
 */
static const struct sig_oid {
	const char *digest;
	int ecdsa;
	int rsa;
} sig_oids[] = {
	{ "sha1", NID_ecdsa_with_SHA1, NID_sha1WithRSAEncryption },
	{ "sha224", NID_ecdsa_with_SHA224, NID_sha224WithRSAEncryption },
	{ "sha256", NID_ecdsa_with_SHA256, NID_sha256WithRSAEncryption },
	{ "sha384", NID_ecdsa_with_SHA384, NID_sha384WithRSAEncryption },
	{ "sha512", NID_ecdsa_with_SHA512, NID_sha512WithRSAEncryption },
	{ "sha512-224", NID_undef, NID_sha512_224WithRSAEncryption },
	{ "sha512-256", NID_undef, NID_sha512_256WithRSAEncryption },
	{ "sha3-224", NID_ecdsa_with_SHA3_224, NID_RSA_SHA3_224 },
	{ "sha3-256", NID_ecdsa_with_SHA3_256, NID_RSA_SHA3_256 },
	{ "sha3-384", NID_ecdsa_with_SHA3_384, NID_RSA_SHA3_384 },
	{ "sha3-512", NID_ecdsa_with_SHA3_512, NID_RSA_SHA3_512 },
};

static const struct sig_oid *sig_oid(const struct sigfs_digest *d)
{
	for (size_t i = 0; d && i < sizeof(sig_oids) / sizeof(sig_oids[0]); i++)
		if (strcmp(sig_oids[i].digest, d->name) == 0)
			return &sig_oids[i];
	return NULL;
}

/* An AlgorithmIdentifier with OID nid and no parameters (or ptype/pval). */
static X509_ALGOR *algor(int nid, int ptype, void *pval)
{
	X509_ALGOR *a = X509_ALGOR_new();

	if (a && !X509_ALGOR_set0(a, OBJ_nid2obj(nid), ptype, pval)) {
		X509_ALGOR_free(a);
		a = NULL;
	}
	return a;
}

/*
 * RSASSA-PSS-params (RFC 4055) for digest md, MGF1 with md and a salt as long
 * as the digest; SHA-1 and a 20-byte salt are the DEFAULTs and DER leaves
 * defaults out.
 */
static ASN1_STRING *pss_params(const EVP_MD *md, size_t salt)
{
	RSA_PSS_PARAMS *p = RSA_PSS_PARAMS_new();
	ASN1_STRING *mgf_md = NULL, *out = NULL;
	X509_ALGOR *h = NULL;
	bool ok = p != NULL;

	if (ok && EVP_MD_get_type(md) != NID_sha1) {
		h = X509_ALGOR_new();
		ok = h != NULL;
		if (ok)
			X509_ALGOR_set_md(h, md);
		mgf_md = ok ? ASN1_item_pack(h, ASN1_ITEM_rptr(X509_ALGOR), NULL) : NULL;
		p->hashAlgorithm = h;
		p->maskGenAlgorithm = mgf_md ? algor(NID_mgf1, V_ASN1_SEQUENCE, mgf_md) : NULL;
		if (!p->maskGenAlgorithm)
			ASN1_STRING_free(mgf_md);
		ok = ok && p->maskGenAlgorithm;
	}
	if (ok && salt != 20) {
		p->saltLength = ASN1_INTEGER_new();
		ok = p->saltLength && ASN1_INTEGER_set(p->saltLength, (long)salt);
	}
	if (ok)
		out = ASN1_item_pack(p, ASN1_ITEM_rptr(RSA_PSS_PARAMS), NULL);
	RSA_PSS_PARAMS_free(p);
	return out;
}

int sigfs_x509_sigalg(const struct sigfs_format_key *k, const struct sigfs_digest *d,
		      X509_ALGOR **out, char *err)
{
	const struct sig_oid *o = sig_oid(d);
	ASN1_STRING *params;

	*out = NULL;
	if (k->alg->kind != SIGFS_KIND_ED25519 && !o)
		return sigfs_seterr(err, -EINVAL, "%s signs a digest: no known digest given",
				    k->alg->name);
	switch (k->alg->kind) {
	case SIGFS_KIND_ED25519:
		*out = algor(NID_ED25519, V_ASN1_UNDEF, NULL);
		break;
	case SIGFS_KIND_EC:
		if (o->ecdsa == NID_undef)
			return sigfs_seterr(err, -EINVAL, "ECDSA with %s has no algorithm "
					    "identifier in X.509 or CMS; choose sha256, sha384, sha512 "
					    "or a sha3 digest", d->name);
		*out = algor(o->ecdsa, V_ASN1_UNDEF, NULL);
		break;
	case SIGFS_KIND_RSA:
		if (k->padding == SIGFS_PAD_PSS) {
			params = pss_params(sigfs_digest_md(d), d->len);
			*out = params ? algor(NID_rsassaPss, V_ASN1_SEQUENCE, params) : NULL;
			if (!*out)
				ASN1_STRING_free(params);
		} else {
			*out = algor(o->rsa, V_ASN1_NULL, NULL);
		}
		break;
	}
	if (!*out)
		return sigfs_seterr(err, -ENOMEM, "out of memory encoding a signature algorithm");
	return 0;
}

int sigfs_x509_sign_der(const struct sigfs_format_key *k, const struct sigfs_digest *d,
			const uint8_t *der, size_t len, sigfs_sign_fn sign, void *sign_ctx,
			uint8_t *sig, size_t *siglen, char *err)
{
	struct sigfs_sign_input si = { .alg = k->alg, .padding = k->padding };
	uint8_t h[SIGFS_MAX_DIGEST];

	*siglen = SIGFS_MAX_SIG;
	if (k->alg->kind == SIGFS_KIND_ED25519) {
		si.data = der;
		si.len = len;
	} else {
		if (!EVP_Digest(der, len, h, NULL, sigfs_digest_md(d), NULL))
			return sigfs_seterr(err, -EIO, "cannot compute %s; check OpenSSL's providers",
					    d->name);
		si.digest = d;
		si.data = h;
		si.len = d->len;
	}
	return sign(sign_ctx, &si, sig, siglen, err);
}

/*
 * Certificates are signed with the hash that matches the key's strength,
 * whatever the key's digest setting (which applies to artifacts): every
 * X.509 verifier knows these.
 */
static const struct sigfs_digest *cert_digest(const struct sigfs_alg *alg)
{
	if (alg->kind == SIGFS_KIND_ED25519)
		return NULL;
	if (alg->kind == SIGFS_KIND_EC && alg->bits > 384)
		return sigfs_digest_by_name("sha512");
	if (alg->kind == SIGFS_KIND_EC && alg->bits > 256)
		return sigfs_digest_by_name("sha384");
	return sigfs_digest_by_name("sha256");
}

/* CN=<key name>, O=sigfs. */
static X509_NAME *key_name(const char *name)
{
	X509_NAME *n = X509_NAME_new();

	if (n && (!X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
					       (const unsigned char *)name, -1, -1, 0) ||
		  !X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8,
					       (const unsigned char *)"sigfs", -1, -1, 0))) {
		X509_NAME_free(n);
		n = NULL;
	}
	return n;
}

/*
 * A serial that is the same every time this key's certificate is rendered
 * (so issuerAndSerialNumber in old signatures keeps naming it) and differs
 * between keys: SHA-256 of the public key and creation time, 16 bytes,
 * positive and without leading zero (RFC 5280 4.1.2.2).
 */
static ASN1_INTEGER *key_serial(const uint8_t *pk, int pklen, time_t created)
{
	uint8_t h[32];
	uint64_t c = (uint64_t)created;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ASN1_INTEGER *s = NULL;
	BIGNUM *bn = NULL;

	if (m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(m, pk, (size_t)pklen) && EVP_DigestUpdate(m, &c, sizeof(c)) &&
	    EVP_DigestFinal_ex(m, h, NULL)) {
		h[0] = (uint8_t)((h[0] & 0x7f) | 0x40);
		bn = BN_bin2bn(h, 16, NULL);
		s = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	}
	BN_free(bn);
	EVP_MD_CTX_free(m);
	return s;
}

/* basicConstraints CA:FALSE, keyUsage digitalSignature, subjectKeyIdentifier. */
static STACK_OF(X509_EXTENSION) *key_extensions(const uint8_t *pk, int pklen)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	ASN1_OCTET_STRING *ski = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e[3] = { NULL, NULL, NULL };
	uint8_t h[32];
	bool ok = exts && ski;

	/* RFC 7093 method 1: the leftmost 160 bits of SHA-256 of the key bits. */
	ok = ok && EVP_Digest(pk, (size_t)pklen, h, NULL, EVP_sha256(), NULL) &&
	     ASN1_OCTET_STRING_set(ski, h, 20);
	if (ok) {
		e[0] = X509V3_EXT_nconf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:FALSE");
		e[1] = X509V3_EXT_nconf_nid(NULL, NULL, NID_key_usage, "critical,digitalSignature");
		e[2] = X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski);
	}
	for (int i = 0; i < 3; i++) {
		if (ok && e[i] && sk_X509_EXTENSION_push(exts, e[i]) > 0)
			continue;
		ok = false;
		X509_EXTENSION_free(e[i]);
	}
	ASN1_OCTET_STRING_free(ski);
	if (!ok) {
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		exts = NULL;
	}
	return exts;
}

/* DER of the TBSCertificate of key k, signed with algorithm alg. */
static int build_tbs(const struct sigfs_format_key *k, const X509_ALGOR *alg, struct sbuf *tbs)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	ASN1_TIME *nb = NULL, *na = NULL;
	X509_PUBKEY *xpk = NULL;
	ASN1_INTEGER *serial = NULL;
	X509_NAME *name = NULL;
	const unsigned char *pk;
	struct sbuf body, validity, ext;
	int pklen, r = -ENOMEM;

	sbuf_init(&body, CERT_MAX);
	sbuf_init(&validity, CERT_MAX);
	sbuf_init(&ext, CERT_MAX);
	if (!X509_PUBKEY_set(&xpk, k->pub) ||
	    !X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk))
		goto out;
	name = key_name(k->name);
	serial = key_serial(pk, pklen, k->created);
	nb = ASN1_TIME_set(NULL, k->created);
	na = ASN1_TIME_adj(NULL, k->created, CERT_DAYS, 0);
	exts = key_extensions(pk, pklen);
	if (!name || !serial || !nb || !na || !exts)
		goto out;
	if ((r = sbuf_put(&body, version_v3, sizeof(version_v3))) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(ASN1_INTEGER), serial)) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(X509_ALGOR), alg)) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(X509_NAME), name)) ||
	    (r = put_item(&validity, ASN1_ITEM_rptr(ASN1_TIME), nb)) ||
	    (r = put_item(&validity, ASN1_ITEM_rptr(ASN1_TIME), na)) ||
	    (r = der_put(&body, DER_SEQUENCE, validity.d, validity.len)) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(X509_NAME), name)) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(X509_PUBKEY), xpk)) ||
	    (r = put_item(&ext, ASN1_ITEM_rptr(X509_EXTENSIONS), exts)) ||
	    (r = der_put(&body, DER_EXTENSIONS, ext.d, ext.len)))
		goto out;
	r = der_put(tbs, DER_SEQUENCE, body.d, body.len);
out:
	sbuf_free(&body);
	sbuf_free(&validity);
	sbuf_free(&ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_TIME_free(nb);
	ASN1_TIME_free(na);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_PUBKEY_free(xpk);
	return r;
}

int sigfs_x509_self_signed(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
			   X509 **out, char *err)
{
	const struct sigfs_digest *d = cert_digest(k->alg);
	uint8_t sig[1 + SIGFS_MAX_SIG];
	struct sbuf tbs, body, cert;
	const unsigned char *p;
	X509_ALGOR *alg = NULL;
	size_t siglen;
	X509 *x = NULL;
	int r;

	*out = NULL;
	sbuf_init(&tbs, CERT_MAX);
	sbuf_init(&body, CERT_MAX);
	sbuf_init(&cert, CERT_MAX);
	r = sigfs_x509_sigalg(k, d, &alg, err);
	if (r < 0)
		goto out;
	r = build_tbs(k, alg, &tbs);
	if (r < 0) {
		sigfs_seterr(err, r, "key %s: cannot encode its certificate: %s", k->name,
			     strerror(-r));
		goto out;
	}
	/* A BIT STRING's first content byte counts unused bits: none. */
	sig[0] = 0;
	r = sigfs_x509_sign_der(k, d, tbs.d, tbs.len, sign, sign_ctx, sig + 1, &siglen, err);
	if (r < 0)
		goto out;
	if ((r = sbuf_put(&body, tbs.d, tbs.len)) ||
	    (r = put_item(&body, ASN1_ITEM_rptr(X509_ALGOR), alg)) ||
	    (r = der_put(&body, DER_BIT_STRING, sig, siglen + 1)) ||
	    (r = der_put(&cert, DER_SEQUENCE, body.d, body.len))) {
		sigfs_seterr(err, r, "key %s: cannot encode its certificate: %s", k->name,
			     strerror(-r));
		goto out;
	}
	p = cert.d;
	x = d2i_X509(NULL, &p, (long)cert.len);
	/* A backend that signed with another key must not yield a certificate. */
	if (!x || X509_verify(x, k->pub) != 1) {
		ERR_clear_error();
		r = sigfs_seterr(err, -EIO, "key %s: its self-signed certificate does not verify "
				 "with its public key; check the key's backend", k->name);
		goto out;
	}
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_ALGOR_free(alg);
	sbuf_free(&tbs);
	sbuf_free(&body);
	sbuf_free(&cert);
	return r;
}
