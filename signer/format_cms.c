/*
 * format_cms.c: the "cms" format, NAME.p7s holding a detached CMS SignedData
 * (RFC 5652) in DER, as `openssl cms -sign -binary -outform DER` makes it:
 * version 1, the key's certificate, one SignerInfo identified by issuer and
 * serial number, with signed attributes contentType (id-data), signingTime
 * and messageDigest (the artifact's hash with the key's digest). The backend
 * signs the hash of the DER SET OF those attributes, so a finished digest is
 * all that is needed: digest lines and digest requests work.
 *
 * The SignedData is built by signer/pkcs7.c (OpenSSL's PKCS#7 ASN.1 types:
 * its CMS API signs only with a private key it holds).
 *
 * The certificate is .ctl/keys/KEY/cert.pem: the key's self-signed one
 * (signer/x509.c) unless an admin wrote one issued by their CA.
 */
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/err.h"
#include "signer/format.h"
#include "signer/format_swu.h"
#include "signer/pkcs7.h"
#include "signer/x509.h"


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

static int cms_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err)
{
	const struct sigfs_pkcs7_opts o = { .attrs = true, .cert = true, .now = in->now,
					    .what = "cms" };
	const struct sigfs_digest *d;
	uint8_t dv[SIGFS_MAX_DIGEST];
	int r;

	r = file_digest(in, &d, dv, err);
	if (r < 0)
		return r;
	/* A request may carry a digest the key's own setting would not allow. */
	r = cms_check(in->key->alg, d, err);
	if (r < 0)
		return r;
	return sigfs_pkcs7_sign(in->key, d, dv, &o, sign, sign_ctx, out, err);
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

/*
 * "swupdate": the same SignedData as sw-description.sig, the name SWUpdate
 * looks for in a .swu (docs/format-swupdate.md). Debian's swupdate verifies
 * CMS only, detached, with the signer's certificate inside: what cms makes.
 * cert.pem is cms's (one file, whichever of the two formats a key has).
 */
const struct sigfs_format sigfs_format_swupdate = {
	.name = "swupdate",
	.suffix = ".sig",
	.check = cms_check,
	.needs_message = cms_needs_message,
	.produce = cms_produce,
	.needs_cert = true,
	.for_input = sigfs_swu_for_input,    /* NAME.swu: the whole image, NAME.swu.signed */
};
