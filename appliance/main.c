/*
 * main.c: sigfs-appliance, a SEGGER-style signing appliance (docs/appliance.md).
 *
 *   sigfs-appliance --listen HOST:PORT --store DIR --clients FILE
 *                   [--name NAME] [--engines N] [--max-frame BYTES]
 *                   [--idle-seconds S] [--handshake-seconds S]
 *                   [--max-handshakes N] [--max-handshakes-per-address N] [--verbose]
 *   sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...  (ctl.c)
 *
 * Holds private keys (store.c) and answers the protocol of proto.h (server.c)
 * over TLS-PSK links (link.c), one thread per connection. Like the SEGGER
 * board it stands in for, it signs with a fixed number of "engines": a
 * counting semaphore of --engines around the private-key operation only, so
 * parsing, key lookup and the network run in parallel while signatures queue
 * for an engine. Key generation does not take an engine (the board has a
 * separate generator) and holds the store lock only to write the new key.
 *
 * Nobody who can merely reach the port may lock clients out: a connection
 * whose TLS handshake has not finished takes a slot of a small budget of its
 * own (admit.c: --max-handshakes, and --max-handshakes-per-address from one
 * source) for at most --handshake-seconds, and one beyond the budget is
 * closed at once; only an authenticated connection takes one of the
 * MAX_CONNS slots, and loses it after --idle-seconds without a request. A
 * connection holds at most one frame of --max-frame bytes, grown as bytes
 * arrive and freed after a large one. What clients may do is their roles in
 * the clients file (clients.c), read for every request.
 *
 * Runs in the foreground; SIGTERM/SIGINT stop it (connections are shut down,
 * threads finish their request), SIGHUP rereads the clients file (roles too)
 * and drops connections of clients no longer in it. Never logs key material
 * or PSKs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "appliance/admit.h"
#include "appliance/clients.h"
#include "appliance/ctl.h"
#include "appliance/server.h"
#include "appliance/store.h"
#include "common/err.h"
#include "protocol/link.h"
#include "protocol/proto.h"

#define MAX_CONNS 64                      /* authenticated connections */
#define MAX_ENGINES 256
#define MAX_FRAME_DEFAULT (1u << 20)
#define MAX_FRAME_MIN (64u << 10)         /* room for any key, digest and key list line */
#define IDLE_S_DEFAULT 60
#define HANDSHAKE_S_DEFAULT 2
#define HANDSHAKES_DEFAULT 16
#define HANDSHAKES_PER_SRC_DEFAULT 4
#define HANDSHAKES_MAX 1024
/*
 * Buffers above this are freed after each request, and (mallopt) come from
 * mmap, so freeing one gives its memory back to the kernel: a connection that
 * sent one large frame and went idle holds none of it.
 */
#define KEEP_BYTES (64u << 10)
#define PREAUTH_LOG_MS 5000

/* One connection; fd stays open until the slot is released (see conn_main). */
struct conn {
	int fd;
	int slot;                          /* in app.conns */
	int admit;                         /* pre-authentication slot; -1 once authenticated */
	char src[64];                      /* the source address, for messages */
	char client[PROTO_MAX_KEYID + 1];  /* set once authenticated */
};

static struct {
	struct server srv;           /* its store and engines are the two below */
	struct store store;
	sem_t engines;
	SSL_CTX *ctx;
	int idle_ms, handshake_ms;

	pthread_rwlock_t clients_lock;
	const char *clients_path;
	struct client *clients;
	size_t nclients;

	pthread_mutex_t conns_lock;  /* conns, nconns, nauth, admit */
	pthread_cond_t conns_done;
	struct conn **conns;         /* MAX_CONNS + --max-handshakes slots */
	size_t nslots, nconns, nauth;
	struct admit admit;

	pthread_mutex_t preauth_log_lock;
	long long preauth_log_next;
	unsigned long preauth_log_left_out;
} app;

static void alog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void alog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	server_vlog(&app.srv, fmt, ap);
	va_end(ap);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void alog_preauth(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A line about connections nobody has authenticated (closed over the budget,
 * no handshake in time): at most one per PREAUTH_LOG_MS, so an attacker
 * reopening connections in a loop cannot flood the log; the next line says
 * how many were left out.
 */
static void alog_preauth(const char *fmt, ...)
{
	char line[SIGFS_ERRLEN + 128];
	unsigned long left_out;
	long long now = now_ms();
	va_list ap;

	pthread_mutex_lock(&app.preauth_log_lock);
	if (now < app.preauth_log_next) {
		app.preauth_log_left_out++;
		pthread_mutex_unlock(&app.preauth_log_lock);
		return;
	}
	left_out = app.preauth_log_left_out;
	app.preauth_log_left_out = 0;
	app.preauth_log_next = now + PREAUTH_LOG_MS;
	pthread_mutex_unlock(&app.preauth_log_lock);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (left_out)
		alog("%s (and %lu such lines left out since the last one)", line, left_out);
	else
		alog("%s", line);
}

/* --- clients ------------------------------------------------------------------ */

/* link_psk_lookup for the server ctx. */
static int lookup_client(void *arg, const char *name, uint8_t key[PROTO_PSK_LEN])
{
	const struct client *c;
	int r = -ENOENT;

	(void)arg;
	pthread_rwlock_rdlock(&app.clients_lock);
	c = clients_find(app.clients, app.nclients, name);
	if (c) {
		memcpy(key, c->key, PROTO_PSK_LEN);
		r = 0;
	}
	pthread_rwlock_unlock(&app.clients_lock);
	return r;
}

/* A client's roles now (0 if it is gone): looked up per request, so SIGHUP applies at once. */
static unsigned client_roles(const char *name)
{
	const struct client *c;
	unsigned roles = 0;

	pthread_rwlock_rdlock(&app.clients_lock);
	c = clients_find(app.clients, app.nclients, name);
	if (c)
		roles = c->roles;
	pthread_rwlock_unlock(&app.clients_lock);
	return roles;
}

/* How many clients have no roles field (sign only): worth a word at start and reload. */
static size_t sign_only_by_default(const struct client *v, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += !v[i].roles_given;
	return k;
}

/* SIGHUP: take the new clients file, and drop connections of removed clients. */
static void clients_reload(void)
{
	char err[SIGFS_ERRLEN];
	struct client *v, *old;
	size_t n, oldn;

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
	for (size_t s = 0; s < app.nslots; s++) {
		struct conn *c = app.conns[s];

		if (c && c->client[0] && !clients_find(v, n, c->client)) {
			alog("client %s is no longer in the clients file: closing its connection",
			     c->client);
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&app.conns_lock);
	pthread_rwlock_unlock(&app.clients_lock);
	clients_free(old, oldn);
	alog("SIGHUP: %zu clients (%zu without roles: sign only)", n, sign_only_by_default(v, n));
}

/* --- connections -------------------------------------------------------------- */

static void conn_release(struct conn *c)
{
	pthread_mutex_lock(&app.conns_lock);
	if (c->admit >= 0)
		admit_release(&app.admit, c->admit);
	else
		app.nauth--;
	app.conns[c->slot] = NULL;
	app.nconns--;
	pthread_cond_broadcast(&app.conns_done);
	pthread_mutex_unlock(&app.conns_lock);
	close(c->fd);
	free(c);
}

/*
 * The handshake is done: move c from the pre-authentication budget to the
 * authenticated one. false when MAX_CONNS authenticated connections are open:
 * c then keeps its pre-authentication slot until it is closed, so the slots
 * in app.conns always suffice.
 */
static bool conn_authenticated(struct conn *c, const char *client)
{
	bool ok;

	pthread_mutex_lock(&app.conns_lock);
	snprintf(c->client, sizeof(c->client), "%.*s", PROTO_MAX_KEYID, client);
	ok = app.nauth < MAX_CONNS;
	if (ok) {
		admit_release(&app.admit, c->admit);
		c->admit = -1;
		app.nauth++;
	}
	pthread_mutex_unlock(&app.conns_lock);
	return ok;
}

/* Send a refusal that ends the connection (best effort: the peer may be gone). */
static void refuse(struct link *l, struct sbuf *out, uint8_t op, uint32_t id, uint8_t st,
		   const char *msg)
{
	char err[SIGFS_ERRLEN];

	out->len = out->off = 0;
	if (proto_begin_reply(out, op, id, st, msg) == 0 && proto_end(out) == 0)
		link_send(l, out, err);
}

/* Serve requests on an authenticated link until it ends; then it is closed. */
static void conn_serve(struct conn *c, struct link *l)
{
	char err[SIGFS_ERRLEN], msg[SIGFS_ERRLEN];
	struct sbuf in, out;
	struct proto_frame f;
	bool greeted = false, keep = true;
	int r;

	sbuf_init(&in, app.srv.max_frame + 4);
	sbuf_init(&out, app.srv.max_frame + 4);
	while (keep) {
		r = link_recv(l, &in, &f, app.idle_ms, err);
		if (r == -EMSGSIZE) {
			alog("client %s: sent a frame of %u bytes; this appliance accepts at most %u "
			     "(--max-frame): closing the connection", c->client, f.len,
			     app.srv.max_frame);
			snprintf(msg, sizeof(msg), "frame of %u bytes: this appliance accepts at most "
				 "%u (--max-frame)", f.len, app.srv.max_frame);
			refuse(l, &out, f.op, f.id, PROTO_E_TOOBIG, msg);
			break;
		}
		if (r == -EBADMSG) {
			alog("client %s: %s; closing the connection", c->client, err);
			refuse(l, &out, 0, 0, PROTO_E_MALFORMED, err);
			break;
		}
		if (r == -ETIMEDOUT && in.len == 0) {
			if (app.srv.verbose)
				alog("client %s from %s: idle for %g s: closing the connection",
				     c->client, l->peer, app.idle_ms / 1000.0);
			break;
		}
		if (r == -ETIMEDOUT) {
			alog("client %s from %s: a request did not arrive whole within %g s: "
			     "closing the connection", c->client, l->peer, app.idle_ms / 1000.0);
			break;
		}
		if (r < 0) {
			if (r != -ECONNRESET)
				alog("client %s: %s", c->client, err);
			break;
		}
		keep = server_serve(&app.srv, c->client, client_roles(c->client), &f, &greeted,
				    &out);
		/* The request may have carried a private key (KEYLOAD). */
		OPENSSL_cleanse(in.d, in.len);
		r = link_send(l, &out, err);
		if (in.cap > KEEP_BYTES)
			sbuf_free(&in);
		if (out.cap > KEEP_BYTES)
			sbuf_free(&out);
		if (r < 0) {
			if (r != -ECONNRESET)
				alog("client %s: %s", c->client, err);
			break;
		}
	}
	sbuf_free(&in);
	sbuf_free(&out);
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
	struct link l;
	int fd, r;

	fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		alog("dup: %s", strerror(errno));
		conn_release(c);
		return NULL;
	}
	r = link_accept(&l, app.ctx, fd, app.handshake_ms, err);
	if (r == -EACCES) {
		alog("%s", err);
	} else if (r == -ETIMEDOUT) {
		alog_preauth("connection from %s: no TLS handshake within %g s: closing it", c->src,
			     app.handshake_ms / 1000.0);
	} else if (r < 0) {
		alog_preauth("%s", err);
	} else if (!conn_authenticated(c, l.client)) {
		alog("%d authenticated connections open: closing client %s's new one from %s",
		     MAX_CONNS, c->client, l.peer);
	} else {
		if (app.srv.verbose)
			alog("client %s connected from %s", c->client, l.peer);
		conn_serve(c, &l);
		if (app.srv.verbose)
			alog("client %s disconnected", c->client);
	}
	if (r == 0)
		link_close(&l);
	conn_release(c);
	return NULL;
}

/*
 * Hand an accepted socket to a new thread, or close it at once when the
 * pre-authentication budget has no room for its source.
 */
static void conn_start(int fd, const struct sockaddr *sa)
{
	pthread_attr_t attr;
	struct conn *c = NULL;
	char src[64];
	pthread_t th;
	int ad;

	pthread_mutex_lock(&app.conns_lock);
	ad = admit_take(&app.admit, sa);
	if (ad >= 0) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			admit_release(&app.admit, ad);
			ad = -ENOMEM;
		}
	}
	if (c) {
		/* There is always a free slot: MAX_CONNS authenticated + the admit budget. */
		for (c->slot = 0; app.conns[c->slot]; c->slot++)
			;
		c->fd = fd;
		c->admit = ad;
		admit_source_name(sa, c->src, sizeof(c->src));
		app.conns[c->slot] = c;
		app.nconns++;
	}
	pthread_mutex_unlock(&app.conns_lock);
	if (!c) {
		admit_source_name(sa, src, sizeof(src));
		if (ad == -EDQUOT)
			alog_preauth("closing a new connection from %s: %u handshakes from that "
				     "address in progress (--max-handshakes-per-address %u)", src,
				     app.admit.max_per_src, app.admit.max_per_src);
		else if (ad == -ENOSPC)
			alog_preauth("closing a new connection from %s: %u handshakes in progress "
				     "(--max-handshakes %u)", src, app.admit.max_total,
				     app.admit.max_total);
		else
			alog("out of memory: closing a new connection from %s", src);
		close(fd);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, conn_main, c) != 0) {
		alog("cannot start a connection thread: closing the connection from %s", c->src);
		conn_release(c);
	}
	pthread_attr_destroy(&attr);
}

/* Shut every connection down and wait until their threads have finished. */
static void conns_stop(void)
{
	pthread_mutex_lock(&app.conns_lock);
	for (size_t i = 0; i < app.nslots; i++)
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
		"                       [--name NAME] [--engines N] [--max-frame BYTES]\n"
		"                       [--idle-seconds S] [--handshake-seconds S]\n"
		"                       [--max-handshakes N] [--max-handshakes-per-address N]\n"
		"                       [--verbose]\n"
		"       sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...\n"
		"  --listen HOST:PORT  address to listen on (port 0: any free port)\n"
		"  --store DIR         key store, created 0700 (one ID.pem per key)\n"
		"  --clients FILE      'NAME HEX [sign,manage]' lines: each client's 32-byte key\n"
		"                      and roles (none: sign only); mode 0600\n"
		"  --name NAME         this appliance's name in HELLO and logs (default: hostname)\n"
		"  --engines N         signatures computed at once (default 1, at most %d)\n"
		"  --max-frame BYTES   largest request (default 1M; 64K to 64M, K and M suffixes)\n"
		"  --idle-seconds S    close an authenticated connection idle this long (default %d)\n"
		"  --handshake-seconds S  time a new connection has for its TLS handshake (default %d)\n"
		"  --max-handshakes N  connections in their handshake at once (default %d)\n"
		"  --max-handshakes-per-address N  ... from one address or IPv6 /64 (default %d)\n"
		"  --verbose           one log line per request\n"
		"ctl commands: listkeys | keygen ID TYPE BITS | keyload ID PEMFILE | pubkey ID |\n"
		"  keydel ID | sign ID SCHEME DIGEST HEXDATA|@FILE |\n"
		"  bench ID SCHEME DIGEST SECONDS THREADS\n",
		MAX_ENGINES, IDLE_S_DEFAULT, HANDSHAKE_S_DEFAULT, HANDSHAKES_DEFAULT,
		HANDSHAKES_PER_SRC_DEFAULT);
}

/* Seconds (decimals allowed) from min to max, as milliseconds; -1 if s is not that. */
static int parse_seconds(const char *s, double min, double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= min && v <= max))
		return -1;
	return (int)(v * 1000 + 0.5);
}

/* A count from min to max; -1 if s is not that. */
static long parse_count(const char *s, long min, long max)
{
	char *end;
	long v = strtol(s, &end, 10);

	return end == s || *end || v < min || v > max ? -1 : v;
}

/* Bytes, with an optional K or M (KiB, MiB), from MAX_FRAME_MIN to PROTO_MAX_FRAME; 0 if not. */
static uint32_t parse_frame(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s || s[0] == '-')
		return 0;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	return *end || v < MAX_FRAME_MIN || v > PROTO_MAX_FRAME ? 0 : (uint32_t)v;
}

/* Serve until SIGTERM/SIGINT; SIGHUP reloads the clients file. */
static int serve_forever(int lfd, int sfd)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
	struct signalfd_siginfo si;
	struct sockaddr_storage ss;
	socklen_t sl;
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
			sl = sizeof(ss);
			fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
			if (fd >= 0)
				conn_start(fd, (struct sockaddr *)&ss);
			else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
				alog("accept: %s", strerror(errno));
		}
	}
}

/* The options; returns 0, or 2 after printing what is wrong. */
static int options(int argc, char **argv, const char **listen_on, const char **store_dir,
		   long *engines, long *handshakes, long *per_src)
{
	enum { O_FRAME = 256, O_IDLE, O_HANDSHAKE, O_HANDSHAKES, O_PER_SRC };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "store", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		{ "engines", required_argument, NULL, 'e' },
		{ "max-frame", required_argument, NULL, O_FRAME },
		{ "idle-seconds", required_argument, NULL, O_IDLE },
		{ "handshake-seconds", required_argument, NULL, O_HANDSHAKE },
		{ "max-handshakes", required_argument, NULL, O_HANDSHAKES },
		{ "max-handshakes-per-address", required_argument, NULL, O_PER_SRC },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bad = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "l:s:c:n:e:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'l': *listen_on = optarg; break;
		case 's': *store_dir = optarg; break;
		case 'c': app.clients_path = optarg; break;
		case 'n': app.srv.name = optarg; break;
		case 'e':
			if ((*engines = parse_count(optarg, 1, MAX_ENGINES)) < 0)
				bad = "--engines wants 1 to 256";
			break;
		case O_FRAME:
			if (!(app.srv.max_frame = parse_frame(optarg)))
				bad = "--max-frame wants 65536 to 67108864 bytes (64K to 64M)";
			break;
		case O_IDLE:
			if ((app.idle_ms = parse_seconds(optarg, 0.1, 86400)) < 0)
				bad = "--idle-seconds wants 0.1 to 86400";
			break;
		case O_HANDSHAKE:
			if ((app.handshake_ms = parse_seconds(optarg, 0.1, 60)) < 0)
				bad = "--handshake-seconds wants 0.1 to 60";
			break;
		case O_HANDSHAKES:
			if ((*handshakes = parse_count(optarg, 1, HANDSHAKES_MAX)) < 0)
				bad = "--max-handshakes wants 1 to 1024";
			break;
		case O_PER_SRC:
			if ((*per_src = parse_count(optarg, 1, HANDSHAKES_MAX)) < 0)
				bad = "--max-handshakes-per-address wants 1 to 1024";
			break;
		case 'v': app.srv.verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
		if (bad) {
			fprintf(stderr, "sigfs-appliance: %s, not '%s'\n", bad, optarg);
			return 2;
		}
	}
	if (*per_src > *handshakes) {
		fprintf(stderr, "sigfs-appliance: --max-handshakes-per-address (%ld) must not be "
			"more than --max-handshakes (%ld)\n", *per_src, *handshakes);
		return 2;
	}
	if (!*listen_on || !*store_dir || !app.clients_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* --name, or the host name; 0, or -EINVAL after saying what a name may be. */
static int set_name(char *host, size_t len)
{
	if (!app.srv.name) {
		if (gethostname(host, len) < 0)
			snprintf(host, len, "appliance");
		host[len - 1] = '\0';
		app.srv.name = host;
	}
	if (!proto_keyid_ok(app.srv.name, strlen(app.srv.name)) || strlen(app.srv.name) > 64) {
		fprintf(stderr, "sigfs-appliance: --name wants 1 to 64 of A-Z a-z 0-9 . _ -\n");
		return -EINVAL;
	}
	return 0;
}

/* Signals are read from a signalfd by this thread; no thread gets them. Returns the signalfd. */
static int signals_to_fd(void)
{
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &sigs, SFD_CLOEXEC);
}

/* app's locks, engines and connection slots (app.conns is NULL if out of memory). */
static void app_init(long engines, long handshakes)
{
	pthread_rwlock_init(&app.clients_lock, NULL);
	pthread_mutex_init(&app.conns_lock, NULL);
	pthread_mutex_init(&app.preauth_log_lock, NULL);
	pthread_cond_init(&app.conns_done, NULL);
	sem_init(&app.engines, 0, (unsigned)engines);
	app.srv.log = stderr;
	app.srv.store = &app.store;
	app.srv.engines = &app.engines;
	app.nslots = MAX_CONNS + (size_t)handshakes;
	app.conns = calloc(app.nslots, sizeof(*app.conns));
}

static void log_started(const char *bound, long engines, long handshakes, long per_src)
{
	alog("listening on %s", bound);
	alog("%zu keys, %zu clients (%zu without roles: sign only), %ld signing engines",
	     app.store.n, app.nclients, sign_only_by_default(app.clients, app.nclients), engines);
	alog("limits: frames of %u bytes; %d authenticated connections, closed after %g s idle; "
	     "%ld connections before authentication, %ld per address, %g s each",
	     app.srv.max_frame, MAX_CONNS, app.idle_ms / 1000.0, handshakes, per_src,
	     app.handshake_ms / 1000.0);
}

int main(int argc, char **argv)
{
	const char *listen_on = NULL, *store_dir = NULL;
	char err[SIGFS_ERRLEN], bound[128], host[256];
	long engines = 1, handshakes = HANDSHAKES_DEFAULT, per_src = HANDSHAKES_PER_SRC_DEFAULT;
	int lfd = -1, sfd = -1, rc = 1;

	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	app.srv.max_frame = MAX_FRAME_DEFAULT;
	app.idle_ms = IDLE_S_DEFAULT * 1000;
	app.handshake_ms = HANDSHAKE_S_DEFAULT * 1000;
	if (options(argc, argv, &listen_on, &store_dir, &engines, &handshakes, &per_src) != 0)
		return 2;
	if (set_name(host, sizeof(host)) < 0)
		return 2;
	/* See KEEP_BYTES: a fixed threshold also stops glibc from raising it after a free. */
	mallopt(M_MMAP_THRESHOLD, KEEP_BYTES);
	sfd = signals_to_fd();
	app_init(engines, handshakes);
	if (sfd < 0 || !app.conns ||
	    admit_init(&app.admit, (unsigned)handshakes, (unsigned)per_src) < 0) {
		alog("cannot set up: %s", sfd < 0 ? strerror(errno) : "out of memory");
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
	log_started(bound, engines, handshakes, per_src);
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
	admit_free(&app.admit);
	free(app.conns);
	sem_destroy(&app.engines);
	return rc;
}
