/*
 * openpgp.h: OpenPGP v4 encoding (RFC 4880) for format_openpgp.c: packets,
 * MPIs, subpackets, the public-key packet and its fingerprint, signature
 * packets over a hash state, and ASCII armor. Kept apart from the format row
 * so the unit tests can pin each encoding against known bytes.
 *
 * Every function returns 0 or a negative errno code (-ENOSPC when an sbuf
 * is full); those that take err say why in one line.
 */
#ifndef SIGFS_OPENPGP_H
#define SIGFS_OPENPGP_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "signer/format.h"

#define PGP_FPR_LEN 20

/* Packet tags and signature types we write. */
enum {
	PGP_TAG_SIGNATURE = 2,
	PGP_TAG_PUBLIC_KEY = 6,
	PGP_TAG_USER_ID = 13,
};
enum {
	PGP_SIG_BINARY = 0x00,
	PGP_SIG_POSITIVE_CERT = 0x13,
};

/* Subpacket types. */
enum {
	PGP_SP_CREATION_TIME = 2,
	PGP_SP_ISSUER = 16,
	PGP_SP_NOTATION = 20,
	PGP_SP_KEY_FLAGS = 27,
	PGP_SP_ISSUER_FPR = 33,
};

/* The notation that carries the signed file's digest, as Signstar names it. */
#define PGP_DATA_DIGEST_NOTATION "data-digest@archlinux.org"

/* OpenPGP hash algorithm id of d (SHA-256 8, SHA-384 9, SHA-512 10, SHA-224 11), 0 if none. */
int sigfs_pgp_hash_id(const struct sigfs_digest *d);

/* CRC-24 of RFC 4880 section 6.1. */
uint32_t sigfs_pgp_crc24(const uint8_t *p, size_t n);

/* An MPI: bit count (2 bytes) and the big-endian magnitude without leading zero bytes. */
int sigfs_pgp_put_mpi(struct sbuf *b, const uint8_t *p, size_t n);

/* A subpacket: length (1, 2 or 5 bytes, covering the type), type, data. */
int sigfs_pgp_put_subpacket(struct sbuf *b, uint8_t type, const void *p, size_t n);

/* A new-format packet: tag, length (1, 2 or 5 bytes), body. */
int sigfs_pgp_put_packet(struct sbuf *b, uint8_t tag, const uint8_t *body, size_t n);

/*
 * ASCII armor of p: "-----BEGIN PGP <label>-----", base64 in lines of 64
 * characters, the CRC-24 line, the END line.
 */
int sigfs_pgp_armor(struct sbuf *out, const char *label, const uint8_t *p, size_t n);

/* The body of k's v4 public-key packet (creation time k->created). */
int sigfs_pgp_key_body(const struct sigfs_format_key *k, struct sbuf *body, char *err);

/* v4 fingerprint: SHA-1 of 0x99 || length (2) || key body. The key ID is its last 8 bytes. */
int sigfs_pgp_fingerprint(const uint8_t *body, size_t n, uint8_t fpr[PGP_FPR_LEN]);

/* What a signature packet is made of, besides the hash state it continues. */
struct sigfs_pgp_sig {
	const struct sigfs_format_key *key;
	const uint8_t *fpr;                 /* the key's fingerprint (issuer subpackets) */
	uint8_t type;                       /* PGP_SIG_* */
	const struct sigfs_digest *digest;  /* the hash h computes; one of sigfs_pgp_hash_id()'s */
	const uint8_t *hashed;              /* hashed subpackets after creation time and issuer */
	size_t hashed_len;
	time_t created;                     /* signature creation time */
};

/*
 * A v4 signature packet (header included) into out. h holds what precedes
 * the signature's hashed part (the document, or key and user ID); it is
 * finished here with the hashed part and trailer (the caller still frees it),
 * and the key signs that digest through sign: RSA as PKCS#1 v1.5, ECDSA in
 * digest mode, Ed25519 in message mode with the digest as the message.
 */
int sigfs_pgp_signature(const struct sigfs_pgp_sig *s, struct sigfs_hasher *h, sigfs_sign_fn sign,
			void *sign_ctx, struct sbuf *out, char *err);

#endif
