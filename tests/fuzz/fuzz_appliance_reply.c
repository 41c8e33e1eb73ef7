/*
 * fuzz_appliance_reply.c: libFuzzer target for the client side of the
 * appliance protocol: whatever parses the bytes an appliance sends back
 * (protocol/reply.c, used by link.c, ctl.c and backends/appliance.c), so a
 * hostile appliance, or anyone holding a client's key and posing as one,
 * cannot crash sigfsd. An input is the request the reply answers and the
 * reply as it comes off the link:
 *
 *   u8 op, u32be id, then the frame: u32be len and the bytes after it
 *
 * The length field goes through proto_frame_len as link_recv checks it, the
 * frame (cut to what the input holds) is copied to a buffer of its own size
 * so ASan sees any read past its end, then reply_status and, for a status 0,
 * the parser of op's fields run. Besides ASan and UBSan findings, it aborts
 * when a parser's result breaks what reply.h promises: a message that is not
 * one line within its buffer, a key id that is not valid, a LISTKEYS count
 * larger than the body can hold, a signature or key outside the body.
 *
 * The seeds in corpus-appliance-reply/ are real replies: the requests of
 * corpus-appliance/ served by appliance/server.c (as fuzz_appliance.c serves
 * them), each reply written with its request's op and id in front; plus a
 * refusal of each kind (not permitted, frame too large). Built by
 * tests/fuzz/run.sh.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/alg.h"
#include "protocol/proto.h"
#include "protocol/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p (n bytes) must lie inside body's bytes. */
static void inside(const struct sbuf *body, const uint8_t *p, size_t n)
{
	if (p < body->d || n > body->len || (size_t)(p - body->d) > body->len - n)
		abort();
}

/* A message reply_status gave: one line, NUL-terminated within size bytes, not empty. */
static void one_line(const char *msg, size_t size)
{
	size_t n = strnlen(msg, size);

	if (n == 0 || n == size)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			abort();
}

static void fields(uint8_t op, struct sbuf *body)
{
	char id[PROTO_MAX_KEYID + 1];
	struct reply_hello h;
	const uint8_t *sig;
	EVP_PKEY *pk;
	uint16_t bits;
	uint8_t type;
	uint32_t n;
	size_t len;

	switch (op) {
	case PROTO_HELLO:
		if (reply_hello(body, &h) == 0 && strnlen(h.name, sizeof(h.name)) > PROTO_MAX_STR)
			abort();
		break;
	case PROTO_LISTKEYS:
		if (reply_listkeys_count(body, &n) < 0)
			break;
		if (n > sbuf_avail(body))
			abort();
		for (uint32_t k = 0; k < n && reply_listkeys_entry(body, id, &type, &bits) == 0; k++)
			if (!proto_keyid_ok(id, strlen(id)))
				abort();
		break;
	case PROTO_KEYLOAD:
		reply_keyload(body, &type, &bits);
		break;
	case PROTO_PUBKEY:
		if (reply_pubkey(body, &pk) == 0) {
			if (!pk)
				abort();
			EVP_PKEY_free(pk);
		}
		break;
	case PROTO_SIGN:
		if (reply_sign(body, &sig, &len) == 0) {
			if (len == 0 || len > SIGFS_MAX_SIG)
				abort();
			inside(body, sig, len);
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[PROTO_MAX_STR + 1], small[40];
	struct proto_frame f, g;
	uint8_t op, st, st2;
	uint32_t id, len;
	uint8_t *frame;
	int r;

	if (size < 9)
		return 0;
	op = data[0];
	id = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
	if (proto_frame_len(data + 5, PROTO_MAX_FRAME, &len) < 0)
		return 0;
	data += 9;
	size -= 9;
	if (len > size)
		len = (uint32_t)size;
	frame = malloc(len ? len : 1);
	if (!frame)
		abort();
	memcpy(frame, data, len);
	if (proto_parse(frame, len, &f) == 0) {
		g = f;
		r = reply_status(&f, op, id, &st, msg, sizeof(msg));
		if (r == -EREMOTEIO)
			one_line(msg, sizeof(msg));
		else if (r == 0 && st != PROTO_OK)
			abort();
		else if (r == 0)
			fields(op, &f.body);
		/* The same reply, with a message buffer shorter than the message may be. */
		if (reply_status(&g, op, id, &st2, small, sizeof(small)) != r)
			abort();
		if (r == -EREMOTEIO)
			one_line(small, sizeof(small));
	}
	free(frame);
	return 0;
}
