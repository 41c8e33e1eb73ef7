/*
 * hex.h: hexadecimal digits, for digests that arrive as text (digest lines,
 * requests) and for the lowercase hex sigfs writes itself (journal, audit log).
 */
#ifndef SIGFS_HEX_H
#define SIGFS_HEX_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The value of hex digit c (either case), or -1 if c is not one. */
static inline int sigfs_hex_digit(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* n bytes as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
static inline void sigfs_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		*out++ = digits[p[i] >> 4];
		*out++ = digits[p[i] & 15];
	}
	*out = '\0';
}

/* Both decoders: lower_only refuses A-F; *bad (if not NULL) is the first non-digit. */
static inline int sigfs_hex_decode_(const char *s, uint8_t *out, size_t n, bool lower_only,
				    size_t *bad)
{
	for (size_t i = 0; i < 2 * n; i++) {
		uint8_t c = (uint8_t)s[i];
		int v = lower_only && c >= 'A' && c <= 'F' ? -1 : sigfs_hex_digit(c);

		if (v < 0) {
			if (bad)
				*bad = i;
			return -EBADMSG;
		}
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

/*
 * 2n hex digits of either case (a digest line, a request, a key typed by a
 * person) into n bytes; -EBADMSG if one is not a digit, its index in *bad
 * when bad is not NULL.
 */
static inline int sigfs_hex_decode(const char *s, uint8_t *out, size_t n, size_t *bad)
{
	return sigfs_hex_decode_(s, out, n, false, bad);
}

/*
 * 2n lowercase hex digits (what sigfs_hex_encode writes; uppercase is
 * refused, so one value has one spelling) into n bytes; -EBADMSG if one is
 * not such a digit.
 */
static inline int sigfs_hex_decode_lower(const char *s, uint8_t *out, size_t n)
{
	return sigfs_hex_decode_(s, out, n, true, NULL);
}

#endif
