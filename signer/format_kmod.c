/*
 * format_kmod.c: the "kmod" format, a Linux kernel module signed the way
 * the kernel's scripts/sign-file signs it (docs/format-kmod.md): MOD.ko
 * gets MOD.ko.signed, the module with its signature appended:
 *
 *   module || PKCS#7 DER || struct module_signature (12 bytes) || MAGIC
 *
 * The PKCS#7 is a detached SignedData over the whole module with no signed
 * attributes (the kernel refuses module signatures that have any) and no
 * certificate, its signer named by the issuer and serial number of the
 * key's cert.pem, which is the certificate the kernel must hold. The struct
 * is { algo 0, hash 0, id_type 2 (PKEY_ID_PKCS7), signer_len 0, key_id_len 0,
 * 3 bytes of padding, the PKCS#7's length as a big-endian u32 }.
 *
 * The output holds the module, so the format needs the whole file (never a
 * digest line or a request), and for RSA PKCS#1 v1.5 its output is byte for
 * byte what sign-file makes with the same key and certificate.
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "signer/format.h"
#include "signer/pkcs7.h"

#define MAGIC "~Module signature appended~\n"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define SIGINFO_LEN 12
#define PKEY_ID_PKCS7 2

static int kmod_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	if (alg->kind == SIGFS_KIND_ED25519 || (alg->kind == SIGFS_KIND_EC && alg->bits > 384))
		return sigfs_seterr(err, -EINVAL, "kmod cannot sign with %s: Linux verifies module "
				    "signatures made with RSA, ECDSA P-256 or P-384 only", alg->name);
	if (strcmp(d->name, "sha256") != 0 && strcmp(d->name, "sha384") != 0 &&
	    strcmp(d->name, "sha512") != 0)
		return sigfs_seterr(err, -EINVAL, "kmod cannot sign %s digests: Linux checks module "
				    "signatures with sha256, sha384 or sha512", d->name);
	return 0;
}

static int kmod_check_padding(const struct sigfs_alg *alg, enum sigfs_padding pad, char *err)
{
	if (alg->kind == SIGFS_KIND_RSA && pad != SIGFS_PAD_PKCS1)
		return sigfs_seterr(err, -EINVAL, "kmod needs RSA PKCS#1 v1.5: Linux does not "
				    "verify RSA-PSS module signatures; set the key's padding to pkcs1 "
				    "first");
	return 0;
}

static bool kmod_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return true;
}

/* Does the module end with a signature already (MAGIC)? */
static bool signed_already(const uint8_t *m, size_t len)
{
	return len >= MAGIC_LEN && memcmp(m + len - MAGIC_LEN, MAGIC, MAGIC_LEN) == 0;
}

static int kmod_produce(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
			struct sbuf *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	const struct sigfs_pkcs7_opts o = { .attrs = false, .cert = false, .now = in->now,
					    .what = "kmod" };
	uint8_t dv[SIGFS_MAX_DIGEST], info[SIGINFO_LEN] = { 0, 0, PKEY_ID_PKCS7 };
	const struct sigfs_digest *d;
	size_t start, sig_len;
	int r;

	if (!in->message || !in->state)
		return sigfs_seterr(err, -EINVAL, "kmod signs the module itself, not a digest or "
				    "a request: copy the .ko into the inbox");
	r = kmod_check_padding(k->alg, k->padding, err);
	if (r < 0)
		return r;
	if (signed_already(in->message, in->message_len))
		return sigfs_seterr(err, -EINVAL, "%s is signed already (it ends with \"~Module "
				    "signature appended~\"): copy in the unsigned module", in->name);
	d = sigfs_digest_by_ossl(in->state->name);
	if (!d)
		return sigfs_seterr(err, -EINVAL, "kmod format: cannot sign a %s hash",
				    in->state->name);
	r = kmod_check(k->alg, d, err);
	if (r < 0)
		return r;
	if (sigfs_hasher_peek(in->state, dv))
		return sigfs_seterr(err, -EIO, "kmod format: cannot finish the %s hash", d->name);
	r = sbuf_put(out, in->message, in->message_len);
	if (r < 0)
		return sigfs_seterr(err, r, "kmod format: the module does not fit in the output");
	start = out->len;
	r = sigfs_pkcs7_sign(k, d, dv, &o, sign, sign_ctx, out, err);
	if (r < 0)
		return r;
	sig_len = out->len - start;
	for (int i = 0; i < 4; i++)
		info[SIGINFO_LEN - 1 - i] = (uint8_t)(sig_len >> (8 * i));
	if (sbuf_put(out, info, sizeof(info)) < 0 || sbuf_put(out, MAGIC, MAGIC_LEN) < 0)
		return sigfs_seterr(err, -ENOSPC, "kmod format: the signed module does not fit "
				    "in the output");
	return 0;
}

const struct sigfs_format sigfs_format_kmod = {
	.name = "kmod",
	.suffix = ".signed",
	.check = kmod_check,
	.check_padding = kmod_check_padding,
	.needs_message = kmod_needs_message,
	.produce = kmod_produce,
	.needs_cert = true,
	.whole_artifact = true,
};
