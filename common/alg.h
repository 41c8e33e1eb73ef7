/*
 * The tables every layer agrees on: key algorithms, digests, RSA paddings.
 * One row per algorithm or digest; code looks rows up by name or id and never
 * switches on names elsewhere.
 */
#ifndef SIGFS_ALG_H
#define SIGFS_ALG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

enum sigfs_key_kind { SIGFS_KIND_RSA, SIGFS_KIND_EC, SIGFS_KIND_ED25519 };

struct sigfs_alg {
	const char *name;        /* "ed25519", "ecdsa-p256", "rsa-3072" ... */
	enum sigfs_key_kind kind;
	int bits;                /* RSA modulus or EC field size */
	const char *group;       /* OpenSSL group name for EC, else NULL */
	size_t max_sig;          /* largest signature this key can produce, bytes */
};

struct sigfs_digest {
	const char *name;        /* docs/configuration.md's name: "sha256", "sha512-224" */
	const char *ossl;        /* OpenSSL's name for EVP_MD_fetch */
	size_t len;              /* output bytes */
	const char *cli;         /* option for `openssl dgst`, e.g. "-sha512-224" */
};

enum sigfs_padding { SIGFS_PAD_NONE = 0, SIGFS_PAD_PSS, SIGFS_PAD_PKCS1 };

#define SIGFS_MAX_DIGEST 64
#define SIGFS_MAX_SIG 1024      /* RSA-8192 */

const struct sigfs_alg *sigfs_alg_by_name(const char *name);
/* Row i of the algorithm table, NULL past the end. */
const struct sigfs_alg *sigfs_alg_at(size_t i);

/* The row pkey is (RSA of a size in the table, EC on a table curve, Ed25519), or NULL. */
const struct sigfs_alg *sigfs_alg_of_key(EVP_PKEY *pkey);
/*
 * A new key of kind: EC on group, RSA of bits (public exponent 65537);
 * the one place keys are generated outside a backend's own token. NULL on failure.
 */
EVP_PKEY *sigfs_keygen(enum sigfs_key_kind kind, const char *group, int bits);

const struct sigfs_digest *sigfs_digest_by_name(const char *name);
const struct sigfs_digest *sigfs_digest_at(size_t i);
/* The row whose OpenSSL digest is called ossl_name (any of its aliases), or NULL. */
const struct sigfs_digest *sigfs_digest_by_ossl(const char *ossl_name);
/* The EVP_MD for a digest row (fetched once, never freed by callers). */
const EVP_MD *sigfs_digest_md(const struct sigfs_digest *d);
/* True for sha1, which a key must allow explicitly. */
bool sigfs_digest_is_weak(const struct sigfs_digest *d);

/*
 * The DER DigestInfo of digest d with value v (len bytes): what RSA PKCS#1 v1.5
 * signs, for backends whose interface wants it ready-made. *out is
 * OPENSSL_malloc'd (OPENSSL_free it).
 */
int sigfs_digest_info(const struct sigfs_digest *d, const uint8_t *v, size_t len,
		      uint8_t **out, size_t *outlen);

const char *sigfs_padding_name(enum sigfs_padding p);
int sigfs_padding_parse(const char *s, enum sigfs_padding *out);

#endif
