/*
 * sbuf: one bounded byte buffer for everything that comes from outside
 * (digest files, signing requests, network replies) and everything we encode
 * (signatures, certificates). Modelled on OpenSSH's sshbuf: getters never read
 * past the end and return an error instead; putters never grow past `max`.
 * Every function returns 0 or a negative errno code (-ENOSPC, -EBADMSG).
 */
#ifndef SIGFS_SBUF_H
#define SIGFS_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	uint8_t *d;      /* storage (owned unless the buffer is a read-only view) */
	size_t len;      /* bytes written */
	size_t off;      /* read position, 0 <= off <= len */
	size_t cap;      /* allocated size */
	size_t max;      /* hard limit on len */
	int view;        /* 1: d is borrowed, read-only */
};

/* An empty, growable buffer that will never hold more than max bytes. */
void sbuf_init(struct sbuf *b, size_t max);
/* A read-only view of len bytes at p (not copied; p must outlive b). */
void sbuf_view(struct sbuf *b, const void *p, size_t len);
/* Wipe (OPENSSL_cleanse) and free the storage; b becomes empty. */
void sbuf_free(struct sbuf *b);

/* Bytes left to read. */
size_t sbuf_avail(const struct sbuf *b);
/* Pointer to the next unread byte. */
const uint8_t *sbuf_ptr(const struct sbuf *b);

int sbuf_put(struct sbuf *b, const void *p, size_t n);
int sbuf_put_u8(struct sbuf *b, uint8_t v);
int sbuf_put_u16be(struct sbuf *b, uint16_t v);
int sbuf_put_u32be(struct sbuf *b, uint32_t v);

/* Copy n bytes out (p may be NULL to skip them). -EBADMSG if fewer remain. */
int sbuf_get(struct sbuf *b, void *p, size_t n);
int sbuf_get_u8(struct sbuf *b, uint8_t *v);
int sbuf_get_u16be(struct sbuf *b, uint16_t *v);
int sbuf_get_u32be(struct sbuf *b, uint32_t *v);

#endif
