/*
 * verify.c: is an output sigfs's signature over an input, by one key?
 *
 * The check reuses the formats themselves (signer/format_*.c) rather than a
 * second encoder per format: the output is parsed only far enough to pull
 * out its signature values (and the signing time the format encodes), then
 * the format's produce() runs again over the input with a sign callback
 * that, instead of signing, verifies the pulled-out value against exactly
 * the bytes produce() asks to have signed (the key's public key, OpenSSL
 * EVP) and hands it back. The output counts only if every signature
 * verifies and produce() then writes the output byte for byte: so what is
 * signed (hash, trailer, SSHSIG blob, CMS attributes, trusted comment) is
 * decided by the same code that signs, and any byte changed anywhere fails.
 *
 * The input is hashed in 1 MiB chunks (it can be GiB). Pure Ed25519 (the
 * raw format) needs the whole message at once: the file is mapped read-only
 * (MAP_PRIVATE), so nothing is copied and the pages are the page cache's.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "client/verify.h"
#include "common/err.h"
#include "signer/digestline.h"

#define KEYFILE_MAX (64 * 1024)     /* pubkey.pem, cert.pem ...: far below */
#define OUTPUT_MAX SIGFS_VERIFY_OUTPUT_MAX
#define DL_MAX 4096                 /* a digest line (signer/digestline.h) */
#define CHUNK (1024 * 1024)
#define MAX_SIGS 2                  /* minisign: the signature and the global one */
#define NAME_MAX_KEY 256

struct sigfs_vkey {
	char name[NAME_MAX_KEY];
	char ns[256];                           /* sshsig namespace ("" : the default) */
	const struct sigfs_format *format;
	const struct sigfs_alg *alg;
	const struct sigfs_digest *digest;
	enum sigfs_padding padding;             /* PAD_NONE for RSA: not published, try both */
	EVP_PKEY *pub;
	uint8_t *cert;                          /* cert.pem as DER, or NULL */
	size_t cert_len;
	time_t created;                         /* OpenPGP key creation time (cert.pgp) */
};

/* The signature values pulled out of an output, and what the callback did with them. */
struct vctx {
	const struct sigfs_vkey *k;
	uint8_t sig[MAX_SIGS][SIGFS_MAX_SIG];
	size_t siglen[MAX_SIGS];
	int n, used;
	bool bad;
	time_t now;                             /* the time the output encodes */
	char keyname[NAME_MAX_KEY];             /* minisign: the name in its comment */
};

/* ---- the key directory ---- */

/* Read dirfd/name (at most max bytes) into b; strict: root's, writable by nobody else. */
static int read_keyfile(int dirfd, const char *name, bool strict, struct sbuf *b, char *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	uint8_t buf[4096];
	struct stat st;
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return sigfs_seterr(err, -errno, "%s: %s", name,
				    errno == ELOOP ? "a symbolic link" : strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		r = sigfs_seterr(err, -EPERM, "%s: not a regular file", name);
	else if (strict && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))))
		r = sigfs_seterr(err, -EPERM, "%s: not owned by root or writable by others", name);
	sbuf_init(b, KEYFILE_MAX);
	while (!r && (n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = sigfs_seterr(err, -errno, "%s: %s", name, strerror(errno));
		else if (sbuf_put(b, buf, (size_t)n))
			r = sigfs_seterr(err, -EFBIG, "%s: larger than %d bytes", name, KEYFILE_MAX);
	}
	close(fd);
	if (r)
		sbuf_free(b);
	return r;
}

/*
 * A one-word file (format, digest ...) into word: its bytes without the final
 * newline, as .ctl/keys/KEY/ renders them ("raw\n"). Only namespace may be empty.
 */
static int read_word(int dirfd, const char *name, bool strict, char *word, size_t size,
		     char *err)
{
	struct sbuf b;
	size_t n;
	int r = read_keyfile(dirfd, name, strict, &b, err);

	if (r)
		return r;
	n = b.len && b.d[b.len - 1] == '\n' ? b.len - 1 : b.len;
	if ((n == 0 && strcmp(name, "namespace")) || n >= size || memchr(b.d, '\n', n) || memchr(b.d, '\0', n))
		r = sigfs_seterr(err, -EINVAL, "%s: not one word and a newline", name);
	else
		snprintf(word, size, "%.*s", (int)n, (const char *)b.d);
	sbuf_free(&b);
	return r;
}

/* format, algorithm, digest, and (optional) padding and namespace. */
static int load_settings(int dirfd, bool strict, struct sigfs_vkey *k, char *err)
{
	char w[64];
	int r;

	if ((r = read_word(dirfd, "format", strict, w, sizeof(w), err)))
		return r;
	if (!(k->format = sigfs_format_by_name(w)))
		return sigfs_seterr(err, -EINVAL, "format: no format is named \"%s\"", w);
	if ((r = read_word(dirfd, "algorithm", strict, w, sizeof(w), err)))
		return r;
	if (!(k->alg = sigfs_alg_by_name(w)))
		return sigfs_seterr(err, -EINVAL, "algorithm: no algorithm is named \"%s\"", w);
	if ((r = read_word(dirfd, "digest", strict, w, sizeof(w), err)))
		return r;
	if (!(k->digest = sigfs_digest_by_name(w)))
		return sigfs_seterr(err, -EINVAL, "digest: no digest is named \"%s\"", w);
	r = read_word(dirfd, "padding", strict, w, sizeof(w), err);
	if (!r && strcmp(w, "none") && sigfs_padding_parse(w, &k->padding))
		return sigfs_seterr(err, -EINVAL, "padding: \"%s\" is no padding", w);
	if (r && r != -ENOENT)
		return r;
	r = read_word(dirfd, "namespace", strict, k->ns, sizeof(k->ns), err);
	return r == -ENOENT ? 0 : r;
}

/* pubkey.pem: the key itself; it must be of the key's algorithm. */
static int load_pubkey(int dirfd, bool strict, struct sigfs_vkey *k, char *err)
{
	struct sbuf b;
	BIO *bio;
	int r = read_keyfile(dirfd, "pubkey.pem", strict, &b, err);

	if (r)
		return r;
	bio = BIO_new_mem_buf(b.d, (int)b.len);
	k->pub = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	sbuf_free(&b);
	if (!k->pub)
		return sigfs_seterr(err, -EINVAL, "pubkey.pem: not a PEM public key");
	if (sigfs_alg_of_key(k->pub) != k->alg)
		return sigfs_seterr(err, -EINVAL, "pubkey.pem: not an %s key", k->alg->name);
	return 0;
}

/* cert.pem (cms) as DER; absent is fine for the other formats. */
static int load_cert(int dirfd, bool strict, struct sigfs_vkey *k, char *err)
{
	struct sbuf b;
	X509 *x = NULL;
	BIO *bio;
	int r = read_keyfile(dirfd, "cert.pem", strict, &b, err), n;

	if (r)
		return r == -ENOENT && !k->format->needs_cert ? 0 : r;
	bio = BIO_new_mem_buf(b.d, (int)b.len);
	x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	sbuf_free(&b);
	k->cert = NULL;
	n = x ? i2d_X509(x, &k->cert) : -1;
	r = x && EVP_PKEY_eq(X509_get0_pubkey(x), k->pub) == 1;
	X509_free(x);
	if (n <= 0)
		return sigfs_seterr(err, -EINVAL, "cert.pem: not a PEM certificate");
	k->cert_len = (size_t)n;
	return r ? 0 : sigfs_seterr(err, -EINVAL, "cert.pem: not a certificate of pubkey.pem");
}

/* ---- bounded decoders of untrusted bytes ---- */

/* Base64 of b's lines up to (not including) a line starting with stop (0: all), into out. */
static int b64_lines(struct sbuf *b, char stop, struct sbuf *out)
{
	struct sbuf line, text;
	uint8_t *tmp;
	int n, pad = 0, r = 0;

	sbuf_init(&text, OUTPUT_MAX);
	while (!r && sbuf_avail(b) && (!stop || sbuf_ptr(b)[0] != stop))
		if (!(r = sbuf_get_line_or_rest(b, &line)))
			r = sbuf_put(&text, line.d + line.off, sbuf_avail(&line));
	if (!r && (text.len == 0 || text.len % 4))
		r = -EBADMSG;
	tmp = r ? NULL : malloc(text.len);
	if (!r && !tmp)
		r = -ENOMEM;
	if (!r) {
		n = EVP_DecodeBlock(tmp, text.d, (int)text.len);
		pad = (text.d[text.len - 1] == '=') + (text.d[text.len - 2] == '=');
		r = n < pad ? -EBADMSG : sbuf_put(out, tmp, (size_t)(n - pad));
	}
	free(tmp);
	sbuf_free(&text);
	return r;
}

/* Does b continue with the string s? If so, step over it. */
static bool skip_str(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (sbuf_avail(b) < n || memcmp(sbuf_ptr(b), s, n))
		return false;
	b->off += n;
	return true;
}

/* An SSH string (uint32 length, bytes) as a view. */
static int get_string(struct sbuf *b, struct sbuf *s)
{
	uint32_t n;

	return sbuf_get_u32be(b, &n) ? -EBADMSG : sbuf_get_view(b, n, s) ? -EBADMSG : 0;
}

/* ECDSA (r, s) as big-endian magnitudes into the DER the backends return. */
static int ecdsa_der(const struct sbuf *r, const struct sbuf *s, struct vctx *c, int i)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(sbuf_ptr(r), (int)sbuf_avail(r), NULL);
	BIGNUM *bs = BN_bin2bn(sbuf_ptr(s), (int)sbuf_avail(s), NULL);
	uint8_t *p = c->sig[i];
	int n = -1;

	if (es && br && bs && ECDSA_SIG_set0(es, br, bs)) {
		br = bs = NULL;
		if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(c->sig[i]))
			n = i2d_ECDSA_SIG(es, &p);
	}
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return -EBADMSG;
	c->siglen[i] = (size_t)n;
	return 0;
}

/* Store n bytes at p as signature i, left-padded with zeros to width (0: as is). */
static int put_sig(struct vctx *c, int i, const uint8_t *p, size_t n, size_t width)
{
	size_t len = width ? width : n;

	if (n > len || len > sizeof(c->sig[i]))
		return -EBADMSG;
	memset(c->sig[i], 0, len - n);
	memcpy(c->sig[i] + len - n, p, n);
	c->siglen[i] = len;
	return 0;
}

/* ---- pulling the signature values out of each format's output ---- */

static int pull_raw(struct vctx *c, struct sbuf *out)
{
	c->n = 1;
	return put_sig(c, 0, sbuf_ptr(out), sbuf_avail(out), 0);
}

/* sshsig: the armored SSHSIG blob's last string: string type, string signature. */
static int pull_sshsig(struct vctx *c, struct sbuf *out)
{
	struct sbuf blob, field, sig, type, v, r, s;
	uint32_t ver;
	int rc;

	if (!skip_str(out, "-----BEGIN SSH SIGNATURE-----\n"))
		return -EBADMSG;
	sbuf_init(&blob, OUTPUT_MAX);
	rc = b64_lines(out, '-', &blob);
	if (!rc && (!skip_str(&blob, "SSHSIG") || sbuf_get_u32be(&blob, &ver)))
		rc = -EBADMSG;
	for (int i = 0; !rc && i < 4; i++)   /* public key, namespace, reserved, hash */
		rc = get_string(&blob, &field);
	if (!rc)
		rc = get_string(&blob, &sig);
	if (!rc && (get_string(&sig, &type) || get_string(&sig, &v)))
		rc = -EBADMSG;
	c->n = 1;
	if (!rc && c->k->alg->kind == SIGFS_KIND_EC)
		rc = get_string(&v, &r) || get_string(&v, &s) ? -EBADMSG : ecdsa_der(&r, &s, c, 0);
	else if (!rc)
		rc = put_sig(c, 0, sbuf_ptr(&v), sbuf_avail(&v), 0);
	sbuf_free(&blob);
	return rc;
}

/* minisign: line 2 "ED" || key id || signature, line 3 the timestamp, line 4 the global one. */
static int pull_minisign(struct vctx *c, struct sbuf *out)
{
	struct sbuf line, dec;
	int64_t t;
	int rc = -EBADMSG;

	sbuf_init(&dec, 256);
	if (!skip_str(out, "untrusted comment: signature from sigfs key ") ||
	    sbuf_get_line(out, &line) || sbuf_avail(&line) >= sizeof(c->keyname))
		goto out;
	snprintf(c->keyname, sizeof(c->keyname), "%.*s", (int)sbuf_avail(&line),
		 (const char *)sbuf_ptr(&line));
	if (sbuf_get_line(out, &line) || b64_lines(&line, 0, &dec) || dec.len != 2 + 8 + 64 ||
	    put_sig(c, 0, dec.d + 10, 64, 0))
		goto out;
	if (!skip_str(out, "trusted comment: timestamp:") || sbuf_get_i64dec(out, &t) ||
	    (time_t)t != t || sbuf_get_line(out, &line))
		goto out;
	c->now = (time_t)t;
	sbuf_reset(&dec);
	if (sbuf_get_line(out, &line) || b64_lines(&line, 0, &dec) || dec.len != 64 ||
	    put_sig(c, 1, dec.d, 64, 0))
		goto out;
	c->n = 2;
	rc = 0;
out:
	sbuf_free(&dec);
	return rc;
}

/*
 * An OpenPGP length (RFC 4880 4.2.2, 5.2.3.1) whose first octet o was read:
 * one octet below 192, two below two_end, five after 255; the rest (partial
 * packet lengths) sigfs never writes.
 */
static int pgp_length(struct sbuf *b, uint8_t o, unsigned two_end, uint32_t *len)
{
	uint8_t o2;

	if (o < 192)
		*len = o;
	else if (o < two_end && !sbuf_get_u8(b, &o2))
		*len = ((uint32_t)(o - 192) << 8) + o2 + 192;
	else if (o != 255 || sbuf_get_u32be(b, len))
		return -EBADMSG;
	return 0;
}

/* A new-format OpenPGP packet (the only kind sigfs writes): its tag and body. */
static int pgp_packet(struct sbuf *b, uint8_t *tag, struct sbuf *body)
{
	uint8_t h, o;
	uint32_t len;

	if (sbuf_get_u8(b, &h) || (h & 0xc0) != 0xc0 || sbuf_get_u8(b, &o) ||
	    pgp_length(b, o, 224, &len))
		return -EBADMSG;
	*tag = h & 0x3f;
	return sbuf_get_view(b, len, body) ? -EBADMSG : 0;
}

/* The binary packets of an OpenPGP output, armored (label) or not, into bin. */
static int pgp_binary(struct sbuf *out, bool armored, struct sbuf *bin)
{
	struct sbuf line;

	if (!armored)
		return sbuf_put(bin, sbuf_ptr(out), sbuf_avail(out));
	if (sbuf_get_line(out, &line) || !skip_str(&line, "-----BEGIN PGP ") ||
	    !skip_str(out, "\n"))
		return -EBADMSG;
	return b64_lines(out, '=', bin);
}

/* The signature creation time, from the hashed subpackets (RFC 4880 5.2.3.1). */
static int pgp_created(struct sbuf *sp, time_t *t)
{
	uint8_t o, type;
	uint32_t len, v;
	struct sbuf body;

	while (sbuf_avail(sp)) {
		if (sbuf_get_u8(sp, &o) || pgp_length(sp, o, 255, &len) ||
		    sbuf_get_view(sp, len, &body) || sbuf_get_u8(&body, &type))
			return -EBADMSG;
		if ((type & 0x7f) == 2 && !sbuf_get_u32be(&body, &v)) {
			*t = (time_t)v;
			return 0;
		}
	}
	return -EBADMSG;
}

/* An MPI as a view of its magnitude. */
static int pgp_mpi(struct sbuf *b, struct sbuf *m)
{
	uint16_t bits;

	return sbuf_get_u16be(b, &bits) || sbuf_get_view(b, (bits + 7u) / 8, m) ? -EBADMSG : 0;
}

/* The signature MPIs in the backend's form: RSA padded to the modulus, ECDSA DER, Ed25519 r||s. */
static int pgp_sig_value(struct vctx *c, struct sbuf *b)
{
	struct sbuf r, s;
	uint8_t rs[64];

	if (pgp_mpi(b, &r))
		return -EBADMSG;
	if (c->k->alg->kind == SIGFS_KIND_RSA)
		return put_sig(c, 0, sbuf_ptr(&r), sbuf_avail(&r), (size_t)EVP_PKEY_get_size(c->k->pub));
	if (pgp_mpi(b, &s))
		return -EBADMSG;
	if (c->k->alg->kind == SIGFS_KIND_EC)
		return ecdsa_der(&r, &s, c, 0);
	if (sbuf_avail(&r) > 32 || sbuf_avail(&s) > 32)
		return -EBADMSG;
	memset(rs, 0, sizeof(rs));
	memcpy(rs + 32 - sbuf_avail(&r), sbuf_ptr(&r), sbuf_avail(&r));
	memcpy(rs + 64 - sbuf_avail(&s), sbuf_ptr(&s), sbuf_avail(&s));
	return put_sig(c, 0, rs, sizeof(rs), 0);
}

/* openpgp(-armor): one v4 signature packet; its creation time and value. */
static int pull_openpgp(struct vctx *c, struct sbuf *out, bool armored)
{
	struct sbuf bin, pkt, hashed, unhashed;
	uint8_t tag, head[4];
	uint16_t n;
	int rc;

	sbuf_init(&bin, OUTPUT_MAX);
	rc = pgp_binary(out, armored, &bin);
	if (!rc && (pgp_packet(&bin, &tag, &pkt) || tag != 2 || sbuf_get(&pkt, head, 4) ||
		    head[0] != 4 || sbuf_get_u16be(&pkt, &n) || sbuf_get_view(&pkt, n, &hashed) ||
		    sbuf_get_u16be(&pkt, &n) || sbuf_get_view(&pkt, n, &unhashed) ||
		    sbuf_get(&pkt, NULL, 2) || pgp_created(&hashed, &c->now)))
		rc = -EBADMSG;
	c->n = 1;
	if (!rc)
		rc = pgp_sig_value(c, &pkt);
	sbuf_free(&bin);
	return rc;
}

/*
 * A SignedData's one SignerInfo: its signature value, and with timed its
 * signingTime (cms; kmod's has no signed attributes).
 */
static int pull_p7(struct vctx *c, const uint8_t *der, size_t len, bool timed)
{
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	STACK_OF(PKCS7_SIGNER_INFO) *sis = p7 && PKCS7_type_is_signed(p7) ?
						   PKCS7_get_signer_info(p7) : NULL;
	PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_num(sis) == 1 ?
					sk_PKCS7_SIGNER_INFO_value(sis, 0) : NULL;
	ASN1_TYPE *t = si && timed ? PKCS7_get_signed_attribute(si, NID_pkcs9_signingTime) : NULL;
	struct tm tm;
	int rc = -EBADMSG;

	c->n = 1;
	if (timed && t && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) &&
	    ASN1_TIME_to_tm((ASN1_TIME *)t->value.asn1_string, &tm) == 1)
		c->now = timegm(&tm);
	else if (timed)
		si = NULL;
	if (si && si->enc_digest)
		rc = put_sig(c, 0, ASN1_STRING_get0_data(si->enc_digest),
			     (size_t)ASN1_STRING_length(si->enc_digest), 0);
	PKCS7_free(p7);
	return rc;
}

/* cms: the one SignerInfo's signature value and signingTime. */
static int pull_cms(struct vctx *c, struct sbuf *out)
{
	return pull_p7(c, sbuf_ptr(out), sbuf_avail(out), true);
}

/*
 * kmod: the PKCS#7 the trailer points to (module || PKCS#7 || 12-byte
 * module_signature with id_type 2 and the PKCS#7's big-endian length ||
 * "~Module signature appended~\n", signer/format_kmod.c).
 */
static int pull_kmod(struct vctx *c, struct sbuf *out)
{
	static const char magic[] = "~Module signature appended~\n";
	const size_t tail = sizeof(magic) - 1 + 12;
	const uint8_t *p = sbuf_ptr(out), *info;
	size_t n = sbuf_avail(out), sl;

	if (n < tail || memcmp(p + n - (sizeof(magic) - 1), magic, sizeof(magic) - 1) != 0)
		return -EBADMSG;
	info = p + n - tail;
	sl = (size_t)info[8] << 24 | (size_t)info[9] << 16 | (size_t)info[10] << 8 | info[11];
	if (info[2] != 2 || sl == 0 || sl > n - tail)
		return -EBADMSG;
	return pull_p7(c, p + n - tail - sl, sl, false);
}

/*
 * mender: manifest.sig, the third member of the signed artifact (a tar,
 * read with libarchive): base64 of an RSA signature, or of ECDSA's r||s.
 */
static int pull_mender(struct vctx *c, struct sbuf *out)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	char b64[1024];
	uint8_t raw[sizeof(b64)];
	la_ssize_t n = -1;
	int len = -1, r = -EBADMSG;

	if (a && archive_read_support_format_tar(a) == ARCHIVE_OK &&
	    archive_read_open_memory(a, sbuf_ptr(out), sbuf_avail(out)) == ARCHIVE_OK) {
		for (int i = 0; i < 3 && archive_read_next_header(a, &ae) == ARCHIVE_OK; i++) {
			if (i == 2 && archive_entry_pathname(ae) &&
			    strcmp(archive_entry_pathname(ae), "manifest.sig") == 0 &&
			    archive_entry_size(ae) > 0 && archive_entry_size(ae) < (la_int64_t)sizeof(b64))
				n = archive_read_data(a, b64, (size_t)archive_entry_size(ae));
		}
	}
	if (a)
		archive_read_free(a);
	if (n <= 0 || n % 4)
		return -EBADMSG;
	len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	/* EVP_DecodeBlock counts the padding's zero bytes. */
	for (la_ssize_t i = n - 1; len > 0 && i >= n - 2 && b64[i] == '='; i--)
		len--;
	if (len <= 0)
		return -EBADMSG;
	c->n = 1;
	if (c->k->alg->kind == SIGFS_KIND_EC) {
		struct sbuf rv, sv;

		if (len != 64)
			return -EBADMSG;
		sbuf_view(&rv, raw, 32);
		sbuf_view(&sv, raw + 32, 32);
		r = ecdsa_der(&rv, &sv, c, 0);
	} else {
		r = put_sig(c, 0, raw, (size_t)len, 0);
	}
	return r;
}

/*
 * A whole .swu image (swupdate-image): sw-description.sig, the second member
 * of the cpio archive, is cms's SignedData.
 */
static int pull_swu(struct vctx *c, struct sbuf *out)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	uint8_t *der = NULL;
	la_int64_t size = 0;
	int r = -EBADMSG;

	if (a && archive_read_support_format_cpio(a) == ARCHIVE_OK &&
	    archive_read_open_memory(a, sbuf_ptr(out), sbuf_avail(out)) == ARCHIVE_OK &&
	    archive_read_next_header(a, &ae) == ARCHIVE_OK &&
	    archive_read_next_header(a, &ae) == ARCHIVE_OK && archive_entry_pathname(ae) &&
	    strcmp(archive_entry_pathname(ae), "sw-description.sig") == 0 &&
	    (size = archive_entry_size(ae)) > 0 && size <= OUTPUT_MAX &&
	    (der = malloc((size_t)size)) &&
	    archive_read_data(a, der, (size_t)size) == (la_ssize_t)size)
		r = pull_p7(c, der, (size_t)size, true);
	free(der);
	if (a)
		archive_read_free(a);
	return r;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * authenticode: the SignedData in the image's certificate table (data
 * directory 4: its offset and size; a WIN_CERTIFICATE of dwLength bytes,
 * 8 of header, then the DER). Every offset is checked against the output.
 */
static int pull_authenticode(struct vctx *c, struct sbuf *out)
{
	const uint8_t *d = sbuf_ptr(out);
	size_t n = sbuf_avail(out);
	uint64_t oh, dir, at, size, wlen;
	uint16_t magic;

	if (n < 64 || d[0] != 'M' || d[1] != 'Z')
		return -EBADMSG;
	oh = (uint64_t)get_le32(d + 0x3c) + 24;
	if (oh + 2 > n)
		return -EBADMSG;
	magic = (uint16_t)(d[oh] | d[oh + 1] << 8);
	dir = oh + (magic == 0x20b ? 112 : 96) + 4 * 8;
	if ((magic != 0x10b && magic != 0x20b) || dir + 8 > n)
		return -EBADMSG;
	at = get_le32(d + dir);
	size = get_le32(d + dir + 4);
	if (size < 8 || at > n || size > n - at)
		return -EBADMSG;
	wlen = get_le32(d + at);
	if (wlen < 8 || wlen > size || d[at + 6] != 2 || d[at + 7] != 0)
		return -EBADMSG;
	return pull_p7(c, d + at + 8, wlen - 8, true);
}

/* Pull the signature values of k's format out of out. */
static int pull(struct vctx *c, const uint8_t *out, size_t len)
{
	const char *f = c->k->format->name;
	struct sbuf b;

	sbuf_view(&b, out, len);
	if (!strcmp(f, "raw"))
		return pull_raw(c, &b);
	if (!strcmp(f, "sshsig"))
		return pull_sshsig(c, &b);
	if (!strcmp(f, "minisign"))
		return pull_minisign(c, &b);
	if (!strcmp(f, "openpgp") || !strcmp(f, "openpgp-armor"))
		return pull_openpgp(c, &b, strcmp(f, "openpgp") != 0);
	if (!strcmp(f, "cms") || !strcmp(f, "swupdate"))
		return pull_cms(c, &b);
	if (!strcmp(f, "kmod"))
		return pull_kmod(c, &b);
	if (!strcmp(f, "mender"))
		return pull_mender(c, &b);
	if (!strcmp(f, "swupdate-image"))
		return pull_swu(c, &b);
	if (!strcmp(f, "authenticode"))
		return pull_authenticode(c, &b);
	return -ENOTSUP;
}

/* The creation time in the first packet of an OpenPGP certificate (a v4 public key). */
static int cert_created(struct sbuf *file, bool armored, time_t *created)
{
	struct sbuf bin, body;
	uint8_t tag, v;
	uint32_t t;
	int r;

	sbuf_init(&bin, KEYFILE_MAX);
	r = pgp_binary(file, armored, &bin);
	if (!r && (pgp_packet(&bin, &tag, &body) || tag != 6 || sbuf_get_u8(&body, &v) ||
		   v != 4 || sbuf_get_u32be(&body, &t)))
		r = -EBADMSG;
	if (!r)
		*created = (time_t)t;
	sbuf_free(&bin);
	return r;
}

/*
 * OpenPGP formats: the key's creation time (part of its fingerprint, which
 * the signature names), from cert.pgp's key packet, else cert.asc's, else
 * the `created` file (seconds and a newline), whichever the directory has.
 */
static int load_created(int dirfd, bool strict, struct sigfs_vkey *k, char *err)
{
	static const char *const files[] = { "cert.pgp", "cert.asc" };
	char w[32], *end;
	struct sbuf file;
	long long v;
	int r;

	if (strncmp(k->format->name, "openpgp", 7))
		return 0;
	for (size_t i = 0; i < 2; i++) {
		r = read_keyfile(dirfd, files[i], strict, &file, err);
		if (r == -ENOENT)
			continue;
		if (r)
			return r;
		r = cert_created(&file, i == 1, &k->created);
		sbuf_free(&file);
		return r ? sigfs_seterr(err, -EINVAL, "%s: no v4 public key packet first",
					files[i]) : 0;
	}
	r = read_word(dirfd, "created", strict, w, sizeof(w), err);
	if (r)
		return r == -ENOENT ? sigfs_seterr(err, r, "an OpenPGP key needs cert.pgp, "
						   "cert.asc or created; there is none") : r;
	errno = 0;
	v = strtoll(w, &end, 10);
	if (errno || *end || end == w || v < 0 || v > UINT32_MAX)
		return sigfs_seterr(err, -EINVAL, "created: not a time in seconds: \"%s\"", w);
	k->created = (time_t)v;
	return 0;
}

int sigfs_vkey_load(int dirfd, const char *name, bool strict, struct sigfs_vkey **out, char *err)
{
	struct sigfs_vkey *k = calloc(1, sizeof(*k));
	int r;

	if (!k)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	snprintf(k->name, sizeof(k->name), "%s", name);
	r = load_settings(dirfd, strict, k, err);
	if (!r)
		r = load_pubkey(dirfd, strict, k, err);
	if (!r)
		r = load_cert(dirfd, strict, k, err);
	if (!r)
		r = load_created(dirfd, strict, k, err);
	if (r) {
		sigfs_vkey_free(k);
		return r;
	}
	*out = k;
	return 0;
}

void sigfs_vkey_free(struct sigfs_vkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pub);
	OPENSSL_free(k->cert);
	free(k);
}

const struct sigfs_format *sigfs_vkey_format(const struct sigfs_vkey *k)
{
	return k->format;
}

/* ---- checking each signature where produce() asks for it ---- */

/* Does sig verify as pub's signature over what in says is signed (backend.h's terms)? */
static bool verify_si(EVP_PKEY *pub, const struct sigfs_sign_input *in, const uint8_t *sig,
		      size_t len)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *mctx;
	const EVP_MD *md;
	bool ok = false;

	if (!in->digest) {   /* pure Ed25519 over the message */
		mctx = EVP_MD_CTX_new();
		ok = mctx && EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pub) == 1 &&
		     EVP_DigestVerify(mctx, sig, len, in->data, in->len) == 1;
		EVP_MD_CTX_free(mctx);
		return ok;
	}
	md = sigfs_digest_md(in->digest);
	ctx = md ? EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL) : NULL;
	if (!ctx || EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1)
		goto out;
	if (in->alg->kind == SIGFS_KIND_RSA &&
	    (EVP_PKEY_CTX_set_rsa_padding(ctx, in->padding == SIGFS_PAD_PSS ?
					  RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	     (in->padding == SIGFS_PAD_PSS &&
	      (EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_AUTO) != 1 ||
	       EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1))))
		goto out;
	ok = EVP_PKEY_verify(ctx, sig, len, in->data, in->len) == 1;
out:
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* The sign callback of a re-run of produce(): verify the next pulled-out value, return it. */
static int check_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		      char *err)
{
	struct vctx *c = ctx;
	int i = c->used++;

	if (i >= c->n) {
		c->bad = true;
		return sigfs_seterr(err, -EBADMSG, "the output holds fewer signatures than the format writes");
	}
	if (!verify_si(c->k->pub, in, c->sig[i], c->siglen[i])) {
		c->bad = true;
		return sigfs_seterr(err, -EBADMSG, "not a valid signature by key %s over this content",
				    c->k->name);
	}
	if (c->siglen[i] > *siglen)
		return sigfs_seterr(err, -EBADMSG, "the signature is too long");
	memcpy(sig, c->sig[i], c->siglen[i]);
	*siglen = c->siglen[i];
	return 0;
}

/* ---- the input, as the signer saw it, and the re-run ---- */

struct vin {
	const struct sigfs_hasher *state;       /* a file: hashed as the format asks */
	const struct sigfs_digest *digest;      /* a digest line: its digest */
	uint8_t dv[SIGFS_MAX_DIGEST];
	const uint8_t *msg;                     /* pure Ed25519: the whole file */
	size_t msg_len;
	const char *name;                       /* the job's name */
};

/* Run k's produce() over in with the values pulled out of out; 0 if it writes out exactly. */
static int reproduce(const struct sigfs_vkey *k, const struct vin *in, enum sigfs_padding pad,
		     const uint8_t *out, size_t len, char *err)
{
	struct vctx c = { .k = k };
	struct sigfs_format_key fk = { .name = k->name, .alg = k->alg, .padding = pad,
				       .digest = k->digest, .pub = k->pub, .created = k->created,
				       .uid = "", .ssh_namespace = k->ns, .cert = k->cert,
				       .cert_len = k->cert_len };
	struct sigfs_format_input fi = { .key = &fk, .state = in->state, .digest = in->digest,
					 .digest_value = in->dv, .message = in->msg, .message_fd = -1,
					 .message_len = in->msg_len, .name = in->name };
	struct sbuf o;
	int r;

	if (pull(&c, out, len))
		return sigfs_seterr(err, -EBADMSG, "not a well-formed %s output",
				    k->format->name);
	if (c.keyname[0])
		fk.name = c.keyname;   /* minisign's untrusted comment: not signed */
	fi.now = c.now;
	sbuf_init(&o, 2 * OUTPUT_MAX + len);
	r = sigfs_format_produce(k->format, &fi, check_sign, &c, &o, err);
	if (r)
		r = c.bad || c.used ? -EBADMSG : in->state || in->msg ? -EBADMSG : -ENOTSUP;
	else if (c.used != c.n)
		r = sigfs_seterr(err, -EBADMSG, "the output holds more signatures than the format writes");
	else if (o.len != len || memcmp(o.d, out, len))
		r = sigfs_seterr(err, -EBADMSG, "the signature verifies but the output around it is not what sigfs writes");
	sbuf_free(&o);
	return r;
}

/* RSA with no published padding: a PSS or a PKCS#1 v1.5 signature by the key. */
static int reproduce_any(const struct sigfs_vkey *k, const struct vin *in, const uint8_t *out,
			 size_t len, char *err)
{
	int r;

	if (k->alg->kind != SIGFS_KIND_RSA || k->padding != SIGFS_PAD_NONE)
		return reproduce(k, in, k->padding, out, len, err);
	r = reproduce(k, in, SIGFS_PAD_PSS, out, len, err);
	return r == -EBADMSG ? reproduce(k, in, SIGFS_PAD_PKCS1, out, len, err) : r;
}

/* Hash the file at fd from its start, in chunks, as format f needs it. */
static int hash_file(const struct sigfs_vkey *k, int fd, struct sigfs_hasher **out, char *err)
{
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_format_file_md(k->format, k->alg, k->digest));
	uint8_t *buf = malloc(CHUNK);
	off_t off = 0;
	ssize_t n;
	int r = h && buf ? 0 : sigfs_seterr(err, -ENOMEM, "out of memory");

	while (!r && (n = pread(fd, buf, CHUNK, off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = sigfs_seterr(err, -errno, "cannot read the file: %s", strerror(errno));
		else if ((r = sigfs_hasher_update(h, buf, (size_t)n)))
			sigfs_seterr(err, r, "cannot hash the file");
		off += n > 0 ? n : 0;
	}
	free(buf);
	if (r)
		sigfs_hasher_free(h);
	else
		*out = h;
	return r;
}

/* A file's output: hash it (or map it, for pure Ed25519) and re-run the format. */
static int verify_file(const struct sigfs_vkey *k, int fd, const char *name, const uint8_t *out,
		       size_t len, char *err)
{
	const bool msg = k->format->needs_message && k->format->needs_message(k->alg);
	struct vin in = { .name = name };
	struct sigfs_hasher *h = NULL;
	static const uint8_t empty[1];
	struct stat st;
	void *map = NULL;
	int r = 0;

	/* Hashed, mapped, or both: the engine gives a whole-artifact format (kmod) both. */
	if (!msg || k->format->whole_artifact) {
		r = hash_file(k, fd, &h, err);
		in.state = h;
	}
	if (r || !msg) {
		;
	} else if (fstat(fd, &st) < 0) {
		r = sigfs_seterr(err, -errno, "cannot stat the file: %s", strerror(errno));
	} else {
		/* Read-only and private: the signer's view; an empty file maps nothing. */
		map = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
		r = map == MAP_FAILED ? sigfs_seterr(err, -errno, "cannot map the file: %s",
						     strerror(errno)) : 0;
		in.msg = map && map != MAP_FAILED ? map : empty;
		in.msg_len = (size_t)st.st_size;
	}
	if (!r)
		r = reproduce_any(k, &in, out, len, err);
	if (map && map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	sigfs_hasher_free(h);
	return r;
}

/* A digest line's output: the digest it carries, where the format signs from a digest. */
static int verify_digestline(const struct sigfs_vkey *k, int fd, const char *name,
			     const uint8_t *out, size_t len, char *err)
{
	char base[NAME_MAX + 1], why[SIGFS_ERRLEN];
	uint8_t buf[DL_MAX + 1];
	struct vin in = { .name = base };
	size_t blen;
	ssize_t n;
	int r;

	in.digest = sigfs_dl_suffix(name, &blen);
	if (!in.digest || blen > NAME_MAX)
		return sigfs_seterr(err, -EINVAL, "%s is not named like a digest line", name);
	snprintf(base, sizeof(base), "%.*s", (int)blen, name);
	do
		n = pread(fd, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return sigfs_seterr(err, -errno, "cannot read the digest line: %s", strerror(errno));
	if (sigfs_dl_parse(in.digest, base, buf, (size_t)n, in.dv, err) != SIGFS_DL_OK)
		return sigfs_seterr(err, -EBADMSG, "%s holds no valid digest line", name);
	r = reproduce_any(k, &in, out, len, err);
	/*
	 * The engine runs this same produce() on a digest line: where it refuses
	 * (pure Ed25519, OpenPGP, minisign), sigfs writes NAME.err, never a
	 * signature, so a signature there can only have been planted.
	 */
	if (r == -ENOTSUP) {
		snprintf(why, sizeof(why), "%s", err);
		r = sigfs_seterr(err, -EBADMSG, "sigfs signs no such digest line with this key, so "
				 "this output is not sigfs's: %s", why);
	}
	return r;
}

const struct sigfs_format *sigfs_vkey_format_for(const struct sigfs_vkey *k, const char *base)
{
	return sigfs_format_for(k->format, base);
}

size_t sigfs_vkey_output_max(const struct sigfs_vkey *k, const char *base, off_t size)
{
	if (sigfs_vkey_format_for(k, base)->whole_artifact && size > 0 &&
	    (uint64_t)size <= SIZE_MAX - OUTPUT_MAX)
		return OUTPUT_MAX + (size_t)size;
	return OUTPUT_MAX;
}

int sigfs_verify_output(const struct sigfs_vkey *key, int in_fd, enum sigfs_vinput kind,
			const char *name, const uint8_t *out, size_t len, char *err)
{
	char base[NAME_MAX + 1];
	struct sigfs_vkey kk = *key, *k = &kk;
	struct stat st;
	size_t blen = strlen(name);

	/* The format this input is made with (a swupdate key signs NAME.swu whole). */
	if (kind == SIGFS_VIN_DIGESTLINE && !sigfs_dl_suffix(name, &blen))
		blen = strlen(name);
	snprintf(base, sizeof(base), "%.*s", (int)blen, name);
	kk.format = sigfs_vkey_format_for(key, base);
	if (len == 0 || len > sigfs_vkey_output_max(k, base, fstat(in_fd, &st) == 0 ? st.st_size : 0))
		return sigfs_seterr(err, -EBADMSG, "%zu bytes: no %s output is that size", len,
				    k->format->name);
	switch (kind) {
	case SIGFS_VIN_FILE:
		return verify_file(k, in_fd, name, out, len, err);
	case SIGFS_VIN_DIGESTLINE:
		return verify_digestline(k, in_fd, name, out, len, err);
	case SIGFS_VIN_REQUEST:
		break;
	}
	return sigfs_seterr(err, -ENOTSUP, "a signing request's signature cannot be checked "
			    "without the request's hash state");
}
