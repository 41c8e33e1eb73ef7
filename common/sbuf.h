/*
 * sbuf: one bounded byte buffer for everything that comes from outside
 * (digest files, signing requests, network replies) and everything we encode
 * (signatures, certificates). Modelled on OpenSSH's sshbuf: getters never read
 * past the end and return an error instead; putters never grow past `max`.
 * Every function returns 0 or a negative errno code (-ENOSPC, -EBADMSG ...).
 * Text formats (digest lines, the journal, the audit log, key settings, the
 * clients file) are read with the line, token, hex and number getters below;
 * lines and tokens are views of the bytes, so nothing is copied.
 */
#ifndef SIGFS_SBUF_H
#define SIGFS_SBUF_H

#include <stdbool.h>
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
/* Wipe the contents and empty b, keeping its storage for reuse; a view just becomes empty. */
void sbuf_reset(struct sbuf *b);

/* Bytes left to read. */
size_t sbuf_avail(const struct sbuf *b);
/* Pointer to the next unread byte. */
const uint8_t *sbuf_ptr(const struct sbuf *b);

int sbuf_put(struct sbuf *b, const void *p, size_t n);
int sbuf_put_u8(struct sbuf *b, uint8_t v);
int sbuf_put_u16be(struct sbuf *b, uint16_t v);
int sbuf_put_u32be(struct sbuf *b, uint32_t v);
/* Overwrite the 4 bytes at offset at, written before, with v (a length known last); else -EINVAL. */
int sbuf_put_u32be_at(struct sbuf *b, size_t at, uint32_t v);

/* Copy n bytes out (p may be NULL to skip them). -EBADMSG if fewer remain. */
int sbuf_get(struct sbuf *b, void *p, size_t n);
int sbuf_get_u8(struct sbuf *b, uint8_t *v);
int sbuf_get_u16be(struct sbuf *b, uint16_t *v);
int sbuf_get_u32be(struct sbuf *b, uint32_t *v);

/* The next n bytes as a read-only view in sub (b must outlive sub). -EBADMSG if fewer remain. */
int sbuf_get_view(struct sbuf *b, size_t n, struct sbuf *sub);
/*
 * The bytes before the next byte of seps (a C string) as a view in tok; that
 * separator is skipped. -EBADMSG if no separator is left (nothing is consumed).
 */
int sbuf_get_token(struct sbuf *b, const char *seps, struct sbuf *tok);
/* sbuf_get_token up to '\n': -EBADMSG if the line has no '\n' yet. */
int sbuf_get_line(struct sbuf *b, struct sbuf *line);
/* sbuf_get_line, or the rest of b if no '\n' is left; -EBADMSG only if b is empty. */
int sbuf_get_line_or_rest(struct sbuf *b, struct sbuf *line);
/*
 * 2n hex digits of either case into n bytes; -EBADMSG if fewer remain or one
 * is not a digit (its index in *bad if bad is not NULL). Nothing is consumed
 * on error, but out may be partly written.
 */
int sbuf_get_hex(struct sbuf *b, uint8_t *out, size_t n, size_t *bad);
/* sbuf_get_hex refusing A-F: the lowercase hex sigfs writes, one spelling per value. */
int sbuf_get_hex_lower(struct sbuf *b, uint8_t *out, size_t n);
/*
 * The decimal digits at the read position (all of them, no sign, no space)
 * as a number: -EBADMSG if there is no digit, -ERANGE past 2^64-1 (nothing is consumed).
 */
int sbuf_get_u64dec(struct sbuf *b, uint64_t *v);
/* sbuf_get_u64dec after an optional '-': -ERANGE outside [-2^63, 2^63-1]. */
int sbuf_get_i64dec(struct sbuf *b, int64_t *v);

/* How many unread bytes, from the read position, are bytes of set (a C string); like strspn. */
size_t sbuf_span(const struct sbuf *b, const char *set);
/* The offset of the first unread byte c in *at (if at is not NULL); -ENOENT if there is none. */
int sbuf_find(const struct sbuf *b, uint8_t c, size_t *at);
/* Whether the unread bytes are exactly the C string s. */
bool sbuf_eq(const struct sbuf *b, const char *s);

#endif
