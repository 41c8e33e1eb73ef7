/*
 * proto.h: the sigfs appliance protocol, version 1 (docs/appliance-protocol.md
 * is the specification; this header and proto.c are its one implementation,
 * shared by the daemon, sigfs-appliance, and the appliance backend).
 *
 * Transport: TCP carrying TLS 1.3 authenticated by an external pre-shared key
 * (identity = the client's name, key = its 32-byte secret); see
 * docs/appliance-protocol.md for why PSK rather than client certificates.
 * Inside TLS, requests and replies are frames:
 *
 *   u32be len    bytes that follow this field, PROTO_HDR_LEN .. the receiver's
 *                limit (the appliance's --max-frame, announced in HELLO; at
 *                most PROTO_MAX_FRAME)
 *   u8    ver    protocol version of this frame (PROTO_VERSION)
 *   u8    op     request: an enum proto_op; reply: op | PROTO_REPLY
 *   u32be id     request id chosen by the client, echoed in the reply
 *   body         len - PROTO_HDR_LEN bytes, per op (below)
 *
 * Strings are u16be length + bytes (no NUL, at most PROTO_MAX_STR);
 * blobs are u32be length + bytes. A reply body starts with u8 status
 * (enum proto_status); when status != 0 a string with a one-line message
 * follows and nothing else. One connection carries one request at a time.
 * The first request on a connection must be HELLO. Later versions may add
 * fields at the end of a reply: clients ignore bytes after the ones they know.
 */
#ifndef SIGFS_PROTOCOL_PROTO_H
#define SIGFS_PROTOCOL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/alg.h"
#include "common/sbuf.h"

#define PROTO_VERSION 1
#define PROTO_REPLY 0x80
#define PROTO_HDR_LEN 6                    /* ver + op + id */
#define PROTO_MAX_FRAME (64u << 20)        /* the protocol's cap; appliances announce less */
#define PROTO_MAX_STR 1024
#define PROTO_MAX_KEYID 128                /* key ids: [A-Za-z0-9._-], 1..128 bytes */
#define PROTO_PSK_LEN 32

enum proto_op {
	/* body: u8 min_ver, u8 max_ver, str client.
	 * reply: u8 ver (chosen), str appliance name, u32be max_frame (the
	 * largest frame, after its length field, the appliance accepts). */
	PROTO_HELLO = 1,
	/* body: empty.  reply: u32be n, then n x (str id, u8 keytype, u16be bits). */
	PROTO_LISTKEYS = 2,
	/* body: str id, u8 keytype, u16be bits (RSA 1024..8192, multiple of 8;
	 * EC and Ed25519: the curve's size).  reply: empty. */
	PROTO_KEYGEN = 3,
	/* body: str id, blob PKCS#8 DER private key.  reply: u8 keytype, u16be bits. */
	PROTO_KEYLOAD = 4,
	/* body: str id.  reply: blob SubjectPublicKeyInfo DER. */
	PROTO_PUBKEY = 5,
	/* body: str id, u8 scheme, u8 digest, blob data (the digest value, or the
	 * message for PROTO_SCHEME_ED25519).  reply: blob signature (RSA: modulus
	 * bytes; ECDSA: DER SEQUENCE(r, s); Ed25519: 64 bytes). */
	PROTO_SIGN = 6,
	/* body: str id.  reply: empty. */
	PROTO_KEYDEL = 7,
};

enum proto_status {
	PROTO_OK = 0,
	PROTO_E_VERSION = 1,     /* no common protocol version / wrong frame version */
	PROTO_E_MALFORMED = 2,   /* frame or body does not parse */
	PROTO_E_UNKNOWN_OP = 3,
	PROTO_E_NOKEY = 4,       /* no key with that id */
	PROTO_E_EXISTS = 5,      /* keygen/keyload: id taken */
	PROTO_E_UNSUPPORTED = 6, /* key type, size, scheme or digest not offered */
	PROTO_E_MISMATCH = 7,    /* scheme does not fit the key, or data length wrong */
	PROTO_E_INTERNAL = 8,    /* the appliance failed (its log says why) */
	PROTO_E_BUSY = 9,        /* try again (e.g. shutting down) */
	PROTO_E_DENIED = 10,     /* the client's roles do not allow the op */
	PROTO_E_TOOBIG = 11,     /* the frame is over max_frame; the connection closes */
};

enum proto_keytype {
	PROTO_KEY_RSA = 1,
	PROTO_KEY_EC_P256 = 2,
	PROTO_KEY_EC_P384 = 3,
	PROTO_KEY_EC_P521 = 4,
	PROTO_KEY_ED25519 = 5,
};

enum proto_scheme {
	PROTO_SCHEME_RSA_PSS = 1,     /* MGF1 with the same digest, salt = digest length */
	PROTO_SCHEME_RSA_PKCS1 = 2,   /* EMSA-PKCS1-v1_5 with the digest's DigestInfo */
	PROTO_SCHEME_ECDSA = 3,
	PROTO_SCHEME_ED25519 = 4,     /* pure Ed25519 over the message; digest byte 0 */
};

/* Wire ids of the digests: common/alg.c's set; 0 means none (pure Ed25519). */
enum proto_digest {
	PROTO_MD_NONE = 0,
	PROTO_MD_SHA1 = 1, PROTO_MD_SHA224 = 2, PROTO_MD_SHA256 = 3, PROTO_MD_SHA384 = 4,
	PROTO_MD_SHA512 = 5, PROTO_MD_SHA512_224 = 6, PROTO_MD_SHA512_256 = 7,
	PROTO_MD_SHA3_224 = 8, PROTO_MD_SHA3_256 = 9, PROTO_MD_SHA3_384 = 10,
	PROTO_MD_SHA3_512 = 11,
};

/* Digest row <-> wire id (NULL / 0 when there is none). */
const struct sigfs_digest *proto_digest(uint8_t wire);
uint8_t proto_digest_id(const struct sigfs_digest *d);
/* "rsa", "ecdsa-p256" ... for logs; NULL if the byte is not a keytype. */
const char *proto_keytype_name(uint8_t t);
/* ctl's name of a keytype ("ec-p256"), NULL if the byte is not one; and back (-EINVAL). */
const char *proto_keytype_ctl_name(uint8_t t);
int proto_keytype_by_ctl_name(const char *name, uint8_t *type);
/* The row of common/alg.c's table a keytype is; NULL for RSA (any size) and unknown bytes. */
const struct sigfs_alg *proto_keytype_alg(uint8_t t);
/* The keytype and bits of one of sigfs's algorithms; -EINVAL if the wire has none. */
int proto_keytype_of(const struct sigfs_alg *alg, uint8_t *type, uint16_t *bits);
/* A one-line English name of a status ("no such key" ...). */
const char *proto_status_name(uint8_t st);
/* The name of an op ("SIGN"), "?" if there is none. */
const char *proto_op_name(uint8_t op);
/* True if s (len bytes) is a valid key id. */
int proto_keyid_ok(const char *s, size_t len);

/* Strings and blobs, on sbuf. get_str copies into buf (size bytes, NUL-terminated);
 * get_blob returns a pointer into b (valid while b lives). */
int proto_put_str(struct sbuf *b, const char *s);
int proto_get_str(struct sbuf *b, char *buf, size_t size);
int proto_put_blob(struct sbuf *b, const void *p, size_t n);
int proto_get_blob(struct sbuf *b, const uint8_t **p, size_t *n);

/*
 * Start a frame in b (fresh sbuf_init'd buffer): reserves the length field and
 * writes ver, op and id. proto_end fills the length in. Then send b.d, b.len.
 */
int proto_begin(struct sbuf *b, uint8_t op, uint32_t id);
int proto_end(struct sbuf *b);
/* Start a reply frame with a status; for errors, msg follows (else ignored). */
int proto_begin_reply(struct sbuf *b, uint8_t op, uint32_t id, uint8_t status, const char *msg);

/* A parsed frame header; body is a view into the received bytes. */
struct proto_frame {
	uint32_t len;           /* bytes after the length field */
	uint8_t ver, op;
	uint32_t id;
	struct sbuf body;
};
/*
 * The length field hdr of a frame, checked before anything is read or
 * allocated for it: -EBADMSG under PROTO_HDR_LEN, -EMSGSIZE over max (the
 * reader's limit) or PROTO_MAX_FRAME.
 */
int proto_frame_len(const uint8_t hdr[4], size_t max, uint32_t *len);
/*
 * Parse the len bytes that followed the length field (len checked against
 * PROTO_HDR_LEN..PROTO_MAX_FRAME by the reader before it allocates).
 */
int proto_parse(const uint8_t *p, size_t len, struct proto_frame *f);

#endif
