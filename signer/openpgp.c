/*
 * openpgp.c: the OpenPGP v4 encodings of openpgp.h (RFC 4880; what sigfs
 * writes in a signature and a certificate is in docs/format-openpgp.md).
 * Only what a detached signature and a transferable public key need: no
 * parsing, no old-format packets.
 */
#include <errno.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "signer/openpgp.h"

enum { PGP_PK_RSA = 1, PGP_PK_ECDSA = 19, PGP_PK_EDDSA = 22 };

static const struct {
	const char *digest;
	int id;
} hash_ids[] = {
	{ "sha256", 8 }, { "sha384", 9 }, { "sha512", 10 }, { "sha224", 11 },
};

/* Curve OIDs (RFC 6637 section 11; legacy EdDSA's from RFC 4880bis). */
static const uint8_t oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t oid_p521[] = { 0x2b, 0x81, 0x04, 0x00, 0x23 };
static const uint8_t oid_ed25519[] = { 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01 };

static const struct {
	const char *group;
	const uint8_t *oid;
	size_t len;
} curves[] = {
	{ "P-256", oid_p256, sizeof(oid_p256) },
	{ "P-384", oid_p384, sizeof(oid_p384) },
	{ "P-521", oid_p521, sizeof(oid_p521) },
};

int sigfs_pgp_hash_id(const struct sigfs_digest *d)
{
	for (size_t i = 0; i < sizeof(hash_ids) / sizeof(hash_ids[0]); i++)
		if (strcmp(hash_ids[i].digest, d->name) == 0)
			return hash_ids[i].id;
	return 0;
}

static int pk_algo(const struct sigfs_alg *a)
{
	switch (a->kind) {
	case SIGFS_KIND_RSA: return PGP_PK_RSA;
	case SIGFS_KIND_EC: return PGP_PK_ECDSA;
	case SIGFS_KIND_ED25519: return PGP_PK_EDDSA;
	}
	return 0;
}

uint32_t sigfs_pgp_crc24(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xb704ce;

	while (n--) {
		crc ^= (uint32_t)*p++ << 16;
		for (int i = 0; i < 8; i++) {
			crc <<= 1;
			if (crc & 0x1000000)
				crc ^= 0x1864cfb;
		}
	}
	return crc & 0xffffff;
}

int sigfs_pgp_put_mpi(struct sbuf *b, const uint8_t *p, size_t n)
{
	unsigned bits;
	int r;

	while (n && !*p) {
		p++;
		n--;
	}
	/* The bit count is 16 bits wide. */
	if (n > 8191)
		return -EINVAL;
	bits = n ? (unsigned)(n - 1) * 8 + (unsigned)(32 - __builtin_clz(*p)) : 0;
	r = sbuf_put_u16be(b, (uint16_t)bits);
	return r ? r : sbuf_put(b, p, n);
}

/* The 1, 2 or 5-byte length form shared by packets and subpackets (RFC 4880 4.2.2). */
static int put_length(struct sbuf *b, size_t n)
{
	int r;

	if (n < 192)
		return sbuf_put_u8(b, (uint8_t)n);
	if (n < 8384) {
		r = sbuf_put_u8(b, (uint8_t)(((n - 192) >> 8) + 192));
		return r ? r : sbuf_put_u8(b, (uint8_t)((n - 192) & 0xff));
	}
	if (n > UINT32_MAX)
		return -EINVAL;
	r = sbuf_put_u8(b, 0xff);
	return r ? r : sbuf_put_u32be(b, (uint32_t)n);
}

int sigfs_pgp_put_subpacket(struct sbuf *b, uint8_t type, const void *p, size_t n)
{
	int r = put_length(b, n + 1);

	if (!r)
		r = sbuf_put_u8(b, type);
	return r ? r : sbuf_put(b, p, n);
}

int sigfs_pgp_put_packet(struct sbuf *b, uint8_t tag, const uint8_t *body, size_t n)
{
	int r = sbuf_put_u8(b, (uint8_t)(0xc0 | tag));

	if (!r)
		r = put_length(b, n);
	return r ? r : sbuf_put(b, body, n);
}

static int put_str(struct sbuf *b, const char *s)
{
	return sbuf_put(b, s, strlen(s));
}

int sigfs_pgp_armor(struct sbuf *out, const char *label, const uint8_t *p, size_t n)
{
	uint32_t crc = sigfs_pgp_crc24(p, n);
	uint8_t line[65], c[3] = { (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc };
	int r;

	r = put_str(out, "-----BEGIN PGP ");
	if (!r)
		r = put_str(out, label);
	if (!r)
		r = put_str(out, "-----\n\n");
	/* 48 bytes of input are one 64-character line. */
	for (size_t off = 0; !r && off < n; off += 48) {
		int len = EVP_EncodeBlock(line, p + off, (int)(n - off < 48 ? n - off : 48));

		r = sbuf_put(out, line, (size_t)len);
		if (!r)
			r = sbuf_put_u8(out, '\n');
	}
	if (!r)
		r = sbuf_put_u8(out, '=');
	if (!r)
		r = sbuf_put(out, line, (size_t)EVP_EncodeBlock(line, c, 3));
	if (!r)
		r = put_str(out, "\n-----END PGP ");
	if (!r)
		r = put_str(out, label);
	return r ? r : put_str(out, "-----\n");
}

/* A BIGNUM parameter of pub as an MPI. */
static int put_bn_param(struct sbuf *b, const EVP_PKEY *pub, const char *param)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	if (!EVP_PKEY_get_bn_param(pub, param, &bn))
		return -EINVAL;
	n = BN_bn2binpad(bn, buf, sizeof(buf));
	BN_free(bn);
	if (n < 0)
		return -EINVAL;
	return sigfs_pgp_put_mpi(b, buf, (size_t)n);
}

static int put_oid(struct sbuf *b, const uint8_t *oid, size_t len)
{
	int r = sbuf_put_u8(b, (uint8_t)len);

	return r ? r : sbuf_put(b, oid, len);
}

static int put_ec_key(struct sbuf *b, const struct sigfs_format_key *k)
{
	/* OpenPGP's ECDSA points are uncompressed: 0x04 || X || Y, each field-sized. */
	uint8_t pt[1 + 2 * 66];
	size_t flen = ((size_t)k->alg->bits + 7) / 8;
	BIGNUM *x = NULL, *y = NULL;
	size_t i;
	int r = -EINVAL;

	for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].group, k->alg->group) == 0)
			break;
	if (i == sizeof(curves) / sizeof(curves[0]) || 2 * flen + 1 > sizeof(pt))
		return -EINVAL;
	if (EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_EC_PUB_X, &x) &&
	    EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_EC_PUB_Y, &y) &&
	    BN_bn2binpad(x, pt + 1, (int)flen) == (int)flen &&
	    BN_bn2binpad(y, pt + 1 + flen, (int)flen) == (int)flen) {
		pt[0] = 0x04;
		r = put_oid(b, curves[i].oid, curves[i].len);
		if (!r)
			r = sigfs_pgp_put_mpi(b, pt, 1 + 2 * flen);
	}
	BN_free(x);
	BN_free(y);
	return r;
}

static int put_ed25519_key(struct sbuf *b, const struct sigfs_format_key *k)
{
	/* Legacy EdDSA: the native 32-byte point behind a 0x40 prefix. */
	uint8_t pt[33] = { 0x40 };
	size_t len = 32;
	int r;

	if (!EVP_PKEY_get_raw_public_key(k->pub, pt + 1, &len) || len != 32)
		return -EINVAL;
	r = put_oid(b, oid_ed25519, sizeof(oid_ed25519));
	return r ? r : sigfs_pgp_put_mpi(b, pt, sizeof(pt));
}

int sigfs_pgp_key_body(const struct sigfs_format_key *k, struct sbuf *body, char *err)
{
	int r = sbuf_put_u8(body, 4);

	if (!r)
		r = sbuf_put_u32be(body, (uint32_t)k->created);
	if (!r)
		r = sbuf_put_u8(body, (uint8_t)pk_algo(k->alg));
	if (!r) {
		switch (k->alg->kind) {
		case SIGFS_KIND_RSA:
			r = put_bn_param(body, k->pub, OSSL_PKEY_PARAM_RSA_N);
			if (!r)
				r = put_bn_param(body, k->pub, OSSL_PKEY_PARAM_RSA_E);
			break;
		case SIGFS_KIND_EC:
			r = put_ec_key(body, k);
			break;
		case SIGFS_KIND_ED25519:
			r = put_ed25519_key(body, k);
			break;
		}
	}
	if (r)
		return sigfs_seterr(err, r, "OpenPGP: cannot encode the %s public key of key %s; check that the key's algorithm matches its backend key",
				    k->alg->name, k->name);
	return 0;
}

int sigfs_pgp_fingerprint(const uint8_t *body, size_t n, uint8_t fpr[PGP_FPR_LEN])
{
	uint8_t hdr[3] = { 0x99, (uint8_t)(n >> 8), (uint8_t)n };
	EVP_MD_CTX *c;
	int ok;

	if (n > 0xffff)
		return -EINVAL;
	c = EVP_MD_CTX_new();
	if (!c)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, hdr, sizeof(hdr)) &&
	     EVP_DigestUpdate(c, body, n) && EVP_DigestFinal_ex(c, fpr, NULL);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

/* The signature MPIs of what the backend returned for s->key's algorithm. */
static int put_sig_mpis(struct sbuf *b, const struct sigfs_alg *a, const uint8_t *sig, size_t len)
{
	const unsigned char *p = sig;
	const BIGNUM *br, *bs;
	uint8_t rb[66], sb[66];
	ECDSA_SIG *es;
	int r, rn, sn;

	switch (a->kind) {
	case SIGFS_KIND_RSA:
		return sigfs_pgp_put_mpi(b, sig, len);
	case SIGFS_KIND_ED25519:
		if (len != 64)
			return -EINVAL;
		r = sigfs_pgp_put_mpi(b, sig, 32);
		return r ? r : sigfs_pgp_put_mpi(b, sig + 32, 32);
	case SIGFS_KIND_EC:
		break;
	}
	es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (!es)
		return -EINVAL;
	ECDSA_SIG_get0(es, &br, &bs);
	rn = BN_bn2binpad(br, rb, sizeof(rb));
	sn = BN_bn2binpad(bs, sb, sizeof(sb));
	ECDSA_SIG_free(es);
	if (rn < 0 || sn < 0)
		return -EINVAL;
	r = sigfs_pgp_put_mpi(b, rb, (size_t)rn);
	return r ? r : sigfs_pgp_put_mpi(b, sb, (size_t)sn);
}

/* The signature packet's hashed part into body: version, type, algorithms, hashed subpackets. */
static int put_hashed(const struct sigfs_pgp_sig *s, struct sbuf *body)
{
	uint8_t ctime[4] = { (uint8_t)(s->created >> 24), (uint8_t)(s->created >> 16),
			     (uint8_t)(s->created >> 8), (uint8_t)s->created };
	uint8_t ifpr[1 + PGP_FPR_LEN] = { 4 };
	struct sbuf sp;
	int r;

	memcpy(ifpr + 1, s->fpr, PGP_FPR_LEN);
	sbuf_init(&sp, 4096);
	r = sigfs_pgp_put_subpacket(&sp, PGP_SP_CREATION_TIME, ctime, sizeof(ctime));
	if (!r)
		r = sigfs_pgp_put_subpacket(&sp, PGP_SP_ISSUER_FPR, ifpr, sizeof(ifpr));
	if (!r)
		r = sbuf_put(&sp, s->hashed, s->hashed_len);
	if (!r)
		r = sbuf_put_u8(body, 4);
	if (!r)
		r = sbuf_put_u8(body, s->type);
	if (!r)
		r = sbuf_put_u8(body, (uint8_t)pk_algo(s->key->alg));
	if (!r)
		r = sbuf_put_u8(body, (uint8_t)sigfs_pgp_hash_id(s->digest));
	if (!r)
		r = sbuf_put_u16be(body, (uint16_t)sp.len);
	if (!r)
		r = sbuf_put(body, sp.d, sp.len);
	sbuf_free(&sp);
	return r;
}

/* Finish h over the hashed part and its v4 trailer into dv. */
static int hash_hashed(struct sigfs_hasher *h, const struct sbuf *body, uint8_t *dv)
{
	uint8_t trailer[6] = { 4, 0xff, (uint8_t)(body->len >> 24), (uint8_t)(body->len >> 16),
			       (uint8_t)(body->len >> 8), (uint8_t)body->len };
	int r = sigfs_hasher_update(h, body->d, body->len);

	if (!r)
		r = sigfs_hasher_update(h, trailer, sizeof(trailer));
	if (!r)
		r = sigfs_hasher_final(h, dv);
	return r;
}

/* The rest of body after the hashed part: unhashed subpackets, the hash's first bytes, the MPIs. */
static int put_unhashed(const struct sigfs_pgp_sig *s, const uint8_t *dv, const uint8_t *sig,
			size_t siglen, struct sbuf *body)
{
	struct sbuf sp;
	int r;

	/* Unhashed: the issuer key ID, the fingerprint's last 8 bytes, for older verifiers. */
	sbuf_init(&sp, 64);
	r = sigfs_pgp_put_subpacket(&sp, PGP_SP_ISSUER, s->fpr + PGP_FPR_LEN - 8, 8);
	if (!r)
		r = sbuf_put_u16be(body, (uint16_t)sp.len);
	if (!r)
		r = sbuf_put(body, sp.d, sp.len);
	if (!r)
		r = sbuf_put(body, dv, 2);
	if (!r)
		r = put_sig_mpis(body, s->key->alg, sig, siglen);
	sbuf_free(&sp);
	return r;
}

int sigfs_pgp_signature(const struct sigfs_pgp_sig *s, struct sigfs_hasher *h, sigfs_sign_fn sign,
			void *sign_ctx, struct sbuf *out, char *err)
{
	const struct sigfs_alg *a = s->key->alg;
	struct sigfs_sign_input si = {
		.alg = a,
		/* OpenPGP v4 RSA signatures are PKCS#1 v1.5, whatever the key's padding setting. */
		.padding = a->kind == SIGFS_KIND_RSA ? SIGFS_PAD_PKCS1 : SIGFS_PAD_NONE,
		/* Legacy EdDSA signs the hash value itself as its message. */
		.digest = a->kind == SIGFS_KIND_ED25519 ? NULL : s->digest,
	};
	uint8_t dv[SIGFS_MAX_DIGEST], sig[SIGFS_MAX_SIG];
	size_t siglen = sizeof(sig);
	struct sbuf body;
	int r;

	sbuf_init(&body, 8192);
	r = put_hashed(s, &body);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: the signature's subpackets do not fit; this is a bug");
		goto out;
	}
	r = hash_hashed(h, &body, dv);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: cannot finish the %s hash", s->digest->name);
		goto out;
	}
	si.data = dv;
	si.len = s->digest->len;
	r = sign(sign_ctx, &si, sig, &siglen, err);
	if (r)
		goto out;
	r = put_unhashed(s, dv, sig, siglen, &body);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: cannot encode a %zu-byte %s signature from the backend",
				 siglen, a->name);
		goto out;
	}
	r = sigfs_pgp_put_packet(out, PGP_TAG_SIGNATURE, body.d, body.len);
	if (r)
		r = sigfs_seterr(err, r, "OpenPGP: the signature does not fit the output; this is a bug");
out:
	sbuf_free(&body);
	return r;
}
