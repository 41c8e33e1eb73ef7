/*
 * reply.c: the appliance's replies, parsed (reply.h). Everything goes through
 * sbuf getters and proto.c's string and blob readers, so a short, long or
 * hostile reply yields -EBADMSG and never a read past its end; the callers
 * say which reply did not parse.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/alg.h"
#include "protocol/reply.h"

/* The smallest LISTKEYS entry: a one-byte id (2 + 1), keytype 1, bits 2. */
#define LIST_ENTRY_MIN 6

int reply_status(struct proto_frame *f, uint8_t op, uint32_t id, uint8_t *st, char *msg,
		 size_t size)
{
	char m[PROTO_MAX_STR + 1];

	if (f->ver != PROTO_VERSION || f->op != (uint8_t)(op | PROTO_REPLY) || f->id != id ||
	    sbuf_get_u8(&f->body, st) < 0)
		return -EPROTO;
	if (*st == PROTO_OK)
		return 0;
	if (proto_get_str(&f->body, m, sizeof(m)) < 0 || !m[0])
		snprintf(m, sizeof(m), "%s", proto_status_name(*st));
	/* The message goes into logs and .err files: one line, whatever was sent. */
	for (char *c = m; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	snprintf(msg, size, "%s", m);
	return -EREMOTEIO;
}

int reply_hello(struct sbuf *body, struct reply_hello *h)
{
	if (sbuf_get_u8(body, &h->ver) < 0 || proto_get_str(body, h->name, sizeof(h->name)) < 0 ||
	    sbuf_get_u32be(body, &h->max_frame) < 0)
		return -EBADMSG;
	return 0;
}

int reply_listkeys_count(struct sbuf *body, uint32_t *n)
{
	if (sbuf_get_u32be(body, n) < 0 || *n > sbuf_avail(body) / LIST_ENTRY_MIN)
		return -EBADMSG;
	return 0;
}

int reply_listkeys_entry(struct sbuf *body, char id[PROTO_MAX_KEYID + 1], uint8_t *type,
			 uint16_t *bits)
{
	if (proto_get_str(body, id, PROTO_MAX_KEYID + 1) < 0 || !proto_keyid_ok(id, strlen(id)) ||
	    sbuf_get_u8(body, type) < 0 || sbuf_get_u16be(body, bits) < 0)
		return -EBADMSG;
	return 0;
}

int reply_keyload(struct sbuf *body, uint8_t *type, uint16_t *bits)
{
	if (sbuf_get_u8(body, type) < 0 || sbuf_get_u16be(body, bits) < 0)
		return -EBADMSG;
	return 0;
}

int reply_pubkey(struct sbuf *body, EVP_PKEY **pk)
{
	const uint8_t *der, *p;
	size_t n;

	*pk = NULL;
	if (proto_get_blob(body, &der, &n) < 0 || n == 0 || n > LONG_MAX)
		return -EBADMSG;
	p = der;
	*pk = d2i_PUBKEY(NULL, &p, (long)n);
	ERR_clear_error();
	if (*pk && p == der + n)
		return 0;
	EVP_PKEY_free(*pk);
	*pk = NULL;
	return -EBADMSG;
}

int reply_sign(struct sbuf *body, const uint8_t **sig, size_t *len)
{
	if (proto_get_blob(body, sig, len) < 0 || *len == 0 || *len > SIGFS_MAX_SIG)
		return -EBADMSG;
	return 0;
}
