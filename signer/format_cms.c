/*
 * format_cms.c: the "cms" format, NAME.p7s holding a detached CMS SignedData
 * (RFC 5652) in DER, as `openssl cms -sign -binary -outform DER` makes it:
 * version 1, the key's certificate, one SignerInfo identified by issuer and
 * serial number, with signed attributes contentType (id-data), signingTime
 * and messageDigest (the artifact's hash with the key's digest). The backend
 * signs the hash of the DER SET OF those attributes, so a finished digest is
 * all that is needed: digest lines and digest requests work.
 *
 * OpenSSL's CMS API signs only with a private key it holds, so the structure
 * is built with OpenSSL's PKCS#7 ASN.1 types, which encode exactly this
 * SignedData (PKCS#7 v1.5 and CMS agree for id-data with issuerAndSerial
 * signers), and OpenSSL does all DER encoding (including the sort order of
 * the attribute SET).
 *
 * The certificate is .ctl/keys/KEY/cert.pem: the key's self-signed one
 * (signer/x509.c) unless an admin wrote one issued by their CA.
 */
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "common/err.h"
#include "signer/format.h"
#include "signer/x509.h"

#define P7S_MAX (256 * 1024)

static int cms_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	/* RSA padding does not matter here: both have identifiers for every digest. */
	struct sigfs_format_key k = { .alg = alg, .padding = SIGFS_PAD_PSS };
	X509_ALGOR *a;
	int r;

	/*
	 * OpenSSL 3.0's CMS verifier hands the SignerInfo's digest to Ed25519,
	 * which refuses it: `openssl cms -verify` cannot check an Ed25519
	 * SignedData (RFC 8419) at all, so none is made.
	 */
	if (alg->kind == SIGFS_KIND_ED25519)
		return sigfs_seterr(err, -EINVAL, "cms cannot sign with Ed25519: OpenSSL 3.0 "
				    "cannot verify it; use an ECDSA or RSA key for cms, or the "
				    "raw, openpgp, sshsig or minisign format");
	r = sigfs_x509_sigalg(&k, d, &a, err);
	X509_ALGOR_free(a);
	return r;
}

static bool cms_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return false;
}

/* The artifact's digest: a peek at the hash state, or the digest given. */
static int file_digest(const struct sigfs_format_input *in, const struct sigfs_digest **d,
		       uint8_t *dv, char *err)
{
	if (!in->state) {
		*d = in->digest;
		memcpy(dv, in->digest_value, in->digest->len);
		return 0;
	}
	*d = sigfs_digest_by_ossl(in->state->name);
	if (!*d)
		return sigfs_seterr(err, -EINVAL, "cms format: cannot sign a %s hash",
				    in->state->name);
	if (sigfs_hasher_peek(in->state, dv))
		return sigfs_seterr(err, -EIO, "cms format: cannot finish the %s hash", (*d)->name);
	return 0;
}

/* contentType, signingTime and messageDigest; OpenSSL sorts them as DER wants. */
static int add_signed_attrs(PKCS7_SIGNER_INFO *si, time_t now, const uint8_t *dv, size_t len)
{
	ASN1_TIME *t = ASN1_TIME_set(NULL, now);

	if (!PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
					OBJ_nid2obj(NID_pkcs7_data)))
		goto fail;
	/* UTCTime until 2049, GeneralizedTime after, as RFC 5652 11.3 says. */
	if (!t || !PKCS7_add_signed_attribute(si, NID_pkcs9_signingTime, ASN1_STRING_type(t), t))
		goto fail;
	t = NULL;
	if (!PKCS7_add1_attrib_digest(si, dv, (int)len))
		goto fail;
	return 0;
fail:
	ASN1_TIME_free(t);
	return -ENOMEM;
}

/* The SignerInfo: who signed (from the certificate), what, and the signature. */
static int make_signer(const struct sigfs_format_input *in, X509 *x, const struct sigfs_digest *d,
		       const uint8_t *dv, sigfs_sign_fn sign, void *sign_ctx,
		       PKCS7_SIGNER_INFO *si, char *err)
{
	const struct sigfs_format_key *k = in->key;
	uint8_t sig[SIGFS_MAX_SIG];
	unsigned char *attrs = NULL;
	X509_ALGOR *alg = NULL;
	size_t siglen;
	int n, r;

	/*
	 * CMS names a PKCS#1 v1.5 signature rsaEncryption; digestAlgorithm names
	 * its hash (RFC 3370 3.2). OpenSSL does the same, and its verifier knows
	 * no sha512-224WithRSAEncryption.
	 */
	if (k->alg->kind == SIGFS_KIND_RSA && k->padding == SIGFS_PAD_PKCS1) {
		alg = X509_ALGOR_new();
		if (!alg || !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL)) {
			X509_ALGOR_free(alg);
			return sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
		}
	} else {
		r = sigfs_x509_sigalg(k, d, &alg, err);
		if (r < 0)
			return r;
	}
	X509_ALGOR_set_md(si->digest_alg, sigfs_digest_md(d));
	X509_ALGOR_free(si->digest_enc_alg);
	si->digest_enc_alg = alg;
	ASN1_INTEGER_free(si->issuer_and_serial->serial);
	si->issuer_and_serial->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
	if (!ASN1_INTEGER_set(si->version, 1) || !si->issuer_and_serial->serial ||
	    !X509_NAME_set(&si->issuer_and_serial->issuer, X509_get_issuer_name(x)) ||
	    add_signed_attrs(si, in->now, dv, d->len) < 0)
		return sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
	/* What is signed is the DER SET OF the signed attributes (RFC 5652 5.4). */
	n = ASN1_item_i2d((ASN1_VALUE *)si->auth_attr, &attrs, ASN1_ITEM_rptr(PKCS7_ATTR_SIGN));
	if (n <= 0)
		return sigfs_seterr(err, -ENOMEM, "cms format: cannot encode the signed attributes");
	r = sigfs_x509_sign_der(k, d, attrs, (size_t)n, sign, sign_ctx, sig, &siglen, err);
	OPENSSL_free(attrs);
	if (r < 0)
		return r;
	if (!ASN1_OCTET_STRING_set(si->enc_digest, sig, (int)siglen))
		return sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
	return 0;
}

static int cms_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	const unsigned char *p = k->cert;
	const struct sigfs_digest *d;
	PKCS7_SIGNER_INFO *si = NULL;
	uint8_t dv[SIGFS_MAX_DIGEST];
	unsigned char *der = NULL;
	X509_ALGOR *md_alg;
	PKCS7 *p7 = NULL;
	X509 *x = NULL;
	int n, r;

	r = file_digest(in, &d, dv, err);
	if (r < 0)
		return r;
	/* A request may carry a digest the key's own setting would not allow. */
	r = cms_check(k->alg, d, err);
	if (r < 0)
		return r;
	x = k->cert_len ? d2i_X509(NULL, &p, (long)k->cert_len) : NULL;
	if (!x) {
		ERR_clear_error();
		return sigfs_seterr(err, -EINVAL, "key %s has no usable certificate; read or "
				    "rewrite .ctl/keys/%s/cert.pem", k->name, k->name);
	}
	p7 = PKCS7_new();
	si = PKCS7_SIGNER_INFO_new();
	if (!p7 || !si || !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data) || !PKCS7_set_detached(p7, 1) ||
	    !PKCS7_add_certificate(p7, x)) {
		r = sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
		goto out;
	}
	r = make_signer(in, x, d, dv, sign, sign_ctx, si, err);
	if (r < 0)
		goto out;
	md_alg = X509_ALGOR_dup(si->digest_alg);
	if (!md_alg || !sk_X509_ALGOR_push(p7->d.sign->md_algs, md_alg)) {
		X509_ALGOR_free(md_alg);
		r = sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
		goto out;
	}
	if (!sk_PKCS7_SIGNER_INFO_push(p7->d.sign->signer_info, si)) {
		r = sigfs_seterr(err, -ENOMEM, "cms format: out of memory");
		goto out;
	}
	si = NULL;
	n = i2d_PKCS7(p7, &der);
	r = n > 0 ? sbuf_put(out, der, (size_t)n) : -ENOMEM;
	if (r < 0)
		sigfs_seterr(err, r, "cms format: cannot encode the SignedData");
out:
	OPENSSL_free(der);
	PKCS7_SIGNER_INFO_free(si);
	PKCS7_free(p7);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/* cert.pem: the key's self-signed certificate, PEM. */
static int cert_render(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	X509 *x = NULL;
	char *pem;
	long n;
	int r;

	if (!bio)
		return sigfs_seterr(err, -ENOMEM, "cert.pem: out of memory");
	r = sigfs_x509_self_signed(k, sign, sign_ctx, &x, err);
	if (r == 0) {
		n = PEM_write_bio_X509(bio, x) ? BIO_get_mem_data(bio, &pem) : 0;
		r = n > 0 ? sbuf_put(out, pem, (size_t)n) : -ENOMEM;
		if (r < 0)
			sigfs_seterr(err, r, "cert.pem: cannot write the certificate as PEM");
	}
	X509_free(x);
	BIO_free(bio);
	return r;
}

static const struct sigfs_format_attr cms_attrs[] = {
	{ .name = "cert.pem", .render = cert_render, .writable = true },
};

const struct sigfs_format sigfs_format_cms = {
	.name = "cms",
	.suffix = ".p7s",
	.check = cms_check,
	.needs_message = cms_needs_message,
	.produce = cms_produce,
	.attrs = cms_attrs,
	.nattrs = sizeof(cms_attrs) / sizeof(cms_attrs[0]),
	.needs_cert = true,
};
