/*
 * main.c: sigfs-appliance, a SEGGER-style signing appliance (docs/appliance.md).
 *
 *   sigfs-appliance --listen HOST:PORT --store DIR --clients FILE
 *                   [--name NAME] [--engines N] [--verbose]
 *   sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...  (ctl.c)
 *
 * Holds private keys (store.c) and answers the protocol of proto.h over
 * TLS-PSK links (link.c), one thread per connection, at most MAX_CONNS.
 * Like the SEGGER board it stands in for, it signs with a fixed number of
 * "engines": a counting semaphore of --engines around the private-key
 * operation only, so parsing, key lookup and the network run in parallel
 * while signatures queue for an engine. Key generation does not take an
 * engine (the board has a separate generator) and holds the store lock only
 * to write the new key.
 *
 * Runs in the foreground; SIGTERM/SIGINT stop it (connections are shut down,
 * threads finish their request), SIGHUP rereads the clients file and drops
 * connections of clients no longer in it. Never logs key material or PSKs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "appliance/ctl.h"
#include "appliance/link.h"
#include "appliance/proto.h"
#include "appliance/store.h"
#include "common/err.h"
#include "common/log.h"

#define MAX_CONNS 64
#define MAX_ENGINES 256
#define HANDSHAKE_MS 10000
#define CLIENTS_MAX_BYTES (1 << 20)

struct client {
	char name[PROTO_MAX_KEYID + 1];
	uint8_t key[PROTO_PSK_LEN];
};

/* One connection; fd stays open until the slot is released (see conn_main). */
struct conn {
	int fd;
	int slot;
	char client[PROTO_MAX_KEYID + 1];  /* set once authenticated */
};

static struct {
	const char *name;
	bool verbose;
	struct store store;
	SSL_CTX *ctx;
	sem_t engines;

	pthread_rwlock_t clients_lock;
	const char *clients_path;
	struct client *clients;
	size_t nclients;

	pthread_mutex_t conns_lock;
	pthread_cond_t conns_done;
	struct conn *conns[MAX_CONNS];
	size_t nconns;
} app;

static void alog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void alog(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sigfs-appliance %s: %s\n", app.name, line);
}

/* --- clients file ------------------------------------------------------------- */

/* Parse "NAME HEX" lines of text (NUL-terminated, modified) into *out. */
static int clients_parse(const char *path, char *text, struct client **out, size_t *nout,
			 char *err)
{
	struct client *v = NULL;
	size_t n = 0, lineno = 0;
	char *line, *save = NULL;
	int r = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *name, *hex, *rest, *s2 = NULL;
		struct client *nv;
		size_t keylen;

		lineno++;
		name = strtok_r(line, " \t\r", &s2);
		if (!name || name[0] == '#')
			continue;
		hex = strtok_r(NULL, " \t\r", &s2);
		rest = strtok_r(NULL, " \t\r", &s2);
		if (!proto_keyid_ok(name, strlen(name)) || !hex || rest || strlen(hex) != 64) {
			r = sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: want NAME HEX (a "
					 "name of A-Z a-z 0-9 . _ -, and 64 hex characters)", path,
					 lineno);
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].name, name) == 0)
				r = sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: client %s "
						 "appears twice", path, lineno, name);
		if (r < 0)
			break;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = sigfs_seterr(err, -ENOMEM, "clients file %s: out of memory", path);
			break;
		}
		v = nv;
		snprintf(v[n].name, sizeof(v[n].name), "%s", name);
		if (OPENSSL_hexstr2buf_ex(v[n].key, PROTO_PSK_LEN, &keylen, hex, '\0') != 1 ||
		    keylen != PROTO_PSK_LEN) {
			ERR_clear_error();
			r = sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: the key must be "
					 "64 hex characters", path, lineno);
		}
		n++;
		if (r < 0)
			break;
	}
	if (r < 0) {
		OPENSSL_cleanse(v, n * sizeof(*v));
		free(v);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

/*
 * Read the clients file: a regular file owned by us, mode 0600 or 0400 (the
 * rule of backends/secret.c, for the same reason: it holds secrets).
 */
static int clients_load(const char *path, struct client **out, size_t *nout, char *err)
{
	struct stat st;
	char *text = NULL;
	ssize_t got = 0, rd;
	int fd, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sigfs_seterr(err, -errno, "cannot open clients file %s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = sigfs_seterr(err, -EINVAL, "clients file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0177)) {
		r = sigfs_seterr(err, -EPERM, "refusing clients file %s: it must be owned by uid %u "
				 "with mode 0600 or 0400 (it is uid %u, mode %04o); chown and chmod "
				 "0600 it", path, (unsigned)geteuid(), (unsigned)st.st_uid,
				 (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > CLIENTS_MAX_BYTES) {
		r = sigfs_seterr(err, -EFBIG, "clients file %s is larger than %d bytes", path,
				 CLIENTS_MAX_BYTES);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		r = sigfs_seterr(err, -ENOMEM, "clients file %s: out of memory", path);
		goto out;
	}
	while (got < st.st_size && (rd = read(fd, text + got, (size_t)(st.st_size - got))) > 0)
		got += rd;
	text[got] = '\0';
	r = clients_parse(path, text, out, nout, err);
	OPENSSL_cleanse(text, (size_t)st.st_size + 1);
	free(text);
out:
	close(fd);
	return r;
}

static int client_index(const char *name, size_t *i)
{
	for (*i = 0; *i < app.nclients; (*i)++)
		if (strcmp(app.clients[*i].name, name) == 0)
			return 1;
	return 0;
}

/* link_psk_lookup for the server ctx. */
static int lookup_client(void *arg, const char *name, uint8_t key[PROTO_PSK_LEN])
{
	size_t i;
	int r = -ENOENT;

	(void)arg;
	pthread_rwlock_rdlock(&app.clients_lock);
	if (client_index(name, &i)) {
		memcpy(key, app.clients[i].key, PROTO_PSK_LEN);
		r = 0;
	}
	pthread_rwlock_unlock(&app.clients_lock);
	return r;
}

static void clients_free(struct client *v, size_t n)
{
	if (v)
		OPENSSL_cleanse(v, n * sizeof(*v));
	free(v);
}

/* SIGHUP: take the new clients file, and drop connections of removed clients. */
static void clients_reload(void)
{
	char err[SIGFS_ERRLEN];
	struct client *v, *old;
	size_t n, oldn, i;

	if (clients_load(app.clients_path, &v, &n, err) < 0) {
		alog("SIGHUP: %s; keeping the clients loaded before", err);
		return;
	}
	pthread_rwlock_wrlock(&app.clients_lock);
	old = app.clients;
	oldn = app.nclients;
	app.clients = v;
	app.nclients = n;
	pthread_mutex_lock(&app.conns_lock);
	for (size_t s = 0; s < MAX_CONNS; s++) {
		struct conn *c = app.conns[s];

		if (c && c->client[0] && !client_index(c->client, &i)) {
			alog("client %s is no longer in the clients file: closing its connection",
			     c->client);
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&app.conns_lock);
	pthread_rwlock_unlock(&app.clients_lock);
	clients_free(old, oldn);
	alog("SIGHUP: %zu clients", n);
}

/* --- requests ----------------------------------------------------------------- */

/* One request being served: its body, the reply body, and what the log line says. */
struct req {
	struct conn *c;
	struct sbuf *body;
	struct sbuf *rep;             /* reply body after the status byte */
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
	if (strcmp(client, q->c->client) != 0)
		return fail(q, PROTO_E_MALFORMED, "HELLO names another client than the TLS key's");
	if ((r = sbuf_put_u8(q->rep, PROTO_VERSION)) < 0 || (r = proto_put_str(q->rep, app.name)) < 0 ||
	    (r = sbuf_put_u32be(q->rep, PROTO_MAX_FRAME)) < 0)
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

	if (!body_done(q))
		return malformed(q);
	if (sbuf_put_u32be(q->rep, 0) < 0 || store_each(&app.store, list_one, &ls) < 0)
		return fail(q, PROTO_E_INTERNAL, "the key list does not fit a frame");
	/* The count goes first, known once every key is written. */
	q->rep->d[0] = (uint8_t)(ls.n >> 24);
	q->rep->d[1] = (uint8_t)(ls.n >> 16);
	q->rep->d[2] = (uint8_t)(ls.n >> 8);
	q->rep->d[3] = (uint8_t)ls.n;
	return PROTO_OK;
}

/* What KEYGEN makes for each key type; RSA takes the requested size. */
static const struct {
	uint8_t type;
	const char *ossl;       /* EVP_PKEY_Q_keygen type */
	const char *group;
	uint16_t bits;          /* 0: RSA, 1024..8192 */
} gens[] = {
	{ PROTO_KEY_RSA, "RSA", NULL, 0 },
	{ PROTO_KEY_EC_P256, "EC", "P-256", 256 },
	{ PROTO_KEY_EC_P384, "EC", "P-384", 384 },
	{ PROTO_KEY_EC_P521, "EC", "P-521", 521 },
	{ PROTO_KEY_ED25519, "ED25519", NULL, 255 },
};

/* Add pk as q->key; the status for the reply. */
static uint8_t add_key(struct req *q, EVP_PKEY *pk)
{
	char err[SIGFS_ERRLEN];
	int r = store_add(&app.store, q->key, pk, err);

	if (r == -EEXIST)
		return fail(q, PROTO_E_EXISTS, "key %s exists", q->key);
	if (r < 0) {
		alog("%s", err);
		return fail(q, PROTO_E_INTERNAL, "cannot store key %s", q->key);
	}
	return PROTO_OK;
}

static uint8_t op_keygen(struct req *q)
{
	EVP_PKEY *pk = NULL;
	uint8_t type, st;
	uint16_t bits;
	size_t g;

	if ((st = get_keyid(q)) != PROTO_OK)
		return st;
	if (sbuf_get_u8(q->body, &type) < 0 || sbuf_get_u16be(q->body, &bits) < 0 || !body_done(q))
		return malformed(q);
	for (g = 0; g < sizeof(gens) / sizeof(gens[0]) && gens[g].type != type; g++)
		;
	if (g == sizeof(gens) / sizeof(gens[0]))
		return fail(q, PROTO_E_UNSUPPORTED, "key type %u is not offered", type);
	if (gens[g].bits == 0 && (bits < 1024 || bits > 8192 || bits % 8))
		return fail(q, PROTO_E_UNSUPPORTED, "RSA-%u: RSA keys are 1024 to 8192 bits, a "
			    "multiple of 8", bits);
	if (gens[g].bits && bits != gens[g].bits)
		return fail(q, PROTO_E_UNSUPPORTED, "%s keys have %u bits, not %u",
			    proto_keytype_name(type), gens[g].bits, bits);
	if (store_has(&app.store, q->key))
		return fail(q, PROTO_E_EXISTS, "key %s exists", q->key);
	/* Seconds for RSA-8192: made without any lock, added under the write lock. */
	if (gens[g].group)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, gens[g].ossl, gens[g].group);
	else if (gens[g].bits == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, gens[g].ossl, (size_t)bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, gens[g].ossl);
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
	if (store_get(&app.store, q->key, pk, type, bits) < 0)
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
static int sign_with_engine(EVP_PKEY *pk, uint8_t scheme, const EVP_MD *md, const uint8_t *data,
			    size_t n, uint8_t *sig, size_t *siglen)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	while (sem_wait(&app.engines) < 0 && errno == EINTR)
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
	sem_post(&app.engines);
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
	if (st == PROTO_OK && sign_with_engine(pk, scheme, d ? sigfs_digest_md(d) : NULL, data, n,
					       sig, &siglen) < 0)
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
	r = store_del(&app.store, q->key, err);
	if (r == -ENOENT)
		return fail(q, PROTO_E_NOKEY, "no key %s", q->key);
	if (r < 0) {
		alog("%s", err);
		return fail(q, PROTO_E_INTERNAL, "cannot delete key %s", q->key);
	}
	return PROTO_OK;
}

static const struct op {
	uint8_t op;
	const char *name;
	uint8_t (*fn)(struct req *q);
} ops[] = {
	{ PROTO_HELLO, "HELLO", op_hello },
	{ PROTO_LISTKEYS, "LISTKEYS", op_listkeys },
	{ PROTO_KEYGEN, "KEYGEN", op_keygen },
	{ PROTO_KEYLOAD, "KEYLOAD", op_keyload },
	{ PROTO_PUBKEY, "PUBKEY", op_pubkey },
	{ PROTO_SIGN, "SIGN", op_sign },
	{ PROTO_KEYDEL, "KEYDEL", op_keydel },
};

/*
 * Answer one request frame into out; false when the connection must close
 * afterwards (wrong version, or a first request that is not HELLO).
 */
static bool serve(struct conn *c, const struct proto_frame *f, bool *greeted, struct sbuf *out,
		  struct sbuf *rep)
{
	struct req q = { .c = c, .rep = rep };
	struct sbuf body = f->body;
	const struct op *op = NULL;
	char esc[SIGFS_ESCAPED_MAX];
	bool keep = true;
	uint8_t st;

	q.body = &body;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == f->op)
			op = &ops[i];
	if (f->ver != PROTO_VERSION) {
		st = fail(&q, PROTO_E_VERSION, "frame version %u; this appliance speaks %d",
			  f->ver, PROTO_VERSION);
		keep = false;
	} else if (!*greeted && f->op != PROTO_HELLO) {
		st = fail(&q, PROTO_E_MALFORMED, "the first request must be HELLO");
		keep = false;
	} else if (!op) {
		st = fail(&q, PROTO_E_UNKNOWN_OP, "operation %u is not known", f->op);
	} else {
		st = op->fn(&q);
		if (f->op == PROTO_HELLO)
			keep = *greeted = st == PROTO_OK;
	}
	if (st != PROTO_OK || app.verbose) {
		char line[SIGFS_ERRLEN + 512];

		snprintf(line, sizeof(line), "client %s op %s key %s status %u", c->client,
			 op ? op->name : "?", q.key[0] ? sigfs_escape(q.key, esc, sizeof(esc)) : "-",
			 st);
		if (st != PROTO_OK)
			alog("%s: %s", line, q.msg);
		else
			alog("%s", line);
	}
	out->len = out->off = 0;
	if (proto_begin_reply(out, f->op, f->id, st, q.msg) < 0 ||
	    (st == PROTO_OK && sbuf_put(out, rep->d, rep->len) < 0) || proto_end(out) < 0) {
		out->len = out->off = 0;
		proto_begin_reply(out, f->op, f->id, PROTO_E_INTERNAL, "the reply does not fit a frame");
		proto_end(out);
	}
	return keep;
}

/* --- connections -------------------------------------------------------------- */

static void conn_release(struct conn *c)
{
	pthread_mutex_lock(&app.conns_lock);
	app.conns[c->slot] = NULL;
	app.nconns--;
	pthread_cond_broadcast(&app.conns_done);
	pthread_mutex_unlock(&app.conns_lock);
	close(c->fd);
	free(c);
}

/*
 * One connection. The link owns a dup of c->fd; c->fd itself stays open until
 * the slot is released, so the main thread can shutdown() it to stop us
 * without ever touching a closed (and maybe reused) descriptor.
 */
static void *conn_main(void *arg)
{
	struct conn *c = arg;
	char err[SIGFS_ERRLEN];
	struct sbuf in, out, rep;
	struct proto_frame f;
	bool greeted = false, keep = true;
	struct link l;
	int fd, r;

	fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		alog("dup: %s", strerror(errno));
		conn_release(c);
		return NULL;
	}
	r = link_accept(&l, app.ctx, fd, HANDSHAKE_MS, err);
	if (r < 0) {
		alog("%s", err);
		conn_release(c);
		return NULL;
	}
	pthread_mutex_lock(&app.conns_lock);
	snprintf(c->client, sizeof(c->client), "%.*s", PROTO_MAX_KEYID, l.client);
	pthread_mutex_unlock(&app.conns_lock);
	if (app.verbose)
		alog("client %s connected from %s", c->client, l.peer);
	sbuf_init(&in, PROTO_MAX_FRAME + 4);
	sbuf_init(&out, PROTO_MAX_FRAME + 4);
	sbuf_init(&rep, PROTO_MAX_FRAME);
	while (keep) {
		r = link_recv(&l, &in, &f, -1, err);
		if (r == -EMSGSIZE || r == -EBADMSG) {
			alog("client %s: %s; closing the connection", c->client, err);
			out.len = out.off = 0;
			if (proto_begin_reply(&out, 0, 0, PROTO_E_MALFORMED, err) == 0 &&
			    proto_end(&out) == 0)
				link_send(&l, &out, err);
			break;
		}
		if (r < 0) {
			if (r != -ECONNRESET)
				alog("client %s: %s", c->client, err);
			break;
		}
		rep.len = rep.off = 0;
		keep = serve(c, &f, &greeted, &out, &rep);
		/* The request may have carried a private key (KEYLOAD). */
		OPENSSL_cleanse(in.d, in.len);
		r = link_send(&l, &out, err);
		if (r < 0) {
			if (r != -ECONNRESET)
				alog("client %s: %s", c->client, err);
			break;
		}
	}
	if (app.verbose)
		alog("client %s disconnected", c->client);
	sbuf_free(&in);
	sbuf_free(&out);
	sbuf_free(&rep);
	link_close(&l);
	conn_release(c);
	return NULL;
}

/* Hand an accepted socket to a new thread, or close it when MAX_CONNS are open. */
static void conn_start(int fd)
{
	pthread_attr_t attr;
	struct conn *c;
	pthread_t th;
	int slot = -1;

	pthread_mutex_lock(&app.conns_lock);
	for (int i = 0; i < MAX_CONNS && slot < 0; i++)
		if (!app.conns[i])
			slot = i;
	c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
	if (c) {
		c->fd = fd;
		c->slot = slot;
		app.conns[slot] = c;
		app.nconns++;
	}
	pthread_mutex_unlock(&app.conns_lock);
	if (!c) {
		alog(slot < 0 ? "%d connections open: closing a new one" :
		     "out of memory (%d connections): closing a new one", MAX_CONNS);
		close(fd);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, conn_main, c) != 0) {
		alog("cannot start a connection thread: closing the connection");
		conn_release(c);
	}
	pthread_attr_destroy(&attr);
}

/* Shut every connection down and wait until their threads have finished. */
static void conns_stop(void)
{
	pthread_mutex_lock(&app.conns_lock);
	for (int i = 0; i < MAX_CONNS; i++)
		if (app.conns[i])
			shutdown(app.conns[i]->fd, SHUT_RDWR);
	while (app.nconns > 0)
		pthread_cond_wait(&app.conns_done, &app.conns_lock);
	pthread_mutex_unlock(&app.conns_lock);
}

/* --- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigfs-appliance --listen HOST:PORT --store DIR --clients FILE\n"
		"                       [--name NAME] [--engines N] [--verbose]\n"
		"       sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...\n"
		"  --listen HOST:PORT  address to listen on (port 0: any free port)\n"
		"  --store DIR         key store, created 0700 (one ID.pem per key)\n"
		"  --clients FILE      'NAME HEX' lines: each client's 32-byte key (mode 0600)\n"
		"  --name NAME         this appliance's name in HELLO and logs (default: hostname)\n"
		"  --engines N         signatures computed at once (default 1, at most %d)\n"
		"  --verbose           one log line per request\n"
		"ctl commands: listkeys | keygen ID TYPE BITS | keyload ID PEMFILE | pubkey ID |\n"
		"  keydel ID | sign ID SCHEME DIGEST HEXDATA | bench ID SCHEME DIGEST SECONDS THREADS\n",
		MAX_ENGINES);
}

/* Serve until SIGTERM/SIGINT; SIGHUP reloads the clients file. */
static int serve_forever(int lfd, int sfd)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
	struct signalfd_siginfo si;
	int fd;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			alog("poll: %s", strerror(errno));
			return 1;
		}
		if (p[1].revents & POLLIN) {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				clients_reload();
				continue;
			}
			alog("signal %u: stopping", si.ssi_signo);
			return 0;
		}
		if (p[0].revents & POLLIN) {
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				conn_start(fd);
			else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
				alog("accept: %s", strerror(errno));
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "store", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "engines", required_argument, NULL, 'e' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_on = NULL, *store_dir = NULL;
	char err[SIGFS_ERRLEN], bound[128], host[256];
	long engines = 1;
	sigset_t sigs;
	int o, lfd = -1, sfd = -1, rc = 1;
	char *end;

	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	while ((o = getopt_long(argc, argv, "l:s:c:n:e:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'l': listen_on = optarg; break;
		case 's': store_dir = optarg; break;
		case 'c': app.clients_path = optarg; break;
		case 'n': app.name = optarg; break;
		case 'e':
			engines = strtol(optarg, &end, 10);
			if (*end || engines < 1 || engines > MAX_ENGINES) {
				fprintf(stderr, "sigfs-appliance: --engines wants 1 to %d\n",
					MAX_ENGINES);
				return 2;
			}
			break;
		case 'v': app.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_on || !store_dir || !app.clients_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!app.name) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "appliance");
		host[sizeof(host) - 1] = '\0';
		app.name = host;
	}
	if (!proto_keyid_ok(app.name, strlen(app.name)) || strlen(app.name) > 64) {
		fprintf(stderr, "sigfs-appliance: --name wants 1 to 64 of A-Z a-z 0-9 . _ -\n");
		return 2;
	}

	/* Signals are read from a signalfd by this thread; no thread gets them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	pthread_rwlock_init(&app.clients_lock, NULL);
	pthread_mutex_init(&app.conns_lock, NULL);
	pthread_cond_init(&app.conns_done, NULL);
	sem_init(&app.engines, 0, (unsigned)engines);
	if (sfd < 0) {
		alog("signalfd: %s", strerror(errno));
		goto out;
	}
	if (clients_load(app.clients_path, &app.clients, &app.nclients, err) < 0 ||
	    store_open(&app.store, store_dir, err) < 0) {
		alog("%s", err);
		goto out_clients;
	}
	app.ctx = link_server_ctx(lookup_client, NULL, err);
	if (!app.ctx || link_listen(listen_on, &lfd, bound, sizeof(bound), err) < 0) {
		alog("%s", err);
		goto out_store;
	}
	alog("listening on %s", bound);
	alog("%zu keys, %zu clients, %ld signing engines", app.store.n, app.nclients, engines);
	rc = serve_forever(lfd, sfd);
	close(lfd);
	conns_stop();
out_store:
	link_ctx_free(app.ctx);
	store_close(&app.store);
out_clients:
	clients_free(app.clients, app.nclients);
out:
	if (sfd >= 0)
		close(sfd);
	sem_destroy(&app.engines);
	return rc;
}
