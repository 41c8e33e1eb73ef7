/*
 * format_authenticode.c: the "authenticode" format, a PE/COFF image (a UEFI
 * application, a kernel EFI stub, shim, GRUB) signed as sbsign signs it
 * (docs/format-authenticode.md): NAME gets NAME.signed, the image with an
 * Authenticode signature in its certificate table, which UEFI Secure Boot,
 * sbverify and osslsigncode check.
 *
 * The signature is a PKCS#7 SignedData whose content (embedded) is an
 * SpcIndirectDataContent holding the image's Authenticode hash: SHA-256 of
 * the file without its checksum field, its certificate-table directory entry
 * and the certificate table, padded with zeros to 8 bytes. It has signed
 * attributes (contentType SpcIndirectDataContent, signingTime,
 * messageDigest over the content), names its signer by issuer and serial,
 * and carries the key's cert.pem. The output is the image padded to 8 bytes,
 * then one WIN_CERTIFICATE (revision 2.0, PKCS_SIGNED_DATA) padded to 8
 * (its dwLength counting the padding), with the directory entry pointing at
 * it and the PE checksum recomputed.
 *
 * The PE headers come from outside: every offset and size is checked before
 * it is used (pe_parse, fuzzed by fuzz-authenticode). Images whose sections
 * do not follow the headers and each other without gaps are refused: there
 * the Authenticode hash of the specification (headers, sections in order,
 * the rest) and the file's bytes in order, which sbsign and osslsigncode
 * hash, differ, and a firmware could reject what a tool accepted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "signer/format.h"
#include "signer/format_authenticode.h"
#include "signer/pkcs7.h"

#define SPC_INDIRECT_DATA "1.3.6.1.4.1.311.2.1.4"
#define HEAD_MAX (1u << 20)             /* the headers are read into memory: at most this */
#define SECTIONS_MAX 96                 /* the PE format's own limit */
#define CHUNK (1u << 20)
#define WIN_CERT_REVISION 0x0200
#define WIN_CERT_PKCS_SIGNED_DATA 0x0002

static int ac_check(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err)
{
	if (alg->kind == SIGFS_KIND_ED25519)
		return sigfs_seterr(err, -EINVAL, "authenticode cannot sign with Ed25519: "
				    "Authenticode verifiers take RSA and ECDSA only");
	if (strcmp(d->name, "sha256") != 0)
		return sigfs_seterr(err, -EINVAL, "authenticode signs SHA-256 image hashes, not "
				    "%s (sbverify and UEFI firmware check SHA-256): set the key's "
				    "digest to sha256", d->name);
	return 0;
}

static int ac_check_padding(const struct sigfs_alg *alg, enum sigfs_padding pad, char *err)
{
	if (alg->kind == SIGFS_KIND_RSA && pad != SIGFS_PAD_PKCS1)
		return sigfs_seterr(err, -EINVAL, "authenticode needs RSA PKCS#1 v1.5: UEFI "
				    "firmware and osslsigncode refuse RSA-PSS; set the key's "
				    "padding to pkcs1 first");
	return 0;
}

static bool ac_needs_message(const struct sigfs_alg *alg)
{
	(void)alg;
	return true;
}

/* --- the PE headers ----------------------------------------------------------------- */

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct span {
	uint64_t off, len;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

int sigfs_pe_parse(const uint8_t *h, size_t hlen, uint64_t size, struct sigfs_pe *pe, char *err)
{
	struct span sec[SECTIONS_MAX];
	uint32_t lfanew, nrva, dd, headers;
	uint16_t nsec, optsize, magic;
	uint64_t oh, table, at;
	size_t n = 0;

	memset(pe, 0, sizeof(*pe));
	if (hlen < 64 || size < 64 || h[0] != 'M' || h[1] != 'Z')
		return sigfs_seterr(err, -EBADMSG, "not a PE/COFF image (no MZ header)");
	lfanew = le32(h + 0x3c);
	if ((uint64_t)lfanew + 24 > hlen || memcmp(h + lfanew, "PE\0\0", 4) != 0)
		return sigfs_seterr(err, -EBADMSG, "not a PE/COFF image (no PE signature where "
				    "the MZ header points)");
	nsec = le16(h + lfanew + 6);
	optsize = le16(h + lfanew + 20);
	oh = (uint64_t)lfanew + 24;
	if (optsize < 2 || oh + optsize > hlen)
		return sigfs_seterr(err, -EBADMSG, "a PE image whose optional header is cut short");
	magic = le16(h + oh);
	if (magic == 0x10b)
		dd = 96;
	else if (magic == 0x20b)
		dd = 112;
	else
		return sigfs_seterr(err, -EBADMSG, "a PE image of unknown kind (optional header "
				    "magic %#x): neither PE32 nor PE32+", magic);
	if (optsize < dd)
		return sigfs_seterr(err, -EBADMSG, "a PE image whose optional header is too short "
				    "for its data directories");
	nrva = le32(h + oh + dd - 4);
	if (nrva < 5 || nrva > (optsize - dd) / 8)
		return sigfs_seterr(err, -EBADMSG, "a PE image without a certificate-table entry "
				    "(%u data directories)", nrva);
	headers = le32(h + oh + 60);
	table = oh + optsize;
	if (nsec > SECTIONS_MAX || table + 40u * nsec > headers || headers > hlen || headers > size)
		return sigfs_seterr(err, -EBADMSG, "a PE image whose headers (%u bytes, %u sections) "
				    "do not fit its SizeOfHeaders or the file", headers, nsec);
	pe->checksum_off = oh + 64;
	pe->certdir_off = oh + dd + 4 * 8;
	if (le32(h + pe->certdir_off) || le32(h + pe->certdir_off + 4))
		return sigfs_seterr(err, -EEXIST, "the image is signed already (it has a "
				    "certificate table): copy in the unsigned image");
	for (uint16_t i = 0; i < nsec; i++) {
		const uint8_t *s = h + table + 40u * i;

		if (le32(s + 16) == 0)
			continue;                   /* no data in the file (.bss) */
		sec[n].off = le32(s + 20);
		sec[n].len = le32(s + 16);
		n++;
	}
	qsort(sec, n, sizeof(sec[0]), span_cmp);
	at = headers;
	for (size_t i = 0; i < n; i++) {
		if (sec[i].off != at || sec[i].len > size - at)
			return sigfs_seterr(err, -EBADMSG, "a PE image whose sections do not follow its "
					    "headers and each other without gaps or overlaps, or run "
					    "past its end: its Authenticode hash is ambiguous; not "
					    "signed");
		at += sec[i].len;
	}
	pe->headers = headers;
	pe->sections_end = at;
	return 0;
}

/* --- the hash, the checksum, the signature ------------------------------------------ */

/* The PE checksum's running sum: byte b at offset off of the file. */
static void ck_add(uint64_t *sum, const uint8_t *p, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		*sum += (uint64_t)p[i] << (((off + i) & 1) * 8);
}

uint32_t sigfs_pe_checksum_finish(uint64_t sum, uint64_t size)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)(sum + size);
}

/*
 * Hash the image for Authenticode into md (the checksum's sum of the same
 * bytes into *sum): every byte but the checksum field and the certificate
 * directory entry, then zeros to a multiple of 8.
 */
static int hash_image(const struct sigfs_format_input *in, const struct sigfs_pe *pe,
		      EVP_MD_CTX *md, uint64_t *sum)
{
	const struct span parts[] = {
		{ 0, pe->checksum_off },
		{ pe->checksum_off + 4, pe->certdir_off - (pe->checksum_off + 4) },
		{ pe->certdir_off + 8, in->message_len - (pe->certdir_off + 8) },
	};
	static const uint8_t zero[8];
	uint8_t *buf = malloc(CHUNK);
	int r = buf ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < sizeof(parts) / sizeof(parts[0]); i++) {
		for (uint64_t off = parts[i].off, end = off + parts[i].len; r == 0 && off < end;) {
			size_t n = end - off < CHUNK ? (size_t)(end - off) : CHUNK;

			r = sigfs_format_read(in, buf, n, off);
			if (r == 0 && !EVP_DigestUpdate(md, buf, n))
				r = -EIO;
			if (r == 0)
				ck_add(sum, buf, n, off);
			off += n;
		}
	}
	if (r == 0 && in->message_len % 8 && !EVP_DigestUpdate(md, zero, 8 - in->message_len % 8))
		r = -EIO;
	free(buf);
	return r;
}

/*
 * SpcIndirectDataContent for a PE image and its SHA-256 (sbsign's and
 * osslsigncode's encoding): SEQUENCE { SpcAttributeTypeAndOptionalValue {
 * SPC_PE_IMAGE_DATAOBJ, SpcPeImageData { flags: empty BIT STRING, file:
 * [0] SpcLink [2] SpcString [0] BMPString "<<<Obsolete>>>" } }, DigestInfo {
 * sha256, the hash } }.
 */
static const uint8_t idc_head[] = {
	0x30, 0x68,
	0x30, 0x33, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f,
	0x30, 0x25, 0x03, 0x01, 0x00, 0xa0, 0x20, 0xa2, 0x1e, 0x80, 0x1c,
	0x00, '<', 0x00, '<', 0x00, '<', 0x00, 'O', 0x00, 'b', 0x00, 's', 0x00, 'o',
	0x00, 'l', 0x00, 'e', 0x00, 't', 0x00, 'e', 0x00, '>', 0x00, '>', 0x00, '>',
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
	0x05, 0x00, 0x04, 0x20,
};
#define IDC_LEN (sizeof(idc_head) + 32)

static int ac_stream(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		     const struct sigfs_sink *out, char *err)
{
	const struct sigfs_format_key *k = in->key;
	struct sigfs_pkcs7_opts o = { .attrs = true, .cert = true, .now = in->now,
				      .what = "authenticode", .content_oid = SPC_INDIRECT_DATA };
	static const uint8_t zero[8];
	uint8_t idc[IDC_LEN], dv[32], cks[4], dir[8], wc[8];
	uint64_t sum = 0, padded, table_len;
	size_t hlen = in->message_len < HEAD_MAX ? in->message_len : HEAD_MAX;
	uint8_t *head = NULL;
	struct sigfs_pe pe;
	EVP_MD_CTX *md = NULL;
	struct sbuf p7;
	unsigned dlen = 0;
	int r;

	if (!in->message && !in->message_file)
		return sigfs_seterr(err, -EINVAL, "authenticode signs the image itself, not a "
				    "digest or a request: copy the image into the inbox");
	r = ac_check(k->alg, k->digest, err);
	if (r == 0)
		r = ac_check_padding(k->alg, k->padding, err);
	if (r < 0)
		return r;
	if (in->message_len > UINT32_MAX - (64u << 10))
		return sigfs_seterr(err, -EFBIG, "a PE image of 4 GiB or more cannot carry a "
				    "certificate table");
	head = malloc(hlen ? hlen : 1);
	if (!head)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	r = sigfs_format_read(in, head, hlen, 0);
	if (r < 0)
		sigfs_seterr(err, r, "cannot read the image: %s", strerror(-r));
	else
		r = sigfs_pe_parse(head, hlen, in->message_len, &pe, err);
	free(head);
	if (r < 0)
		return r;

	/* The image's hash, and SpcIndirectDataContent with it. */
	md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	}
	r = hash_image(in, &pe, md, &sum);
	memcpy(idc, idc_head, sizeof(idc_head));
	if (r == 0 && !EVP_DigestFinal_ex(md, idc + sizeof(idc_head), &dlen))
		r = -EIO;
	EVP_MD_CTX_free(md);
	if (r < 0)
		return sigfs_seterr(err, r, "cannot hash the image: %s", strerror(-r));
	/* messageDigest is over the content's value, without its tag and length. */
	if (!EVP_Digest(idc + 2, IDC_LEN - 2, dv, &dlen, EVP_sha256(), NULL))
		return sigfs_seterr(err, -EIO, "authenticode: cannot hash the content");
	o.content = idc;
	o.content_len = IDC_LEN;
	sbuf_init(&p7, 64u << 10);
	r = sigfs_pkcs7_sign(k, k->digest, dv, &o, sign, sign_ctx, &p7, err);
	if (r < 0)
		goto out;

	/* The certificate table at the image's end padded to 8, itself padded to 8. */
	padded = (in->message_len + 7) & ~(uint64_t)7;
	table_len = (8 + p7.len + 7) & ~(size_t)7;
	put_le32(dir, (uint32_t)padded);
	put_le32(dir + 4, (uint32_t)table_len);
	/*
	 * dwLength counts the padding, as osslsigncode writes it: osslsigncode
	 * 2.5 (Debian 12's) refuses a table whose dwLength is short of its size,
	 * which is what sbsign writes; sbverify and osslsigncode 2.9 take both.
	 */
	put_le32(wc, (uint32_t)table_len);
	wc[4] = WIN_CERT_REVISION & 0xff;
	wc[5] = WIN_CERT_REVISION >> 8;
	wc[6] = WIN_CERT_PKCS_SIGNED_DATA & 0xff;
	wc[7] = WIN_CERT_PKCS_SIGNED_DATA >> 8;
	ck_add(&sum, dir, sizeof(dir), pe.certdir_off);
	ck_add(&sum, wc, sizeof(wc), padded);
	ck_add(&sum, p7.d, p7.len, padded + 8);
	put_le32(cks, sigfs_pe_checksum_finish(sum, padded + table_len));

	r = sigfs_format_copy(in, 0, pe.checksum_off, out);
	if (r == 0)
		r = out->write(out->ctx, cks, sizeof(cks));
	if (r == 0)
		r = sigfs_format_copy(in, pe.checksum_off + 4, pe.certdir_off - pe.checksum_off - 4, out);
	if (r == 0)
		r = out->write(out->ctx, dir, sizeof(dir));
	if (r == 0)
		r = sigfs_format_copy(in, pe.certdir_off + 8, in->message_len - pe.certdir_off - 8, out);
	if (r == 0 && padded > in->message_len)
		r = out->write(out->ctx, zero, padded - in->message_len);
	if (r == 0)
		r = out->write(out->ctx, wc, sizeof(wc));
	if (r == 0)
		r = out->write(out->ctx, p7.d, p7.len);
	if (r == 0 && table_len > 8 + p7.len)
		r = out->write(out->ctx, zero, table_len - 8 - p7.len);
	if (r < 0)
		sigfs_seterr(err, r, "authenticode: cannot write the signed image: %s", strerror(-r));
out:
	sbuf_free(&p7);
	return r;
}

const struct sigfs_format sigfs_format_authenticode = {
	.name = "authenticode",
	.suffix = ".signed",
	.check = ac_check,
	.check_padding = ac_check_padding,
	.needs_message = ac_needs_message,
	.needs_cert = true,
	.whole_artifact = true,
	.produce_stream = ac_stream,
};
