/*
 * test_appliance_proto.c: the appliance protocol (protocol/proto.c) and its
 * TLS-PSK link (protocol/link.c): every op body round-trips, every malformed
 * input is refused without reading past the end, the digest ids cover exactly
 * the 11 digests of docs/appliance-protocol.md, and a link with the right key
 * says HELLO while a wrong key, an unknown client, a closed port, a silent
 * server and an oversized frame each fail the way link.h promises. Also the
 * pure parts around the link: the clients file with its roles (clients.c), the
 * pre-authentication budget (admit.c), the frame length check, and every reply
 * parser (reply.c), including a request the appliance's announced max_frame
 * refuses and a kept-alive link the server closed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "appliance/admit.h"
#include "appliance/clients.h"
#include "common/err.h"
#include "protocol/link.h"
#include "protocol/proto.h"
#include "protocol/reply.h"

/* --- helpers ------------------------------------------------------------------ */

/* Finish frame b and parse it back (after the length field) into f. */
static void reparse(struct sbuf *b, struct proto_frame *f)
{
	uint32_t len;

	assert_int_equal(proto_end(b), 0);
	len = (uint32_t)b->d[0] << 24 | (uint32_t)b->d[1] << 16 | (uint32_t)b->d[2] << 8 | b->d[3];
	assert_int_equal(len, b->len - 4);
	assert_int_equal(proto_parse(b->d + 4, b->len - 4, f), 0);
	assert_int_equal(f->ver, PROTO_VERSION);
}

static void get_str_is(struct sbuf *b, const char *want)
{
	char s[PROTO_MAX_STR + 1];

	assert_int_equal(proto_get_str(b, s, sizeof(s)), 0);
	assert_string_equal(s, want);
}

/* --- tables ------------------------------------------------------------------- */

static void test_digest_ids(void **state)
{
	static const char *const spec[] = { "sha1", "sha224", "sha256", "sha384", "sha512",
					    "sha512-224", "sha512-256", "sha3-224", "sha3-256",
					    "sha3-384", "sha3-512" };
	const struct sigfs_digest *d;
	size_t n = 0;

	(void)state;
	/* Wire ids 1..11 are the digests of docs/appliance-protocol.md, in order; no other maps. */
	for (unsigned id = 0; id < 256; id++) {
		d = proto_digest((uint8_t)id);
		if (id == 0 || id > 11) {
			assert_null(d);
			continue;
		}
		assert_non_null(d);
		assert_string_equal(d->name, spec[id - 1]);
		assert_int_equal(proto_digest_id(d), id);
		n++;
	}
	assert_int_equal(n, 11);
	/* And every row of sigfs's digest table has an id. */
	for (size_t i = 0; (d = sigfs_digest_at(i)); i++)
		assert_ptr_equal(proto_digest(proto_digest_id(d)), d);
	assert_int_equal(proto_digest_id(NULL), PROTO_MD_NONE);
}

static void test_keytypes_and_statuses(void **state)
{
	const struct sigfs_alg *a;
	uint16_t bits;
	uint8_t t;

	(void)state;
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		assert_int_equal(proto_keytype_of(a, &t, &bits), 0);
		assert_non_null(proto_keytype_name(t));
		assert_int_equal(bits, a->bits);
	}
	assert_int_equal(proto_keytype_of(sigfs_alg_by_name("ecdsa-p384"), &t, &bits), 0);
	assert_int_equal(t, PROTO_KEY_EC_P384);
	assert_int_equal(proto_keytype_of(sigfs_alg_by_name("ed25519"), &t, &bits), 0);
	assert_int_equal(t, PROTO_KEY_ED25519);
	assert_int_equal(bits, 255);
	assert_null(proto_keytype_name(0));
	assert_null(proto_keytype_name(6));
	for (uint8_t st = PROTO_OK; st <= PROTO_E_TOOBIG; st++)
		assert_string_not_equal(proto_status_name(st), "unknown status");
	assert_string_equal(proto_status_name(PROTO_E_NOKEY), "no such key");
	assert_string_equal(proto_status_name(PROTO_E_DENIED), "not permitted");
	assert_string_equal(proto_status_name(PROTO_E_TOOBIG), "frame too large");
	assert_string_equal(proto_op_name(PROTO_KEYDEL), "KEYDEL");
	assert_string_equal(proto_op_name(0), "?");
	assert_string_equal(proto_op_name(200), "?");
	assert_string_equal(proto_status_name(200), "unknown status");
}

static void test_keyid(void **state)
{
	char id[PROTO_MAX_KEYID + 2];

	(void)state;
	assert_true(proto_keyid_ok("release-2024_v1.0", 17));
	assert_true(proto_keyid_ok("a", 1));
	memset(id, 'k', sizeof(id));
	assert_true(proto_keyid_ok(id, PROTO_MAX_KEYID));
	assert_false(proto_keyid_ok(id, PROTO_MAX_KEYID + 1));
	assert_false(proto_keyid_ok("", 0));
	assert_false(proto_keyid_ok("a/b", 3));
	assert_false(proto_keyid_ok("a b", 3));
	assert_false(proto_keyid_ok("a\nb", 3));
	assert_false(proto_keyid_ok("a\0b", 3));
	assert_false(proto_keyid_ok("k\xc3\xa9", 3));
}

/* --- strings, blobs, frames --------------------------------------------------- */

static void test_str_and_blob(void **state)
{
	char big[PROTO_MAX_STR + 2], s[8];
	static const uint8_t past_end[] = { 0x00, 0x05, 'a', 'b' };
	static const uint8_t too_long[] = { 0x04, 0x01 };
	static const uint8_t with_nul[] = { 0x00, 0x03, 'a', 0, 'b' };
	static const uint8_t blob_past[] = { 0x00, 0x00, 0x00, 0x09, 1, 2, 3 };
	static const uint8_t blob_huge[] = { 0xff, 0xff, 0xff, 0xff, 1 };
	const uint8_t *p;
	struct sbuf b;
	size_t n;

	(void)state;
	sbuf_init(&b, 4096);
	memset(big, 'x', sizeof(big));
	big[PROTO_MAX_STR] = '\0';
	assert_int_equal(proto_put_str(&b, big), 0);
	big[PROTO_MAX_STR] = 'x';
	big[PROTO_MAX_STR + 1] = '\0';
	assert_int_equal(proto_put_str(&b, big), -EINVAL);
	assert_int_equal(proto_put_str(&b, ""), 0);
	assert_int_equal(proto_put_blob(&b, "\x01\x02", 2), 0);
	assert_int_equal(proto_put_blob(&b, NULL, 0), 0);
	/* Read back: a PROTO_MAX_STR string, an empty one, two blobs. */
	big[PROTO_MAX_STR] = '\0';
	get_str_is(&b, big);
	get_str_is(&b, "");
	assert_int_equal(proto_get_blob(&b, &p, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "\x01\x02", 2);
	assert_int_equal(proto_get_blob(&b, &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(proto_get_blob(&b, &p, &n), -EBADMSG);
	assert_int_equal(proto_get_str(&b, s, sizeof(s)), -EBADMSG);
	sbuf_free(&b);

	/* A string longer than the caller's buffer is refused, not cut. */
	sbuf_init(&b, 64);
	assert_int_equal(proto_put_str(&b, "12345678"), 0);
	assert_int_equal(proto_get_str(&b, s, sizeof(s)), -EBADMSG);
	sbuf_free(&b);

	sbuf_view(&b, past_end, sizeof(past_end));
	assert_int_equal(proto_get_str(&b, big, sizeof(big)), -EBADMSG);
	sbuf_view(&b, too_long, sizeof(too_long));
	assert_int_equal(proto_get_str(&b, big, sizeof(big)), -EBADMSG);
	sbuf_view(&b, with_nul, sizeof(with_nul));
	assert_int_equal(proto_get_str(&b, big, sizeof(big)), -EBADMSG);
	sbuf_view(&b, past_end, 1);
	assert_int_equal(proto_get_str(&b, big, sizeof(big)), -EBADMSG);
	sbuf_view(&b, blob_past, sizeof(blob_past));
	assert_int_equal(proto_get_blob(&b, &p, &n), -EBADMSG);
	sbuf_view(&b, blob_huge, sizeof(blob_huge));
	assert_int_equal(proto_get_blob(&b, &p, &n), -EBADMSG);
	sbuf_view(&b, blob_huge, 3);
	assert_int_equal(proto_get_blob(&b, &p, &n), -EBADMSG);
}

static void test_frame_header(void **state)
{
	static const uint8_t hdr[] = { 1, PROTO_SIGN, 0xde, 0xad, 0xbe, 0xef, 'x' };
	struct proto_frame f;
	struct sbuf b;

	(void)state;
	assert_int_equal(proto_parse(hdr, sizeof(hdr), &f), 0);
	assert_int_equal(f.ver, 1);
	assert_int_equal(f.op, PROTO_SIGN);
	assert_int_equal(f.id, 0xdeadbeef);
	assert_int_equal(sbuf_avail(&f.body), 1);
	assert_int_equal(*sbuf_ptr(&f.body), 'x');
	/* Shorter than a header, or longer than a frame may be. */
	for (size_t n = 0; n < PROTO_HDR_LEN; n++)
		assert_int_equal(proto_parse(hdr, n, &f), -EBADMSG);
	assert_int_equal(proto_parse(hdr, (size_t)PROTO_MAX_FRAME + 1, &f), -EBADMSG);

	sbuf_init(&b, 64);
	assert_int_equal(proto_end(&b), -EINVAL);
	assert_int_equal(proto_begin(&b, PROTO_LISTKEYS, 7), 0);
	assert_int_equal(proto_begin(&b, PROTO_LISTKEYS, 8), -EINVAL);
	reparse(&b, &f);
	assert_int_equal(f.op, PROTO_LISTKEYS);
	assert_int_equal(f.id, 7);
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);
	/* A frame never outgrows its buffer. */
	sbuf_init(&b, 8);
	assert_int_equal(proto_begin(&b, PROTO_HELLO, 1), -ENOSPC);
	sbuf_free(&b);
}

static void test_replies(void **state)
{
	char msg[PROTO_MAX_STR + 200];
	struct proto_frame f;
	struct sbuf b;
	uint8_t st;

	(void)state;
	sbuf_init(&b, 4096);
	assert_int_equal(proto_begin_reply(&b, PROTO_SIGN, 9, PROTO_OK, "ignored"), 0);
	reparse(&b, &f);
	assert_int_equal(f.op, PROTO_SIGN | PROTO_REPLY);
	assert_int_equal(f.id, 9);
	assert_int_equal(sbuf_get_u8(&f.body, &st), 0);
	assert_int_equal(st, PROTO_OK);
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);

	assert_int_equal(proto_begin_reply(&b, PROTO_PUBKEY, 3, PROTO_E_NOKEY, "no key k"), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &st), 0);
	assert_int_equal(st, PROTO_E_NOKEY);
	get_str_is(&f.body, "no key k");
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);

	/* No message: the status name; an overlong one is cut to PROTO_MAX_STR. */
	assert_int_equal(proto_begin_reply(&b, PROTO_KEYDEL, 4, PROTO_E_BUSY, NULL), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &st), 0);
	get_str_is(&f.body, proto_status_name(PROTO_E_BUSY));
	sbuf_free(&b);
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	assert_int_equal(proto_begin_reply(&b, PROTO_KEYDEL, 4, PROTO_E_INTERNAL, msg), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &st), 0);
	msg[PROTO_MAX_STR] = '\0';
	get_str_is(&f.body, msg);
	sbuf_free(&b);
}

/* One field of an op body, as proto.h lays it out. */
struct field {
	enum { F_END, F_U8, F_U16, F_U32, F_STR, F_BLOB } kind;
	uint32_t num;                 /* F_U8, F_U16, F_U32; F_BLOB: its length */
	const char *str;              /* F_STR, or F_BLOB's bytes */
};

#define U8(v) { F_U8, (v), NULL }
#define U16(v) { F_U16, (v), NULL }
#define U32(v) { F_U32, (v), NULL }
#define STR(s) { F_STR, 0, (s) }
#define BLOB(p, n) { F_BLOB, (n), (const char *)(p) }

static const uint8_t op_der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };

/* A request (or, with reply, an OK reply's body after its status) of op. */
struct body_case {
	const char *what;
	uint8_t op;
	uint32_t id;
	bool reply;
	struct field fields[8];
};

static const struct body_case op_bodies[] = {
	{ "HELLO", PROTO_HELLO, 1, false, { U8(1), U8(2), STR("build-host") } },
	{ "HELLO reply", PROTO_HELLO, 1, true, { U8(1), STR("box1"), U32(PROTO_MAX_FRAME) } },
	{ "LISTKEYS reply", PROTO_LISTKEYS, 2, true,
	  { U32(2), STR("a"), U8(PROTO_KEY_RSA), U16(8192), STR("b"), U8(PROTO_KEY_ED25519),
	    U16(255) } },
	{ "KEYGEN", PROTO_KEYGEN, 3, false, { STR("k1"), U8(PROTO_KEY_EC_P521), U16(521) } },
	{ "KEYLOAD", PROTO_KEYLOAD, 4, false, { STR("k2"), BLOB(op_der, sizeof(op_der)) } },
	{ "KEYLOAD reply", PROTO_KEYLOAD, 4, true, { U8(PROTO_KEY_RSA), U16(3072) } },
	{ "PUBKEY", PROTO_PUBKEY, 5, false, { STR("k.3") } },
	{ "KEYDEL", PROTO_KEYDEL, 5, false, { STR("k.3") } },
	{ "PUBKEY reply", PROTO_PUBKEY, 5, true, { BLOB(op_der, sizeof(op_der)) } },
	{ "SIGN", PROTO_SIGN, 6, false,
	  { STR("k"), U8(PROTO_SCHEME_RSA_PSS), U8(PROTO_MD_SHA3_256),
	    BLOB("0123456789abcdef0123456789abcdef", 32) } },
	{ "SIGN reply", PROTO_SIGN, 6, true, { BLOB(op_der, sizeof(op_der)) } },
};

static void put_field(struct sbuf *b, const struct field *fl)
{
	switch (fl->kind) {
	case F_U8: assert_int_equal(sbuf_put_u8(b, (uint8_t)fl->num), 0); break;
	case F_U16: assert_int_equal(sbuf_put_u16be(b, (uint16_t)fl->num), 0); break;
	case F_U32: assert_int_equal(sbuf_put_u32be(b, fl->num), 0); break;
	case F_STR: assert_int_equal(proto_put_str(b, fl->str), 0); break;
	case F_BLOB: assert_int_equal(proto_put_blob(b, fl->str, fl->num), 0); break;
	case F_END: break;
	}
}

static void expect_field(struct sbuf *b, const struct field *fl)
{
	const uint8_t *p;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	size_t n;

	switch (fl->kind) {
	case F_U8:
		assert_int_equal(sbuf_get_u8(b, &u8), 0);
		assert_int_equal(u8, fl->num);
		break;
	case F_U16:
		assert_int_equal(sbuf_get_u16be(b, &u16), 0);
		assert_int_equal(u16, fl->num);
		break;
	case F_U32:
		assert_int_equal(sbuf_get_u32be(b, &u32), 0);
		assert_int_equal(u32, fl->num);
		break;
	case F_STR:
		get_str_is(b, fl->str);
		break;
	case F_BLOB:
		assert_int_equal(proto_get_blob(b, &p, &n), 0);
		assert_int_equal(n, fl->num);
		assert_memory_equal(p, fl->str, n);
		break;
	case F_END:
		break;
	}
}

/* Every op's request and OK reply body, encoded and decoded as proto.h lays them out. */
static void test_op_bodies(void **state)
{
	struct proto_frame f;
	struct sbuf b;
	uint8_t st;

	(void)state;
	for (size_t i = 0; i < sizeof(op_bodies) / sizeof(op_bodies[0]); i++) {
		const struct body_case *c = &op_bodies[i];

		print_message("%s\n", c->what);
		sbuf_init(&b, 4096);
		if (c->reply)
			assert_int_equal(proto_begin_reply(&b, c->op, c->id, PROTO_OK, NULL), 0);
		else
			assert_int_equal(proto_begin(&b, c->op, c->id), 0);
		for (const struct field *fl = c->fields; fl->kind != F_END; fl++)
			put_field(&b, fl);
		reparse(&b, &f);
		assert_int_equal(f.op, c->reply ? c->op | PROTO_REPLY : c->op);
		assert_int_equal(f.id, c->id);
		if (c->reply) {
			assert_int_equal(sbuf_get_u8(&f.body, &st), 0);
			assert_int_equal(st, PROTO_OK);
		}
		for (const struct field *fl = c->fields; fl->kind != F_END; fl++)
			expect_field(&f.body, fl);
		assert_int_equal(sbuf_avail(&f.body), 0);
		sbuf_free(&b);
	}
	/* SIGN's digest byte is the wire id of the digest. */
	assert_string_equal(proto_digest(PROTO_MD_SHA3_256)->name, "sha3-256");
}

/* A SIGN body cut at every byte never decodes fully. */
static void test_truncated_bodies(void **state)
{
	struct proto_frame f;
	struct sbuf b, v;
	const uint8_t *p;
	char s[PROTO_MAX_STR + 1];
	uint8_t u8;
	size_t n, full;

	(void)state;
	sbuf_init(&b, 4096);
	assert_int_equal(proto_begin(&b, PROTO_SIGN, 1), 0);
	assert_int_equal(proto_put_str(&b, "key"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_SCHEME_ECDSA), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_MD_SHA256), 0);
	assert_int_equal(proto_put_blob(&b, "0123456789abcdef0123456789abcdef", 32), 0);
	reparse(&b, &f);
	full = sbuf_avail(&f.body);
	for (size_t cut = 0; cut < full; cut++) {
		int r;

		sbuf_view(&v, sbuf_ptr(&f.body), cut);
		r = proto_get_str(&v, s, sizeof(s));
		if (r == 0)
			r = sbuf_get_u8(&v, &u8);
		if (r == 0)
			r = sbuf_get_u8(&v, &u8);
		if (r == 0)
			r = proto_get_blob(&v, &p, &n);
		assert_int_equal(r, -EBADMSG);
	}
	sbuf_free(&b);
}

/* --- clients file ------------------------------------------------------------- */

#define HEX_A "a11ce00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d"
#define HEX_B "b0b0000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d"

/* Parse text (copied: the parser writes into it); err gets the refusal. */
static int parse(const char *text, struct client **v, size_t *n, char *err)
{
	char *t = strdup(text);
	int r;

	assert_non_null(t);
	r = clients_parse("clients", t, v, n, err);
	free(t);
	return r;
}

static void test_clients_roles(void **state)
{
	static const char *const bad[] = { "", "sgn", "sign,", ",sign", "sign,,manage", "Sign",
					   "sign manage", "signx", "admin" };
	unsigned r;

	(void)state;
	assert_int_equal(clients_roles("sign", &r), 0);
	assert_int_equal(r, CLIENT_SIGN);
	assert_int_equal(clients_roles("manage", &r), 0);
	assert_int_equal(r, CLIENT_MANAGE);
	assert_int_equal(clients_roles("sign,manage", &r), 0);
	assert_int_equal(r, CLIENT_SIGN | CLIENT_MANAGE);
	assert_int_equal(clients_roles("manage,sign,sign", &r), 0);
	assert_int_equal(r, CLIENT_SIGN | CLIENT_MANAGE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(clients_roles(bad[i], &r), -EINVAL);
	assert_string_equal(clients_role_word(CLIENT_MANAGE), "manage");
	assert_string_equal(clients_role_what(CLIENT_MANAGE), "manage keys");
	assert_string_equal(clients_role_what(CLIENT_SIGN), "sign");
}

static void test_clients_parse(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct client *v;
	size_t n;

	(void)state;
	/* Old lines (no roles: sign only), roles, comments, blank lines, CRLF. */
	assert_int_equal(parse("# clients\n\nbuild1 " HEX_A "\r\n  \n\tadmin " HEX_B
			       " sign,manage\nkeeper " HEX_A " manage\n# end", &v, &n, err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "build1");
	assert_int_equal(v[0].roles, CLIENT_SIGN);
	assert_false(v[0].roles_given);
	assert_int_equal(v[0].key[0], 0xa1);
	assert_int_equal(v[0].key[31], 0x1d);
	assert_string_equal(v[1].name, "admin");
	assert_int_equal(v[1].roles, CLIENT_SIGN | CLIENT_MANAGE);
	assert_true(v[1].roles_given);
	assert_int_equal(v[2].roles, CLIENT_MANAGE);
	assert_ptr_equal(clients_find(v, n, "keeper"), &v[2]);
	assert_null(clients_find(v, n, "nobody"));
	clients_free(v, n);

	/* An empty file: no clients. */
	assert_int_equal(parse("", &v, &n, err), 0);
	assert_int_equal(n, 0);
	clients_free(v, n);

	/* Each refusal names the line, counting blank and comment lines. */
	assert_int_equal(parse("a " HEX_A "\n\n# x\nb " HEX_B " sgn\n", &v, &n, err), -EINVAL);
	assert_string_equal(err, "clients file clients, line 4: unknown role 'sgn' (roles are sign "
			    "and manage, comma-separated: sign,manage)");
	assert_int_equal(parse("a " HEX_A " sign,,manage\n", &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "line 1: unknown role ''"));
	assert_int_equal(parse("a " HEX_A " sign,\n", &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "unknown role ''"));
	assert_int_equal(parse("a " HEX_A " sign,\x01x\n", &v, &n, err), -EINVAL);
	assert_null(strchr(err, '\x01'));
	assert_int_equal(parse("a " HEX_A " sign manage\n", &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "line 1: want NAME HEX [ROLES]"));
	assert_int_equal(parse("a " HEX_A "\na " HEX_B "\n", &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "line 2: client a appears twice"));
	assert_int_equal(parse("a/b " HEX_A "\n", &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "want NAME HEX"));
	assert_int_equal(parse("a " HEX_A "0\n", &v, &n, err), -EINVAL);
	assert_int_equal(parse("a\n", &v, &n, err), -EINVAL);
	assert_int_equal(parse("a zz1ce00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d\n",
			       &v, &n, err), -EINVAL);
	assert_non_null(strstr(err, "the key must be 64 hex characters"));
}

static void test_clients_load(void **state)
{
	const char *tmp = getenv("SIGFS_TEST_TMP");
	char path[512], err[SIGFS_ERRLEN];
	struct client *v;
	size_t n;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/clients.%d", tmp ? tmp : "/tmp", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "admin %s sign,manage\n", HEX_A);
	fclose(f);
	/* Others may read it: refused, as every credential file is. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(clients_load(path, &v, &n, err), -EPERM);
	assert_non_null(strstr(err, "chmod 0600"));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(clients_load(path, &v, &n, err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].roles, CLIENT_SIGN | CLIENT_MANAGE);
	clients_free(v, n);
	unlink(path);
	assert_int_equal(clients_load(path, &v, &n, err), -ENOENT);
}

/* --- pre-authentication budget --------------------------------------------------- */

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

	s4->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	s6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	return ss;
}

static void test_admit(void **state)
{
	struct sockaddr_storage a = v4("127.0.0.2"), b = v4("127.0.0.1"), m = v6("::ffff:127.0.0.2");
	struct sockaddr_storage x1 = v6("2001:db8:1:2::1"), x2 = v6("2001:db8:1:2:ffff::9");
	struct sockaddr_storage y = v6("2001:db8:1:3::1");
	int slot[8], held;
	struct admit ad;
	char name[64];

	(void)state;
	assert_int_equal(admit_init(&ad, 4, 5), -EINVAL);
	assert_int_equal(admit_init(&ad, 4, 0), -EINVAL);
	assert_int_equal(admit_init(&ad, 6, 2), 0);
	/* Two from one address, then that address is full; another still gets in. */
	assert_true((slot[0] = admit_take(&ad, (struct sockaddr *)&a)) >= 0);
	assert_true((slot[1] = admit_take(&ad, (struct sockaddr *)&a)) >= 0);
	assert_int_equal(admit_take(&ad, (struct sockaddr *)&a), -EDQUOT);
	/* The same address mapped into IPv6 is the same source. */
	assert_int_equal(admit_take(&ad, (struct sockaddr *)&m), -EDQUOT);
	assert_true((slot[2] = admit_take(&ad, (struct sockaddr *)&b)) >= 0);
	/* An IPv6 /64 is one source; the next /64 is another. */
	assert_true((slot[3] = admit_take(&ad, (struct sockaddr *)&x1)) >= 0);
	assert_true((slot[4] = admit_take(&ad, (struct sockaddr *)&x2)) >= 0);
	assert_int_equal(admit_take(&ad, (struct sockaddr *)&x1), -EDQUOT);
	assert_true((slot[5] = admit_take(&ad, (struct sockaddr *)&y)) >= 0);
	assert_int_equal(ad.n, 6);
	/* All six taken: the total budget is full, for any source. */
	assert_int_equal(admit_take(&ad, (struct sockaddr *)&b), -ENOSPC);
	/* A slot given back can be taken again, once. */
	admit_release(&ad, slot[0]);
	admit_release(&ad, slot[0]);
	assert_int_equal(ad.n, 5);
	assert_true((held = admit_take(&ad, (struct sockaddr *)&a)) >= 0);
	assert_int_equal(admit_take(&ad, (struct sockaddr *)&a), -EDQUOT);
	admit_release(&ad, 99);
	admit_release(&ad, -1);
	assert_int_equal(ad.n, 6);
	admit_source_name((struct sockaddr *)&a, name, sizeof(name));
	assert_string_equal(name, "127.0.0.2");
	admit_source_name((struct sockaddr *)&m, name, sizeof(name));
	assert_string_equal(name, "127.0.0.2");
	admit_source_name((struct sockaddr *)&x2, name, sizeof(name));
	assert_string_equal(name, "[2001:db8:1:2::]/64");
	admit_free(&ad);
}

/* --- frame lengths and replies ----------------------------------------------------- */

static void test_frame_len(void **state)
{
	static const struct {
		uint8_t hdr[4];
		size_t max;
		int r;
	} cases[] = {
		{ { 0, 0, 0, 6 }, 100, 0 },
		{ { 0, 0, 0, 5 }, 100, -EBADMSG },
		{ { 0, 0, 0, 0 }, 100, -EBADMSG },
		{ { 0, 0, 0, 100 }, 100, 0 },
		{ { 0, 0, 0, 101 }, 100, -EMSGSIZE },
		{ { 0x04, 0, 0, 0 }, (size_t)PROTO_MAX_FRAME, 0 },
		{ { 0x04, 0, 0, 1 }, (size_t)PROTO_MAX_FRAME + 10, -EMSGSIZE },
		{ { 0xff, 0xff, 0xff, 0xff }, SIZE_MAX, -EMSGSIZE },
	};
	uint32_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(proto_frame_len(cases[i].hdr, cases[i].max, &len), cases[i].r);
	assert_int_equal(len, 0xffffffffu);
}

/* A reply frame in b for (op, id) with status st; the caller adds fields, then replies(). */
static void reply_begin(struct sbuf *b, uint8_t op, uint32_t id, uint8_t st, const char *msg)
{
	sbuf_free(b);
	sbuf_init(b, 1 << 16);
	assert_int_equal(proto_begin_reply(b, op, id, st, msg), 0);
}

static void test_reply_status(void **state)
{
	char msg[PROTO_MAX_STR + 1], small[8];
	struct proto_frame f;
	struct sbuf b;
	uint8_t st;

	(void)state;
	sbuf_init(&b, 64);
	reply_begin(&b, PROTO_SIGN, 7, PROTO_OK, NULL);
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_SIGN, 7, &st, msg, sizeof(msg)), 0);
	assert_int_equal(st, PROTO_OK);
	/* Another id, another op, a request instead of a reply: not an answer. */
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_SIGN, 8, &st, msg, sizeof(msg)), -EPROTO);
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_PUBKEY, 7, &st, msg, sizeof(msg)), -EPROTO);
	sbuf_free(&b);
	sbuf_init(&b, 64);
	assert_int_equal(proto_begin(&b, PROTO_SIGN, 7), 0);
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_SIGN, 7, &st, msg, sizeof(msg)), -EPROTO);

	/* A refusal: its message, on one line, cut to the caller's buffer. */
	reply_begin(&b, PROTO_KEYDEL, 3, PROTO_E_DENIED, "client b may\nnot\tmanage keys\x7f");
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_KEYDEL, 3, &st, msg, sizeof(msg)), -EREMOTEIO);
	assert_int_equal(st, PROTO_E_DENIED);
	assert_string_equal(msg, "client b may not manage keys ");
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_KEYDEL, 3, &st, small, sizeof(small)), -EREMOTEIO);
	assert_string_equal(small, "client ");
	/* A refusal without its message gets the status name. */
	sbuf_free(&b);
	sbuf_init(&b, 64);
	assert_int_equal(proto_begin(&b, PROTO_KEYDEL | PROTO_REPLY, 3), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_E_TOOBIG), 0);
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_KEYDEL, 3, &st, msg, sizeof(msg)), -EREMOTEIO);
	assert_string_equal(msg, "frame too large");
	sbuf_free(&b);
}

/* Finish reply b, parse it into f and step over its status. */
static void reply_parsed(struct sbuf *b, struct proto_frame *f)
{
	uint8_t st;

	reparse(b, f);
	assert_int_equal(sbuf_get_u8(&f->body, &st), 0);
}

static void test_reply_hello(void **state)
{
	struct reply_hello h;
	struct proto_frame f;
	struct sbuf b;
	uint8_t st, msg[1];

	(void)state;
	sbuf_init(&b, 64);
	/* HELLO, with a field a later version might add after max_frame. */
	reply_begin(&b, PROTO_HELLO, 1, PROTO_OK, NULL);
	assert_int_equal(sbuf_put_u8(&b, 1), 0);
	assert_int_equal(proto_put_str(&b, "box1"), 0);
	assert_int_equal(sbuf_put_u32be(&b, 1 << 20), 0);
	assert_int_equal(sbuf_put_u8(&b, 42), 0);
	reparse(&b, &f);
	assert_int_equal(reply_status(&f, PROTO_HELLO, 1, &st, (char *)msg, sizeof(msg)), 0);
	assert_int_equal(reply_hello(&f.body, &h), 0);
	assert_int_equal(h.ver, 1);
	assert_string_equal(h.name, "box1");
	assert_int_equal(h.max_frame, 1 << 20);
	/* Cut anywhere before its end, it does not parse. */
	reply_parsed(&b, &f);
	for (size_t cut = 0; cut < 1 + 2 + 4 + 4; cut++) {
		struct sbuf v;

		sbuf_view(&v, sbuf_ptr(&f.body), cut);
		assert_int_equal(reply_hello(&v, &h), -EBADMSG);
	}
	sbuf_free(&b);
}

/* A LISTKEYS reply saying count, then one entry (id, type 1, 2048 bits). */
static void listkeys_one(struct sbuf *b, struct proto_frame *f, uint32_t count, const char *id)
{
	reply_begin(b, PROTO_LISTKEYS, 2, PROTO_OK, NULL);
	assert_int_equal(sbuf_put_u32be(b, count), 0);
	assert_int_equal(proto_put_str(b, id), 0);
	assert_int_equal(sbuf_put_u8(b, 1), 0);
	assert_int_equal(sbuf_put_u16be(b, 2048), 0);
	reply_parsed(b, f);
}

static void test_reply_listkeys(void **state)
{
	char id[PROTO_MAX_KEYID + 1];
	struct proto_frame f;
	struct sbuf b;
	uint16_t bits;
	uint8_t type;
	uint32_t n;

	(void)state;
	sbuf_init(&b, 64);
	/* Two entries. */
	reply_begin(&b, PROTO_LISTKEYS, 2, PROTO_OK, NULL);
	assert_int_equal(sbuf_put_u32be(&b, 2), 0);
	assert_int_equal(proto_put_str(&b, "a"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_RSA), 0);
	assert_int_equal(sbuf_put_u16be(&b, 4096), 0);
	assert_int_equal(proto_put_str(&b, "k..import"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_ED25519), 0);
	assert_int_equal(sbuf_put_u16be(&b, 255), 0);
	reply_parsed(&b, &f);
	assert_int_equal(reply_listkeys_count(&f.body, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(reply_listkeys_entry(&f.body, id, &type, &bits), 0);
	assert_string_equal(id, "a");
	assert_int_equal(bits, 4096);
	assert_int_equal(reply_listkeys_entry(&f.body, id, &type, &bits), 0);
	assert_string_equal(id, "k..import");
	assert_int_equal(type, PROTO_KEY_ED25519);
	assert_int_equal(reply_listkeys_entry(&f.body, id, &type, &bits), -EBADMSG);
	/* A count beyond what the body holds. */
	reply_begin(&b, PROTO_LISTKEYS, 2, PROTO_OK, NULL);
	assert_int_equal(sbuf_put_u32be(&b, 3), 0);
	for (int i = 0; i < 17; i++)
		assert_int_equal(sbuf_put_u8(&b, 0), 0);
	reply_parsed(&b, &f);
	assert_int_equal(reply_listkeys_count(&f.body, &n), -EBADMSG);
	sbuf_free(&b);
}

/* Entries whose id is not a key id: the count is refused, or the entry. */
static void test_reply_listkeys_bad_ids(void **state)
{
	char id[PROTO_MAX_KEYID + 1], big[PROTO_MAX_KEYID + 2];
	const struct {
		const char *id;
		int count_r, entry_r;
	} cases[] = {
		/* Shorter than any valid entry: the count is refused. */
		{ "", -EBADMSG, 0 },
		{ "a/b", 0, -EBADMSG },
		{ "a b", 0, -EBADMSG },
		{ "k\xc3\xa9", 0, -EBADMSG },
		{ big, 0, -EBADMSG },
	};
	struct proto_frame f;
	struct sbuf b;
	uint16_t bits;
	uint8_t type;
	uint32_t n;

	(void)state;
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sbuf_init(&b, 64);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		listkeys_one(&b, &f, 1, cases[i].id);
		assert_int_equal(reply_listkeys_count(&f.body, &n), cases[i].count_r);
		if (cases[i].count_r == 0)
			assert_int_equal(reply_listkeys_entry(&f.body, id, &type, &bits),
					 cases[i].entry_r);
	}
	sbuf_free(&b);
}

static void test_reply_keyload(void **state)
{
	struct proto_frame f;
	struct sbuf b;
	uint16_t bits;
	uint8_t type;

	(void)state;
	sbuf_init(&b, 64);
	reply_begin(&b, PROTO_KEYLOAD, 4, PROTO_OK, NULL);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_EC_P384), 0);
	reply_parsed(&b, &f);
	assert_int_equal(reply_keyload(&f.body, &type, &bits), -EBADMSG);
	assert_int_equal(sbuf_put_u16be(&b, 384), 0);
	reply_parsed(&b, &f);
	assert_int_equal(reply_keyload(&f.body, &type, &bits), 0);
	assert_int_equal(bits, 384);
	sbuf_free(&b);
}

/* PUBKEY: a whole SubjectPublicKeyInfo; not with a byte more or less. */
static void test_reply_pubkey(void **state)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *got;
	unsigned char *der = NULL;
	struct proto_frame f;
	struct sbuf b;
	int dlen;

	(void)state;
	assert_non_null(pk);
	dlen = i2d_PUBKEY(pk, &der);
	assert_true(dlen > 0);
	sbuf_init(&b, 64);
	for (int extra = -1; extra <= 1; extra++) {
		reply_begin(&b, PROTO_PUBKEY, 5, PROTO_OK, NULL);
		assert_int_equal(sbuf_put_u32be(&b, (uint32_t)(dlen + extra)), 0);
		assert_int_equal(sbuf_put(&b, der, (size_t)dlen), 0);
		if (extra > 0)
			assert_int_equal(sbuf_put_u8(&b, 0), 0);
		reply_parsed(&b, &f);
		if (extra == 0) {
			assert_int_equal(reply_pubkey(&f.body, &got), 0);
			assert_int_equal(EVP_PKEY_eq(got, pk), 1);
			EVP_PKEY_free(got);
		} else {
			assert_int_equal(reply_pubkey(&f.body, &got), -EBADMSG);
			assert_null(got);
		}
	}
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	sbuf_free(&b);
}

/* SIGN: 1 .. SIGFS_MAX_SIG bytes. */
static void test_reply_sign(void **state)
{
	const uint8_t *sig;
	struct proto_frame f;
	struct sbuf b;
	size_t len;

	(void)state;
	sbuf_init(&b, 64);
	for (size_t want = 0; want <= SIGFS_MAX_SIG + 1; want += SIGFS_MAX_SIG / 2 + 1) {
		reply_begin(&b, PROTO_SIGN, 6, PROTO_OK, NULL);
		assert_int_equal(sbuf_put_u32be(&b, (uint32_t)want), 0);
		for (size_t i = 0; i < want; i++)
			assert_int_equal(sbuf_put_u8(&b, (uint8_t)i), 0);
		reply_parsed(&b, &f);
		if (want == 0 || want > SIGFS_MAX_SIG) {
			assert_int_equal(reply_sign(&f.body, &sig, &len), -EBADMSG);
		} else {
			assert_int_equal(reply_sign(&f.body, &sig, &len), 0);
			assert_int_equal(len, want);
			assert_int_equal(sig[1], 1);
		}
	}
	sbuf_free(&b);
}

/* --- link --------------------------------------------------------------------- */

static const uint8_t alice_key[PROTO_PSK_LEN] = { 0xa1, 0x1c, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t wrong_key[PROTO_PSK_LEN] = { 0xa1, 0x1c, 0xe0, 1, 2, 3, 4, 5, 6, 7, 9 };

static int lookup(void *arg, const char *client, uint8_t key[PROTO_PSK_LEN])
{
	(void)arg;
	if (strcmp(client, "alice") != 0)
		return -ENOENT;
	memcpy(key, alice_key, PROTO_PSK_LEN);
	return 0;
}

/*
 * A one-connection server: handshake, answer HELLO (announcing max_frame, or
 * PROTO_MAX_FRAME), taking frames up to recv_max (or PROTO_MAX_FRAME) and
 * waiting idle_ms (or 5 s) for each, then report how reading ended and the
 * header of the last frame.
 */
struct srv {
	int lfd;
	SSL_CTX *ctx;
	pthread_t th;
	uint32_t max_frame, recv_max;
	int idle_ms;
	int drop;                 /* connections closed at once, before the one served */
	int accept_r, recv_r;
	struct proto_frame last;
	char client[PROTO_MAX_STR + 1];
	char err[SIGFS_ERRLEN];
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct proto_frame f;
	struct sbuf in, out;
	struct link l;
	int fd;

	/* As an appliance whose handshake budget is full closes new connections. */
	for (int i = 0; i < s->drop; i++) {
		fd = accept(s->lfd, NULL, NULL);
		assert_true(fd >= 0);
		close(fd);
	}
	fd = accept(s->lfd, NULL, NULL);
	assert_true(fd >= 0);
	s->accept_r = link_accept(&l, s->ctx, fd, 5000, s->err);
	if (s->accept_r < 0)
		return NULL;
	snprintf(s->client, sizeof(s->client), "%s", l.client);
	sbuf_init(&in, (s->recv_max ? s->recv_max : PROTO_MAX_FRAME) + 4);
	sbuf_init(&out, 4096);
	while ((s->recv_r = link_recv(&l, &in, &f, s->idle_ms ? s->idle_ms : 5000, s->err)) == 0) {
		out.len = out.off = 0;
		assert_int_equal(f.op, PROTO_HELLO);
		assert_int_equal(proto_begin_reply(&out, f.op, f.id, PROTO_OK, NULL), 0);
		assert_int_equal(sbuf_put_u8(&out, PROTO_VERSION), 0);
		assert_int_equal(proto_put_str(&out, "test-box"), 0);
		assert_int_equal(sbuf_put_u32be(&out, s->max_frame ? s->max_frame : PROTO_MAX_FRAME), 0);
		assert_int_equal(proto_end(&out), 0);
		assert_int_equal(link_send(&l, &out, s->err), 0);
	}
	s->last = f;
	sbuf_free(&in);
	sbuf_free(&out);
	link_close(&l);
	return NULL;
}

/* Start s, whose max_frame, recv_max and idle_ms the caller has set (0: defaults). */
static void srv_start(struct srv *s, char *hostport, size_t len)
{
	char err[SIGFS_ERRLEN];

	s->ctx = link_server_ctx(lookup, NULL, err);
	assert_non_null(s->ctx);
	assert_int_equal(link_listen("127.0.0.1:0", &s->lfd, hostport, len, err), 0);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	link_ctx_free(s->ctx);
}

/* Connect as client with key; returns link_connect's result, the link closed. */
static int try_connect(const char *client, const uint8_t *key, struct srv *s, char *err)
{
	char hp[128];
	SSL_CTX *ctx;
	struct link l;
	int r;

	memset(s, 0, sizeof(*s));
	srv_start(s, hp, sizeof(hp));
	ctx = link_client_ctx(client, key, err);
	assert_non_null(ctx);
	r = link_connect(&l, ctx, hp, 5000, err);
	if (r == 0)
		link_close(&l);
	srv_stop(s);
	link_ctx_free(ctx);
	return r;
}

static void test_link_right_key(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct srv s;

	(void)state;
	assert_int_equal(try_connect("alice", alice_key, &s, err), 0);
	assert_int_equal(s.accept_r, 0);
	assert_string_equal(s.client, "alice");
	/* The client closed after HELLO: the server saw the peer go. */
	assert_int_equal(s.recv_r, -ECONNRESET);
}

static void test_link_wrong_key(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct srv s;

	(void)state;
	assert_int_equal(try_connect("alice", wrong_key, &s, err), -EACCES);
	assert_non_null(strstr(err, "refused client alice: wrong or unknown key"));
	assert_int_equal(s.accept_r, -EACCES);
	assert_non_null(strstr(s.err, "refused client alice"));
}

static void test_link_unknown_client(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct srv s;

	(void)state;
	assert_int_equal(try_connect("mallory", alice_key, &s, err), -EACCES);
	assert_non_null(strstr(err, "refused client mallory: wrong or unknown key"));
	assert_true(s.accept_r < 0);
}

static void test_link_frame_too_large(void **state)
{
	/* PROTO_MAX_FRAME + 1, big-endian, and a SIGN header with id 0x01020304. */
	static const uint8_t huge[4 + PROTO_HDR_LEN] = { 0x04, 0x00, 0x00, 0x01,
							 PROTO_VERSION, PROTO_SIGN, 1, 2, 3, 4 };
	char hp[128], err[SIGFS_ERRLEN];
	struct srv s = { 0 };
	struct link l;
	SSL_CTX *ctx;
	size_t w;

	(void)state;
	assert_int_equal(PROTO_MAX_FRAME + 1, 0x04000001u);
	srv_start(&s, hp, sizeof(hp));
	ctx = link_client_ctx("alice", alice_key, err);
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	/*
	 * A length field and a header: the server must refuse it before reading
	 * (or allocating) more, and know what it was, to answer it.
	 */
	assert_int_equal(SSL_write_ex(l.ssl, huge, sizeof(huge), &w), 1);
	srv_stop(&s);
	assert_int_equal(s.recv_r, -EMSGSIZE);
	assert_int_equal(s.last.len, PROTO_MAX_FRAME + 1);
	assert_int_equal(s.last.op, PROTO_SIGN);
	assert_int_equal(s.last.id, 0x01020304);
	assert_non_null(strstr(s.err, "sent a frame of 67108865 bytes (at most 67108864)"));
	link_close(&l);
	link_ctx_free(ctx);
}

/* The server's own limit (its buffer) and the one it announces to clients. */
static void test_link_max_frame(void **state)
{
	static const uint8_t over[4 + PROTO_HDR_LEN] = { 0, 0, 0x04, 0x01, PROTO_VERSION,
							 PROTO_KEYLOAD, 0, 0, 0, 9 };
	char hp[128], err[SIGFS_ERRLEN] = "";
	struct srv s = { .max_frame = 1024, .recv_max = 1024 };
	struct proto_frame f;
	struct sbuf req, buf;
	struct link l;
	SSL_CTX *ctx;
	size_t w;
	uint8_t st = 0xff;

	(void)state;
	srv_start(&s, hp, sizeof(hp));
	ctx = link_client_ctx("alice", alice_key, err);
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	assert_int_equal(l.max_frame, 1024);
	/* A request one byte over what the appliance announced is not sent. */
	sbuf_init(&req, 4096);
	sbuf_init(&buf, 4096);
	assert_int_equal(proto_begin(&req, PROTO_SIGN, 2), 0);
	while (req.len - 4 < 1025)
		assert_int_equal(sbuf_put_u8(&req, 0), 0);
	assert_int_equal(proto_end(&req), 0);
	assert_int_equal(link_call(&l, &req, &buf, &f, &st, 1000, err), -EMSGSIZE);
	assert_int_equal(st, 0xff);
	assert_non_null(strstr(err, "accepts frames of at most 1024 bytes (its --max-frame); "
			       "this SIGN request is 1025 bytes"));
	/* Sent anyway (as a foreign client might), the server refuses it at the length. */
	assert_int_equal(SSL_write_ex(l.ssl, over, sizeof(over), &w), 1);
	srv_stop(&s);
	assert_int_equal(s.recv_r, -EMSGSIZE);
	assert_int_equal(s.last.len, 1025);
	assert_int_equal(s.last.op, PROTO_KEYLOAD);
	assert_int_equal(s.last.id, 9);
	sbuf_free(&req);
	sbuf_free(&buf);
	link_close(&l);
	link_ctx_free(ctx);
}

/* A kept-alive link the server closed while it was idle is seen as such, without waiting. */
static void test_link_idle_closed(void **state)
{
	char hp[128], err[SIGFS_ERRLEN] = "";
	struct srv s = { .idle_ms = 200 };
	struct link l;
	SSL_CTX *ctx;

	(void)state;
	srv_start(&s, hp, sizeof(hp));
	ctx = link_client_ctx("alice", alice_key, err);
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	assert_int_equal(link_idle_ok(&l), 0);
	srv_stop(&s);
	assert_int_equal(s.recv_r, -ETIMEDOUT);
	assert_int_equal(link_idle_ok(&l), -ECONNRESET);
	link_close(&l);
	assert_int_equal(link_idle_ok(&l), -ECONNRESET);
	link_ctx_free(ctx);
}

/* Closed at once before the handshake (a full budget): tried again, up to 6 times. */
static void test_link_connect_retried(void **state)
{
	char hp[128], err[SIGFS_ERRLEN] = "";
	struct srv s = { .drop = 5 };
	struct link l;
	SSL_CTX *ctx;

	(void)state;
	srv_start(&s, hp, sizeof(hp));
	ctx = link_client_ctx("alice", alice_key, err);
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	link_close(&l);
	srv_stop(&s);
	assert_int_equal(s.accept_r, 0);
	/* Six closed: the connect fails, saying so. */
	s = (struct srv){ .drop = 6 };
	srv_start(&s, hp, sizeof(hp));
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), -ECONNRESET);
	assert_non_null(strstr(err, "closed the connection before the TLS handshake ended, 6 times"));
	/* The server thread waits for a seventh: give it one, with the right key. */
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	link_close(&l);
	srv_stop(&s);
	link_ctx_free(ctx);
}

static void test_link_refused_and_timeout(void **state)
{
	char hp[128], err[SIGFS_ERRLEN];
	struct link l;
	SSL_CTX *ctx;
	int lfd;

	(void)state;
	ctx = link_client_ctx("alice", alice_key, err);
	assert_non_null(ctx);
	/* A port nobody listens on (bound, closed). */
	assert_int_equal(link_listen("127.0.0.1:0", &lfd, hp, sizeof(hp), err), 0);
	close(lfd);
	assert_int_equal(link_connect(&l, ctx, hp, 2000, err), -ECONNREFUSED);
	/* A listener that never speaks TLS: the handshake times out. */
	assert_int_equal(link_listen("127.0.0.1:0", &lfd, hp, sizeof(hp), err), 0);
	assert_int_equal(link_connect(&l, ctx, hp, 300, err), -ETIMEDOUT);
	close(lfd);
	assert_int_equal(link_connect(&l, ctx, "no-port", 300, err), -EINVAL);
	assert_null(link_client_ctx("bad name", alice_key, err));
	link_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_ids),
		cmocka_unit_test(test_keytypes_and_statuses),
		cmocka_unit_test(test_keyid),
		cmocka_unit_test(test_str_and_blob),
		cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_op_bodies),
		cmocka_unit_test(test_truncated_bodies),
		cmocka_unit_test(test_clients_roles),
		cmocka_unit_test(test_clients_parse),
		cmocka_unit_test(test_clients_load),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_reply_status),
		cmocka_unit_test(test_reply_hello),
		cmocka_unit_test(test_reply_listkeys),
		cmocka_unit_test(test_reply_listkeys_bad_ids),
		cmocka_unit_test(test_reply_keyload),
		cmocka_unit_test(test_reply_pubkey),
		cmocka_unit_test(test_reply_sign),
		cmocka_unit_test(test_link_right_key),
		cmocka_unit_test(test_link_wrong_key),
		cmocka_unit_test(test_link_unknown_client),
		cmocka_unit_test(test_link_frame_too_large),
		cmocka_unit_test(test_link_max_frame),
		cmocka_unit_test(test_link_idle_closed),
		cmocka_unit_test(test_link_connect_retried),
		cmocka_unit_test(test_link_refused_and_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
