/*
 * sha512.c: SHA-512 (FIPS 180-4) with a state that can leave the process
 * and come back, in the layout of signer/sha512.h. Speed is secondary: the
 * daemon only finishes states that arrive in requests, and the client hashes
 * one file at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "signer/sha512.h"

#define BLOCK 128
#define OUT_LEN 64
/* Offsets inside the 208-byte state (sha2 0.11's serialized Sha512). */
#define ST_H 0
#define ST_BLOCKS 64
#define ST_POS 80
#define ST_BUF 81

struct sha512 {
	uint64_t h[8];
	/*
	 * Blocks compressed so far. The layout has room for a u128; more than
	 * 2^64 blocks (2^71 bytes) cannot be real, so states claiming that are
	 * refused and 64 bits suffice.
	 */
	uint64_t blocks;
	uint8_t buf[BLOCK];
	size_t pos;
};

static const uint64_t K[80] = {
	0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
	0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
	0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
	0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
	0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
	0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
	0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
	0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
	0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
	0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
	0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
	0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
	0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
	0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
	0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
	0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
	0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
	0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
	0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
	0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static const uint64_t IV[8] = {
	0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
	0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static uint64_t ror(uint64_t x, unsigned n)
{
	return (x >> n) | (x << (64 - n));
}

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void store_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void store_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void compress(uint64_t h[8], const uint8_t *block)
{
	uint64_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
		 hh = h[7];

	for (int t = 0; t < 16; t++)
		w[t] = load_be64(block + 8 * t);
	for (int t = 16; t < 80; t++) {
		uint64_t s0 = ror(w[t - 15], 1) ^ ror(w[t - 15], 8) ^ (w[t - 15] >> 7);
		uint64_t s1 = ror(w[t - 2], 19) ^ ror(w[t - 2], 61) ^ (w[t - 2] >> 6);

		w[t] = w[t - 16] + s0 + w[t - 7] + s1;
	}
	for (int t = 0; t < 80; t++) {
		uint64_t t1 = hh + (ror(e, 14) ^ ror(e, 18) ^ ror(e, 41)) + ((e & f) ^ (~e & g)) +
			      K[t] + w[t];
		uint64_t t2 = (ror(a, 28) ^ ror(a, 34) ^ ror(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));

		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

static int s_update(struct sigfs_hasher *hs, const void *p, size_t n)
{
	struct sha512 *s = hs->priv;
	const uint8_t *in = p;

	while (n > 0) {
		size_t take = BLOCK - s->pos < n ? BLOCK - s->pos : n;

		memcpy(s->buf + s->pos, in, take);
		s->pos += take;
		in += take;
		n -= take;
		/*
		 * Compress as soon as a block is full, as sha2 0.11's "eager"
		 * block buffer does: a state never holds a full block (pos < 128).
		 */
		if (s->pos == BLOCK) {
			if (s->blocks == UINT64_MAX)
				return -EOVERFLOW;
			compress(s->h, s->buf);
			s->blocks++;
			s->pos = 0;
		}
	}
	return 0;
}

static int s_final(struct sigfs_hasher *hs, uint8_t *out)
{
	struct sha512 *s = hs->priv;
	/* Bit length as a 128-bit big-endian number: blocks * 1024 + pos * 8. */
	uint64_t bits_hi = s->blocks >> 54, bits_lo = (s->blocks << 10) + (uint64_t)s->pos * 8;

	s->buf[s->pos++] = 0x80;
	if (s->pos > BLOCK - 16) {
		memset(s->buf + s->pos, 0, BLOCK - s->pos);
		compress(s->h, s->buf);
		s->pos = 0;
	}
	memset(s->buf + s->pos, 0, BLOCK - 16 - s->pos);
	store_be64(s->buf + BLOCK - 16, bits_hi);
	store_be64(s->buf + BLOCK - 8, bits_lo);
	compress(s->h, s->buf);
	for (int i = 0; i < 8; i++)
		store_be64(out + 8 * i, s->h[i]);
	return 0;
}

static void s_free(struct sigfs_hasher *hs)
{
	/* The buffered bytes are the tail of someone's artifact. */
	OPENSSL_cleanse(hs->priv, sizeof(struct sha512));
	free(hs->priv);
	free(hs);
}

static struct sigfs_hasher *s_dup(const struct sigfs_hasher *hs);

static const struct sigfs_hasher_ops sha512_ops = {
	.update = s_update,
	.final = s_final,
	.dup = s_dup,
	.free = s_free,
};

static struct sigfs_hasher *wrap(const struct sha512 *init)
{
	struct sigfs_hasher *hs = calloc(1, sizeof(*hs));
	struct sha512 *s = malloc(sizeof(*s));

	if (!hs || !s) {
		free(hs);
		free(s);
		return NULL;
	}
	*s = *init;
	hs->ops = &sha512_ops;
	hs->name = "SHA2-512";
	hs->len = OUT_LEN;
	hs->priv = s;
	return hs;
}

static struct sigfs_hasher *s_dup(const struct sigfs_hasher *hs)
{
	return wrap(hs->priv);
}

struct sigfs_hasher *sigfs_sha512_new(void)
{
	struct sha512 s = { .blocks = 0, .pos = 0 };

	memcpy(s.h, IV, sizeof(IV));
	return wrap(&s);
}

/* Read a little-endian u64 through the bounded buffer. */
static int get_le64(struct sbuf *in, uint64_t *v)
{
	uint8_t b[8];
	int r = sbuf_get(in, b, sizeof(b));

	*v = r == 0 ? load_le64(b) : 0;
	return r;
}

int sigfs_sha512_from_state(const uint8_t *state, size_t len, struct sigfs_hasher **out,
			    char *err)
{
	struct sha512 s = { .blocks = 0 };
	uint64_t blocks_hi = 0;
	struct sbuf in;
	uint8_t pos = 0;
	int r = 0;

	*out = NULL;
	if (len != SIGFS_SHA512_STATE_LEN)
		return sigfs_seterr(err, -EINVAL, "the SHA-512 state has %zu bytes, not %d: "
				    "make the request with a Signstar client that uses sha2 0.11, "
				    "or with `sigfs request`", len, SIGFS_SHA512_STATE_LEN);
	sbuf_view(&in, state, len);
	for (int i = 0; i < 8 && r == 0; i++)
		r = get_le64(&in, &s.h[i]);
	if (r == 0)
		r = get_le64(&in, &s.blocks);
	if (r == 0)
		r = get_le64(&in, &blocks_hi);
	if (r == 0)
		r = sbuf_get_u8(&in, &pos);
	if (r == 0 && pos < BLOCK)
		r = sbuf_get(&in, s.buf, pos);
	if (r < 0)
		return sigfs_seterr(err, -EINVAL, "the SHA-512 state is truncated: make the "
				    "request again");
	if (blocks_hi != 0)
		return sigfs_seterr(err, -EINVAL, "the SHA-512 state claims more than 2^64 "
				    "hashed blocks: it is corrupt; make the request again");
	if (pos >= BLOCK)
		return sigfs_seterr(err, -EINVAL, "the SHA-512 state says %u bytes are buffered, "
				    "a 128-byte block or more: it is corrupt; make the request "
				    "again", pos);
	s.pos = pos;
	for (size_t i = ST_BUF + s.pos; i < len; i++)
		if (state[i] != 0)
			return sigfs_seterr(err, -EINVAL, "the SHA-512 state has a non-zero byte "
					    "at offset %zu, after the %zu buffered bytes: it is "
					    "corrupt; make the request again", i, s.pos);
	*out = wrap(&s);
	OPENSSL_cleanse(&s, sizeof(s));
	return *out ? 0 : sigfs_seterr(err, -ENOMEM, "out of memory for a SHA-512 state");
}

int sigfs_sha512_state(const struct sigfs_hasher *h, uint8_t out[SIGFS_SHA512_STATE_LEN])
{
	const struct sha512 *s;

	if (h->ops != &sha512_ops)
		return -EINVAL;
	s = h->priv;
	memset(out, 0, SIGFS_SHA512_STATE_LEN);
	for (int i = 0; i < 8; i++)
		store_le64(out + ST_H + 8 * i, s->h[i]);
	store_le64(out + ST_BLOCKS, s->blocks);
	out[ST_POS] = (uint8_t)s->pos;
	memcpy(out + ST_BUF, s->buf, s->pos);
	return 0;
}
