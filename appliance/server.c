/*
 * server.c: the appliance's request handling (server.h): one static function
 * per operation of proto.h, in one table, and server_serve, which checks the
 * frame, runs the operation and encodes the reply. Bodies are read through
 * sbuf and must be consumed exactly; every refusal carries a one-line reason
 * for the client and the log. Sockets, TLS and threads stay in main.c.
 */
#include <errno.h>
#include <limits.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "appliance/server.h"
#include "appliance/store.h"
#include "common/err.h"
#include "common/log.h"
#include "protocol/proto.h"

void server_vlog(const struct server *s, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(s->log, "sigfs-appliance %s: %s\n", s->name, line);
}

static void slog(const struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void slog(const struct server *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	server_vlog(s, fmt, ap);
	va_end(ap);
}

/* One request being served: its body, the reply body, and what the log line says. */
struct req {
	const struct server *s;
	const char *client;           /* the TLS identity */
	struct sbuf *body;
	struct sbuf *rep;             /* the reply frame, after its status byte */
	char key[PROTO_MAX_STR + 1];  /* key id for the log line, "" if none */
	char msg[SIGFS_ERRLEN];       /* error message for the reply */
};

static uint8_t fail(struct req *q, uint8_t st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static uint8_t fail(struct req *q, uint8_t st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
	va_end(ap);
	return st;
}

static uint8_t malformed(struct req *q)
{
	return fail(q, PROTO_E_MALFORMED, "request body does not parse");
}

/* The body must be fully consumed: trailing bytes are a malformed request. */
static bool body_done(struct req *q)
{
	return sbuf_avail(q->body) == 0;
}

/* Read a key id into q->key; PROTO_OK or the status to reply. */
static uint8_t get_keyid(struct req *q)
{
	char esc[SIGFS_ESCAPED_MAX];

	if (proto_get_str(q->body, q->key, sizeof(q->key)) < 0)
		return malformed(q);
	if (!proto_keyid_ok(q->key, strlen(q->key)))
		return fail(q, PROTO_E_MALFORMED, "key id '%.200s' is not valid (1 to %d of A-Z a-z "
			    "0-9 . _ -)", sigfs_escape(q->key, esc, sizeof(esc)), PROTO_MAX_KEYID);
	return PROTO_OK;
}

static uint8_t op_hello(struct req *q)
{
	char client[PROTO_MAX_STR + 1];
	uint8_t lo, hi;
	int r = 0;

	if (sbuf_get_u8(q->body, &lo) < 0 || sbuf_get_u8(q->body, &hi) < 0 ||
	    proto_get_str(q->body, client, sizeof(client)) < 0 || !body_done(q) || lo > hi)
		return malformed(q);
	if (lo > PROTO_VERSION || hi < PROTO_VERSION)
		return fail(q, PROTO_E_VERSION, "this appliance speaks protocol version %d; the "
			    "client offers %u..%u", PROTO_VERSION, lo, hi);
	if (strcmp(client, q->client) != 0)
		return fail(q, PROTO_E_MALFORMED, "HELLO names another client than the TLS key's");
	if ((r = sbuf_put_u8(q->rep, PROTO_VERSION)) < 0 || (r = proto_put_str(q->rep, q->s->name)) < 0 ||
	    (r = sbuf_put_u32be(q->rep, q->s->max_frame)) < 0)
		return fail(q, PROTO_E_INTERNAL, "cannot encode the reply");
	return PROTO_OK;
}

/* LISTKEYS reply under construction. */
struct listing {
	struct sbuf *rep;
	uint32_t n;
};

static int list_one(void *arg, const struct store_key *k)
{
	struct listing *ls = arg;
	int r;

	if ((r = proto_put_str(ls->rep, k->id)) < 0 || (r = sbuf_put_u8(ls->rep, k->type)) < 0 ||
	    (r = sbuf_put_u16be(ls->rep, k->bits)) < 0)
		return r;
	ls->n++;
	return 0;
}

static uint8_t op_listkeys(struct req *q)
{
	struct listing ls = { .rep = q->rep };
	size_t at = q->rep->len;

	if (!body_done(q))
		return malformed(q);
	if (sbuf_put_u32be(q->rep, 0) < 0 || store_each(q->s->store, list_one, &ls) < 0)
		return fail(q, PROTO_E_INTERNAL, "the key list does not fit a frame of %u bytes "
			    "(--max-frame)", q->s->max_frame);
	/* The count goes first, known once every key is written (its 4 bytes are, above). */
	sbuf_put_u32be_at(q->rep, at, ls.n);
	return PROTO_OK;
}

/* Add pk as q->key; the status for the reply. */
static uint8_t add_key(struct req *q, EVP_PKEY *pk)
{
	char err[SIGFS_ERRLEN];
	int r = store_add(q->s->store, q->key, pk, err);

	if (r == -EEXIST)
		return fail(q, PROTO_E_EXISTS, "key %s exists", q->key);
	if (r < 0) {
		slog(q->s, "%s", err);
		return fail(q, PROTO_E_INTERNAL, "cannot store key %s", q->key);
	}
	return PROTO_OK;
}

static uint8_t op_keygen(struct req *q)
{
	const struct sigfs_alg *alg;
	EVP_PKEY *pk = NULL;
	uint8_t type, st;
	uint16_t bits;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (sbuf_get_u8(q->body, &type) < 0 || sbuf_get_u16be(q->body, &bits) < 0 || !body_done(q))
		return malformed(q);
	if (!proto_keytype_name(type))
		return fail(q, PROTO_E_UNSUPPORTED, "key type %u is not offered", type);
	alg = proto_keytype_alg(type);
	if (!alg && (bits < 1024 || bits > 8192 || bits % 8))
		return fail(q, PROTO_E_UNSUPPORTED, "RSA-%u: RSA keys are 1024 to 8192 bits, a "
			    "multiple of 8", bits);
	if (alg && bits != alg->bits)
		return fail(q, PROTO_E_UNSUPPORTED, "%s keys have %d bits, not %u",
			    proto_keytype_name(type), alg->bits, bits);
	if (store_has(q->s->store, q->key))
		return fail(q, PROTO_E_EXISTS, "key %s exists", q->key);
	/* Seconds for RSA-8192: made without any lock, added under the write lock. */
	pk = alg ? sigfs_keygen(alg->kind, alg->group, alg->bits) :
		   sigfs_keygen(SIGFS_KIND_RSA, NULL, bits);
	if (!pk) {
		ERR_clear_error();
		return fail(q, PROTO_E_INTERNAL, "key generation failed");
	}
	st = add_key(q, pk);
	EVP_PKEY_free(pk);
	return st;
}

static uint8_t op_keyload(struct req *q)
{
	char why[SIGFS_ERRLEN];
	PKCS8_PRIV_KEY_INFO *p8;
	const uint8_t *der, *p;
	EVP_PKEY *pk = NULL;
	uint8_t st, type;
	uint16_t bits;
	size_t n;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (proto_get_blob(q->body, &der, &n) < 0 || !body_done(q) || n > LONG_MAX)
		return malformed(q);
	p = der;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)n);
	if (p8 && p == der + n)
		pk = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	ERR_clear_error();
	if (!pk)
		return fail(q, PROTO_E_MALFORMED, "the key is not an unencrypted PKCS#8 DER private "
			    "key");
	if (store_key_info(pk, &type, &bits, why) < 0)
		st = fail(q, PROTO_E_UNSUPPORTED, "%s", why);
	else
		st = add_key(q, pk);
	if (st == PROTO_OK && (sbuf_put_u8(q->rep, type) < 0 || sbuf_put_u16be(q->rep, bits) < 0))
		st = fail(q, PROTO_E_INTERNAL, "cannot encode the reply");
	EVP_PKEY_free(pk);
	return st;
}

/* Take a reference to key q->key; the status for the reply. */
static uint8_t get_key(struct req *q, EVP_PKEY **pk, uint8_t *type, uint16_t *bits)
{
	if (store_get(q->s->store, q->key, pk, type, bits) < 0)
		return fail(q, PROTO_E_NOKEY, "no key %s", q->key);
	return PROTO_OK;
}

static uint8_t op_pubkey(struct req *q)
{
	unsigned char *der = NULL;
	EVP_PKEY *pk;
	uint8_t st, type;
	uint16_t bits;
	int n;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (!body_done(q))
		return malformed(q);
	if ((st = get_key(q, &pk, &type, &bits)) != PROTO_OK)
		return st;
	n = i2d_PUBKEY(pk, &der);
	if (n <= 0 || proto_put_blob(q->rep, der, (size_t)n) < 0)
		st = fail(q, PROTO_E_INTERNAL, "cannot encode the public key");
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return st;
}

/* The key type a scheme needs: RSA, EC (any curve) or Ed25519. */
static bool scheme_fits(uint8_t scheme, uint8_t type)
{
	switch (scheme) {
	case PROTO_SCHEME_RSA_PSS:
	case PROTO_SCHEME_RSA_PKCS1:
		return type == PROTO_KEY_RSA;
	case PROTO_SCHEME_ECDSA:
		return type == PROTO_KEY_EC_P256 || type == PROTO_KEY_EC_P384 ||
		       type == PROTO_KEY_EC_P521;
	default:
		return type == PROTO_KEY_ED25519;
	}
}

/* The private-key operation: one engine, held only for it. */
static int sign_with_engine(sem_t *engines, EVP_PKEY *pk, uint8_t scheme, const EVP_MD *md,
			    const uint8_t *data, size_t n, uint8_t *sig, size_t *siglen)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	while (sem_wait(engines) < 0 && errno == EINTR)
		;
	if (scheme == PROTO_SCHEME_ED25519) {
		mc = EVP_MD_CTX_new();
		ok = mc && EVP_DigestSignInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestSign(mc, sig, siglen, data, n) == 1;
	} else {
		pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		ok = pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_CTX_set_signature_md(pc, md) == 1;
		if (ok && scheme == PROTO_SCHEME_RSA_PSS)
			ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
			     EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) == 1 &&
			     EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1;
		else if (ok && scheme == PROTO_SCHEME_RSA_PKCS1)
			ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1;
		ok = ok && EVP_PKEY_sign(pc, sig, siglen, data, n) == 1;
	}
	sem_post(engines);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_CTX_free(pc);
	ERR_clear_error();
	return ok ? 0 : -EIO;
}

static const char *const scheme_names[] = {
	[PROTO_SCHEME_RSA_PSS] = "RSA-PSS", [PROTO_SCHEME_RSA_PKCS1] = "RSA-PKCS1",
	[PROTO_SCHEME_ECDSA] = "ECDSA", [PROTO_SCHEME_ED25519] = "Ed25519",
};

/* Whether scheme, digest and data length fit the key; *d gets the digest row. */
static uint8_t check_sign(struct req *q, uint8_t scheme, uint8_t dig, size_t n, uint8_t type,
			  uint16_t bits, const struct sigfs_digest **dp)
{
	const struct sigfs_digest *d = NULL;

	if (scheme < PROTO_SCHEME_RSA_PSS || scheme > PROTO_SCHEME_ED25519)
		return fail(q, PROTO_E_UNSUPPORTED, "scheme %u is not offered", scheme);
	if (!scheme_fits(scheme, type))
		return fail(q, PROTO_E_MISMATCH, "key %s is %s-%u: %s does not fit it", q->key,
			    proto_keytype_name(type), bits, scheme_names[scheme]);
	if (scheme == PROTO_SCHEME_ED25519) {
		if (dig != PROTO_MD_NONE)
			return fail(q, PROTO_E_MISMATCH, "Ed25519 signs the message itself: digest "
				    "must be 0, not %u", dig);
		*dp = NULL;
		return PROTO_OK;
	}
	d = proto_digest(dig);
	if (!d)
		return fail(q, PROTO_E_UNSUPPORTED, "digest %u is not offered", dig);
	if (n != d->len)
		return fail(q, PROTO_E_MISMATCH, "the data is %zu bytes; a %s digest is %zu", n,
			    d->name, d->len);
	/* EMSA-PSS needs room for the digest, a salt as long, and 2 bytes. */
	if (scheme == PROTO_SCHEME_RSA_PSS && (bits + 6u) / 8u < 2 * d->len + 2)
		return fail(q, PROTO_E_MISMATCH, "RSA-%u is too small for PSS with %s (salt = "
			    "digest length)", bits, d->name);
	*dp = d;
	return PROTO_OK;
}

static uint8_t op_sign(struct req *q)
{
	const struct sigfs_digest *d = NULL;
	uint8_t st, scheme, dig, type, sig[SIGFS_MAX_SIG + 64];
	size_t n, siglen = sizeof(sig);
	const uint8_t *data;
	EVP_PKEY *pk;
	uint16_t bits;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (sbuf_get_u8(q->body, &scheme) < 0 || sbuf_get_u8(q->body, &dig) < 0 ||
	    proto_get_blob(q->body, &data, &n) < 0 || !body_done(q))
		return malformed(q);
	if ((st = get_key(q, &pk, &type, &bits)) != PROTO_OK)
		return st;
	st = check_sign(q, scheme, dig, n, type, bits, &d);
	if (st == PROTO_OK && sign_with_engine(q->s->engines, pk, scheme,
					       d ? sigfs_digest_md(d) : NULL, data, n, sig, &siglen) < 0)
		st = fail(q, PROTO_E_INTERNAL, "signing with key %s failed", q->key);
	else if (st == PROTO_OK && proto_put_blob(q->rep, sig, siglen) < 0)
		st = fail(q, PROTO_E_INTERNAL, "cannot encode the reply");
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(sig, sizeof(sig));
	return st;
}

static uint8_t op_keydel(struct req *q)
{
	char err[SIGFS_ERRLEN];
	uint8_t st;
	int r;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (!body_done(q))
		return malformed(q);
	r = store_del(q->s->store, q->key, err);
	if (r == -ENOENT)
		return fail(q, PROTO_E_NOKEY, "no key %s", q->key);
	if (r < 0) {
		slog(q->s, "%s", err);
		return fail(q, PROTO_E_INTERNAL, "cannot delete key %s", q->key);
	}
	return PROTO_OK;
}

/* Every op: its function and the role it needs (0: the TLS key is enough). */
static const struct op {
	uint8_t op;
	unsigned role;
	uint8_t (*fn)(struct req *q);
} ops[] = {
	{ PROTO_HELLO, 0, op_hello },
	{ PROTO_LISTKEYS, 0, op_listkeys },
	{ PROTO_KEYGEN, CLIENT_MANAGE, op_keygen },
	{ PROTO_KEYLOAD, CLIENT_MANAGE, op_keyload },
	{ PROTO_PUBKEY, 0, op_pubkey },
	{ PROTO_SIGN, CLIENT_SIGN, op_sign },
	{ PROTO_KEYDEL, CLIENT_MANAGE, op_keydel },
};

bool server_serve(const struct server *s, const char *client, unsigned roles,
		  const struct proto_frame *f, bool *greeted, struct sbuf *out)
{
	struct req q = { .s = s, .client = client, .rep = out };
	struct sbuf body = f->body;
	const struct op *op = NULL;
	char esc[SIGFS_ESCAPED_MAX];
	bool keep = true;
	uint8_t st;

	q.body = &body;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == f->op)
			op = &ops[i];
	/* The op writes its fields after an OK status; a refusal starts the frame again. */
	out->len = out->off = 0;
	if (proto_begin_reply(out, f->op, f->id, PROTO_OK, NULL) < 0) {
		st = fail(&q, PROTO_E_INTERNAL, "the reply does not fit a frame");
	} else if (f->ver != PROTO_VERSION) {
		st = fail(&q, PROTO_E_VERSION, "frame version %u; this appliance speaks %d",
			  f->ver, PROTO_VERSION);
		keep = false;
	} else if (!*greeted && f->op != PROTO_HELLO) {
		st = fail(&q, PROTO_E_MALFORMED, "the first request must be HELLO");
		keep = false;
	} else if (!op) {
		st = fail(&q, PROTO_E_UNKNOWN_OP, "operation %u is not known", f->op);
	} else if (op->role & ~roles) {
		st = fail(&q, PROTO_E_DENIED, "client %s may not %s; add %s to its line in the "
			  "clients file", client, clients_role_what(op->role),
			  clients_role_word(op->role));
	} else {
		st = op->fn(&q);
		if (f->op == PROTO_HELLO)
			keep = *greeted = st == PROTO_OK;
	}
	if (st != PROTO_OK || s->verbose) {
		char line[SIGFS_ERRLEN + 512];

		snprintf(line, sizeof(line), "client %s op %s key %s status %u", client,
			 proto_op_name(f->op), q.key[0] ? sigfs_escape(q.key, esc, sizeof(esc)) : "-",
			 st);
		if (st != PROTO_OK)
			slog(s, "%s: %s", line, q.msg);
		else
			slog(s, "%s", line);
	}
	if (st != PROTO_OK) {
		out->len = out->off = 0;
		proto_begin_reply(out, f->op, f->id, st, q.msg);
	}
	if (proto_end(out) < 0) {
		out->len = out->off = 0;
		proto_begin_reply(out, f->op, f->id, PROTO_E_INTERNAL, "the reply does not fit a frame");
		proto_end(out);
	}
	return keep;
}
