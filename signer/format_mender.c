/*
 * format_mender.c: the "mender" format, a Mender artifact signed the way
 * `mender-artifact sign -k KEY` signs it (docs/format-mender.md): NAME gets
 * NAME.signed, the artifact with one member added, `manifest.sig`, right
 * after `manifest`:
 *
 *   version | manifest | manifest.sig (new) | header.tar.gz | data/0000.tar.gz ...
 *
 * manifest.sig is the standard base64 (padded, no newline) of a signature
 * over the bytes of the manifest member: RSA PKCS#1 v1.5 over its SHA-256,
 * or ECDSA P-256 over its SHA-256 as r||s (32 + 32 bytes, not DER). Every
 * other byte of the artifact is copied as it is, which is also what
 * mender-artifact does to an artifact it made, so for RSA the output is
 * byte for byte `mender-artifact sign`'s.
 *
 * The artifact is a tar file; libarchive reads it (the first three
 * members' headers and the first two members' contents; the rest is
 * skipped, never read). The one header added is written here in the
 * layout of Go's archive/tar, which mender-artifact uses: libarchive's
 * ustar writer ends numbers with a space where Go ends them with a NUL,
 * and the output must be mender-artifact's to the byte.
 *
 * Artifacts can be gigabytes: the format streams (produce_stream), so
 * neither the artifact nor the output is held in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "signer/archive.h"
#include "signer/format.h"
#include "signer/format_mender.h"

#define VERSION_MAX 4096                /* the version member: a small JSON object */
#define MANIFEST_MAX (1u << 20)         /* the manifest: one line per file of the artifact */
#define BLOCK 512

static int mender_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	if (alg->kind == SIGFS_KIND_ED25519 || (alg->kind == SIGFS_KIND_EC && alg->bits != 256))
		return sigfs_seterr(err, -EINVAL, "mender cannot sign with %s: mender-artifact "
				    "verifies RSA and ECDSA P-256 signatures only", alg->name);
	if (strcmp(d->name, "sha256") != 0)
		return sigfs_seterr(err, -EINVAL, "mender signs SHA-256 hashes of the manifest, not "
				    "%s: set the key's digest to sha256", d->name);
	return 0;
}

static int mender_check_padding(const struct sigfs_alg *alg, enum sigfs_padding pad, char *err)
{
	if (alg->kind == SIGFS_KIND_RSA && pad != SIGFS_PAD_PKCS1)
		return sigfs_seterr(err, -EINVAL, "mender needs RSA PKCS#1 v1.5: mender-artifact "
				    "refuses RSA-PSS signatures; set the key's padding to pkcs1 first");
	return 0;
}

static bool mender_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return true;
}

/* --- reading the artifact ------------------------------------------------------------ */

/* The next member, which must be called name: its size in *size. */
static int next_member(struct archive *a, const char *name, int64_t *size, char *err)
{
	struct archive_entry *ae;
	int r = archive_read_next_header(a, &ae);

	if (r == ARCHIVE_EOF)
		return sigfs_seterr(err, -EBADMSG, "not a Mender artifact: it has no %s member",
				    name);
	if (r != ARCHIVE_OK)
		return sigfs_seterr(err, -EBADMSG, "not a Mender artifact (a tar file): %s",
				    sigfs_archive_error(a));
	if (strcmp(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "", name) != 0 ||
	    archive_entry_filetype(ae) != AE_IFREG)
		return sigfs_seterr(err, -EBADMSG, "not a Mender artifact: its member %s is not "
				    "where a Mender artifact has it", name);
	*size = archive_entry_size(ae);
	return 0;
}

/* The current member's contents, exactly size bytes (at most max), into a new buffer. */
static int member_data(struct archive *a, const char *name, int64_t size, size_t max,
		       uint8_t **out, char *err)
{
	uint8_t *p;
	la_ssize_t n;

	if (size < 0 || (uint64_t)size > max)
		return sigfs_seterr(err, -EBADMSG, "the artifact's %s is larger than %zu bytes: "
				    "not a Mender artifact sigfs signs", name, max);
	p = malloc((size_t)size + 1);
	if (!p)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	n = size ? archive_read_data(a, p, (size_t)size) : 0;
	if (n != (la_ssize_t)size) {
		free(p);
		return sigfs_seterr(err, -EBADMSG, "cannot read the artifact's %s: %s", name,
				    n < 0 ? sigfs_archive_error(a) : "it ends early");
	}
	p[size] = '\0';
	*out = p;
	return 0;
}

/* The version member says {"format": "mender", "version": 3}. */
static int check_version(const uint8_t *v, size_t len, char *err)
{
	json_t *root = json_loadb((const char *)v, len, 0, NULL);
	json_t *fmt = root ? json_object_get(root, "format") : NULL;
	json_t *ver = root ? json_object_get(root, "version") : NULL;
	int r = 0;

	if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "mender") != 0)
		r = sigfs_seterr(err, -EBADMSG, "not a Mender artifact: its version member does "
				 "not say \"format\": \"mender\"");
	else if (!json_is_integer(ver))
		r = sigfs_seterr(err, -EBADMSG, "not a Mender artifact: its version member has "
				 "no version number");
	else if (json_integer_value(ver) != 3)
		r = sigfs_seterr(err, -EPROTONOSUPPORT, "a Mender artifact of format version "
				 "%lld: mender signs version 3 only (mender-artifact write makes it)",
				 (long long)json_integer_value(ver));
	json_decref(root);
	return r;
}

static uint64_t padded(int64_t size)
{
	return ((uint64_t)size + BLOCK - 1) / BLOCK * BLOCK;
}

/*
 * Read the artifact's first members: the manifest into *manifest (*mlen
 * bytes) and in *at the offset where manifest.sig goes (the header of the
 * member after the manifest). Refuses what is not an unsigned Mender
 * artifact of version 3 laid out as mender-artifact writes it.
 */
static int read_head(const struct sigfs_format_input *in, uint8_t **manifest, size_t *mlen,
		     uint64_t *at, char *err)
{
	struct sigfs_archive *sa = NULL;
	char why[SIGFS_ERRLEN] = "";
	struct archive_entry *ae;
	struct archive *a = NULL;
	uint8_t *version = NULL;
	int64_t vsize = 0, msize = 0;
	int r;

	*manifest = NULL;
	/* A plain tar, nothing else: a compressed or other archive is no Mender artifact. */
	r = sigfs_archive_open(in, archive_read_support_format_tar, &sa, why);
	if (r < 0) {
		sigfs_seterr(err, r, "%s%s", r == -EBADMSG ? "not a Mender artifact (a tar file): " : "",
			     why);
		goto out;
	}
	a = sigfs_archive_of(sa);
	r = next_member(a, "version", &vsize, err);
	if (r == 0)
		r = member_data(a, "version", vsize, VERSION_MAX, &version, err);
	if (r == 0)
		r = check_version(version, (size_t)vsize, err);
	if (r == 0 && archive_read_header_position(a) != 0)
		r = sigfs_seterr(err, -EBADMSG, "not a Mender artifact: version is not its first "
				 "header");
	if (r == 0)
		r = next_member(a, "manifest", &msize, err);
	/* Plain ustar headers, one block each: what mender-artifact writes. */
	if (r == 0 && (uint64_t)archive_read_header_position(a) != BLOCK + padded(vsize))
		r = sigfs_seterr(err, -EBADMSG, "the artifact's tar headers are not the plain "
				 "ustar ones mender-artifact writes: not signed");
	if (r == 0)
		r = member_data(a, "manifest", msize, MANIFEST_MAX, manifest, err);
	if (r < 0)
		goto out;
	*mlen = (size_t)msize;
	*at = 2 * BLOCK + padded(vsize) + padded(msize);
	r = archive_read_next_header(a, &ae);
	if (r == ARCHIVE_EOF) {
		r = sigfs_seterr(err, -EBADMSG, "not a Mender artifact: nothing follows its manifest");
	} else if (r != ARCHIVE_OK) {
		r = sigfs_seterr(err, -EBADMSG, "cannot read the artifact's tar headers: %s",
				 sigfs_archive_error(a));
	} else if (strncmp(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "",
			   "manifest.sig", 13) == 0) {
		r = sigfs_seterr(err, -EEXIST, "%s is signed already (it has a manifest.sig): copy "
				 "in the unsigned artifact", in->name);
	} else if ((uint64_t)archive_read_header_position(a) != *at) {
		r = sigfs_seterr(err, -EBADMSG, "the artifact's tar headers are not the plain "
				 "ustar ones mender-artifact writes: not signed");
	} else {
		r = 0;
	}
out:
	if (r < 0) {
		free(*manifest);
		*manifest = NULL;
	}
	free(version);
	sigfs_archive_close(sa);
	return r;
}

/* --- the new member ----------------------------------------------------------------- */

/* An octal number in a field of w bytes: w - 1 zero-padded digits and a NUL (Go's layout). */
static void octal(uint8_t *field, size_t w, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(w - 1), (unsigned long long)v);
	memcpy(field, tmp, w - 1);
	field[w - 1] = '\0';
}

void sigfs_mender_header(const char *name, uint64_t size, uint8_t h[512])
{
	unsigned sum = 0;
	char chk[8];

	memset(h, 0, 512);
	memcpy(h, name, strnlen(name, 100));
	octal(h + 100, 8, 0644);            /* mode */
	octal(h + 108, 8, 0);               /* uid */
	octal(h + 116, 8, 0);               /* gid */
	octal(h + 124, 12, size);
	octal(h + 136, 12, 0);              /* mtime */
	h[156] = '0';                       /* a regular file */
	memcpy(h + 257, "ustar\0" "00", 8);
	octal(h + 329, 8, 0);               /* devmajor */
	octal(h + 337, 8, 0);               /* devminor */
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf(chk, sizeof(chk), "%06o", sum & 0777777);
	memcpy(h + 148, chk, 6);
	h[154] = '\0';
	h[155] = ' ';
}

/* ECDSA's DER signature as r||s, 32 bytes each (what mender-artifact verifies). */
static int ecdsa_raw(const uint8_t *der, size_t len, uint8_t out[64], char *err)
{
	const uint8_t *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	int ok = es && p == der + len && BN_bn2binpad(ECDSA_SIG_get0_r(es), out, 32) == 32 &&
		 BN_bn2binpad(ECDSA_SIG_get0_s(es), out + 32, 32) == 32;

	ECDSA_SIG_free(es);
	return ok ? 0 : sigfs_seterr(err, -EBADMSG, "mender: the backend's ECDSA signature is "
				     "not a P-256 one");
}

/* manifest.sig's contents for manifest: base64 of the signature, in b64 (*b64len bytes). */
static int sign_manifest(const struct sigfs_format_input *in, const uint8_t *manifest, size_t mlen,
			 sigfs_sign_fn sign, void *sign_ctx, char *b64, size_t *b64len, char *err)
{
	const struct sigfs_format_key *k = in->key;
	struct sigfs_sign_input si = { .alg = k->alg, .padding = k->padding,
				       .digest = sigfs_digest_by_name("sha256") };
	uint8_t dv[32], sig[SIGFS_MAX_SIG], raw[64];
	size_t siglen = sizeof(sig);
	unsigned dlen = 0;
	int r;

	if (!si.digest || !EVP_Digest(manifest, mlen, dv, &dlen, EVP_sha256(), NULL))
		return sigfs_seterr(err, -EIO, "mender: cannot hash the manifest");
	si.data = dv;
	si.len = dlen;
	r = sign(sign_ctx, &si, sig, &siglen, err);
	if (r < 0)
		return r;
	if (k->alg->kind == SIGFS_KIND_EC) {
		r = ecdsa_raw(sig, siglen, raw, err);
		if (r < 0)
			return r;
		memcpy(sig, raw, sizeof(raw));
		siglen = sizeof(raw);
	}
	*b64len = (size_t)EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	return 0;
}

static int mender_stream(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
			 const struct sigfs_sink *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	char b64[4 * (SIGFS_MAX_SIG / 3 + 1) + 1];
	uint8_t *manifest = NULL, h[BLOCK], zero[BLOCK] = { 0 };
	size_t mlen = 0, b64len = 0;
	uint64_t at = 0;
	int r;

	if (!in->message && !in->message_file)
		return sigfs_seterr(err, -EINVAL, "mender signs the artifact itself, not a digest "
				    "or a request: copy the .mender file into the inbox");
	r = mender_check(k->alg, k->digest, err);
	if (r == 0)
		r = mender_check_padding(k->alg, k->padding, err);
	if (r == 0)
		r = read_head(in, &manifest, &mlen, &at, err);
	if (r == 0)
		r = sign_manifest(in, manifest, mlen, sign, sign_ctx, b64, &b64len, err);
	free(manifest);
	if (r < 0)
		return r;
	sigfs_mender_header("manifest.sig", b64len, h);
	r = sigfs_format_copy(in, 0, at, out);
	if (r == 0)
		r = out->write(out->ctx, h, sizeof(h));
	if (r == 0)
		r = out->write(out->ctx, b64, b64len);
	if (r == 0 && b64len % BLOCK)
		r = out->write(out->ctx, zero, BLOCK - b64len % BLOCK);
	if (r == 0)
		r = sigfs_format_copy(in, at, in->message_len - at, out);
	if (r < 0 && !err[0])
		sigfs_seterr(err, r, "mender: cannot write the signed artifact: %s", strerror(-r));
	return r;
}

const struct sigfs_format sigfs_format_mender = {
	.name = "mender",
	.suffix = ".signed",
	.check = mender_check,
	.check_padding = mender_check_padding,
	.needs_message = mender_needs_message,
	.whole_artifact = true,
	.produce_stream = mender_stream,
};
