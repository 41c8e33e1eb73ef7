/*
 * nethsm_reply.h: the NetHSM's replies, parsed (internal to backends/nethsm.c).
 * Pure functions over the bounded reply buffer: no network, no backend state,
 * so every malformed answer a NetHSM (or a man in the middle it trusts) could
 * give is tested in tests/unit/test_nethsm.c. Each returns 0 or a negative
 * errno: -EBADMSG for a reply that is not what the spec says, -ENOMEM.
 */
#ifndef SIGFS_NETHSM_REPLY_H
#define SIGFS_NETHSM_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "common/sbuf.h"

/*
 * The signature of a sign reply {"signature": BASE64}, decoded into sig,
 * which has room for *siglen bytes; *siglen becomes its length. -ENOSPC if it
 * is longer (*siglen is then the length it has).
 */
int nethsm_reply_signature(const struct sbuf *rep, uint8_t *sig, size_t *siglen);

/* The ids of a GET /keys reply [{"id": ID}, ...], as backend.h's list op gives them. */
int nethsm_reply_key_ids(const struct sbuf *rep, char ***ids, size_t *n);

/* The "message" of an error reply on one line (control characters become spaces), or "". */
void nethsm_reply_message(const struct sbuf *rep, char *msg, size_t size);

/* The public key of a public.pem reply (caller frees with EVP_PKEY_free). */
int nethsm_reply_public_pem(const struct sbuf *rep, EVP_PKEY **out);

#endif
