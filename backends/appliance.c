/*
 * appliance.c: keys held by one or more sigfs-appliance daemons (SEGGER-style
 * signing appliances), spoken to with the sigfs appliance protocol
 * (protocol/proto.h, docs/appliance-protocol.md) over TLS 1.3 with a
 * pre-shared key (protocol/link.h). Settings of [backend NAME]: appliances
 * (HOST:PORT, ...), client, secret_file (64 hex digits), retry_seconds,
 * timeout_seconds; docs/backend-appliance.md describes them.
 *
 * All appliances of a backend hold the same keys, so any of them can sign any
 * job. Each signer worker keeps one connection per appliance and key
 * management one more, each under a mutex, kept open between requests; one
 * the appliance closed while idle (its --idle-seconds) is replaced before the
 * next request, which is neither a failure nor a failover. A job
 * goes to the live appliance with the fewest requests in flight. A transport
 * error marks that appliance down for a short, growing backoff and the job
 * moves to another one at once (signing is idempotent); when none is left the
 * job waits, with backoff, for retry_seconds. A refused credential fails at
 * once: waiting does not fix it.
 *
 * Keys are created on every appliance or on none. With one appliance KEYGEN
 * makes the key inside it; with several, sigfsd generates it in memory, loads
 * it into each (KEYLOAD) and wipes it, because the appliances cannot copy keys
 * between themselves (docs/backend-appliance.md says why this is acceptable).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secret.h"
#include "protocol/link.h"
#include "protocol/proto.h"
#include "protocol/reply.h"

extern const struct sigfs_backend_ops sigfs_backend_appliance;

#define MAX_APPLIANCES 16
#define ADDR_MAX 256
#define CONNECT_MS_MAX 5000            /* a blackholed appliance must not hold a job long */
#define KEYGEN_MS_MIN 120000           /* RSA-8192 keygen on a small board takes a minute */
#define DOWN_MS_FIRST 500
#define DOWN_MS_MAX 5000
#define WAIT_MS_FIRST 100
#define WIRE_ID_MAX (PROTO_MAX_KEYID + 1)
#define REASON_MAX 48

struct appl {
	char addr[ADDR_MAX];          /* as configured: HOST:PORT, [V6]:PORT */
	atomic_uint inflight;
	atomic_uint max_frame;        /* its HELLO's max_frame; 0 until a link says */
	pthread_mutex_t lock;         /* down, down_until, backoff */
	bool down;
	long down_until, backoff;     /* ms */
};

/* One connection: worker w's to appliance i is slot[w * napp + i]. */
struct slot {
	pthread_mutex_t lock;
	struct link l;
	bool open;
};

struct ab {
	char name[64];
	char client[PROTO_MAX_STR + 1];
	SSL_CTX *ctx;
	unsigned napp;
	struct appl app[MAX_APPLIANCES];
	unsigned nrow;                /* workers + 1; the last row is for key management */
	struct slot *slot;
	long retry_ms;
	int timeout_ms;
	atomic_uint *rr;              /* per row: rotates the start of its tie-break */
	atomic_uint reqid;
};

/* A request and its reply: both bounded by the protocol's frame size. */
struct xfer {
	struct sbuf req, rep;
	struct proto_frame f;
	uint8_t st;
};

static void xfer_init(struct xfer *x)
{
	*x = (struct xfer){ 0 };
	sbuf_init(&x->req, PROTO_MAX_FRAME + 4);
	sbuf_init(&x->rep, PROTO_MAX_FRAME + 4);
}

/* sbuf_free wipes: a KEYLOAD request holds a private key. */
static void xfer_free(struct xfer *x)
{
	sbuf_free(&x->req);
	sbuf_free(&x->rep);
}

static int oom(const struct ab *p, char *err)
{
	return sigfs_seterr(err, -ENOMEM, "appliance backend %s: out of memory", p->name);
}

static unsigned admin_row(const struct ab *p)
{
	return p->nrow - 1;
}

/* --- appliance state ---------------------------------------------------------- */

static bool is_live(struct appl *a, long now)
{
	bool live;

	pthread_mutex_lock(&a->lock);
	live = !a->down || now >= a->down_until;
	pthread_mutex_unlock(&a->lock);
	return live;
}

static void mark_down(const struct ab *p, struct appl *a, const char *why)
{
	pthread_mutex_lock(&a->lock);
	if (!a->down) {
		a->down = true;
		a->backoff = DOWN_MS_FIRST;
		log_warn("appliance backend %s: appliance %s is down, the others take its jobs: %s",
			 p->name, a->addr, why);
	} else {
		a->backoff = a->backoff * 2 > DOWN_MS_MAX ? DOWN_MS_MAX : a->backoff * 2;
	}
	a->down_until = sigfs_backend_now_ms() + a->backoff;
	pthread_mutex_unlock(&a->lock);
}

static void mark_up(const struct ab *p, struct appl *a)
{
	pthread_mutex_lock(&a->lock);
	if (a->down) {
		a->down = false;
		log_warn("appliance backend %s: appliance %s is back", p->name, a->addr);
	}
	pthread_mutex_unlock(&a->lock);
}

/*
 * The appliance for the next attempt of a job on row (a worker, or key
 * management), not in skip: a live one before a down one, then the fewest
 * requests in flight; ties go to the first from (row + the row's rotating
 * counter) % napp. The counter is per row: one shared counter would advance in
 * step with jobs handed to workers in turn and keep the start fixed. -1 if
 * all are skipped.
 */
static int pick(struct ab *p, unsigned row, uint32_t skip)
{
	unsigned start = (row + atomic_fetch_add(&p->rr[row], 1)) % p->napp;
	unsigned long best_rank = ULONG_MAX, rank;
	long now = sigfs_backend_now_ms();
	int best = -1;

	for (unsigned k = 0; k < p->napp; k++) {
		unsigned i = (start + k) % p->napp;

		if (skip & (1u << i))
			continue;
		rank = atomic_load(&p->app[i].inflight);
		if (!is_live(&p->app[i], now))
			rank += 1ul << 24;
		if (rank < best_rank) {
			best_rank = rank;
			best = (int)i;
		}
	}
	return best;
}

/* --- one request on one appliance ------------------------------------------------ */

/*
 * Send x->req to appliance i over row's connection and wait for the reply.
 * The connection is made if there is none; a kept-alive one the appliance
 * closed while idle is replaced first (link_idle_ok), and one that fails
 * other than by timeout is replaced once, as the appliance may have closed or
 * restarted just as the request went out. Returns 0 (x->f.body after the
 * status), -EREMOTEIO with x->st and the appliance's message in err,
 * -EMSGSIZE (the request is over its max_frame: not sent), or -EACCES (it
 * refused our key); anything else (refused, reset, timeout, TLS or protocol
 * failure) is a transport error, after which the appliance is marked down
 * and the connection closed.
 */
static int call_one(struct ab *p, unsigned row, unsigned i, struct xfer *x, int timeout_ms,
		    char *err)
{
	struct slot *c = &p->slot[row * p->napp + i];
	struct appl *a = &p->app[i];
	bool fresh;
	int r;

	atomic_fetch_add(&a->inflight, 1);
	pthread_mutex_lock(&c->lock);
	if (c->open && link_idle_ok(&c->l) < 0) {
		link_close(&c->l);
		c->open = false;
	}
	for (int attempt = 0;; attempt++) {
		fresh = !c->open;
		if (fresh) {
			r = link_connect(&c->l, p->ctx, a->addr,
					 timeout_ms < CONNECT_MS_MAX ? timeout_ms : CONNECT_MS_MAX, err);
			if (r < 0)
				break;
			c->open = true;
			atomic_store(&a->max_frame, c->l.max_frame);
		}
		x->st = PROTO_OK;
		r = link_call(&c->l, &x->req, &x->rep, &x->f, &x->st, timeout_ms, err);
		if (r == 0 || r == -EREMOTEIO || r == -EMSGSIZE)
			break;
		link_close(&c->l);
		c->open = false;
		/* A timeout is the appliance, not a stale connection: do not wait twice. */
		if (fresh || attempt > 0 || r == -ETIMEDOUT)
			break;
	}
	/* The appliance closes the connection after these two (proto.h). */
	if (r == -EREMOTEIO && (x->st == PROTO_E_TOOBIG || x->st == PROTO_E_VERSION)) {
		link_close(&c->l);
		c->open = false;
	}
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_sub(&a->inflight, 1);
	if (r == 0 || r == -EREMOTEIO || r == -EMSGSIZE)
		mark_up(p, a);
	else if (r != -EACCES)
		mark_down(p, a, err);
	return r;
}

static int status_errno(uint8_t st)
{
	switch (st) {
	case PROTO_E_NOKEY: return -ENOENT;
	case PROTO_E_EXISTS: return -EEXIST;
	case PROTO_E_UNSUPPORTED: return -EOPNOTSUPP;
	case PROTO_E_MISMATCH: return -EINVAL;
	case PROTO_E_BUSY: return -EBUSY;
	case PROTO_E_VERSION: return -EPROTONOSUPPORT;
	case PROTO_E_DENIED: return -EPERM;
	case PROTO_E_TOOBIG: return -EFBIG;
	default: return -EIO;
	}
}

/* The one-line error for a failed call_one r (e1: link's line, which names the appliance). */
static int call_error(const struct ab *p, const char *what, int r, uint8_t st, const char *e1,
		      char *err)
{
	/* e1 says "appliance HOST:PORT refused OP: ...; add ROLE to its line ...". */
	if (r == -EREMOTEIO && st == PROTO_E_DENIED)
		return sigfs_seterr(err, -EPERM, "appliance backend %s: %s", p->name, e1);
	if (r == -EREMOTEIO)
		return sigfs_seterr(err, status_errno(st), "appliance backend %s: %s: %s", p->name,
				    what, e1);
	if (r == -EMSGSIZE)
		return sigfs_seterr(err, -EFBIG, "appliance backend %s: %s", p->name, e1);
	if (r == -EACCES)
		return sigfs_seterr(err, r, "appliance backend %s: %s; check client and secret_file, "
				    "and the appliance's clients file", p->name, e1);
	return sigfs_seterr(err, r, "appliance backend %s: %s: %s", p->name, what, e1);
}

/*
 * Run x on appliance i for key management: transport errors and BUSY are
 * retried with backoff until deadline. 0 or call_one's result, err filled.
 */
static int call_at(struct ab *p, unsigned i, const char *what, struct xfer *x, int timeout_ms,
		   long deadline, char *err)
{
	long delay = WAIT_MS_FIRST;
	char e1[SIGFS_ERRLEN];
	int r;

	for (;;) {
		r = call_one(p, admin_row(p), i, x, timeout_ms, e1);
		if (r == 0)
			return 0;
		if ((r == -EREMOTEIO && x->st != PROTO_E_BUSY) || r == -EACCES || r == -EMSGSIZE ||
		    sigfs_backend_now_ms() >= deadline)
			return call_error(p, what, r, x->st, e1, err);
		delay = sigfs_backend_backoff(delay, deadline);
	}
}

/*
 * Run x on whichever appliance can: fail over at once on transport errors,
 * NOKEY and BUSY; when none is left, wait with backoff until retry_seconds
 * have passed. An appliance whose max_frame the request exceeds is skipped
 * (another may take more); when none takes it, -EMSGSIZE at once, err
 * saying why. A refused credential or another status fails at once.
 */
static int call_any(struct ab *p, unsigned row, const char *what, const char *id, struct xfer *x,
		    char *err)
{
	char why[MAX_APPLIANCES][REASON_MAX], list[SIGFS_ERRLEN], e1[SIGFS_ERRLEN];
	uint32_t all = (1u << p->napp) - 1, nokey = 0, toobig = 0, tried;
	long start = sigfs_backend_now_ms(), delay = WAIT_MS_FIRST;
	size_t n = 0;
	int i, r;

	memset(why, 0, sizeof(why));
	for (;;) {
		tried = 0;
		while ((i = pick(p, row, nokey | toobig | tried)) >= 0) {
			tried |= 1u << i;
			r = call_one(p, row, (unsigned)i, x, p->timeout_ms, e1);
			if (r == 0)
				return 0;
			if (r == -EREMOTEIO && x->st == PROTO_E_NOKEY)
				nokey |= 1u << i;
			else if (r == -EMSGSIZE || (r == -EREMOTEIO && x->st == PROTO_E_TOOBIG))
				toobig |= 1u << i;
			else if (r == -EACCES || (r == -EREMOTEIO && x->st != PROTO_E_BUSY))
				return call_error(p, what, r, x->st, e1, err);
			snprintf(why[i], REASON_MAX, "%s", r == -EREMOTEIO ? proto_status_name(x->st) :
				 r == -EMSGSIZE ? "request too large" : strerror(-r));
		}
		if ((nokey | toobig) == all || sigfs_backend_now_ms() >= start + p->retry_ms)
			break;
		delay = sigfs_backend_backoff(delay, start + p->retry_ms);
	}
	if (toobig && (nokey | toobig) == all)
		return sigfs_seterr(err, -EMSGSIZE, "appliance backend %s: %s", p->name, e1);
	list[0] = '\0';
	for (unsigned k = 0; k < p->napp && n < sizeof(list); k++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s: %s", k ? ", " : "",
				      p->app[k].addr, why[k][0] ? why[k] : "not tried");
	if (nokey == all)
		return sigfs_seterr(err, -ENOENT, "appliance backend %s: %s: no appliance holds key "
				    "'%s' (%s)", p->name, what, id, list);
	return sigfs_seterr(err, -EHOSTUNREACH, "appliance backend %s: %s of key '%s': no appliance "
			    "answered in %ld ms (%s)", p->name, what, id, sigfs_backend_now_ms() - start, list);
}

/* --- requests ----------------------------------------------------------------------- */

/*
 * The protocol's key id for sigfs key id: the same name, except that the
 * '~' of sigfs's staging ids (KEY~import) becomes "..", which no key name
 * holds, so a staged key is a valid appliance key that cannot clash.
 */
static int wire_id(const struct ab *p, const char *id, char *out, char *err)
{
	size_t n = 0;

	for (const char *s = id; *s; s++) {
		if (n + 1 + (*s == '~') >= WIRE_ID_MAX) {
			n = 0;
			break;
		}
		if (*s == '~')
			out[n++] = '.';
		out[n++] = *s == '~' ? '.' : *s;
	}
	out[n] = '\0';
	if (!proto_keyid_ok(out, n))
		return sigfs_seterr(err, -EINVAL, "appliance backend %s: key name '%s' is not an "
				    "appliance key id (1 to %d letters, digits, '.', '_', '-')",
				    p->name, id, PROTO_MAX_KEYID);
	return 0;
}

/* Start x's request: op with str wire id (NULL: no id), ready for more fields. */
static int begin(struct ab *p, struct xfer *x, uint8_t op, const char *wid, char *err)
{
	if (proto_begin(&x->req, op, atomic_fetch_add(&p->reqid, 1) + 1) < 0 ||
	    (wid && proto_put_str(&x->req, wid) < 0))
		return oom(p, err);
	return 0;
}

static int finish(struct ab *p, struct xfer *x, char *err)
{
	return proto_end(&x->req) < 0 ? oom(p, err) : 0;
}

static int bad_reply(const struct ab *p, const char *what, char *err)
{
	return sigfs_seterr(err, -EPROTO, "appliance backend %s: the %s reply does not parse; "
			    "check that sigfsd and the appliance speak the same protocol",
			    p->name, what);
}

/* KEYDEL wid on every appliance in mask, for undoing a partial KEYLOAD. */
static void unload(struct ab *p, const char *wid, uint32_t mask)
{
	char e1[SIGFS_ERRLEN];
	struct xfer x;

	for (unsigned i = 0; i < p->napp; i++) {
		if (!(mask & (1u << i)))
			continue;
		xfer_init(&x);
		if (begin(p, &x, PROTO_KEYDEL, wid, e1) == 0 && finish(p, &x, e1) == 0 &&
		    call_at(p, i, "KEYDEL", &x, p->timeout_ms, sigfs_backend_now_ms() + p->retry_ms, e1) < 0)
			log_warn("%s; key '%s' stays there: delete it with sigfs-appliance ctl ... "
				 "keydel", e1, wid);
		xfer_free(&x);
	}
}

/*
 * KEYLOAD the PKCS#8 DER private key into every appliance, all or none; the
 * algorithm the appliances report goes to *alg_out.
 */
static int load_all(struct ab *p, const char *id, const char *wid, const uint8_t *der,
		    size_t len, const struct sigfs_alg **alg_out, char *err)
{
	long deadline = sigfs_backend_now_ms() + p->retry_ms;
	const struct sigfs_alg *alg = NULL, *a;
	uint32_t done = 0;
	uint16_t bits, bits0 = 0, tb;
	uint8_t type, type0 = 0, t;
	struct xfer x;
	int r;

	xfer_init(&x);
	r = begin(p, &x, PROTO_KEYLOAD, wid, err);
	if (r == 0 && proto_put_blob(&x.req, der, len) < 0)
		r = oom(p, err);
	if (r == 0)
		r = finish(p, &x, err);
	for (unsigned i = 0; r == 0 && i < p->napp; i++) {
		r = call_at(p, i, "KEYLOAD", &x, p->timeout_ms, deadline, err);
		if (r == -EEXIST)
			r = sigfs_seterr(err, -EEXIST, "appliance backend %s: key '%s' exists on %s",
					 p->name, id, p->app[i].addr);
		if (r < 0)
			break;
		done |= 1u << i;
		if (reply_keyload(&x.f.body, &type, &bits) < 0) {
			r = bad_reply(p, "KEYLOAD", err);
		} else if (i == 0) {
			type0 = type;
			bits0 = bits;
		} else if (type != type0 || bits != bits0) {
			r = sigfs_seterr(err, -EPROTO, "appliance backend %s: the appliances disagree "
					 "on the type of key '%s'", p->name, id);
		}
	}
	xfer_free(&x);
	for (size_t k = 0; r == 0 && !alg && (a = sigfs_alg_at(k)); k++)
		if (proto_keytype_of(a, &t, &tb) == 0 && t == type0 && tb == bits0)
			alg = a;
	if (r == 0 && !alg)
		r = sigfs_seterr(err, -EOPNOTSUPP, "appliance backend %s: sigfs has no algorithm for "
				 "a %s key of %u bits; import Ed25519, EC P-256/384/521 or RSA keys "
				 "of the sizes sigfs offers", p->name,
				 proto_keytype_name(type0) ? proto_keytype_name(type0) : "unknown",
				 (unsigned)bits0);
	if (r < 0) {
		unload(p, wid, done);
		return r;
	}
	if (alg_out)
		*alg_out = alg;
	return 0;
}

/* A private key in PKCS#8 DER (OPENSSL_clear_free it with its length). */
static int pkcs8_der(const struct ab *p, EVP_PKEY *pk, uint8_t **der, size_t *len, char *err)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
	int n;

	*der = NULL;
	n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, der) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (n <= 0)
		return sigfs_seterr(err, -EIO, "appliance backend %s: cannot encode the key as "
				    "PKCS#8", p->name);
	*len = (size_t)n;
	return 0;
}

/* Load pk into every appliance as key id (wire id wid), then free it; the DER copy is wiped. */
static int load_pkey(struct ab *p, const char *id, const char *wid, EVP_PKEY *pk,
		     const struct sigfs_alg **alg_out, char *err)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r = pkcs8_der(p, pk, &der, &len, err);

	EVP_PKEY_free(pk);
	if (r == 0)
		r = load_all(p, id, wid, der, len, alg_out, err);
	OPENSSL_clear_free(der, len);
	return r;
}

/* --- keys ------------------------------------------------------------------------------ */

static int ab_generate(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg,
		       char *err)
{
	struct ab *p = b->priv;
	char wid[WIRE_ID_MAX];
	EVP_PKEY *pk = NULL;
	uint8_t type;
	uint16_t bits;
	struct xfer x;
	int r = wire_id(p, id, wid, err);

	if (r < 0)
		return r;
	if (proto_keytype_of(alg, &type, &bits) < 0)
		return sigfs_seterr(err, -EOPNOTSUPP, "appliance backend %s: the appliance protocol "
				    "has no %s keys", p->name, alg->name);
	if (p->napp == 1) {
		int ms = p->timeout_ms > KEYGEN_MS_MIN ? p->timeout_ms : KEYGEN_MS_MIN;

		xfer_init(&x);
		r = begin(p, &x, PROTO_KEYGEN, wid, err);
		if (r == 0 && (sbuf_put_u8(&x.req, type) < 0 || sbuf_put_u16be(&x.req, bits) < 0))
			r = oom(p, err);
		if (r == 0)
			r = finish(p, &x, err);
		if (r == 0)
			r = call_at(p, 0, "KEYGEN", &x, ms, sigfs_backend_now_ms() + p->retry_ms, err);
		xfer_free(&x);
		return r;
	}
	pk = sigfs_keygen(alg->kind, alg->group, alg->bits);
	if (!pk)
		return sigfs_seterr(err, -EIO, "appliance backend %s: generating a %s key failed",
				    p->name, alg->name);
	return load_pkey(p, id, wid, pk, NULL, err);
}

static int ab_import_pem(struct sigfs_backend *b, const char *id, const uint8_t *pem, size_t len,
			 const struct sigfs_alg **alg_out, char *err)
{
	struct ab *p = b->priv;
	char wid[WIRE_ID_MAX];
	EVP_PKEY *pk = NULL;
	int r = wire_id(p, id, wid, err);

	if (r < 0)
		return r;
	if (sigfs_read_private_pem(pem, len, &pk) < 0)
		return sigfs_seterr(err, -EINVAL, "appliance backend %s: cannot read the imported key "
				    "for '%s'; give an unencrypted PEM private key", p->name, id);
	return load_pkey(p, id, wid, pk, alg_out, err);
}

/*
 * KEYDEL on every appliance; one without the key counts as done. An
 * unreachable one fails the call (after deleting on the others), so the admin
 * repeats rmdir when it is back.
 */
static int ab_remove(struct sigfs_backend *b, const char *id, char *err)
{
	struct ab *p = b->priv;
	long deadline = sigfs_backend_now_ms() + p->retry_ms;
	char wid[WIRE_ID_MAX], e1[SIGFS_ERRLEN], e0[SIGFS_ERRLEN] = "";
	unsigned gone = 0, failed = 0, deleted;
	int r = wire_id(p, id, wid, err), first = 0;
	struct xfer x;

	if (r < 0)
		return r;
	xfer_init(&x);
	r = begin(p, &x, PROTO_KEYDEL, wid, err);
	if (r == 0)
		r = finish(p, &x, err);
	for (unsigned i = 0; r == 0 && i < p->napp; i++) {
		int ri = call_at(p, i, "KEYDEL", &x, p->timeout_ms, deadline, e1);

		if (ri == -ENOENT) {
			gone++;
		} else if (ri < 0) {
			if (!failed++) {
				first = ri;
				snprintf(e0, sizeof(e0), "%s", e1);
			}
		}
	}
	xfer_free(&x);
	if (r < 0)
		return r;
	deleted = p->napp - gone - failed;
	/* A refusal (the client may not manage keys) is fixed in the clients file, not by waiting. */
	if (failed)
		return sigfs_seterr(err, first, "%s%s%s", e0, failed > 1 ? " (and others)" : "",
				    first == -EPERM ? (deleted ? "; deleted on the others" : "") :
				    deleted ? "; deleted on the others: rmdir again when it is back" :
				    "; rmdir again when it is back");
	if (gone == p->napp)
		return sigfs_seterr(err, -ENOENT, "appliance backend %s: no appliance holds key '%s'",
				    p->name, id);
	return 0;
}

static int ab_public_key(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err)
{
	struct ab *p = b->priv;
	char wid[WIRE_ID_MAX];
	struct xfer x;
	int r = wire_id(p, id, wid, err);

	if (r < 0)
		return r;
	xfer_init(&x);
	r = begin(p, &x, PROTO_PUBKEY, wid, err);
	if (r == 0)
		r = finish(p, &x, err);
	if (r == 0)
		r = call_any(p, admin_row(p), "PUBKEY", id, &x, err);
	if (r == 0 && reply_pubkey(&x.f.body, out) < 0)
		r = bad_reply(p, "PUBKEY", err);
	xfer_free(&x);
	return r;
}

/* The sigfs name of wire id w: ".." back to '~' (wire_id's inverse). */
static char *sigfs_id(const char *w)
{
	char *s = strdup(w), *d = s;

	for (; s && *w; w++) {
		if (w[0] == '.' && w[1] == '.') {
			*d++ = '~';
			w++;
		} else {
			*d++ = *w;
		}
	}
	if (s)
		*d = '\0';
	return s;
}

static int parse_list(struct ab *p, struct sbuf *body, char ***ids_out, size_t *n_out, char *err)
{
	char id[PROTO_MAX_KEYID + 1], **ids;
	uint32_t n;
	uint16_t bits;
	uint8_t type;
	size_t k;

	/* The count never exceeds what arrived: allocating for it is safe. */
	if (reply_listkeys_count(body, &n) < 0)
		return bad_reply(p, "LISTKEYS", err);
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		return oom(p, err);
	for (k = 0; k < n; k++) {
		if (reply_listkeys_entry(body, id, &type, &bits) < 0) {
			sigfs_backend_list_free(ids, k);
			return bad_reply(p, "LISTKEYS", err);
		}
		ids[k] = sigfs_id(id);
		if (!ids[k]) {
			sigfs_backend_list_free(ids, k);
			return oom(p, err);
		}
	}
	*ids_out = ids;
	*n_out = n;
	return 0;
}

/* LISTKEYS from the first appliance that answers; no waiting (backend.h). */
static int ab_list(struct sigfs_backend *b, char ***ids, size_t *n, char *err)
{
	struct ab *p = b->priv;
	char e1[SIGFS_ERRLEN];
	uint32_t tried = 0;
	struct xfer x;
	int i, r;

	xfer_init(&x);
	r = begin(p, &x, PROTO_LISTKEYS, NULL, err);
	if (r == 0)
		r = finish(p, &x, err);
	/* On failure err keeps the last appliance's error. */
	while (r == 0 && (i = pick(p, admin_row(p), tried)) >= 0) {
		tried |= 1u << i;
		r = call_one(p, admin_row(p), (unsigned)i, &x, p->timeout_ms, e1);
		if (r == 0) {
			r = parse_list(p, &x.f.body, ids, n, err);
			break;
		}
		r = call_error(p, "LISTKEYS", r, x.st, e1, err);
		if (r == -EACCES || tried == (1u << p->napp) - 1)
			break;
		r = 0;
	}
	xfer_free(&x);
	return r;
}

/* --- signing ------------------------------------------------------------------------------ */

/*
 * The largest max_frame the appliances announced; *known is false (and the
 * protocol's cap returned) while one of them has not said yet.
 */
static uint32_t frame_limit(struct ab *p, bool *known)
{
	uint32_t lim = 0, m;

	*known = true;
	for (unsigned i = 0; i < p->napp; i++) {
		m = atomic_load(&p->app[i].max_frame);
		if (!m)
			*known = false;
		if (m > lim)
			lim = m;
	}
	return *known ? lim : PROTO_MAX_FRAME;
}

/* A pure Ed25519 message (a whole file) of len bytes no appliance takes: what, and what to do. */
static int too_large(struct ab *p, size_t len, size_t overhead, char *err)
{
	uint32_t lim = 0, m;

	for (unsigned i = 0; i < p->napp; i++)
		if ((m = atomic_load(&p->app[i].max_frame)) > lim)
			lim = m;
	if (!lim)
		lim = PROTO_MAX_FRAME;
	return sigfs_seterr(err, -EFBIG, "appliance backend %s: a %zu-byte file is too large for "
			    "Ed25519 on its appliances (at most %zu bytes: their --max-frame is %u); "
			    "use an ECDSA or RSA key, or raise --max-frame", p->name, len,
			    lim > overhead ? lim - overhead : 0, lim);
}

static int ab_sign(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		   uint8_t *sig, size_t *siglen, char *err)
{
	struct ab *p = b->priv;
	char wid[WIRE_ID_MAX];
	uint8_t scheme, md = 0;
	const uint8_t *s = NULL;
	size_t slen = 0, overhead;
	uint32_t limit;
	struct xfer x;
	bool known;
	int r = wire_id(p, id, wid, err);

	if (r < 0)
		return r;
	r = sigfs_backend_check_input("appliance", p->name, id, in, err);
	if (r < 0)
		return r;
	if (in->digest && !(md = proto_digest_id(in->digest)))
		return sigfs_seterr(err, -EOPNOTSUPP, "appliance backend %s: the appliance protocol "
				    "has no digest %s; choose a sha2 or sha3 digest for key '%s'",
				    p->name, in->digest->name, id);
	switch (in->alg->kind) {
	case SIGFS_KIND_RSA:
		scheme = in->padding == SIGFS_PAD_PKCS1 ? PROTO_SCHEME_RSA_PKCS1 : PROTO_SCHEME_RSA_PSS;
		break;
	case SIGFS_KIND_EC:
		scheme = PROTO_SCHEME_ECDSA;
		break;
	default:
		scheme = PROTO_SCHEME_ED25519;
		break;
	}
	/* The frame after its length field: header, id, scheme, digest, blob, then the data. */
	overhead = PROTO_HDR_LEN + 2 + strlen(wid) + 1 + 1 + 4;
	limit = frame_limit(p, &known);
	if (in->len > PROTO_MAX_FRAME - overhead || (known && in->len > limit - overhead))
		return too_large(p, in->len, overhead, err);
	xfer_init(&x);
	r = begin(p, &x, PROTO_SIGN, wid, err);
	if (r == 0 && (sbuf_put_u8(&x.req, scheme) < 0 || sbuf_put_u8(&x.req, md) < 0 ||
		       proto_put_blob(&x.req, in->data, in->len) < 0))
		r = oom(p, err);
	if (r == 0)
		r = finish(p, &x, err);
	if (r == 0)
		r = call_any(p, in->worker % admin_row(p), "SIGN", id, &x, err);
	if (r == -EMSGSIZE)
		r = too_large(p, in->len, overhead, err);
	if (r == 0) {
		if (reply_sign(&x.f.body, &s, &slen) < 0 ||
		    (in->alg->kind == SIGFS_KIND_ED25519 && slen != 64))
			r = bad_reply(p, "SIGN", err);
		else if (slen > *siglen)
			r = sigfs_seterr(err, -ENOSPC, "appliance backend %s: a %zu-byte signature does "
					 "not fit key '%s''s %zu bytes", p->name, slen, id, *siglen);
	}
	if (r == 0) {
		memcpy(sig, s, slen);
		*siglen = slen;
	}
	xfer_free(&x);
	return r;
}

/* --- open, close ------------------------------------------------------------------------- */

static void ab_free(struct ab *p)
{
	for (unsigned k = 0; p->slot && k < p->nrow * p->napp; k++) {
		if (p->slot[k].open)
			link_close(&p->slot[k].l);
		pthread_mutex_destroy(&p->slot[k].lock);
	}
	free(p->slot);
	free(p->rr);
	for (unsigned i = 0; i < p->napp; i++)
		pthread_mutex_destroy(&p->app[i].lock);
	if (p->ctx)
		link_ctx_free(p->ctx);
	free(p);
}

static void ab_close(struct sigfs_backend *b)
{
	ab_free(b->priv);
	free(b);
}

/*
 * Split "HOST:PORT, [V6]:PORT ..." (commas and/or blanks) into p->app.
 * Names are resolved when connecting, so an appliance may move.
 */
static int parse_appliances(struct ab *p, const char *v, char *err)
{
	const char *s = v, *e, *colon;
	unsigned long port;
	size_t n;
	char *end;

	for (;;) {
		s += strspn(s, ", \t");
		if (!*s)
			break;
		e = s + strcspn(s, ", \t");
		n = (size_t)(e - s);
		if (p->napp == MAX_APPLIANCES)
			return sigfs_seterr(err, -EINVAL, "appliance backend %s: at most %d appliances",
					    p->name, MAX_APPLIANCES);
		if (n >= ADDR_MAX)
			return sigfs_seterr(err, -EINVAL, "appliance backend %s: appliance address "
					    "%.40s... is too long", p->name, s);
		memcpy(p->app[p->napp].addr, s, n);
		p->app[p->napp].addr[n] = '\0';
		colon = strrchr(p->app[p->napp].addr, ':');
		port = colon ? strtoul(colon + 1, &end, 10) : 0;
		if (!colon || colon == p->app[p->napp].addr || !colon[1] || *end || port == 0 ||
		    port > 65535 || (s[0] == '[' && colon[-1] != ']') ||
		    (s[0] != '[' && memchr(s, ':', (size_t)(colon - p->app[p->napp].addr))))
			return sigfs_seterr(err, -EINVAL, "appliance backend %s: appliance '%s' is not "
					    "HOST:PORT or [IPV6]:PORT", p->name,
					    p->app[p->napp].addr);
		p->napp++;
		s = e;
	}
	if (p->napp == 0)
		return sigfs_seterr(err, -EINVAL, "appliance backend %s: set appliances = HOST:PORT "
				    "in [backend %s]", p->name, p->name);
	return 0;
}

/* The client's 32-byte key from secret_file (64 hex digits), into a fresh SSL_CTX. */
static int make_ctx(struct ab *p, const char *path, char *err)
{
	char hex[2 * PROTO_PSK_LEN + 2];
	uint8_t key[PROTO_PSK_LEN];
	long klen = 0;
	unsigned char *raw = NULL;
	size_t len;
	int r;

	r = sigfs_read_secret("appliance", p->name, "secret_file", "secret", path, hex, sizeof(hex),
			      &len, err);
	if (r == 0 && len == 2 * PROTO_PSK_LEN)
		raw = OPENSSL_hexstr2buf(hex, &klen);
	if (r == 0 && (!raw || klen != PROTO_PSK_LEN))
		r = sigfs_seterr(err, -EINVAL, "appliance backend %s: secret_file %s must hold %d "
				 "hex digits (a %d-byte key) on one line", p->name, path,
				 2 * PROTO_PSK_LEN, PROTO_PSK_LEN);
	if (r == 0) {
		memcpy(key, raw, PROTO_PSK_LEN);
		p->ctx = link_client_ctx(p->client, key, err);
		if (!p->ctx)
			r = -EIO;
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	OPENSSL_cleanse(key, sizeof(key));
	if (raw)
		OPENSSL_clear_free(raw, (size_t)klen);
	return r;
}

static int ab_open(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err)
{
	const char *apps = conf->get(conf, "appliances", NULL);
	const char *client = conf->get(conf, "client", "sigfs");
	const char *secret = conf->get(conf, "secret_file", NULL);
	long timeout = 0;
	struct ab *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return sigfs_seterr(err, -ENOMEM, "appliance backend %s: out of memory", conf->name);
	snprintf(p->name, sizeof(p->name), "%s", conf->name);
	r = parse_appliances(p, apps ? apps : "", err);
	for (unsigned i = 0; i < p->napp; i++)
		pthread_mutex_init(&p->app[i].lock, NULL);
	if (r == 0 && !secret)
		r = sigfs_seterr(err, -EINVAL, "appliance backend %s: set secret_file in [backend %s]",
				 p->name, p->name);
	if (r == 0 && (!*client || strlen(client) > PROTO_MAX_STR))
		r = sigfs_seterr(err, -EINVAL, "appliance backend %s: client must have 1 to %d "
				 "characters", p->name, PROTO_MAX_STR);
	if (r == 0)
		r = sigfs_backend_seconds(conf, "appliance", "retry_seconds", "10", 0, &p->retry_ms,
					  err);
	if (r == 0)
		r = sigfs_backend_seconds(conf, "appliance", "timeout_seconds", "30", 1, &timeout,
					  err);
	if (r < 0)
		goto fail;
	snprintf(p->client, sizeof(p->client), "%s", client);
	p->timeout_ms = (int)timeout;
	r = make_ctx(p, secret, err);
	if (r < 0)
		goto fail;
	p->nrow = (conf->workers ? conf->workers : 1) + 1;
	p->slot = calloc((size_t)p->nrow * p->napp, sizeof(*p->slot));
	p->rr = calloc(p->nrow, sizeof(*p->rr));
	if (!p->slot || !p->rr) {
		r = oom(p, err);
		goto fail;
	}
	for (unsigned k = 0; k < p->nrow * p->napp; k++)
		pthread_mutex_init(&p->slot[k].lock, NULL);
	r = sigfs_backend_new(&sigfs_backend_appliance, conf, p, out, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	ab_free(p);
	return r;
}

const struct sigfs_backend_ops sigfs_backend_appliance = {
	.type = "appliance",
	.open = ab_open,
	.close = ab_close,
	.generate = ab_generate,
	.import_pem = ab_import_pem,
	.remove = ab_remove,
	.public_key = ab_public_key,
	.sign = ab_sign,
	.list = ab_list,
};
