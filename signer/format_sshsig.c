/*
 * format_sshsig.c: SSH signatures, the format of `ssh-keygen -Y sign`
 * (OpenSSH's PROTOCOL.sshsig), so `ssh-keygen -Y verify` checks NAME.sig
 * with nothing but the key's line from .ctl/keys/KEY/pubkey.ssh.
 *
 * The key signs a small blob that carries the key's namespace and the
 * SHA-512 of the file, never the file itself; so every algorithm works from
 * a hash state, and a digest line works when it is a SHA-512 one.
 * Key and signature encodings follow RFC 4253, 5656, 8332 and 8709.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>

#include "common/err.h"
#include "signer/format.h"

#define MAGIC "SSHSIG"
#define SIG_VERSION 1
#define HASH_NAME "sha512"            /* what ssh-keygen -Y sign uses by default */
#define ARMOR_BEGIN "-----BEGIN SSH SIGNATURE-----\n"
#define ARMOR_END "\n-----END SSH SIGNATURE-----\n"
#define ARMOR_WIDTH 70                /* ssh-keygen's line length */
#define DEFAULT_NAMESPACE "file"

/* One row per key type: its SSH names and the hash its signature uses. */
struct ssh_type {
	enum sigfs_key_kind kind;
	int bits;                     /* 0: any size */
	const char *key_type;         /* name in the public key blob */
	const char *curve;            /* ECDSA: curve identifier in the blob */
	const char *sig_type;         /* name in the signature blob */
	const char *digest;           /* hash over the signed blob; NULL: pure Ed25519 */
};

static const struct ssh_type types[] = {
	{ SIGFS_KIND_ED25519, 0, "ssh-ed25519", NULL, "ssh-ed25519", NULL },
	{ SIGFS_KIND_EC, 256, "ecdsa-sha2-nistp256", "nistp256", "ecdsa-sha2-nistp256", "sha256" },
	{ SIGFS_KIND_EC, 384, "ecdsa-sha2-nistp384", "nistp384", "ecdsa-sha2-nistp384", "sha384" },
	{ SIGFS_KIND_EC, 521, "ecdsa-sha2-nistp521", "nistp521", "ecdsa-sha2-nistp521", "sha512" },
	/* RSA keys stay "ssh-rsa"; SHA-1 signatures are refused by OpenSSH, SHA-512 is not. */
	{ SIGFS_KIND_RSA, 0, "ssh-rsa", NULL, "rsa-sha2-512", "sha512" },
};

static const struct ssh_type *type_of(const struct sigfs_alg *alg)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].kind == alg->kind && (!types[i].bits || types[i].bits == alg->bits))
			return &types[i];
	return NULL;
}

/* SSH wire encoding: string = uint32 length || bytes. */
static int put_string(struct sbuf *b, const void *p, size_t n)
{
	int r;

	if (n > UINT32_MAX)
		return -EOVERFLOW;
	r = sbuf_put_u32be(b, (uint32_t)n);
	return r ? r : sbuf_put(b, p, n);
}

static int put_cstring(struct sbuf *b, const char *s)
{
	return put_string(b, s, strlen(s));
}

/* mpint: big-endian magnitude without leading zeros, a 0 byte first when the top bit is set. */
static int put_mpint(struct sbuf *b, const BIGNUM *bn)
{
	uint8_t buf[1 + 1024];
	int n = BN_num_bytes(bn);

	if (BN_is_negative(bn) || n < 0 || (size_t)n >= sizeof(buf))
		return -EINVAL;
	buf[0] = 0;
	BN_bn2bin(bn, buf + 1);
	if (n > 0 && (buf[1] & 0x80))
		return put_string(b, buf, (size_t)n + 1);
	return put_string(b, buf + 1, (size_t)n);
}

/* The public key blob of RFC 4253 6.6 / RFC 5656 3.1 / RFC 8709 4. */
static int put_pubkey(struct sbuf *b, const struct ssh_type *t, EVP_PKEY *pk, char *err)
{
	uint8_t raw[256];
	size_t rawlen = sizeof(raw);
	BIGNUM *e = NULL, *n = NULL;
	int r;

	r = put_cstring(b, t->key_type);
	if (r)
		return sigfs_seterr(err, r, "sshsig: the public key does not fit the output");
	switch (t->kind) {
	case SIGFS_KIND_ED25519:
		if (!EVP_PKEY_get_raw_public_key(pk, raw, &rawlen))
			return sigfs_seterr(err, -EIO, "sshsig: cannot read the Ed25519 public key");
		r = put_string(b, raw, rawlen);
		break;
	case SIGFS_KIND_EC:
		if (!EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, raw,
						     sizeof(raw), &rawlen) ||
		    rawlen == 0 || raw[0] != 0x04)
			return sigfs_seterr(err, -EIO, "sshsig: cannot read the EC public point "
					    "uncompressed");
		r = put_cstring(b, t->curve);
		if (!r)
			r = put_string(b, raw, rawlen);
		break;
	case SIGFS_KIND_RSA:
		if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) ||
		    !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n)) {
			BN_free(e);
			return sigfs_seterr(err, -EIO, "sshsig: cannot read the RSA public key");
		}
		r = put_mpint(b, e);
		if (!r)
			r = put_mpint(b, n);
		BN_free(e);
		BN_free(n);
		break;
	}
	if (r)
		return sigfs_seterr(err, r, "sshsig: cannot encode the %s public key", t->key_type);
	return 0;
}

/* ECDSA: the backend's DER SEQUENCE { r, s } becomes string(mpint r || mpint s). */
static int put_ecdsa_sig(struct sbuf *b, const uint8_t *der, size_t len, char *err)
{
	const uint8_t *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	struct sbuf inner;
	int r;

	if (!es || p != der + len) {
		ECDSA_SIG_free(es);
		return sigfs_seterr(err, -EBADMSG, "sshsig: the backend's ECDSA signature is not "
				    "DER SEQUENCE { r, s }; check the backend");
	}
	sbuf_init(&inner, 2 * (4 + 1 + 66));
	r = put_mpint(&inner, ECDSA_SIG_get0_r(es));
	if (!r)
		r = put_mpint(&inner, ECDSA_SIG_get0_s(es));
	if (!r)
		r = put_string(b, inner.d, inner.len);
	ECDSA_SIG_free(es);
	sbuf_free(&inner);
	if (r)
		return sigfs_seterr(err, r, "sshsig: cannot encode the ECDSA signature");
	return 0;
}

/* The SHA-512 of the file, from a hash state or a SHA-512 digest line / request. */
static int file_hash(const struct sigfs_format_input *in, const struct sigfs_digest *sha512,
		     uint8_t out[SIGFS_MAX_DIGEST], char *err)
{
	int r;

	if (in->state) {
		if (sigfs_digest_by_ossl(in->state->name) != sha512 || in->state->len != sha512->len)
			return sigfs_seterr(err, -EINVAL, "sshsig signs a SHA-512 of the file, not "
					    "%s; ask for a SHA-512 state or digest", in->state->name);
		r = sigfs_hasher_peek(in->state, out);
		if (r)
			return sigfs_seterr(err, r, "sshsig: cannot finish the SHA-512 of the file");
		return 0;
	}
	if (in->digest != sha512)
		return sigfs_seterr(err, -EINVAL, "sshsig signs a SHA-512 of the file, this is a "
				    "%s digest; send NAME.sha512 or the file itself", in->digest->name);
	memcpy(out, in->digest_value, sha512->len);
	return 0;
}

/* The blob the key signs (PROTOCOL.sshsig, "Signed Data"). */
static int put_signed_data(struct sbuf *b, const char *ns, const uint8_t *h, size_t hlen)
{
	int r = sbuf_put(b, MAGIC, strlen(MAGIC));

	if (!r)
		r = put_cstring(b, ns);
	if (!r)
		r = put_cstring(b, "");
	if (!r)
		r = put_cstring(b, HASH_NAME);
	if (!r)
		r = put_string(b, h, hlen);
	return r;
}

/* Sign the signed-data blob with the key, the way OpenSSH's key type does it. */
static int sign_blob(const struct ssh_type *t, const struct sigfs_format_key *k,
		     const struct sbuf *tbs, sigfs_sign_fn sign, void *sign_ctx,
		     uint8_t *sig, size_t *siglen, char *err)
{
	struct sigfs_sign_input si = { .alg = k->alg, .padding = k->padding };
	uint8_t dv[SIGFS_MAX_DIGEST];
	unsigned dlen = 0;

	if (!t->digest) {
		si.data = tbs->d;
		si.len = tbs->len;
		return sign(sign_ctx, &si, sig, siglen, err);
	}
	si.digest = sigfs_digest_by_name(t->digest);
	if (!EVP_Digest(tbs->d, tbs->len, dv, &dlen, sigfs_digest_md(si.digest), NULL))
		return sigfs_seterr(err, -EIO, "sshsig: cannot hash the signed blob with %s",
				    t->digest);
	si.data = dv;
	si.len = dlen;
	/* rsa-sha2-512 is PKCS#1 v1.5 whatever padding the key uses in other formats. */
	if (t->kind == SIGFS_KIND_RSA)
		si.padding = SIGFS_PAD_PKCS1;
	return sign(sign_ctx, &si, sig, siglen, err);
}

/* Base64 of p, a newline every `width` characters (0: one line), appended to out. */
static int put_base64(struct sbuf *out, const uint8_t *p, size_t n, size_t width)
{
	size_t blen = 4 * ((n + 2) / 3);
	char *b64 = malloc(blen + 1);
	int r = 0;

	if (!b64)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)b64, p, (int)n);
	for (size_t off = 0; off < blen && !r; off += width ? width : blen) {
		size_t chunk = width && blen - off > width ? width : blen - off;

		if (off)
			r = sbuf_put_u8(out, '\n');
		if (!r)
			r = sbuf_put(out, b64 + off, chunk);
	}
	free(b64);
	return r;
}

static int sshsig_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	/* The file is always hashed with SHA-512, whatever the key's digest. */
	(void)d;
	if (!type_of(alg))
		return sigfs_seterr(err, -EINVAL, "sshsig has no SSH key type for %s keys; "
				    "use another format", alg->name);
	return 0;
}

static const EVP_MD *sshsig_file_md(const struct sigfs_alg *alg, const struct sigfs_digest *d)
{
	(void)alg;
	(void)d;
	return sigfs_digest_md(sigfs_digest_by_name(HASH_NAME));
}

static bool sshsig_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return false;
}

/* The signature blob: string sig_type || string signature (ECDSA: mpint r || mpint s). */
static int put_sig_blob(struct sbuf *b, const struct ssh_type *t, const uint8_t *sig,
			size_t siglen, char *err)
{
	struct sbuf sb;
	int r;

	sbuf_init(&sb, 4096);
	r = put_cstring(&sb, t->sig_type);
	if (r)
		sigfs_seterr(err, r, "sshsig: the signature does not fit; this is a bug");
	else if (t->kind == SIGFS_KIND_EC)
		r = put_ecdsa_sig(&sb, sig, siglen, err);
	else if ((r = put_string(&sb, sig, siglen)))
		sigfs_seterr(err, r, "sshsig: a %zu-byte signature does not fit; this is a bug",
			     siglen);
	if (!r && (r = put_string(b, sb.d, sb.len)))
		sigfs_seterr(err, r, "sshsig: the signature does not fit; this is a bug");
	sbuf_free(&sb);
	return r;
}

/* The whole SSHSIG blob (PROTOCOL.sshsig, "Blob format"). */
static int put_sshsig(struct sbuf *b, const struct ssh_type *t, EVP_PKEY *pk, const char *ns,
		      const uint8_t *sig, size_t siglen, char *err)
{
	struct sbuf pb;
	int r;

	sbuf_init(&pb, 4096);
	r = put_pubkey(&pb, t, pk, err);
	if (r)
		goto out;
	if ((r = sbuf_put(b, MAGIC, strlen(MAGIC))) || (r = sbuf_put_u32be(b, SIG_VERSION)) ||
	    (r = put_string(b, pb.d, pb.len)) || (r = put_cstring(b, ns)) ||
	    (r = put_cstring(b, "")) || (r = put_cstring(b, HASH_NAME))) {
		sigfs_seterr(err, r, "sshsig: the blob does not fit; this is a bug");
		goto out;
	}
	r = put_sig_blob(b, t, sig, siglen, err);
out:
	sbuf_free(&pb);
	return r;
}

static int sshsig_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
			  struct sbuf *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	const struct sigfs_digest *sha512 = sigfs_digest_by_name(HASH_NAME);
	const struct ssh_type *t = type_of(k->alg);
	const char *ns = k->ssh_namespace && k->ssh_namespace[0] ? k->ssh_namespace : DEFAULT_NAMESPACE;
	uint8_t h[SIGFS_MAX_DIGEST], sig[SIGFS_MAX_SIG];
	size_t siglen = sizeof(sig);
	struct sbuf tbs, blob;
	int r;

	if (!t)
		return sigfs_seterr(err, -EINVAL, "sshsig has no SSH key type for %s keys",
				    k->alg->name);
	r = file_hash(in, sha512, h, err);
	if (r)
		return r;
	sbuf_init(&tbs, 4096);
	sbuf_init(&blob, 8192);
	r = put_signed_data(&tbs, ns, h, sha512->len);
	if (r) {
		sigfs_seterr(err, r, "sshsig: the namespace does not fit the signed blob");
		goto out;
	}
	r = sign_blob(t, k, &tbs, sign, sign_ctx, sig, &siglen, err);
	if (r)
		goto out;
	r = put_sshsig(&blob, t, k->pub, ns, sig, siglen, err);
	if (r)
		goto out;
	if ((r = sbuf_put(out, ARMOR_BEGIN, strlen(ARMOR_BEGIN))) ||
	    (r = put_base64(out, blob.d, blob.len, ARMOR_WIDTH)) ||
	    (r = sbuf_put(out, ARMOR_END, strlen(ARMOR_END))))
		sigfs_seterr(err, r, "sshsig: a %zu-byte signature does not fit the output; this "
			     "is a bug", blob.len);
out:
	sbuf_free(&tbs);
	sbuf_free(&blob);
	return r;
}

/* pubkey.ssh: the key as one authorized_keys / allowed_signers line, comment = key name. */
static int render_pubkey_ssh(const struct sigfs_format_key *k, sigfs_sign_fn sign,
			     void *sign_ctx, struct sbuf *out, char *err)
{
	const struct ssh_type *t = type_of(k->alg);
	struct sbuf pb;
	int r;

	(void)sign;
	(void)sign_ctx;
	if (!t)
		return sigfs_seterr(err, -ENODATA, "%s keys have no SSH form", k->alg->name);
	sbuf_init(&pb, 4096);
	r = put_pubkey(&pb, t, k->pub, err);
	if (r)
		goto out;
	if ((r = sbuf_put(out, t->key_type, strlen(t->key_type))) || (r = sbuf_put_u8(out, ' ')) ||
	    (r = put_base64(out, pb.d, pb.len, 0)))
		goto too_big;
	if ((r = sbuf_put_u8(out, ' ')) || (r = sbuf_put(out, k->name, strlen(k->name))) ||
	    (r = sbuf_put_u8(out, '\n')))
		goto too_big;
	goto out;
too_big:
	sigfs_seterr(err, r, "pubkey.ssh does not fit; this is a bug");
out:
	sbuf_free(&pb);
	return r;
}

static const struct sigfs_format_attr sshsig_attrs[] = {
	{ .name = "pubkey.ssh", .render = render_pubkey_ssh },
};

const struct sigfs_format sigfs_format_sshsig = {
	.name = "sshsig",
	.suffix = ".sig",
	.check = sshsig_check,
	.file_md = sshsig_file_md,
	.needs_message = sshsig_needs_message,
	.produce = sshsig_produce,
	.attrs = sshsig_attrs,
	.nattrs = sizeof(sshsig_attrs) / sizeof(sshsig_attrs[0]),
};
