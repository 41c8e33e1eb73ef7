/*
 * pkcs7.c: a detached SignedData signed by the key's backend (pkcs7.h).
 *
 * OpenSSL's CMS API signs only with a private key it holds, so the structure
 * is built with OpenSSL's PKCS#7 ASN.1 types, which encode exactly this
 * SignedData (PKCS#7 v1.5 and CMS agree for id-data with issuerAndSerial
 * signers), and OpenSSL does all DER encoding (including the sort order of
 * the attribute SET).
 */
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "signer/pkcs7.h"
#include "signer/x509.h"

/* The content's type: id-data, or o->content_oid (a new object: freed by whoever it is given to). */
static ASN1_OBJECT *content_type(const struct sigfs_pkcs7_opts *o)
{
	return o->content_oid ? OBJ_txt2obj(o->content_oid, 1) : OBJ_nid2obj(NID_pkcs7_data);
}

/* contentType, signingTime and messageDigest; OpenSSL sorts them as DER wants. */
static int add_signed_attrs(PKCS7_SIGNER_INFO *si, const struct sigfs_pkcs7_opts *o,
			    const uint8_t *dv, size_t len)
{
	ASN1_TIME *t = ASN1_TIME_set(NULL, o->now);
	ASN1_OBJECT *type = content_type(o);

	if (!type || !PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT, type)) {
		ASN1_OBJECT_free(type);
		goto fail;
	}
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

/*
 * The signature: over the DER SET OF the signed attributes (RFC 5652 5.4),
 * or without attributes over the content's digest itself.
 */
static int sign_info(const struct sigfs_format_key *k, const struct sigfs_digest *d,
		     const uint8_t *dv, const struct sigfs_pkcs7_opts *o, sigfs_sign_fn sign,
		     void *sign_ctx, PKCS7_SIGNER_INFO *si, char *err)
{
	struct sigfs_sign_input in = { .alg = k->alg, .padding = k->padding, .digest = d,
				       .data = dv, .len = d->len };
	uint8_t sig[SIGFS_MAX_SIG];
	unsigned char *attrs = NULL;
	size_t siglen = sizeof(sig);
	int n, r;

	if (o->attrs) {
		n = ASN1_item_i2d((ASN1_VALUE *)si->auth_attr, &attrs, ASN1_ITEM_rptr(PKCS7_ATTR_SIGN));
		if (n <= 0)
			return sigfs_seterr(err, -ENOMEM, "%s format: cannot encode the signed "
					    "attributes", o->what);
		r = sigfs_x509_sign_der(k, d, attrs, (size_t)n, sign, sign_ctx, sig, &siglen, err);
		OPENSSL_free(attrs);
	} else {
		r = sign(sign_ctx, &in, sig, &siglen, err);
	}
	if (r < 0)
		return r;
	if (!ASN1_OCTET_STRING_set(si->enc_digest, sig, (int)siglen))
		return sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
	return 0;
}

/* The SignerInfo: who signed (from the certificate), what, and the signature. */
static int make_signer(const struct sigfs_format_key *k, X509 *x, const struct sigfs_digest *d,
		       const uint8_t *dv, const struct sigfs_pkcs7_opts *o, sigfs_sign_fn sign,
		       void *sign_ctx, PKCS7_SIGNER_INFO *si, char *err)
{
	X509_ALGOR *alg = NULL;
	int r;

	/*
	 * CMS names a PKCS#1 v1.5 signature rsaEncryption; digestAlgorithm names
	 * its hash (RFC 3370 3.2). OpenSSL does the same, and its verifier knows
	 * no sha512-224WithRSAEncryption.
	 */
	if (k->alg->kind == SIGFS_KIND_RSA && k->padding == SIGFS_PAD_PKCS1) {
		alg = X509_ALGOR_new();
		if (!alg || !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL)) {
			X509_ALGOR_free(alg);
			return sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
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
	    (o->attrs && add_signed_attrs(si, o, dv, d->len) < 0))
		return sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
	return sign_info(k, d, dv, o, sign, sign_ctx, si, err);
}

/* The content embedded: a PKCS7 of type o->content_oid holding o->content as an ANY. */
static int set_content(PKCS7 *p7, const struct sigfs_pkcs7_opts *o)
{
	PKCS7 *inner = PKCS7_new();
	ASN1_STRING *seq = ASN1_STRING_new();

	if (!inner || !seq || !(inner->d.other = ASN1_TYPE_new()) ||
	    !ASN1_STRING_set(seq, o->content, (int)o->content_len) ||
	    !(inner->type = content_type(o)))
		goto fail;
	ASN1_TYPE_set(inner->d.other, V_ASN1_SEQUENCE, seq);
	seq = NULL;
	if (!PKCS7_set_content(p7, inner))
		goto fail;
	return 0;
fail:
	ASN1_STRING_free(seq);
	PKCS7_free(inner);
	return -ENOMEM;
}

int sigfs_pkcs7_sign(const struct sigfs_format_key *k, const struct sigfs_digest *d,
		     const uint8_t *dv, const struct sigfs_pkcs7_opts *o, sigfs_sign_fn sign,
		     void *sign_ctx, struct sbuf *out, char *err)
{
	const unsigned char *p = k->cert;
	PKCS7_SIGNER_INFO *si = NULL;
	unsigned char *der = NULL;
	X509_ALGOR *md_alg;
	PKCS7 *p7 = NULL;
	X509 *x;
	int n, r;

	x = k->cert_len ? d2i_X509(NULL, &p, (long)k->cert_len) : NULL;
	if (!x) {
		ERR_clear_error();
		return sigfs_seterr(err, -EINVAL, "key %s has no usable certificate; read or "
				    "rewrite .ctl/keys/%s/cert.pem", k->name, k->name);
	}
	p7 = PKCS7_new();
	si = PKCS7_SIGNER_INFO_new();
	if (!p7 || !si || !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    (o->content ? set_content(p7, o) < 0 :
			  !PKCS7_content_new(p7, NID_pkcs7_data) || !PKCS7_set_detached(p7, 1)) ||
	    (o->cert && !PKCS7_add_certificate(p7, x))) {
		r = sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
		goto out;
	}
	r = make_signer(k, x, d, dv, o, sign, sign_ctx, si, err);
	if (r < 0)
		goto out;
	md_alg = X509_ALGOR_dup(si->digest_alg);
	if (!md_alg || !sk_X509_ALGOR_push(p7->d.sign->md_algs, md_alg)) {
		X509_ALGOR_free(md_alg);
		r = sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
		goto out;
	}
	if (!sk_PKCS7_SIGNER_INFO_push(p7->d.sign->signer_info, si)) {
		r = sigfs_seterr(err, -ENOMEM, "%s format: out of memory", o->what);
		goto out;
	}
	si = NULL;
	n = i2d_PKCS7(p7, &der);
	r = n > 0 ? sbuf_put(out, der, (size_t)n) : -ENOMEM;
	if (r < 0)
		sigfs_seterr(err, r, "%s format: cannot encode the SignedData", o->what);
out:
	OPENSSL_free(der);
	PKCS7_SIGNER_INFO_free(si);
	PKCS7_free(p7);
	X509_free(x);
	ERR_clear_error();
	return r;
}
