/*
 * hasher.h: a hash computation that can be copied and continued. Formats get
 * the state of a hash over the artifact, not only its final value, because
 * some sign a digest of "artifact || trailer" (OpenPGP) or a different hash of
 * the artifact (minisign's BLAKE2b). Two kinds: OpenSSL's EVP digests, and
 * states that arrive in signing requests (Signstar's SHA-512 state, see
 * signer/sha512.h), which OpenSSL cannot resume.
 */
#ifndef SIGFS_HASHER_H
#define SIGFS_HASHER_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

struct sigfs_hasher;

struct sigfs_hasher_ops {
	int (*update)(struct sigfs_hasher *h, const void *p, size_t n);
	/* Finish into out (len bytes); the hasher cannot be used afterwards. */
	int (*final)(struct sigfs_hasher *h, uint8_t *out);
	struct sigfs_hasher *(*dup)(const struct sigfs_hasher *h);
	void (*free)(struct sigfs_hasher *h);
};

struct sigfs_hasher {
	const struct sigfs_hasher_ops *ops;
	const char *name;        /* OpenSSL digest name: "SHA2-256", "SHA2-512", "BLAKE2B-512" */
	size_t len;              /* output bytes */
	void *priv;
};

/* A fresh hasher for OpenSSL digest md (NULL on allocation failure). */
struct sigfs_hasher *sigfs_hasher_new(const EVP_MD *md);
/* A copy that continues independently. */
struct sigfs_hasher *sigfs_hasher_dup(const struct sigfs_hasher *h);
int sigfs_hasher_update(struct sigfs_hasher *h, const void *p, size_t n);
/* Final value of a copy of h: h itself can go on. out has h->len bytes. */
int sigfs_hasher_peek(const struct sigfs_hasher *h, uint8_t *out);
/* Final value; consumes h (free it afterwards). */
int sigfs_hasher_final(struct sigfs_hasher *h, uint8_t *out);
void sigfs_hasher_free(struct sigfs_hasher *h);
/* Is h a hash of kind md? */
int sigfs_hasher_is(const struct sigfs_hasher *h, const EVP_MD *md);

#endif
