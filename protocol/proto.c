/*
 * proto.c: encoding and decoding of the appliance protocol v1 (proto.h,
 * docs/appliance-protocol.md). Everything read from the network goes through
 * sbuf getters, so a short or hostile frame yields -EBADMSG and never a read
 * past its end; the caller turns that into PROTO_E_MALFORMED.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "protocol/proto.h"

/* Wire id <-> digest name (common/alg.c): the one place the numbering lives. */
static const struct {
	uint8_t wire;
	const char *name;
} digest_ids[] = {
	{ PROTO_MD_SHA1, "sha1" },
	{ PROTO_MD_SHA224, "sha224" },
	{ PROTO_MD_SHA256, "sha256" },
	{ PROTO_MD_SHA384, "sha384" },
	{ PROTO_MD_SHA512, "sha512" },
	{ PROTO_MD_SHA512_224, "sha512-224" },
	{ PROTO_MD_SHA512_256, "sha512-256" },
	{ PROTO_MD_SHA3_224, "sha3-224" },
	{ PROTO_MD_SHA3_256, "sha3-256" },
	{ PROTO_MD_SHA3_384, "sha3-384" },
	{ PROTO_MD_SHA3_512, "sha3-512" },
};
#define N_DIGEST_IDS (sizeof(digest_ids) / sizeof(digest_ids[0]))

/*
 * Key types on the wire. Each is a row of common/alg.c's table, named as
 * there (its group and bits come from that row), except RSA, which the
 * appliance holds at any size from 1024 to 8192 bits. ctl is the name
 * `sigfs-appliance ctl` takes and prints (docs/appliance.md).
 */
static const struct {
	uint8_t type;
	const char *name;
	const char *ctl;
} keytypes[] = {
	{ PROTO_KEY_RSA, "rsa", "rsa" },
	{ PROTO_KEY_EC_P256, "ecdsa-p256", "ec-p256" },
	{ PROTO_KEY_EC_P384, "ecdsa-p384", "ec-p384" },
	{ PROTO_KEY_EC_P521, "ecdsa-p521", "ec-p521" },
	{ PROTO_KEY_ED25519, "ed25519", "ed25519" },
};
#define N_KEYTYPES (sizeof(keytypes) / sizeof(keytypes[0]))

static const char *const status_names[] = {
	[PROTO_OK] = "ok",
	[PROTO_E_VERSION] = "no common protocol version",
	[PROTO_E_MALFORMED] = "malformed request",
	[PROTO_E_UNKNOWN_OP] = "unknown operation",
	[PROTO_E_NOKEY] = "no such key",
	[PROTO_E_EXISTS] = "key exists",
	[PROTO_E_UNSUPPORTED] = "not supported",
	[PROTO_E_MISMATCH] = "does not match the key or digest",
	[PROTO_E_INTERNAL] = "appliance failure",
	[PROTO_E_BUSY] = "appliance busy",
	[PROTO_E_DENIED] = "not permitted",
	[PROTO_E_TOOBIG] = "frame too large",
};

static const char *const op_names[] = {
	[PROTO_HELLO] = "HELLO", [PROTO_LISTKEYS] = "LISTKEYS", [PROTO_KEYGEN] = "KEYGEN",
	[PROTO_KEYLOAD] = "KEYLOAD", [PROTO_PUBKEY] = "PUBKEY", [PROTO_SIGN] = "SIGN",
	[PROTO_KEYDEL] = "KEYDEL",
};

const struct sigfs_digest *proto_digest(uint8_t wire)
{
	for (size_t i = 0; i < N_DIGEST_IDS; i++)
		if (digest_ids[i].wire == wire)
			return sigfs_digest_by_name(digest_ids[i].name);
	return NULL;
}

uint8_t proto_digest_id(const struct sigfs_digest *d)
{
	if (!d)
		return PROTO_MD_NONE;
	for (size_t i = 0; i < N_DIGEST_IDS; i++)
		if (strcmp(digest_ids[i].name, d->name) == 0)
			return digest_ids[i].wire;
	return PROTO_MD_NONE;
}

const char *proto_keytype_name(uint8_t t)
{
	for (size_t i = 0; i < N_KEYTYPES; i++)
		if (keytypes[i].type == t)
			return keytypes[i].name;
	return NULL;
}

const char *proto_keytype_ctl_name(uint8_t t)
{
	for (size_t i = 0; i < N_KEYTYPES; i++)
		if (keytypes[i].type == t)
			return keytypes[i].ctl;
	return NULL;
}

int proto_keytype_by_ctl_name(const char *name, uint8_t *type)
{
	for (size_t i = 0; i < N_KEYTYPES; i++) {
		if (strcmp(keytypes[i].ctl, name) == 0) {
			*type = keytypes[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

const struct sigfs_alg *proto_keytype_alg(uint8_t t)
{
	const char *name = proto_keytype_name(t);

	return name ? sigfs_alg_by_name(name) : NULL;
}

int proto_keytype_of(const struct sigfs_alg *alg, uint8_t *type, uint16_t *bits)
{
	if (alg->kind == SIGFS_KIND_RSA) {
		*type = PROTO_KEY_RSA;
		*bits = (uint16_t)alg->bits;
		return 0;
	}
	for (size_t i = 0; i < N_KEYTYPES; i++) {
		if (strcmp(keytypes[i].name, alg->name) == 0) {
			*type = keytypes[i].type;
			*bits = (uint16_t)alg->bits;
			return 0;
		}
	}
	return -EINVAL;
}

const char *proto_status_name(uint8_t st)
{
	if (st < sizeof(status_names) / sizeof(status_names[0]))
		return status_names[st];
	return "unknown status";
}

const char *proto_op_name(uint8_t op)
{
	if (op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op])
		return op_names[op];
	return "?";
}

int proto_keyid_ok(const char *s, size_t len)
{
	if (len == 0 || len > PROTO_MAX_KEYID)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int proto_put_str(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);
	int r;

	if (n > PROTO_MAX_STR)
		return -EINVAL;
	r = sbuf_put_u16be(b, (uint16_t)n);
	return r < 0 ? r : sbuf_put(b, s, n);
}

int proto_get_str(struct sbuf *b, char *buf, size_t size)
{
	uint16_t n;
	int r = sbuf_get_u16be(b, &n);

	if (r < 0)
		return r;
	/* A NUL inside would silently shorten the string: refuse it. */
	if (n > PROTO_MAX_STR || n >= size || n > sbuf_avail(b) || memchr(sbuf_ptr(b), 0, n))
		return -EBADMSG;
	r = sbuf_get(b, buf, n);
	if (r < 0)
		return r;
	buf[n] = '\0';
	return 0;
}

int proto_put_blob(struct sbuf *b, const void *p, size_t n)
{
	int r;

	if (n > UINT32_MAX)
		return -EINVAL;
	r = sbuf_put_u32be(b, (uint32_t)n);
	return r < 0 ? r : sbuf_put(b, p, n);
}

int proto_get_blob(struct sbuf *b, const uint8_t **p, size_t *n)
{
	uint32_t len;
	int r = sbuf_get_u32be(b, &len);

	if (r < 0)
		return r;
	if (len > sbuf_avail(b))
		return -EBADMSG;
	*p = sbuf_ptr(b);
	*n = len;
	return sbuf_get(b, NULL, len);
}

int proto_begin(struct sbuf *b, uint8_t op, uint32_t id)
{
	int r;

	if (b->view || b->len != 0)
		return -EINVAL;
	if ((r = sbuf_put_u32be(b, 0)) < 0 || (r = sbuf_put_u8(b, PROTO_VERSION)) < 0 ||
	    (r = sbuf_put_u8(b, op)) < 0 || (r = sbuf_put_u32be(b, id)) < 0)
		return r;
	return 0;
}

int proto_end(struct sbuf *b)
{
	size_t len;

	if (b->view || b->len < 4 + PROTO_HDR_LEN)
		return -EINVAL;
	len = b->len - 4;
	if (len > PROTO_MAX_FRAME)
		return -EMSGSIZE;
	return sbuf_put_u32be_at(b, 0, (uint32_t)len);
}

int proto_begin_reply(struct sbuf *b, uint8_t op, uint32_t id, uint8_t status, const char *msg)
{
	char line[PROTO_MAX_STR + 1];
	int r;

	if ((r = proto_begin(b, op | PROTO_REPLY, id)) < 0 || (r = sbuf_put_u8(b, status)) < 0)
		return r;
	if (status == PROTO_OK)
		return 0;
	/* Messages are one line of at most PROTO_MAX_STR bytes: cut, never refuse. */
	snprintf(line, sizeof(line), "%s", msg ? msg : proto_status_name(status));
	return proto_put_str(b, line);
}

int proto_frame_len(const uint8_t hdr[4], size_t max, uint32_t *len)
{
	struct sbuf b;

	sbuf_view(&b, hdr, 4);
	/* Four bytes are there: the getter cannot fail. */
	sbuf_get_u32be(&b, len);
	if (*len < PROTO_HDR_LEN)
		return -EBADMSG;
	if (*len > max || *len > PROTO_MAX_FRAME)
		return -EMSGSIZE;
	return 0;
}

int proto_parse(const uint8_t *p, size_t len, struct proto_frame *f)
{
	struct sbuf b;
	int r;

	if (len < PROTO_HDR_LEN || len > PROTO_MAX_FRAME)
		return -EBADMSG;
	sbuf_view(&b, p, len);
	f->len = (uint32_t)len;
	if ((r = sbuf_get_u8(&b, &f->ver)) < 0 || (r = sbuf_get_u8(&b, &f->op)) < 0 ||
	    (r = sbuf_get_u32be(&b, &f->id)) < 0)
		return r;
	sbuf_view(&f->body, sbuf_ptr(&b), sbuf_avail(&b));
	return 0;
}
