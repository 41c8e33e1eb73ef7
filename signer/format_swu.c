/*
 * format_swu.c: a whole SWUpdate image signed (docs/format-swupdate.md).
 * A key of format swupdate signs `sw-description` into sw-description.sig
 * (format_cms.c); a file named NAME.swu it signs whole: NAME.swu.signed is
 * the image with sw-description.sig inserted as its second member, the
 * place SWUpdate looks for it:
 *
 *   sw-description | sw-description.sig (new) | images ... | TRAILER!!!
 *
 * The signature is the swupdate format's: a detached CMS SignedData over
 * the bytes of the image's sw-description, signer certificate inside. Every
 * other byte is copied as it is. The image is a cpio archive in the newc
 * (070701) or crc (070702) format, the two SWUpdate reads; libarchive reads
 * its first two headers and sw-description's contents (the images are
 * skipped, never read). The one header added is written here in the same
 * format (libarchive writes no crc cpio); its crc field is the byte sum of
 * the signature, as the crc format wants.
 *
 * Images can be gigabytes: the format streams (produce_stream), as mender
 * does (decision 76).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "signer/archive.h"
#include "signer/format.h"
#include "signer/format_swu.h"
#include "signer/pkcs7.h"

#define DESC "sw-description"
#define SIG_NAME "sw-description.sig"
#define DESC_MAX (8u << 20)            /* sw-description: a text file, kilobytes */
#define HDR_LEN 110                     /* a newc/crc header: magic and 13 hex fields */

extern const struct sigfs_format sigfs_format_swupdate;
static const struct sigfs_format swu_image;

const struct sigfs_format *sigfs_swu_for_input(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".swu") == 0 ? &swu_image : NULL;
}

static int swu_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	return sigfs_format_swupdate.check(alg, d, err);
}

static bool swu_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return true;
}

static uint64_t pad4(uint64_t n)
{
	return (n + 3) & ~(uint64_t)3;
}

#define NAME_LIMIT 4096                 /* a member name longer than this: no .swu */

/* The 8 hex digits at p as a number; -1 if they are not all hex digits. */
static long long hex8(const char *p)
{
	long long v = 0;

	for (int i = 0; i < 8; i++) {
		int c = (unsigned char)p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * The newc/crc header at off, checked before libarchive reads it: libarchive
 * allocates room for a member's whole name, and a symbolic link's whole
 * target, before it reads them, so a header claiming a 4 GiB name would cost
 * 4 GiB of memory before the file runs out. And where it finds no header it
 * searches on for one, which may be such a header inside a member's data.
 * The first header (magic NULL) must be newc or crc: libarchive is given no
 * other. A later one must be there, with the first's magic.
 */
static int header_ok(const struct sigfs_format_input *in, uint64_t off, const char *magic,
		     long long *namesize, char *err)
{
	char h[HDR_LEN];
	long long mode, size, name;

	if (off > in->message_len || in->message_len - off < HDR_LEN ||
	    sigfs_format_read(in, h, HDR_LEN, off) < 0 ||
	    (memcmp(h, "070701", 6) != 0 && memcmp(h, "070702", 6) != 0)) {
		if (magic)
			return sigfs_seterr(err, -EBADMSG, "the image's cpio headers are not laid "
					    "out as cpio -H newc or -H crc writes them: not signed");
		/* libarchive is given newc and crc only, whose headers are checked here. */
		if (in->message_len >= 6 && sigfs_format_read(in, h, 6, 0) == 0 &&
		    memcmp(h, "070707", 6) == 0)
			return sigfs_seterr(err, -EBADMSG, "a .swu image in cpio's odc format: "
					    "SWUpdate reads cpio's newc and crc formats only (cpio -H "
					    "newc or -H crc)");
		return sigfs_seterr(err, -EBADMSG, "not a .swu image (a cpio archive in the newc or "
				    "crc format, as SWUpdate reads)");
	}
	if (magic && memcmp(h, magic, 6) != 0)
		return sigfs_seterr(err, -EBADMSG, "the image mixes cpio formats: not signed");
	/* All 13 fields hex: else libarchive would search on for another header. */
	for (int i = 0; i < 13; i++)
		if (hex8(h + 6 + 8 * i) < 0)
			return sigfs_seterr(err, -EBADMSG, "not a .swu image: the cpio header at "
					    "byte %llu is malformed", (unsigned long long)off);
	mode = hex8(h + 14);
	size = hex8(h + 54);
	name = hex8(h + 94);
	*namesize = name;
	if (name > NAME_LIMIT ||
	    ((mode & 0170000) == 0120000 && size > NAME_LIMIT))
		return sigfs_seterr(err, -EBADMSG, "not a .swu image: the cpio header at byte %llu "
				    "is malformed or gives a name or link longer than %u bytes",
				    (unsigned long long)off, NAME_LIMIT);
	return 0;
}

/*
 * Read the image's first members: sw-description into *desc (*dlen bytes),
 * its owner and time into *ae_desc, the cpio magic into magic, and in *at
 * the offset where sw-description.sig goes (the second member's header).
 */
static int read_head(const struct sigfs_format_input *in, uint8_t **desc, size_t *dlen,
		     struct archive_entry **ae_desc, char magic[7], uint64_t *at, char *err)
{
	struct sigfs_archive *sa = NULL;
	char why[SIGFS_ERRLEN] = "";
	struct archive_entry *ae;
	struct archive *a;
	long long namesize = -1;
	la_int64_t size = 0;
	la_ssize_t n;
	int r, fmt;

	*desc = NULL;
	*ae_desc = NULL;
	r = header_ok(in, 0, NULL, &namesize, err);
	if (r < 0)
		return r;
	/*
	 * Its name is exactly "sw-description": libarchive takes the name up to
	 * its NUL, but the next header comes after all namesize bytes of it.
	 */
	if (namesize != (long long)sizeof(DESC))
		return sigfs_seterr(err, -EBADMSG, "not a .swu image: its first member must be "
				    "sw-description");
	r = sigfs_archive_open(in, archive_read_support_format_cpio, &sa, why);
	if (r < 0)
		return sigfs_seterr(err, r, "%s%s", r == -EBADMSG ? "not a .swu image (a cpio "
				    "archive): " : "", why);
	a = sigfs_archive_of(sa);
	r = archive_read_next_header(a, &ae);
	fmt = archive_format(a);
	if (r != ARCHIVE_OK) {
		r = sigfs_seterr(err, -EBADMSG, "not a .swu image (a cpio archive): %s",
				 r == ARCHIVE_EOF ? "it is empty" : sigfs_archive_error(a));
	} else if (fmt != ARCHIVE_FORMAT_CPIO_SVR4_NOCRC && fmt != ARCHIVE_FORMAT_CPIO_SVR4_CRC) {
		r = sigfs_seterr(err, -EBADMSG, "a .swu image in the %s format: SWUpdate reads "
				 "cpio's newc and crc formats only (cpio -H newc or -H crc)",
				 archive_format_name(a) ? archive_format_name(a) : "unknown");
	} else if (strcmp(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "", DESC) != 0 ||
		   archive_entry_filetype(ae) != AE_IFREG) {
		r = sigfs_seterr(err, -EBADMSG, "not a .swu image: its first member must be "
				 "sw-description");
	} else if ((size = archive_entry_size(ae)) <= 0 || (uint64_t)size > DESC_MAX) {
		r = sigfs_seterr(err, -EBADMSG, "the image's sw-description is empty or larger "
				 "than %u bytes", DESC_MAX);
	} else if (archive_read_header_position(a) != 0) {
		r = sigfs_seterr(err, -EBADMSG, "not a .swu image: sw-description is not its "
				 "first header");
	} else {
		r = 0;
	}
	if (r < 0)
		goto out;
	memcpy(magic, fmt == ARCHIVE_FORMAT_CPIO_SVR4_CRC ? "070702" : "070701", 7);
	*ae_desc = archive_entry_clone(ae);
	*desc = malloc((size_t)size);
	if (!*ae_desc || !*desc) {
		r = sigfs_seterr(err, -ENOMEM, "out of memory");
		goto out;
	}
	n = archive_read_data(a, *desc, (size_t)size);
	if (n != size) {
		r = sigfs_seterr(err, -EBADMSG, "cannot read the image's sw-description: %s",
				 n < 0 ? sigfs_archive_error(a) : "it ends early");
		goto out;
	}
	*dlen = (size_t)size;
	*at = pad4(HDR_LEN + sizeof(DESC)) + pad4((uint64_t)size);
	r = header_ok(in, *at, magic, &namesize, err);
	if (r < 0)
		goto out;
	r = archive_read_next_header(a, &ae);
	if (r == ARCHIVE_EOF)
		r = sigfs_seterr(err, -EBADMSG, "the .swu image has nothing after sw-description: "
				 "no images to install");
	else if (r != ARCHIVE_OK)
		r = sigfs_seterr(err, -EBADMSG, "cannot read the image's cpio headers: %s",
				 sigfs_archive_error(a));
	else if (strcmp(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "", SIG_NAME) == 0)
		r = sigfs_seterr(err, -EEXIST, "%s is signed already (its second member is "
				 "sw-description.sig): copy in the unsigned image", in->name);
	else if ((uint64_t)archive_read_header_position(a) != *at)
		r = sigfs_seterr(err, -EBADMSG, "the image's cpio headers are not laid out as "
				 "cpio -H newc or -H crc writes them: not signed");
	else
		r = 0;
out:
	if (r < 0) {
		free(*desc);
		*desc = NULL;
		archive_entry_free(*ae_desc);
		*ae_desc = NULL;
	}
	sigfs_archive_close(sa);
	return r;
}

void sigfs_swu_header(const char magic[7], uint32_t uid, uint32_t gid, uint32_t mtime,
		      const uint8_t *data, size_t len, char hdr[SIGFS_SWU_HDR_MAX], size_t *hlen)
{
	uint32_t sum = 0;
	int n;

	if (strcmp(magic, "070702") == 0)
		for (size_t i = 0; i < len; i++)
			sum += data[i];
	/* magic ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check */
	n = snprintf(hdr, SIGFS_SWU_HDR_MAX, "%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%s",
		     magic, 0u, 0100644u, uid, gid, 1u, mtime, (unsigned)len, 0u, 0u, 0u, 0u,
		     (unsigned)sizeof(SIG_NAME), sum, SIG_NAME);
	/* The name's NUL, then zeros to a multiple of 4. */
	*hlen = (size_t)pad4((uint64_t)n + 1);
	memset(hdr + n, 0, *hlen - (size_t)n);
}

static int swu_stream(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		      const struct sigfs_sink *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	const struct sigfs_pkcs7_opts o = { .attrs = true, .cert = true, .now = in->now,
					    .what = "swupdate" };
	static const uint8_t zero[4];
	char magic[7], hdr[SIGFS_SWU_HDR_MAX];
	uint8_t dv[SIGFS_MAX_DIGEST], *desc = NULL;
	struct archive_entry *ae = NULL;
	size_t dlen = 0, hlen = 0;
	unsigned dvlen = 0;
	struct sbuf sig;
	uint64_t at = 0;
	int r;

	if (!in->message && !in->message_file)
		return sigfs_seterr(err, -EINVAL, "a .swu image is signed whole: copy the image "
				    "itself into the inbox, not a digest or a request");
	r = swu_check(k->alg, k->digest, err);
	if (r < 0)
		return r;
	r = read_head(in, &desc, &dlen, &ae, magic, &at, err);
	if (r < 0)
		return r;
	sbuf_init(&sig, 64 << 10);
	if (!EVP_Digest(desc, dlen, dv, &dvlen, sigfs_digest_md(k->digest), NULL))
		r = sigfs_seterr(err, -EIO, "swupdate: cannot hash sw-description");
	else
		r = sigfs_pkcs7_sign(k, k->digest, dv, &o, sign, sign_ctx, &sig, err);
	if (r == 0) {
		sigfs_swu_header(magic, (uint32_t)archive_entry_uid(ae), (uint32_t)archive_entry_gid(ae),
				 (uint32_t)archive_entry_mtime(ae), sig.d, sig.len, hdr, &hlen);
		r = sigfs_format_copy(in, 0, at, out);
		if (r == 0)
			r = out->write(out->ctx, hdr, hlen);
		if (r == 0)
			r = out->write(out->ctx, sig.d, sig.len);
		if (r == 0 && sig.len % 4)
			r = out->write(out->ctx, zero, 4 - sig.len % 4);
		if (r == 0)
			r = sigfs_format_copy(in, at, in->message_len - at, out);
		if (r < 0)
			sigfs_seterr(err, r, "swupdate: cannot write the signed image: %s",
				     strerror(-r));
	}
	sbuf_free(&sig);
	archive_entry_free(ae);
	free(desc);
	return r;
}

/*
 * Not a row of the format table (no key has it as its format): the
 * swupdate format's for_input gives it for NAME.swu.
 */
static const struct sigfs_format swu_image = {
	.name = "swupdate-image",
	.suffix = ".signed",
	.check = swu_check,
	.needs_message = swu_needs_message,
	.needs_cert = true,
	.whole_artifact = true,
	.produce_stream = swu_stream,
};
