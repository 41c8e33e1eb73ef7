/*
 * sbuf.c: the bounded byte buffer of sbuf.h. Putters grow the storage by
 * doubling but never past max; getters check what is left before copying, so
 * a short or hostile input yields -EBADMSG, never a read past the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/sbuf.h"

#define SBUF_MIN_CAP 256

void sbuf_init(struct sbuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void sbuf_view(struct sbuf *b, const void *p, size_t len)
{
	memset(b, 0, sizeof(*b));
	/* The cast is safe: a view is never written (see max below). */
	b->d = (uint8_t *)p;
	b->len = len;
	b->cap = len;
	/* A view is full: every putter fails with -ENOSPC before writing. */
	b->max = len;
	b->view = 1;
}

void sbuf_free(struct sbuf *b)
{
	size_t max = b->view ? 0 : b->max;

	if (!b->view && b->d) {
		/* Buffers carry signatures and key material: wipe before free. */
		OPENSSL_cleanse(b->d, b->cap);
		free(b->d);
	}
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void sbuf_reset(struct sbuf *b)
{
	if (b->view) {
		b->off = b->len;
		return;
	}
	if (b->d)
		OPENSSL_cleanse(b->d, b->len);
	b->len = 0;
	b->off = 0;
}

size_t sbuf_avail(const struct sbuf *b)
{
	return b->len - b->off;
}

const uint8_t *sbuf_ptr(const struct sbuf *b)
{
	/* An empty buffer may have no storage yet, and NULL + 0 is undefined. */
	return b->d ? b->d + b->off : b->d;
}

/* Make room for n more bytes: -ENOSPC past max (always on a view), -ENOMEM. */
static int sbuf_reserve(struct sbuf *b, size_t n)
{
	size_t need, cap;
	uint8_t *d;

	if (n > b->max - b->len)
		return -ENOSPC;
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : SBUF_MIN_CAP;
	while (cap < need)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap > b->max)
		cap = b->max;
	/*
	 * Not realloc(): the old storage may hold secrets, and realloc could
	 * leave a copy of them behind unwiped.
	 */
	d = malloc(cap);
	if (!d)
		return -ENOMEM;
	if (b->d) {
		memcpy(d, b->d, b->len);
		OPENSSL_cleanse(b->d, b->cap);
		free(b->d);
	}
	b->d = d;
	b->cap = cap;
	return 0;
}

int sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	r = sbuf_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->d + b->len, p, n);
	b->len += n;
	return 0;
}

int sbuf_put_u8(struct sbuf *b, uint8_t v)
{
	return sbuf_put(b, &v, 1);
}

int sbuf_put_u16be(struct sbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return sbuf_put(b, x, sizeof(x));
}

int sbuf_put_u32be(struct sbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return sbuf_put(b, x, sizeof(x));
}

int sbuf_put_u32be_at(struct sbuf *b, size_t at, uint32_t v)
{
	if (b->view || at > b->len || b->len - at < 4)
		return -EINVAL;
	b->d[at] = (uint8_t)(v >> 24);
	b->d[at + 1] = (uint8_t)(v >> 16);
	b->d[at + 2] = (uint8_t)(v >> 8);
	b->d[at + 3] = (uint8_t)v;
	return 0;
}

int sbuf_get(struct sbuf *b, void *p, size_t n)
{
	if (n > sbuf_avail(b))
		return -EBADMSG;
	if (p && n)
		memcpy(p, b->d + b->off, n);
	b->off += n;
	return 0;
}

int sbuf_get_u8(struct sbuf *b, uint8_t *v)
{
	return sbuf_get(b, v, 1);
}

int sbuf_get_u16be(struct sbuf *b, uint16_t *v)
{
	uint8_t x[2];
	int r = sbuf_get(b, x, sizeof(x));

	if (r < 0)
		return r;
	*v = (uint16_t)(x[0] << 8 | x[1]);
	return 0;
}

int sbuf_get_u32be(struct sbuf *b, uint32_t *v)
{
	uint8_t x[4];
	int r = sbuf_get(b, x, sizeof(x));

	if (r < 0)
		return r;
	*v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
	return 0;
}

int sbuf_get_view(struct sbuf *b, size_t n, struct sbuf *sub)
{
	if (n > sbuf_avail(b))
		return -EBADMSG;
	sbuf_view(sub, sbuf_ptr(b), n);
	b->off += n;
	return 0;
}

/* Is c one of the bytes of the C string set? Its terminating NUL is not one. */
static bool in_set(uint8_t c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

int sbuf_get_token(struct sbuf *b, const char *seps, struct sbuf *tok)
{
	const uint8_t *p = sbuf_ptr(b);
	size_t n = sbuf_avail(b);

	for (size_t i = 0; i < n; i++) {
		if (in_set(p[i], seps)) {
			sbuf_view(tok, p, i);
			b->off += i + 1;
			return 0;
		}
	}
	return -EBADMSG;
}

int sbuf_get_line(struct sbuf *b, struct sbuf *line)
{
	return sbuf_get_token(b, "\n", line);
}

int sbuf_get_line_or_rest(struct sbuf *b, struct sbuf *line)
{
	if (sbuf_avail(b) == 0)
		return -EBADMSG;
	if (sbuf_get_line(b, line) == 0)
		return 0;
	return sbuf_get_view(b, sbuf_avail(b), line);
}

static int get_hex(struct sbuf *b, uint8_t *out, size_t n, bool lower_only, size_t *bad)
{
	int r;

	if (n > sbuf_avail(b) / 2)
		return -EBADMSG;
	r = sigfs_hex_decode_((const char *)sbuf_ptr(b), out, n, lower_only, bad);
	if (r < 0)
		return r;
	b->off += 2 * n;
	return 0;
}

int sbuf_get_hex(struct sbuf *b, uint8_t *out, size_t n, size_t *bad)
{
	return get_hex(b, out, n, false, bad);
}

int sbuf_get_hex_lower(struct sbuf *b, uint8_t *out, size_t n)
{
	return get_hex(b, out, n, true, NULL);
}

int sbuf_get_u64dec(struct sbuf *b, uint64_t *v)
{
	const uint8_t *p = sbuf_ptr(b);
	size_t n = sbuf_span(b, "0123456789");
	uint64_t x = 0;

	if (n == 0)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	*v = x;
	b->off += n;
	return 0;
}

int sbuf_get_i64dec(struct sbuf *b, int64_t *v)
{
	struct sbuf digits = *b;
	bool neg = sbuf_avail(b) > 0 && *sbuf_ptr(b) == '-';
	uint64_t x;
	int r;

	/* Parse on a copy, so that a lone '-' consumes nothing. */
	digits.off += neg;
	r = sbuf_get_u64dec(&digits, &x);
	if (r < 0)
		return r;
	if (x > (uint64_t)INT64_MAX + neg)
		return -ERANGE;
	if (!neg)
		*v = (int64_t)x;
	else
		*v = x > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)x;
	b->off = digits.off;
	return 0;
}

size_t sbuf_span(const struct sbuf *b, const char *set)
{
	const uint8_t *p = sbuf_ptr(b);
	size_t n = sbuf_avail(b), i;

	for (i = 0; i < n && in_set(p[i], set); i++)
		;
	return i;
}

int sbuf_find(const struct sbuf *b, uint8_t c, size_t *at)
{
	/* memchr() wants a valid pointer even for 0 bytes. */
	const uint8_t *p = sbuf_avail(b) ? memchr(sbuf_ptr(b), c, sbuf_avail(b)) : NULL;

	if (!p)
		return -ENOENT;
	if (at)
		*at = (size_t)(p - sbuf_ptr(b));
	return 0;
}

bool sbuf_eq(const struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	return sbuf_avail(b) == n && (n == 0 || memcmp(sbuf_ptr(b), s, n) == 0);
}
