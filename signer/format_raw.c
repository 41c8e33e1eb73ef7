/*
 * format_raw.c: the "raw" format, NAME.sig holding the bare signature bytes
 * the backend returned: RSA (PKCS#1 v1.5 or PSS), ECDSA as DER, Ed25519 as
 * 64 bytes. These are exactly what `openssl dgst -verify` (and for Ed25519
 * `openssl pkeyutl -verify -rawin`) checks, so no sigfs tool is needed to
 * verify.
 *
 * Ed25519 is pure Ed25519 over the whole file, not over a digest: that is what
 * every Ed25519 verifier expects.
 */
#include <errno.h>

#include "common/err.h"
#include "signer/format.h"

static int raw_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	/* Every key signs any digest; Ed25519 ignores it and signs the file. */
	(void)alg;
	(void)d;
	(void)err;
	return 0;
}

static bool raw_needs_message(const struct sigfs_alg *alg)
{
	return alg->kind == SIGFS_KIND_ED25519;
}

static int raw_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err)
{
	struct sigfs_sign_input si = { .alg = in->key->alg, .padding = in->key->padding };
	uint8_t sig[SIGFS_MAX_SIG], dv[SIGFS_MAX_DIGEST];
	size_t siglen = sizeof(sig);
	int r;

	if (in->key->alg->kind == SIGFS_KIND_ED25519) {
		if (!in->message)
			return sigfs_seterr(err, -EINVAL,
					    "Ed25519 cannot sign a digest: the raw format signs the whole file; write the file itself, not a digest line");
		si.data = in->message;
		si.len = in->message_len;
	} else if (in->state) {
		si.digest = sigfs_digest_by_ossl(in->state->name);
		if (!si.digest)
			return sigfs_seterr(err, -EINVAL, "raw format: cannot sign a %s hash",
					    in->state->name);
		r = sigfs_hasher_peek(in->state, dv);
		if (r)
			return sigfs_seterr(err, r, "raw format: cannot finish the hash");
		si.data = dv;
		si.len = si.digest->len;
	} else {
		si.digest = in->digest;
		si.data = in->digest_value;
		si.len = in->digest->len;
	}
	r = sign(sign_ctx, &si, sig, &siglen, err);
	if (r)
		return r;
	r = sbuf_put(out, sig, siglen);
	if (r)
		return sigfs_seterr(err, r, "raw format: a %zu-byte signature does not fit the output; this is a bug",
				    siglen);
	return 0;
}

const struct sigfs_format sigfs_format_raw = {
	.name = "raw",
	.suffix = ".sig",
	.check = raw_check,
	.needs_message = raw_needs_message,
	.produce = raw_produce,
};
