/* hex.h: hexadecimal digits, for digests that arrive as text (digest lines, requests). */
#ifndef SIGFS_HEX_H
#define SIGFS_HEX_H

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

#endif
