/*
 * sha512.h: a SHA-512 whose state can be written out and resumed, in the
 * 208-byte layout of RustCrypto's sha2 0.11 that Signstar's client sends
 * (docs/requests.md, `sha2-0.11-SHA512-state`). OpenSSL cannot
 * export or import a SHA-512 state, so this is a small implementation of its
 * own, behind the hasher ops of signer/hasher.h (name "SHA2-512", 64 bytes).
 */
#ifndef SIGFS_SHA512_H
#define SIGFS_SHA512_H

#include <stddef.h>
#include <stdint.h>

#include "signer/hasher.h"

#define SIGFS_SHA512_STATE_LEN 208

/* A fresh SHA-512 hasher of this kind (NULL on allocation failure). */
struct sigfs_hasher *sigfs_sha512_new(void);

/*
 * A hasher continuing from a 208-byte state: H0..H7 (u64 little-endian),
 * the u128 little-endian count of compressed blocks, pos (0..127), pos
 * buffered bytes, zeros. 0, or -EINVAL with the reason in err (wrong length,
 * pos >= 128, non-zero padding, an impossible block count).
 */
int sigfs_sha512_from_state(const uint8_t *state, size_t len, struct sigfs_hasher **out,
			    char *err);

/* Write the state of h (made by this file) in that layout; -EINVAL for another kind. */
int sigfs_sha512_state(const struct sigfs_hasher *h, uint8_t out[SIGFS_SHA512_STATE_LEN]);

#endif
