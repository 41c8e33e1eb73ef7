/*
 * reply.h: what an appliance sends back, parsed. Pure functions over the
 * bounded buffer (struct sbuf), with no socket, TLS or backend state, shared
 * by link.c (HELLO and every reply's status), ctl.c and backends/appliance.c
 * (the op's fields), and fuzzed by tests/fuzz/fuzz_appliance_reply.c: an
 * appliance, or whoever holds a client's key, can send any bytes. Each
 * returns 0 or -EBADMSG for a reply that is not what proto.h lays out.
 * Bytes after the fields a function knows are left alone (a later version
 * may add fields).
 */
#ifndef SIGFS_PROTOCOL_REPLY_H
#define SIGFS_PROTOCOL_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "common/sbuf.h"
#include "protocol/proto.h"

/*
 * Whether frame f answers the request (op, id) and how: 0 for status
 * PROTO_OK (f->body is then after the status byte); -EREMOTEIO for another
 * status, in *st, with the appliance's message in msg (size bytes, one line:
 * control characters become spaces; the status name when there is none);
 * -EPROTO when f is not a reply to that request.
 */
int reply_status(struct proto_frame *f, uint8_t op, uint32_t id, uint8_t *st, char *msg,
		 size_t size);

/* HELLO: the version the appliance chose, its name, and its max_frame. */
struct reply_hello {
	uint8_t ver;
	char name[PROTO_MAX_STR + 1];
	uint32_t max_frame;
};
int reply_hello(struct sbuf *body, struct reply_hello *h);

/*
 * LISTKEYS: reply_listkeys_count gives the number of entries (never more than
 * the body can hold, so a caller may allocate for it); then one
 * reply_listkeys_entry per entry: a valid key id (id has PROTO_MAX_KEYID + 1
 * bytes), its keytype and bits.
 */
int reply_listkeys_count(struct sbuf *body, uint32_t *n);
int reply_listkeys_entry(struct sbuf *body, char id[PROTO_MAX_KEYID + 1], uint8_t *type,
			 uint16_t *bits);

/* KEYLOAD: the keytype and bits of the key the appliance took. */
int reply_keyload(struct sbuf *body, uint8_t *type, uint16_t *bits);
/* PUBKEY: the public key (EVP_PKEY_free it); the DER must be one whole SubjectPublicKeyInfo. */
int reply_pubkey(struct sbuf *body, EVP_PKEY **pk);
/* SIGN: the signature, a view into body (1 .. SIGFS_MAX_SIG bytes). */
int reply_sign(struct sbuf *body, const uint8_t **sig, size_t *len);

#endif
