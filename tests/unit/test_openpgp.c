/*
 * test_openpgp.c: the OpenPGP v4 encoder (signer/openpgp.c) and the
 * "openpgp" and "openpgp-armor" formats. Encodings are pinned against bytes
 * computed independently (RFC 4880's CRC-24 vector, the sample EdDSA key of
 * RFC 4880bis with its published fingerprint, and a whole signature packet
 * computed with Python's hashlib and cryptography); signatures are checked
 * with OpenSSL over the digest the test computes itself; and certificates
 * and signatures whose MPIs lost leading zero bytes are checked with gpg and
 * sq, the tools users verify with.
 */
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "signer/hasher.h"
#include "signer/openpgp.h"
#include "testlib.h"

/* RFC 4880bis, "Sample EdDSA key": secret D, public Q, created 2014-08-19 14:28:27. */
static const uint8_t vec_d[32] = {
	0x1a, 0x8b, 0x1f, 0xf0, 0x5d, 0xed, 0x48, 0xe1, 0x8b, 0xf5, 0x01, 0x66, 0xc6, 0x64, 0xab, 0x02,
	0x3e, 0xa7, 0x00, 0x03, 0xd7, 0x8d, 0x9e, 0x41, 0xf5, 0x75, 0x8a, 0x91, 0xd8, 0x50, 0xf8, 0xd2,
};
static const uint8_t vec_fpr[20] = {
	0xc9, 0x59, 0xbd, 0xba, 0xfa, 0x32, 0xa2, 0xf8, 0x9a, 0x15,
	0x3b, 0x67, 0x8c, 0xfd, 0xe1, 0x21, 0x97, 0x96, 0x5a, 0x9a,
};
#define VEC_CREATED 0x53f35f0b

/*
 * The "openpgp" output for the sample key over "OpenPGP" (SHA-256, made
 * 0x55f95f95): computed by an independent Python script (hashlib +
 * cryptography's Ed25519). S starts with 0x20: its MPI has 254 bits.
 */
static const uint8_t vec_sig[186] = {
	0xc2, 0xb8, 0x04, 0x00, 0x16, 0x08, 0x00, 0x60, 0x05, 0x02, 0x55, 0xf9,
	0x5f, 0x95, 0x16, 0x21, 0x04, 0xc9, 0x59, 0xbd, 0xba, 0xfa, 0x32, 0xa2,
	0xf8, 0x9a, 0x15, 0x3b, 0x67, 0x8c, 0xfd, 0xe1, 0x21, 0x97, 0x96, 0x5a,
	0x9a, 0x42, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x19, 0x00, 0x20, 0x64,
	0x61, 0x74, 0x61, 0x2d, 0x64, 0x69, 0x67, 0x65, 0x73, 0x74, 0x40, 0x61,
	0x72, 0x63, 0x68, 0x6c, 0x69, 0x6e, 0x75, 0x78, 0x2e, 0x6f, 0x72, 0x67,
	0xdf, 0x50, 0x2b, 0xe6, 0xcf, 0x0d, 0x0a, 0x68, 0xc7, 0x35, 0x8b, 0xe2,
	0xbc, 0x8a, 0x66, 0xde, 0x5c, 0x0e, 0xd7, 0x93, 0x69, 0x6d, 0x5a, 0x09,
	0xc8, 0xab, 0x44, 0xe9, 0xb9, 0xfa, 0xaa, 0xc9, 0x00, 0x0a, 0x09, 0x10,
	0x8c, 0xfd, 0xe1, 0x21, 0x97, 0x96, 0x5a, 0x9a, 0xe4, 0x28, 0x01, 0x00,
	0xbd, 0xc6, 0x29, 0xfb, 0xd4, 0xe0, 0xef, 0x8a, 0x03, 0x45, 0xb3, 0x10,
	0x82, 0xb9, 0x10, 0x34, 0x6c, 0x85, 0x04, 0xd4, 0x72, 0xc2, 0xbb, 0x96,
	0xb1, 0x60, 0xd7, 0xb1, 0xb0, 0x31, 0xbb, 0xad, 0x00, 0xfe, 0x20, 0x32,
	0xe8, 0x61, 0x3c, 0x5a, 0xf9, 0x84, 0xda, 0x9a, 0x7d, 0x3d, 0xcd, 0x12,
	0x1a, 0x92, 0x19, 0x7e, 0x75, 0x81, 0x58, 0x07, 0x49, 0xc8, 0x2c, 0x2e,
	0xd4, 0x6a, 0xd8, 0x79, 0xa7, 0x00,
};

static const char vec_asc[] =
	"-----BEGIN PGP SIGNATURE-----\n"
	"\n"
	"wrgEABYIAGAFAlX5X5UWIQTJWb26+jKi+JoVO2eM/eEhl5ZamkIUAAAAAAAZACBk\n"
	"YXRhLWRpZ2VzdEBhcmNobGludXgub3Jn31Ar5s8NCmjHNYvivIpm3lwO15NpbVoJ\n"
	"yKtE6bn6qskACgkQjP3hIZeWWprkKAEAvcYp+9Tg74oDRbMQgrkQNGyFBNRywruW\n"
	"sWDXsbAxu60A/iAy6GE8WvmE2pp9Pc0SGpIZfnWBWAdJyCwu1GrYeacA\n"
	"=uNra\n"
	"-----END PGP SIGNATURE-----\n";

static const struct sigfs_format *fmt(const char *name)
{
	const struct sigfs_format *f = sigfs_format_by_name(name);

	assert_non_null(f);
	return f;
}

/* A backend stand-in: signs with a private key held here, and records the input. */
struct signer {
	EVP_PKEY *key;
	struct sigfs_sign_input in;
	uint8_t data[SIGFS_MAX_DIGEST];
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	int calls;
};

static int test_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	struct signer *s = ctx;
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok;

	(void)err;
	s->in = *in;
	assert_true(in->len <= sizeof(s->data));
	memcpy(s->data, in->data, in->len);
	s->calls++;
	if (!in->digest) {
		mc = EVP_MD_CTX_new();
		ok = mc && EVP_DigestSignInit_ex(mc, NULL, NULL, NULL, NULL, s->key, NULL) == 1 &&
		     EVP_DigestSign(mc, sig, siglen, in->data, in->len) == 1;
		EVP_MD_CTX_free(mc);
	} else {
		pc = EVP_PKEY_CTX_new(s->key, NULL);
		ok = pc && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, sigfs_digest_md(in->digest)) == 1 &&
		     (in->padding != SIGFS_PAD_PKCS1 ||
		      EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1) &&
		     EVP_PKEY_sign(pc, sig, siglen, in->data, in->len) == 1;
		EVP_PKEY_CTX_free(pc);
	}
	assert_true(ok);
	memcpy(s->sig, sig, *siglen);
	s->siglen = *siglen;
	return 0;
}

static EVP_PKEY *vec_key(void)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, vec_d, sizeof(vec_d));

	assert_non_null(k);
	return k;
}

static EVP_PKEY *gen_key(const struct sigfs_alg *a)
{
	EVP_PKEY *k = a->kind == SIGFS_KIND_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)a->bits) :
		      a->kind == SIGFS_KIND_EC ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", a->group) :
		      EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	assert_non_null(k);
	return k;
}

static struct sigfs_hasher *hash_of(const char *digest, const void *p, size_t n)
{
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_digest_md(sigfs_digest_by_name(digest)));

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, p, n), 0);
	return h;
}

/* Encodings against known bytes. */

static void test_table(void **state)
{
	const struct sigfs_format *f = fmt("openpgp"), *a = fmt("openpgp-armor");

	(void)state;
	assert_string_equal(f->suffix, ".sig");
	assert_string_equal(a->suffix, ".asc");
	assert_int_equal(f->nattrs, 2);
	assert_string_equal(f->attrs[0].name, "cert.pgp");
	assert_string_equal(f->attrs[1].name, "cert.asc");
	assert_false(f->attrs[0].writable);
	/* The armored row shares the certificate files, it does not list them twice. */
	assert_int_equal(a->nattrs, 0);
	assert_null(f->file_md);
	assert_false(f->needs_message(sigfs_alg_by_name("ed25519")));
}

static void test_crc24(void **state)
{
	(void)state;
	assert_int_equal(sigfs_pgp_crc24((const uint8_t *)"", 0), 0xb704ce);
	assert_int_equal(sigfs_pgp_crc24((const uint8_t *)"123456789", 9), 0x21cf02);
}

static void expect(struct sbuf *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->d, want, n);
	sbuf_free(b);
}

static void test_mpi(void **state)
{
	static const uint8_t in1[] = { 0x00, 0x00, 0x01, 0xff }, out1[] = { 0x00, 0x09, 0x01, 0xff };
	static const uint8_t in2[] = { 0x80, 0x00 }, out2[] = { 0x00, 0x10, 0x80, 0x00 };
	static const uint8_t in3[] = { 0x00, 0x00 }, out3[] = { 0x00, 0x00 };
	static const uint8_t in4[] = { 0x00, 0x7f, 0x00, 0x01 }, out4[] = { 0x00, 0x17, 0x7f, 0x00, 0x01 };
	struct sbuf b;

	(void)state;
	sbuf_init(&b, 64);
	assert_int_equal(sigfs_pgp_put_mpi(&b, in1, sizeof(in1)), 0);
	expect(&b, out1, sizeof(out1));
	assert_int_equal(sigfs_pgp_put_mpi(&b, in2, sizeof(in2)), 0);
	expect(&b, out2, sizeof(out2));
	assert_int_equal(sigfs_pgp_put_mpi(&b, in3, sizeof(in3)), 0);
	expect(&b, out3, sizeof(out3));
	assert_int_equal(sigfs_pgp_put_mpi(&b, in4, sizeof(in4)), 0);
	expect(&b, out4, sizeof(out4));
	/* A full buffer is an error, not a short MPI. */
	sbuf_init(&b, 3);
	assert_int_equal(sigfs_pgp_put_mpi(&b, in1, sizeof(in1)), -ENOSPC);
	sbuf_free(&b);
}

/* A subpacket of n data bytes: its length header, then the type. */
static void subpacket_case(size_t n, const uint8_t *hdr, size_t hlen)
{
	uint8_t *data = calloc(1, n ? n : 1);
	struct sbuf b;

	assert_non_null(data);
	sbuf_init(&b, 16384);
	assert_int_equal(sigfs_pgp_put_subpacket(&b, 20, data, n), 0);
	assert_int_equal(b.len, hlen + 1 + n);
	assert_memory_equal(b.d, hdr, hlen);
	assert_int_equal(b.d[hlen], 20);
	sbuf_free(&b);
	free(data);
}

static void test_subpacket_lengths(void **state)
{
	(void)state;
	/* The length covers the type byte: 1-byte form up to 191, 2-byte to 8383, then 5. */
	subpacket_case(0, (const uint8_t[]){ 0x01 }, 1);
	subpacket_case(190, (const uint8_t[]){ 0xbf }, 1);
	subpacket_case(191, (const uint8_t[]){ 0xc0, 0x00 }, 2);
	subpacket_case(1000, (const uint8_t[]){ 0xc3, 0x29 }, 2);
	subpacket_case(8382, (const uint8_t[]){ 0xdf, 0xff }, 2);
	subpacket_case(8383, (const uint8_t[]){ 0xff, 0x00, 0x00, 0x20, 0xc0 }, 5);
}

static void test_packet_header(void **state)
{
	static const uint8_t body[200] = { 0 };
	struct sbuf b;

	(void)state;
	sbuf_init(&b, 1024);
	assert_int_equal(sigfs_pgp_put_packet(&b, PGP_TAG_SIGNATURE, body, 5), 0);
	assert_int_equal(b.len, 7);
	assert_int_equal(b.d[0], 0xc2);
	assert_int_equal(b.d[1], 5);
	sbuf_free(&b);
	assert_int_equal(sigfs_pgp_put_packet(&b, PGP_TAG_USER_ID, body, 200), 0);
	assert_int_equal(b.len, 203);
	assert_int_equal(b.d[0], 0xcd);
	assert_int_equal(b.d[1], 0xc0);
	assert_int_equal(b.d[2], 8);
	sbuf_free(&b);
}

static void test_armor(void **state)
{
	uint8_t data[100], *nl;
	struct sbuf b;

	(void)state;
	sbuf_init(&b, 4096);
	assert_int_equal(sigfs_pgp_armor(&b, "SIGNATURE", vec_sig, sizeof(vec_sig)), 0);
	assert_int_equal(b.len, strlen(vec_asc));
	assert_memory_equal(b.d, vec_asc, b.len);
	sbuf_free(&b);

	/* 100 bytes: a 64-character line, a short one, then the checksum of "" ... */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	assert_int_equal(sigfs_pgp_armor(&b, "PUBLIC KEY BLOCK", data, sizeof(data)), 0);
	assert_true(b.len > 38 + 65);
	assert_memory_equal(b.d, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n", 38);
	nl = memchr(b.d + 38, '\n', b.len - 38);
	assert_int_equal(nl - (b.d + 38), 64);
	assert_memory_equal(b.d + b.len - 35, "-----END PGP PUBLIC KEY BLOCK-----\n", 35);
	sbuf_free(&b);
	/* ... and empty input still gets the checksum of nothing, "=twTO". */
	assert_int_equal(sigfs_pgp_armor(&b, "SIGNATURE", data, 0), 0);
	assert_int_equal(sbuf_put_u8(&b, 0), 0);
	assert_string_equal((char *)b.d,
			    "-----BEGIN PGP SIGNATURE-----\n\n=twTO\n-----END PGP SIGNATURE-----\n");
	sbuf_free(&b);
}

static void test_fingerprint_of_sample_key(void **state)
{
	EVP_PKEY *k = vec_key();
	struct sigfs_format_key fk = {
		.name = "vec", .alg = sigfs_alg_by_name("ed25519"), .pub = k, .created = VEC_CREATED,
	};
	uint8_t fpr[PGP_FPR_LEN];
	char err[SIGFS_ERRLEN] = "";
	struct sbuf body;

	(void)state;
	sbuf_init(&body, 4096);
	assert_int_equal(sigfs_pgp_key_body(&fk, &body, err), 0);
	/* version, time, algo 22, OID length 9, OID, MPI of 263 bits (0x40 || Q). */
	assert_int_equal(body.len, 1 + 4 + 1 + 1 + 9 + 2 + 33);
	assert_int_equal(body.d[5], 22);
	assert_int_equal(body.d[16], 0x01);
	assert_int_equal(body.d[17], 0x07);
	assert_int_equal(body.d[18], 0x40);
	assert_int_equal(sigfs_pgp_fingerprint(body.d, body.len, fpr), 0);
	assert_memory_equal(fpr, vec_fpr, sizeof(fpr));
	sbuf_free(&body);

	/* The creation time is part of the fingerprint. */
	fk.created++;
	assert_int_equal(sigfs_pgp_key_body(&fk, &body, err), 0);
	assert_int_equal(sigfs_pgp_fingerprint(body.d, body.len, fpr), 0);
	assert_memory_not_equal(fpr, vec_fpr, sizeof(fpr));
	sbuf_free(&body);
	EVP_PKEY_free(k);
}

/* The whole signature packet, binary and armored, against the independent computation. */
static void test_known_signature(void **state)
{
	struct signer s = { .key = vec_key() };
	struct sigfs_format_key fk = {
		.name = "vec", .alg = sigfs_alg_by_name("ed25519"), .pub = s.key,
		.digest = sigfs_digest_by_name("sha256"), .created = VEC_CREATED,
	};
	struct sigfs_hasher *h = hash_of("sha256", "OpenPGP", 7);
	struct sigfs_format_input in = { .key = &fk, .state = h, .name = "t", .now = 0x55f95f95 };
	char err[SIGFS_ERRLEN] = "";
	struct sbuf out;

	(void)state;
	sbuf_init(&out, 1 << 16);
	assert_int_equal(fmt("openpgp")->produce(&in, test_sign, &s, &out, err), 0);
	/* Legacy EdDSA: message mode, the 32-byte hash value is the message. */
	assert_null(s.in.digest);
	assert_int_equal(s.in.len, 32);
	assert_int_equal(out.len, sizeof(vec_sig));
	assert_memory_equal(out.d, vec_sig, sizeof(vec_sig));
	sbuf_free(&out);

	assert_int_equal(fmt("openpgp-armor")->produce(&in, test_sign, &s, &out, err), 0);
	assert_int_equal(out.len, strlen(vec_asc));
	assert_memory_equal(out.d, vec_asc, out.len);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(s.key);
}

/* A parsed signature packet (what the tests check of it). */
struct parsed {
	uint8_t type, pk_algo, hash_algo, left[2];
	const uint8_t *hashed_part;         /* version .. hashed subpackets */
	size_t hashed_part_len;
	const uint8_t *notation;            /* the data-digest notation's value */
	size_t notation_len;
	int has_ctime, has_fpr, has_issuer;
	uint32_t ctime;
	const uint8_t *mpi[2];
	size_t mpi_len[2];
	unsigned mpi_bits[2];
	int nmpi;
};

static void parse_subpackets(const uint8_t *p, size_t n, struct parsed *ps, int hashed)
{
	while (n) {
		size_t len = p[0], hl = 1;

		assert_true(len < 192);
		assert_true(len >= 1 && hl + len <= n);
		switch (p[1]) {
		case PGP_SP_CREATION_TIME:
			assert_true(hashed);
			ps->has_ctime = 1;
			ps->ctime = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
			break;
		case PGP_SP_ISSUER_FPR:
			assert_true(hashed);
			assert_int_equal(len, 22);
			assert_int_equal(p[2], 4);
			ps->has_fpr = 1;
			break;
		case PGP_SP_ISSUER:
			assert_false(hashed);
			ps->has_issuer = 1;
			break;
		case PGP_SP_NOTATION: {
			size_t nl = (size_t)p[6] << 8 | p[7], vl = (size_t)p[8] << 8 | p[9];

			assert_true(hashed);
			assert_memory_equal(p + 2, "\0\0\0\0", 4);
			assert_int_equal(nl, strlen(PGP_DATA_DIGEST_NOTATION));
			assert_memory_equal(p + 10, PGP_DATA_DIGEST_NOTATION, nl);
			ps->notation = p + 10 + nl;
			ps->notation_len = vl;
			break;
		}
		}
		p += hl + len;
		n -= hl + len;
	}
}

static void parse_sig(const uint8_t *p, size_t n, struct parsed *ps)
{
	size_t len, off, hl, ul;

	memset(ps, 0, sizeof(*ps));
	assert_true(n > 3);
	assert_int_equal(p[0], 0xc2);
	if (p[1] < 192) {
		len = p[1];
		off = 2;
	} else {
		len = ((size_t)p[1] - 192) * 256 + p[2] + 192;
		off = 3;
	}
	assert_int_equal(off + len, n);
	p += off;
	assert_int_equal(p[0], 4);
	ps->type = p[1];
	ps->pk_algo = p[2];
	ps->hash_algo = p[3];
	hl = (size_t)p[4] << 8 | p[5];
	parse_subpackets(p + 6, hl, ps, 1);
	ps->hashed_part = p;
	ps->hashed_part_len = 6 + hl;
	off = 6 + hl;
	ul = (size_t)p[off] << 8 | p[off + 1];
	parse_subpackets(p + off + 2, ul, ps, 0);
	off += 2 + ul;
	memcpy(ps->left, p + off, 2);
	off += 2;
	while (off < len) {
		assert_true(ps->nmpi < 2);
		ps->mpi_bits[ps->nmpi] = (unsigned)p[off] << 8 | p[off + 1];
		ps->mpi_len[ps->nmpi] = (ps->mpi_bits[ps->nmpi] + 7) / 8;
		ps->mpi[ps->nmpi] = p + off + 2;
		/* No leading zero byte, and the bit count is exact. */
		if (ps->mpi_len[ps->nmpi])
			assert_int_equal(8 * ps->mpi_len[ps->nmpi] -
					 (unsigned)__builtin_clz(ps->mpi[ps->nmpi][0]) + 24,
					 ps->mpi_bits[ps->nmpi]);
		off += 2 + ps->mpi_len[ps->nmpi];
		ps->nmpi++;
	}
	assert_int_equal(off, len);
}

/* digest = H(data || hashed part || 0x04 0xFF || len32), computed here, independently. */
static void sig_digest(const char *digest, const uint8_t *data, size_t n, const struct parsed *ps,
		       uint8_t *out)
{
	uint8_t trailer[6] = { 4, 0xff, (uint8_t)(ps->hashed_part_len >> 24),
			       (uint8_t)(ps->hashed_part_len >> 16), (uint8_t)(ps->hashed_part_len >> 8),
			       (uint8_t)ps->hashed_part_len };
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	assert_non_null(c);
	assert_int_equal(EVP_DigestInit_ex(c, sigfs_digest_md(sigfs_digest_by_name(digest)), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(c, data, n), 1);
	assert_int_equal(EVP_DigestUpdate(c, ps->hashed_part, ps->hashed_part_len), 1);
	assert_int_equal(EVP_DigestUpdate(c, trailer, sizeof(trailer)), 1);
	assert_int_equal(EVP_DigestFinal_ex(c, out, NULL), 1);
	EVP_MD_CTX_free(c);
}

/* Verify the parsed MPIs with OpenSSL over digest dv of kind digest. */
static int openssl_verify(EVP_PKEY *k, const struct sigfs_alg *a, const char *digest,
			  const uint8_t *dv, size_t dlen, const struct parsed *ps)
{
	uint8_t raw[SIGFS_MAX_SIG] = { 0 }, der[256], *dp = der;
	EVP_PKEY_CTX *pc;
	EVP_MD_CTX *mc;
	ECDSA_SIG *es;
	size_t rawlen;
	int ok, derlen;

	switch (a->kind) {
	case SIGFS_KIND_ED25519:
		/* Native 32-byte R and S, left-padded back to their size. */
		memcpy(raw + 32 - ps->mpi_len[0], ps->mpi[0], ps->mpi_len[0]);
		memcpy(raw + 64 - ps->mpi_len[1], ps->mpi[1], ps->mpi_len[1]);
		mc = EVP_MD_CTX_new();
		ok = EVP_DigestVerifyInit_ex(mc, NULL, NULL, NULL, NULL, k, NULL) == 1 &&
		     EVP_DigestVerify(mc, raw, 64, dv, dlen) == 1;
		EVP_MD_CTX_free(mc);
		return ok;
	case SIGFS_KIND_EC:
		es = ECDSA_SIG_new();
		ECDSA_SIG_set0(es, BN_bin2bn(ps->mpi[0], (int)ps->mpi_len[0], NULL),
			       BN_bin2bn(ps->mpi[1], (int)ps->mpi_len[1], NULL));
		derlen = i2d_ECDSA_SIG(es, &dp);
		ECDSA_SIG_free(es);
		assert_true(derlen > 0);
		memcpy(raw, der, (size_t)derlen);
		rawlen = (size_t)derlen;
		break;
	case SIGFS_KIND_RSA:
	default:
		rawlen = (size_t)EVP_PKEY_get_size(k);
		memcpy(raw + rawlen - ps->mpi_len[0], ps->mpi[0], ps->mpi_len[0]);
		break;
	}
	pc = EVP_PKEY_CTX_new(k, NULL);
	ok = EVP_PKEY_verify_init(pc) == 1 &&
	     EVP_PKEY_CTX_set_signature_md(pc, sigfs_digest_md(sigfs_digest_by_name(digest))) == 1 &&
	     (a->kind != SIGFS_KIND_RSA || EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1) &&
	     EVP_PKEY_verify(pc, raw, rawlen, dv, dlen) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static const uint8_t artifact[] = "an artifact signed as an OpenPGP binary document\n";

/*
 * Sign artifact with a fresh key of alg, the state of kind digest (the key's
 * digest is key_digest), and check every field plus the signature itself.
 */
static void produce_case(const char *alg, const char *key_digest, const char *digest,
			 enum sigfs_padding key_padding)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(alg);
	struct signer s = { .key = gen_key(a) };
	struct sigfs_format_key fk = {
		.name = "k", .alg = a, .padding = key_padding, .pub = s.key,
		.digest = sigfs_digest_by_name(key_digest), .created = 1700000000,
	};
	struct sigfs_hasher *h = hash_of(digest, artifact, sizeof(artifact));
	struct sigfs_format_input in = { .key = &fk, .state = h, .name = "a", .now = 1800000000 };
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	uint8_t file_dv[SIGFS_MAX_DIGEST], dv[SIGFS_MAX_DIGEST], after[SIGFS_MAX_DIGEST];
	char err[SIGFS_ERRLEN] = "";
	struct parsed ps;
	struct sbuf out;

	assert_int_equal(sigfs_hasher_peek(h, file_dv), 0);
	sbuf_init(&out, 1 << 16);
	if (fmt("openpgp")->produce(&in, test_sign, &s, &out, err) != 0)
		fail_msg("%s/%s: %s", alg, digest, err);
	parse_sig(out.d, out.len, &ps);
	assert_int_equal(ps.type, 0x00);
	assert_int_equal(ps.pk_algo, a->kind == SIGFS_KIND_RSA ? 1 : a->kind == SIGFS_KIND_EC ? 19 : 22);
	assert_int_equal(ps.hash_algo, sigfs_pgp_hash_id(d));
	assert_true(ps.has_ctime && ps.has_fpr && ps.has_issuer);
	assert_int_equal(ps.ctime, 1800000000);
	assert_int_equal(ps.nmpi, a->kind == SIGFS_KIND_RSA ? 1 : 2);
	/* The notation carries the file's digest, of the state's kind. */
	assert_int_equal(ps.notation_len, d->len);
	assert_memory_equal(ps.notation, file_dv, d->len);

	sig_digest(digest, artifact, sizeof(artifact), &ps, dv);
	assert_memory_equal(ps.left, dv, 2);
	/* The backend got that digest, with PKCS#1 v1.5 for RSA whatever the key's padding. */
	assert_int_equal(s.in.len, d->len);
	assert_memory_equal(s.data, dv, d->len);
	if (a->kind == SIGFS_KIND_ED25519)
		assert_null(s.in.digest);
	else
		assert_ptr_equal(s.in.digest, d);
	if (a->kind == SIGFS_KIND_RSA)
		assert_int_equal(s.in.padding, SIGFS_PAD_PKCS1);
	assert_true(openssl_verify(s.key, a, digest, dv, d->len, &ps));
	/* Another digest (other bytes) does not verify. */
	dv[0] ^= 1;
	assert_false(openssl_verify(s.key, a, digest, dv, d->len, &ps));

	/* The state was not finished: it still gives the file's digest. */
	assert_int_equal(sigfs_hasher_peek(h, after), 0);
	assert_memory_equal(after, file_dv, d->len);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(s.key);
}

static void test_signatures_verify_with_openssl(void **state)
{
	(void)state;
	produce_case("ed25519", "sha256", "sha256", SIGFS_PAD_NONE);
	produce_case("ed25519", "sha224", "sha224", SIGFS_PAD_NONE);
	produce_case("ecdsa-p256", "sha256", "sha256", SIGFS_PAD_NONE);
	produce_case("ecdsa-p384", "sha384", "sha384", SIGFS_PAD_NONE);
	produce_case("ecdsa-p521", "sha512", "sha512", SIGFS_PAD_NONE);
	produce_case("rsa-2048", "sha224", "sha224", SIGFS_PAD_PSS);
	produce_case("rsa-2048", "sha384", "sha384", SIGFS_PAD_PKCS1);
}

/* A Signstar request: a SHA-512 state while the key's digest is sha256. */
static void test_signstar_sha512_state(void **state)
{
	(void)state;
	produce_case("ed25519", "sha256", "sha512", SIGFS_PAD_NONE);
	produce_case("ecdsa-p256", "sha256", "sha512", SIGFS_PAD_NONE);
	produce_case("ecdsa-p384", "sha256", "sha512", SIGFS_PAD_NONE);
	produce_case("rsa-2048", "sha256", "sha512", SIGFS_PAD_PSS);
}

static void test_check(void **state)
{
	static const char *const ok[] = { "sha224", "sha256", "sha384", "sha512" };
	static const char *const bad[] = { "sha1", "sha512-224", "sha512-256", "sha3-224",
					   "sha3-256", "sha3-384", "sha3-512" };
	const struct sigfs_alg *rsa = sigfs_alg_by_name("rsa-3072");
	const struct sigfs_alg *ed = sigfs_alg_by_name("ed25519");
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(fmt("openpgp")->check(rsa, sigfs_digest_by_name(ok[i]), err), 0);
		assert_int_equal(fmt("openpgp-armor")->check(ed, sigfs_digest_by_name(ok[i]), err), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(fmt("openpgp")->check(rsa, sigfs_digest_by_name(bad[i]), err), -EINVAL);
		assert_non_null(strstr(err, bad[i]));
		assert_non_null(strstr(err, "sha224, sha256, sha384 or sha512"));
		assert_int_equal(fmt("openpgp-armor")->check(ed, sigfs_digest_by_name(bad[i]), err),
				 -EINVAL);
	}
	/* gpg refuses ECDSA with a hash shorter than the curve (P-521: than 512 bits). */
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p256"),
					       sigfs_digest_by_name("sha256"), err), 0);
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p256"),
					       sigfs_digest_by_name("sha224"), err), -EINVAL);
	assert_non_null(strstr(err, "ecdsa-p256"));
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p384"),
					       sigfs_digest_by_name("sha256"), err), -EINVAL);
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p384"),
					       sigfs_digest_by_name("sha384"), err), 0);
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p521"),
					       sigfs_digest_by_name("sha384"), err), -EINVAL);
	assert_int_equal(fmt("openpgp")->check(sigfs_alg_by_name("ecdsa-p521"),
					       sigfs_digest_by_name("sha512"), err), 0);
}

static void test_refusals(void **state)
{
	struct signer s = { .key = gen_key(sigfs_alg_by_name("ecdsa-p384")) };
	struct sigfs_format_key fk = {
		.name = "k", .alg = sigfs_alg_by_name("ecdsa-p384"), .pub = s.key,
		.digest = sigfs_digest_by_name("sha384"),
	};
	uint8_t dv[48] = { 0 };
	struct sigfs_format_input in = {
		.key = &fk, .digest = sigfs_digest_by_name("sha384"), .digest_value = dv,
	};
	struct sigfs_hasher *h;
	char err[SIGFS_ERRLEN] = "";
	struct sbuf out;

	(void)state;
	sbuf_init(&out, 1 << 16);
	/* A finished digest (a digest line) cannot become an OpenPGP signature. */
	assert_int_equal(fmt("openpgp")->produce(&in, test_sign, &s, &out, err), -EINVAL);
	assert_non_null(strstr(err, "copy the file itself"));
	assert_non_null(strstr(err, ".sigreq"));
	/* A state of a hash OpenPGP has no id for. */
	in.digest = NULL;
	in.digest_value = NULL;
	h = hash_of("sha3-384", "x", 1);
	in.state = h;
	assert_int_equal(fmt("openpgp-armor")->produce(&in, test_sign, &s, &out, err), -EINVAL);
	assert_non_null(strstr(err, "sha3-384"));
	sigfs_hasher_free(h);
	/* A hash too short for the curve would give a signature gpg rejects. */
	h = hash_of("sha256", "x", 1);
	in.state = h;
	assert_int_equal(fmt("openpgp")->produce(&in, test_sign, &s, &out, err), -EINVAL);
	assert_non_null(strstr(err, "ecdsa-p384"));
	sigfs_hasher_free(h);
	assert_int_equal(s.calls, 0);
	assert_int_equal(out.len, 0);
	sbuf_free(&out);
	EVP_PKEY_free(s.key);
}

/* With gpg and sq: certificates, and MPIs that lost leading zero bytes. */

static char tmpdir[1024];

static int setup(void **state)
{
	(void)state;
	return t_mkdtemp(tmpdir, sizeof(tmpdir), "openpgp");
}

static int teardown(void **state)
{
	(void)state;
	t_run("rm -rf '%s'", tmpdir);
	return 0;
}

/* Does gpg (fresh home with cert imported) and sq verify sig over artifact? */
static int tools_verify(const char *tag, const uint8_t *cert, size_t cert_len, const uint8_t *sig,
			size_t sig_len)
{
	char c[1200], s[1200], d[1200], home[1200];

	snprintf(c, sizeof(c), "%s/%s.cert", tmpdir, tag);
	snprintf(s, sizeof(s), "%s/%s.sig", tmpdir, tag);
	snprintf(d, sizeof(d), "%s/%s.data", tmpdir, tag);
	snprintf(home, sizeof(home), "%s/%s.gnupg", tmpdir, tag);
	t_write_file(c, cert, cert_len);
	t_write_file(s, sig, sig_len);
	t_write_file(d, artifact, sizeof(artifact));
	if (t_run("rm -rf '%s' && mkdir -m 700 '%s' && GNUPGHOME='%s' gpg --batch --no-autostart --quiet --import '%s' 2>/dev/null",
		home, home, home, c) != 0)
		return 0;
	if (t_run("GNUPGHOME='%s' gpg --batch --no-autostart --status-fd 1 --verify '%s' '%s' 2>/dev/null | grep -q '^\\[GNUPG:\\] VALIDSIG '",
		home, s, d) != 0)
		return 0;
	return t_run("sq verify --signer-cert '%s' --detached '%s' '%s' >/dev/null 2>&1", c, s, d) == 0;
}

/*
 * Make signatures with fresh state until one has an MPI whose top byte was
 * zero (1 in 128 per signature), render the key's certificate, and let gpg
 * and sq verify both; then a changed byte must fail.
 */
static void zero_mpi_case(const char *alg, const char *digest)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(alg);
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	size_t half = a->kind == SIGFS_KIND_ED25519 ? 32 : ((size_t)a->bits + 7) / 8;
	struct signer s = { .key = gen_key(a) };
	struct sigfs_format_key fk = {
		.name = "k", .alg = a, .pub = s.key, .digest = d, .created = 1600000000,
		.uid = "Zero MPI Test <zero@sigfs.test>",
	};
	struct sigfs_hasher *h = hash_of(digest, artifact, sizeof(artifact));
	struct sigfs_format_input in = { .key = &fk, .state = h, .name = "a" };
	char err[SIGFS_ERRLEN] = "";
	struct sbuf sig, cert;
	struct parsed ps;
	int found = 0;

	sbuf_init(&cert, 1 << 16);
	assert_int_equal(fmt("openpgp")->attrs[0].render(&fk, test_sign, &s, &cert, err), 0);
	for (int i = 0; i < 5000 && !found; i++) {
		in.now = 1700000000 + i;
		sbuf_init(&sig, 1 << 16);
		assert_int_equal(fmt("openpgp")->produce(&in, test_sign, &s, &sig, err), 0);
		parse_sig(sig.d, sig.len, &ps);
		found = ps.mpi_len[0] < half || ps.mpi_len[1] < half;
		if (!found)
			sbuf_free(&sig);
	}
	assert_true(found);
	assert_true(tools_verify(alg, cert.d, cert.len, sig.d, sig.len));
	sig.d[sig.len - 1] ^= 0x01;
	assert_false(tools_verify(alg, cert.d, cert.len, sig.d, sig.len));
	sbuf_free(&sig);
	sbuf_free(&cert);
	sigfs_hasher_free(h);
	EVP_PKEY_free(s.key);
}

static void test_gpg_and_sq_accept_short_mpis(void **state)
{
	(void)state;
	zero_mpi_case("ed25519", "sha256");
	zero_mpi_case("ecdsa-p256", "sha512");
}

/* cert.pgp and cert.asc: the same key; the user ID and key flags gpg reads from them. */
static void test_cert_files(void **state)
{
	struct signer s = { .key = vec_key() };
	struct sigfs_format_key fk = {
		.name = "vec", .alg = sigfs_alg_by_name("ed25519"), .pub = s.key,
		.digest = sigfs_digest_by_name("sha3-256"), .created = VEC_CREATED,
		.uid = "Sample Key <sample@sigfs.test>",
	};
	char err[SIGFS_ERRLEN] = "", path[1200], asc[1200], out[1200];
	struct sbuf bin, arm;

	(void)state;
	sbuf_init(&bin, 1 << 16);
	sbuf_init(&arm, 1 << 16);
	assert_int_equal(fmt("openpgp")->attrs[0].render(&fk, test_sign, &s, &bin, err), 0);
	assert_int_equal(fmt("openpgp")->attrs[1].render(&fk, test_sign, &s, &arm, err), 0);
	/* The self-signature is SHA-512 even for a key whose files use sha3-256. */
	assert_ptr_equal(s.in.digest, NULL);
	assert_int_equal(s.in.len, 64);
	snprintf(path, sizeof(path), "%s/vec.pgp", tmpdir);
	snprintf(asc, sizeof(asc), "%s/vec.asc", tmpdir);
	snprintf(out, sizeof(out), "%s/vec.list", tmpdir);
	t_write_file(path, bin.d, bin.len);
	t_write_file(asc, arm.d, arm.len);
	/* Both files name the sample key's published fingerprint and the user ID. */
	assert_int_equal(t_run("gpg --batch --no-autostart --with-colons --show-keys '%s' >'%s' 2>/dev/null && "
			     "grep -q '^fpr:::::::::C959BDBAFA32A2F89A153B678CFDE12197965A9A:' '%s' && "
			     "grep -q '^uid:.*Sample Key <sample@sigfs.test>' '%s' && "
			     "grep -q '^uid:[^:]*::::1408458507:' '%s' && "
			     "grep -Eq '^pub:[^:]*:255:22:8CFDE12197965A9A:1408458507:([^:]*:){5}s' '%s'",
			     path, out, out, out, out, out), 0);
	assert_int_equal(t_run("gpg --batch --no-autostart --with-colons --show-keys '%s' 2>/dev/null | "
			     "grep -q '^fpr:::::::::C959BDBAFA32A2F89A153B678CFDE12197965A9A:'", asc), 0);
	assert_int_equal(t_run("sq inspect '%s' 2>/dev/null >'%s' && "
			     "grep -q 'Fingerprint: C959BDBAFA32A2F89A153B678CFDE12197965A9A' '%s' && "
			     "grep -q 'Key flags: signing' '%s'", path, out, out, out), 0);
	/* The armor is what gpg --dearmor turns back into the binary file. */
	assert_int_equal(t_run("gpg --batch --no-autostart --dearmor <'%s' | cmp -s - '%s'", asc, path), 0);
	sbuf_free(&bin);
	sbuf_free(&arm);
	EVP_PKEY_free(s.key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_crc24),
		cmocka_unit_test(test_mpi),
		cmocka_unit_test(test_subpacket_lengths),
		cmocka_unit_test(test_packet_header),
		cmocka_unit_test(test_armor),
		cmocka_unit_test(test_fingerprint_of_sample_key),
		cmocka_unit_test(test_known_signature),
		cmocka_unit_test(test_signatures_verify_with_openssl),
		cmocka_unit_test(test_signstar_sha512_state),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_gpg_and_sq_accept_short_mpis),
		cmocka_unit_test(test_cert_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
