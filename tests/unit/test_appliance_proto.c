/*
 * test_appliance_proto.c: the appliance protocol (appliance/proto.c) and its
 * TLS-PSK link (appliance/link.c): every op body round-trips, every malformed
 * input is refused without reading past the end, the digest ids cover exactly
 * SPEC.md's 11 digests, and a link with the right key says HELLO while a wrong
 * key, an unknown client, a closed port, a silent server and an oversized frame
 * each fail the way link.h promises.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "appliance/link.h"
#include "appliance/proto.h"
#include "common/err.h"

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
	/* Wire ids 1..11 are SPEC.md's digests, in its order; nothing else maps. */
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
	for (uint8_t st = PROTO_OK; st <= PROTO_E_BUSY; st++)
		assert_non_null(proto_status_name(st));
	assert_string_equal(proto_status_name(PROTO_E_NOKEY), "no such key");
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

/* Every op's request and OK reply body, encoded and decoded as proto.h lays them out. */
static void test_op_bodies(void **state)
{
	static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	struct proto_frame f;
	const uint8_t *p;
	struct sbuf b;
	uint8_t u8, lo, hi;
	uint16_t u16;
	uint32_t u32;
	size_t n;

	(void)state;
	/* HELLO */
	sbuf_init(&b, 4096);
	assert_int_equal(proto_begin(&b, PROTO_HELLO, 1), 0);
	assert_int_equal(sbuf_put_u8(&b, 1), 0);
	assert_int_equal(sbuf_put_u8(&b, 2), 0);
	assert_int_equal(proto_put_str(&b, "build-host"), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &lo), 0);
	assert_int_equal(sbuf_get_u8(&f.body, &hi), 0);
	assert_int_equal(lo * 10 + hi, 12);
	get_str_is(&f.body, "build-host");
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);
	assert_int_equal(proto_begin_reply(&b, PROTO_HELLO, 1, PROTO_OK, NULL), 0);
	assert_int_equal(sbuf_put_u8(&b, 1), 0);
	assert_int_equal(proto_put_str(&b, "box1"), 0);
	assert_int_equal(sbuf_put_u32be(&b, PROTO_MAX_FRAME), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(u8, 1);
	get_str_is(&f.body, "box1");
	assert_int_equal(sbuf_get_u32be(&f.body, &u32), 0);
	assert_int_equal(u32, PROTO_MAX_FRAME);
	sbuf_free(&b);

	/* LISTKEYS reply */
	assert_int_equal(proto_begin_reply(&b, PROTO_LISTKEYS, 2, PROTO_OK, NULL), 0);
	assert_int_equal(sbuf_put_u32be(&b, 2), 0);
	assert_int_equal(proto_put_str(&b, "a"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_RSA), 0);
	assert_int_equal(sbuf_put_u16be(&b, 8192), 0);
	assert_int_equal(proto_put_str(&b, "b"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_ED25519), 0);
	assert_int_equal(sbuf_put_u16be(&b, 255), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(sbuf_get_u32be(&f.body, &u32), 0);
	assert_int_equal(u32, 2);
	get_str_is(&f.body, "a");
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(u8, PROTO_KEY_RSA);
	assert_int_equal(sbuf_get_u16be(&f.body, &u16), 0);
	assert_int_equal(u16, 8192);
	get_str_is(&f.body, "b");
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(sbuf_get_u16be(&f.body, &u16), 0);
	assert_int_equal(u16, 255);
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);

	/* KEYGEN */
	assert_int_equal(proto_begin(&b, PROTO_KEYGEN, 3), 0);
	assert_int_equal(proto_put_str(&b, "k1"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_EC_P521), 0);
	assert_int_equal(sbuf_put_u16be(&b, 521), 0);
	reparse(&b, &f);
	get_str_is(&f.body, "k1");
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(u8, PROTO_KEY_EC_P521);
	assert_int_equal(sbuf_get_u16be(&f.body, &u16), 0);
	assert_int_equal(u16, 521);
	sbuf_free(&b);

	/* KEYLOAD and its reply */
	assert_int_equal(proto_begin(&b, PROTO_KEYLOAD, 4), 0);
	assert_int_equal(proto_put_str(&b, "k2"), 0);
	assert_int_equal(proto_put_blob(&b, der, sizeof(der)), 0);
	reparse(&b, &f);
	get_str_is(&f.body, "k2");
	assert_int_equal(proto_get_blob(&f.body, &p, &n), 0);
	assert_int_equal(n, sizeof(der));
	assert_memory_equal(p, der, n);
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);
	assert_int_equal(proto_begin_reply(&b, PROTO_KEYLOAD, 4, PROTO_OK, NULL), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_KEY_RSA), 0);
	assert_int_equal(sbuf_put_u16be(&b, 3072), 0);
	reparse(&b, &f);
	assert_int_equal(f.op, PROTO_KEYLOAD | PROTO_REPLY);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(sbuf_get_u16be(&f.body, &u16), 0);
	assert_int_equal(u16, 3072);
	sbuf_free(&b);

	/* PUBKEY, KEYDEL: a key id; PUBKEY's reply: a blob */
	for (uint8_t op = PROTO_PUBKEY; op <= PROTO_KEYDEL; op += PROTO_KEYDEL - PROTO_PUBKEY) {
		assert_int_equal(proto_begin(&b, op, 5), 0);
		assert_int_equal(proto_put_str(&b, "k.3"), 0);
		reparse(&b, &f);
		assert_int_equal(f.op, op);
		get_str_is(&f.body, "k.3");
		assert_int_equal(sbuf_avail(&f.body), 0);
		sbuf_free(&b);
	}
	assert_int_equal(proto_begin_reply(&b, PROTO_PUBKEY, 5, PROTO_OK, NULL), 0);
	assert_int_equal(proto_put_blob(&b, der, sizeof(der)), 0);
	reparse(&b, &f);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(proto_get_blob(&f.body, &p, &n), 0);
	assert_memory_equal(p, der, sizeof(der));
	sbuf_free(&b);

	/* SIGN and its reply */
	assert_int_equal(proto_begin(&b, PROTO_SIGN, 6), 0);
	assert_int_equal(proto_put_str(&b, "k"), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_SCHEME_RSA_PSS), 0);
	assert_int_equal(sbuf_put_u8(&b, PROTO_MD_SHA3_256), 0);
	assert_int_equal(proto_put_blob(&b, "0123456789abcdef0123456789abcdef", 32), 0);
	reparse(&b, &f);
	get_str_is(&f.body, "k");
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_int_equal(u8, PROTO_SCHEME_RSA_PSS);
	assert_int_equal(sbuf_get_u8(&f.body, &u8), 0);
	assert_string_equal(proto_digest(u8)->name, "sha3-256");
	assert_int_equal(proto_get_blob(&f.body, &p, &n), 0);
	assert_int_equal(n, 32);
	assert_int_equal(sbuf_avail(&f.body), 0);
	sbuf_free(&b);
	assert_int_equal(proto_begin_reply(&b, PROTO_SIGN, 6, PROTO_OK, NULL), 0);
	assert_int_equal(proto_put_blob(&b, der, sizeof(der)), 0);
	reparse(&b, &f);
	assert_int_equal(f.op, PROTO_SIGN | PROTO_REPLY);
	sbuf_free(&b);
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

/* A one-connection server: handshake, answer HELLO, then report how reading ended. */
struct srv {
	int lfd;
	SSL_CTX *ctx;
	pthread_t th;
	int accept_r, recv_r;
	char client[PROTO_MAX_STR + 1];
	char err[SIGFS_ERRLEN];
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct proto_frame f;
	struct sbuf in, out;
	struct link l;
	int fd = accept(s->lfd, NULL, NULL);

	assert_true(fd >= 0);
	s->accept_r = link_accept(&l, s->ctx, fd, 5000, s->err);
	if (s->accept_r < 0)
		return NULL;
	snprintf(s->client, sizeof(s->client), "%s", l.client);
	sbuf_init(&in, PROTO_MAX_FRAME + 4);
	sbuf_init(&out, 4096);
	while ((s->recv_r = link_recv(&l, &in, &f, 5000, s->err)) == 0) {
		out.len = out.off = 0;
		assert_int_equal(f.op, PROTO_HELLO);
		assert_int_equal(proto_begin_reply(&out, f.op, f.id, PROTO_OK, NULL), 0);
		assert_int_equal(sbuf_put_u8(&out, PROTO_VERSION), 0);
		assert_int_equal(proto_put_str(&out, "test-box"), 0);
		assert_int_equal(sbuf_put_u32be(&out, PROTO_MAX_FRAME), 0);
		assert_int_equal(proto_end(&out), 0);
		assert_int_equal(link_send(&l, &out, s->err), 0);
	}
	sbuf_free(&in);
	sbuf_free(&out);
	link_close(&l);
	return NULL;
}

static void srv_start(struct srv *s, char *hostport, size_t len)
{
	char err[SIGFS_ERRLEN];

	memset(s, 0, sizeof(*s));
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
	/* PROTO_MAX_FRAME + 1, big-endian. */
	static const uint8_t huge[4] = { 0x04, 0x00, 0x00, 0x01 };
	char hp[128], err[SIGFS_ERRLEN];
	struct srv s;
	struct link l;
	SSL_CTX *ctx;
	size_t w;

	(void)state;
	assert_int_equal(PROTO_MAX_FRAME + 1, 0x04000001u);
	srv_start(&s, hp, sizeof(hp));
	ctx = link_client_ctx("alice", alice_key, err);
	assert_int_equal(link_connect(&l, ctx, hp, 5000, err), 0);
	/* Only a length field: the server must refuse it before reading (or allocating) more. */
	assert_int_equal(SSL_write_ex(l.ssl, huge, sizeof(huge), &w), 1);
	srv_stop(&s);
	assert_int_equal(s.recv_r, -EMSGSIZE);
	link_close(&l);
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
		cmocka_unit_test(test_link_right_key),
		cmocka_unit_test(test_link_wrong_key),
		cmocka_unit_test(test_link_unknown_client),
		cmocka_unit_test(test_link_frame_too_large),
		cmocka_unit_test(test_link_refused_and_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
