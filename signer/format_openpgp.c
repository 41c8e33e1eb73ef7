/*
 * format_openpgp.c: OpenPGP v4 detached signatures of binary documents,
 * NAME.sig ("openpgp") or ASCII-armored NAME.asc ("openpgp-armor"), which
 * `gpg --verify` and `sq verify` check against the key's certificate,
 * .ctl/keys/KEY/cert.pgp (cert.asc armored). See docs/format-openpgp.md.
 *
 * An OpenPGP signature hashes the file and then its own hashed part, so it
 * needs a hash state over the file, never just a finished digest: digest
 * lines are refused, signing requests carry a state. The signature's hash is
 * the state's (the key's digest for files; SHA-512 for Signstar requests).
 * The certificate's key creation time is the key's `created`, so the
 * fingerprint stays the same for the key's whole life.
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "signer/format.h"
#include "signer/openpgp.h"

/* Key flag: this key signs data (RFC 4880 5.2.3.21). */
#define PGP_KEY_FLAG_SIGN 0x02

static int pgp_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	/* gpg rejects ECDSA over a hash shorter than the curve (P-521: than 512 bits). */
	size_t min_bits = alg->kind == SIGFS_KIND_EC ? (alg->bits < 512 ? (size_t)alg->bits : 512) : 0;

	if (!sigfs_pgp_hash_id(d))
		return sigfs_seterr(err, -EINVAL,
				    "OpenPGP v4 signs with sha224, sha256, sha384 or sha512, not %s; set the key's digest to one of them",
				    d->name);
	if (8 * d->len < min_bits)
		return sigfs_seterr(err, -EINVAL,
				    "OpenPGP verifiers reject %s signatures over %s: set the key's digest to one of at least %zu bits (sha512 always works)",
				    alg->name, d->name, min_bits);
	return 0;
}

static bool pgp_needs_message(const struct sigfs_alg *alg)
{
	/* Even Ed25519 signs a hash here: legacy EdDSA's message is the digest. */
	(void)alg;
	return false;
}

/* The key packet body of k and its fingerprint. */
static int key_and_fpr(const struct sigfs_format_key *k, struct sbuf *body, uint8_t *fpr, char *err)
{
	int r;

	sbuf_init(body, 4096);
	r = sigfs_pgp_key_body(k, body, err);
	if (!r && sigfs_pgp_fingerprint(body->d, body->len, fpr))
		r = sigfs_seterr(err, -EIO, "OpenPGP: cannot compute the fingerprint of key %s", k->name);
	if (r)
		sbuf_free(body);
	return r;
}

/* out gets pkt as is, or armored with label. */
static int emit(struct sbuf *out, const struct sbuf *pkt, const char *label, char *err)
{
	int r = label ? sigfs_pgp_armor(out, label, pkt->d, pkt->len) :
			sbuf_put(out, pkt->d, pkt->len);

	if (r)
		return sigfs_seterr(err, r, "OpenPGP: %zu bytes do not fit the output; this is a bug",
				    pkt->len);
	return 0;
}

static int produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		   struct sbuf *out, const char *label, char *err)
{
	struct sigfs_pgp_sig s = { .key = in->key, .type = PGP_SIG_BINARY, .created = in->now };
	uint8_t fpr[PGP_FPR_LEN], file_digest[SIGFS_MAX_DIGEST];
	struct sigfs_hasher *h = NULL;
	struct sbuf key, notation, hashed, pkt;
	size_t name_len = strlen(PGP_DATA_DIGEST_NOTATION);
	int r;

	if (!in->state)
		return sigfs_seterr(err, -EINVAL,
				    "OpenPGP signatures hash more than the file's digest: copy the file itself, or send a signing request (NAME.sigreq) that carries a hash state");
	s.digest = sigfs_digest_by_ossl(in->state->name);
	if (!s.digest)
		return sigfs_seterr(err, -EINVAL,
				    "OpenPGP v4 cannot sign with a %s hash; use sha224, sha256, sha384 or sha512",
				    in->state->name);
	r = pgp_check(in->key->alg, s.digest, err);
	if (r)
		return r;
	r = key_and_fpr(in->key, &key, fpr, err);
	if (r)
		return r;
	sbuf_free(&key);
	s.fpr = fpr;
	sbuf_init(&notation, 512);
	sbuf_init(&hashed, 512);
	sbuf_init(&pkt, 16384);
	r = sigfs_hasher_peek(in->state, file_digest);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: cannot finish the file's %s hash", s.digest->name);
		goto out;
	}
	/*
	 * The notation (flags 0: binary, not human-readable) carries the file's
	 * digest, as Signstar's signatures do.
	 */
	if (sbuf_put_u32be(&notation, 0) || sbuf_put_u16be(&notation, (uint16_t)name_len) ||
	    sbuf_put_u16be(&notation, (uint16_t)s.digest->len) ||
	    sbuf_put(&notation, PGP_DATA_DIGEST_NOTATION, name_len) ||
	    sbuf_put(&notation, file_digest, s.digest->len)) {
		r = sigfs_seterr(err, -ENOSPC, "OpenPGP: the notation does not fit; this is a bug");
		goto out;
	}
	r = sigfs_pgp_put_subpacket(&hashed, PGP_SP_NOTATION, notation.d, notation.len);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: the notation does not fit; this is a bug");
		goto out;
	}
	s.hashed = hashed.d;
	s.hashed_len = hashed.len;
	h = sigfs_hasher_dup(in->state);
	if (!h) {
		r = sigfs_seterr(err, -ENOMEM, "OpenPGP: out of memory copying the hash state");
		goto out;
	}
	r = sigfs_pgp_signature(&s, h, sign, sign_ctx, &pkt, err);
	if (!r)
		r = emit(out, &pkt, label, err);
out:
	sigfs_hasher_free(h);
	sbuf_free(&notation);
	sbuf_free(&hashed);
	sbuf_free(&pkt);
	return r;
}

static int pgp_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err)
{
	return produce(in, sign, sign_ctx, out, NULL, err);
}

static int pgp_produce_armor(const struct sigfs_format_input *in, sigfs_sign_fn sign,
			     void *sign_ctx, struct sbuf *out, char *err)
{
	return produce(in, sign, sign_ctx, out, "SIGNATURE", err);
}

/*
 * The transferable public key: key packet, user ID packet, positive
 * certification by the key itself. The self-signature is always SHA-512:
 * every verifier accepts it for every curve (gpg refuses ECDSA hashes
 * shorter than the curve), and a key whose files use another format may have
 * any digest.
 */
static int render_cert(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, const char *label, char *err)
{
	static const uint8_t flags = PGP_KEY_FLAG_SIGN;
	struct sigfs_pgp_sig s = {
		.key = k, .type = PGP_SIG_POSITIVE_CERT,
		/*
		 * Dated at the key's creation: verifiers (sq) want a binding valid
		 * when each signature was made, and a certificate rendered again
		 * (a new user ID) must still cover every older signature.
		 */
		.created = k->created,
		.digest = sigfs_digest_by_name("sha512"),
	};
	size_t uid_len = strlen(k->uid);
	uint8_t fpr[PGP_FPR_LEN], hdr[3] = { 0x99 }, uhdr[5] = { 0xb4 };
	struct sigfs_hasher *h = NULL;
	struct sbuf body, sp, pkt;
	int r;

	r = key_and_fpr(k, &body, fpr, err);
	if (r)
		return r;
	s.fpr = fpr;
	sbuf_init(&sp, 64);
	sbuf_init(&pkt, 16384);
	hdr[1] = (uint8_t)(body.len >> 8);
	hdr[2] = (uint8_t)body.len;
	uhdr[1] = (uint8_t)(uid_len >> 24);
	uhdr[2] = (uint8_t)(uid_len >> 16);
	uhdr[3] = (uint8_t)(uid_len >> 8);
	uhdr[4] = (uint8_t)uid_len;
	h = sigfs_hasher_new(sigfs_digest_md(s.digest));
	if (!h) {
		r = sigfs_seterr(err, -ENOMEM, "OpenPGP: out of memory hashing the certificate");
		goto out;
	}
	r = sigfs_pgp_put_subpacket(&sp, PGP_SP_KEY_FLAGS, &flags, 1);
	if (!r)
		r = sigfs_hasher_update(h, hdr, sizeof(hdr));
	if (!r)
		r = sigfs_hasher_update(h, body.d, body.len);
	if (!r)
		r = sigfs_hasher_update(h, uhdr, sizeof(uhdr));
	if (!r)
		r = sigfs_hasher_update(h, k->uid, uid_len);
	if (!r)
		r = sigfs_pgp_put_packet(&pkt, PGP_TAG_PUBLIC_KEY, body.d, body.len);
	if (!r)
		r = sigfs_pgp_put_packet(&pkt, PGP_TAG_USER_ID, (const uint8_t *)k->uid, uid_len);
	if (r) {
		r = sigfs_seterr(err, r, "OpenPGP: cannot encode the certificate of key %s; this is a bug",
				 k->name);
		goto out;
	}
	s.hashed = sp.d;
	s.hashed_len = sp.len;
	r = sigfs_pgp_signature(&s, h, sign, sign_ctx, &pkt, err);
	if (!r)
		r = emit(out, &pkt, label, err);
out:
	sigfs_hasher_free(h);
	sbuf_free(&body);
	sbuf_free(&sp);
	sbuf_free(&pkt);
	return r;
}

static int render_cert_pgp(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
			   struct sbuf *out, char *err)
{
	return render_cert(k, sign, sign_ctx, out, NULL, err);
}

static int render_cert_asc(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
			   struct sbuf *out, char *err)
{
	return render_cert(k, sign, sign_ctx, out, "PUBLIC KEY BLOCK", err);
}

static const struct sigfs_format_attr pgp_attrs[] = {
	{ .name = "cert.pgp", .render = render_cert_pgp },
	{ .name = "cert.asc", .render = render_cert_asc },
};

const struct sigfs_format sigfs_format_openpgp = {
	.name = "openpgp",
	.suffix = ".sig",
	.check = pgp_check,
	.needs_message = pgp_needs_message,
	.produce = pgp_produce,
	.attrs = pgp_attrs,
	.nattrs = sizeof(pgp_attrs) / sizeof(pgp_attrs[0]),
};

const struct sigfs_format sigfs_format_openpgp_armor = {
	.name = "openpgp-armor",
	.suffix = ".asc",
	.check = pgp_check,
	.needs_message = pgp_needs_message,
	.produce = pgp_produce_armor,
};
