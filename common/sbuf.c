/*
 * sbuf.c: the bounded byte buffer of sbuf.h. Putters grow the storage by
 * doubling but never past max; getters check what is left before copying, so
 * a short or hostile input yields -EBADMSG, never a read past the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

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

size_t sbuf_avail(const struct sbuf *b)
{
	return b->len - b->off;
}

const uint8_t *sbuf_ptr(const struct sbuf *b)
{
	return b->d + b->off;
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
