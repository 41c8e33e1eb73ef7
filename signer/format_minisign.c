/*
 * format_minisign.c: minisign signatures (NAME.minisig), checked with
 * `minisign -Vm NAME -p pubkey.minisign`, the public key being
 * .ctl/keys/KEY/pubkey.minisign.
 *
 * Only the prehashed "ED" form: Ed25519 over the BLAKE2b-512 of the file, so
 * the file is hashed while it is written and never read again. A trusted
 * comment naming the file and the time is signed as well (the "global
 * signature" over signature || comment). Ed25519 keys only: minisign knows
 * no other algorithm.
 *
 * The key id minisign shows and matches is the first 8 bytes of the
 * BLAKE2b-512 of the 32-byte public key, so it is the same on every render
 * and every host.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/format.h"

#define KEYID_LEN 8
#define PK_LEN 32
#define ED_SIG_LEN 64
#define HASH_LEN 64                      /* BLAKE2b-512 */
#define SIG_ALG "ED"                     /* Ed25519 over BLAKE2b-512 (prehashed) */
#define PK_ALG "Ed"                      /* the public key's algorithm */
#define TRUSTED_MAX 1024                 /* well below minisign's limit on the comment */

static int put_str(struct sbuf *b, const char *s)
{
	return sbuf_put(b, s, strlen(s));
}

/* Base64 of p on one line, appended to out. */
static int put_base64(struct sbuf *out, const uint8_t *p, size_t n)
{
	size_t blen = 4 * ((n + 2) / 3);
	unsigned char *b64 = malloc(blen + 1);
	int r;

	if (!b64)
		return -ENOMEM;
	EVP_EncodeBlock(b64, p, (int)n);
	r = sbuf_put(out, b64, blen);
	free(b64);
	return r;
}

/* The 32-byte public key and its key id. */
static int key_parts(const struct sigfs_format_key *k, uint8_t pk[PK_LEN],
		     uint8_t id[KEYID_LEN], char *err)
{
	uint8_t h[HASH_LEN];
	size_t pklen = PK_LEN;

	if (k->alg->kind != SIGFS_KIND_ED25519)
		return sigfs_seterr(err, -ENODATA, "minisign needs an ed25519 key, %s is %s",
				    k->name, k->alg->name);
	if (!EVP_PKEY_get_raw_public_key(k->pub, pk, &pklen) || pklen != PK_LEN ||
	    !EVP_Digest(pk, PK_LEN, h, NULL, EVP_blake2b512(), NULL))
		return sigfs_seterr(err, -EIO, "minisign: cannot read the Ed25519 public key of %s",
				    k->name);
	memcpy(id, h, KEYID_LEN);
	return 0;
}

/* minisign prints a key id as the little-endian 64-bit number of its 8 bytes. */
static uint64_t keyid_number(const uint8_t id[KEYID_LEN])
{
	uint64_t v = 0;

	for (int i = KEYID_LEN - 1; i >= 0; i--)
		v = v << 8 | id[i];
	return v;
}

static int sign_msg(const struct sigfs_format_key *k, const uint8_t *p, size_t n,
		    sigfs_sign_fn sign, void *sign_ctx, uint8_t sig[ED_SIG_LEN], char *err)
{
	struct sigfs_sign_input si = { .alg = k->alg, .data = p, .len = n };
	uint8_t buf[SIGFS_MAX_SIG];
	size_t len = sizeof(buf);
	int r = sign(sign_ctx, &si, buf, &len, err);

	if (r)
		return r;
	if (len != ED_SIG_LEN)
		return sigfs_seterr(err, -EBADMSG, "minisign: the backend returned a %zu-byte "
				    "Ed25519 signature, not 64; check the backend", len);
	memcpy(sig, buf, ED_SIG_LEN);
	return 0;
}

static int minisign_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	/* The file is always hashed with BLAKE2b-512, whatever the key's digest. */
	(void)d;
	if (alg->kind != SIGFS_KIND_ED25519)
		return sigfs_seterr(err, -EINVAL, "minisign signs with ed25519 keys only, not %s; "
				    "use an ed25519 key or another format", alg->name);
	return 0;
}

static const EVP_MD *minisign_file_md(const struct sigfs_alg *alg, const struct sigfs_digest *d)
{
	(void)alg;
	(void)d;
	return EVP_blake2b512();
}

static bool minisign_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return false;
}

static int minisign_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign,
			    void *sign_ctx, struct sbuf *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	uint8_t pk[PK_LEN], h[HASH_LEN], sigline[2 + KEYID_LEN + ED_SIG_LEN];
	uint8_t global[ED_SIG_LEN + TRUSTED_MAX], gsig[ED_SIG_LEN];
	uint8_t *sig = sigline + 2 + KEYID_LEN;
	char *trusted = (char *)global + ED_SIG_LEN;
	int r, n;

	r = key_parts(k, pk, sigline + 2, err);
	if (r)
		return r == -ENODATA ? -EINVAL : r;
	if (!in->state)
		return sigfs_seterr(err, -EINVAL, "minisign signs a BLAKE2b-512 of the file, which "
				    "a %s digest is not; copy the file itself", in->digest->name);
	if (!sigfs_hasher_is(in->state, EVP_blake2b512()) || in->state->len != HASH_LEN)
		return sigfs_seterr(err, -EINVAL, "minisign signs a BLAKE2b-512 of the file, not "
				    "%s; copy the file itself", in->state->name);
	r = sigfs_hasher_peek(in->state, h);
	if (r)
		return sigfs_seterr(err, r, "minisign: cannot finish the BLAKE2b-512 of the file");
	r = sign_msg(k, h, HASH_LEN, sign, sign_ctx, sig, err);
	if (r)
		return r;
	memcpy(sigline, SIG_ALG, 2);

	/* Inbox names hold no tab or newline, so the comment stays one parsable line. */
	n = snprintf(trusted, TRUSTED_MAX, "timestamp:%lld\tfile:%s\thashed",
		     (long long)in->now, in->name);
	if (n < 0 || n >= TRUSTED_MAX)
		return sigfs_seterr(err, -ENAMETOOLONG, "minisign: the trusted comment for this "
				    "name is longer than %d bytes", TRUSTED_MAX - 1);
	memcpy(global, sig, ED_SIG_LEN);
	r = sign_msg(k, global, ED_SIG_LEN + (size_t)n, sign, sign_ctx, gsig, err);
	if (r)
		return r;
	if ((r = put_str(out, "untrusted comment: signature from sigfs key ")) ||
	    (r = put_str(out, k->name)) || (r = put_str(out, "\n")) ||
	    (r = put_base64(out, sigline, sizeof(sigline))) ||
	    (r = put_str(out, "\ntrusted comment: ")) ||
	    (r = sbuf_put(out, trusted, (size_t)n)) || (r = put_str(out, "\n")) ||
	    (r = put_base64(out, gsig, ED_SIG_LEN)) || (r = put_str(out, "\n")))
		return sigfs_seterr(err, r, "minisign: the signature does not fit the output; "
				    "this is a bug");
	return 0;
}

/* pubkey.minisign: the file `minisign -p` reads. */
static int render_pubkey_minisign(const struct sigfs_format_key *k, sigfs_sign_fn sign,
				  void *sign_ctx, struct sbuf *out, char *err)
{
	uint8_t blob[2 + KEYID_LEN + PK_LEN];
	char line[64];
	int r;

	(void)sign;
	(void)sign_ctx;
	r = key_parts(k, blob + 2 + KEYID_LEN, blob + 2, err);
	if (r)
		return r;
	memcpy(blob, PK_ALG, 2);
	snprintf(line, sizeof(line), "untrusted comment: minisign public key %016" PRIX64 "\n",
		 keyid_number(blob + 2));
	if ((r = put_str(out, line)) || (r = put_base64(out, blob, sizeof(blob))) ||
	    (r = put_str(out, "\n")))
		return sigfs_seterr(err, r, "pubkey.minisign does not fit; this is a bug");
	return 0;
}

static const struct sigfs_format_attr minisign_attrs[] = {
	{ .name = "pubkey.minisign", .render = render_pubkey_minisign },
};

const struct sigfs_format sigfs_format_minisign = {
	.name = "minisign",
	.suffix = ".minisig",
	.check = minisign_check,
	.file_md = minisign_file_md,
	.needs_message = minisign_needs_message,
	.produce = minisign_produce,
	.attrs = minisign_attrs,
	.nattrs = sizeof(minisign_attrs) / sizeof(minisign_attrs[0]),
};
