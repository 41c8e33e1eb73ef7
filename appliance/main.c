/*
 * main.c: sigfs-appliance, a SEGGER-style signing appliance (docs/appliance.md).
 *
 *   sigfs-appliance --listen HOST:PORT --store DIR --clients FILE
 *                   [--name NAME] [--engines N] [--verbose]
 *   sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...  (ctl.c)
 *
 * Holds private keys (store.c) and answers the protocol of proto.h (server.c)
 * over TLS-PSK links (link.c), one thread per connection, at most MAX_CONNS.
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

#include "appliance/ctl.h"
#include "appliance/link.h"
#include "appliance/proto.h"
#include "appliance/server.h"
#include "appliance/store.h"
#include "common/err.h"

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
	struct server srv;           /* its store and engines are the two below */
	struct store store;
	sem_t engines;
	SSL_CTX *ctx;

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
	va_list ap;

	va_start(ap, fmt);
	server_vlog(&app.srv, fmt, ap);
	va_end(ap);
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
	if (app.srv.verbose)
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
		keep = server_serve(&app.srv, c->client, &f, &greeted, &out, &rep);
		/* The request may have carried a private key (KEYLOAD). */
		OPENSSL_cleanse(in.d, in.len);
		r = link_send(&l, &out, err);
		if (r < 0) {
			if (r != -ECONNRESET)
				alog("client %s: %s", c->client, err);
			break;
		}
	}
	if (app.srv.verbose)
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
		case 'n': app.srv.name = optarg; break;
		case 'e':
			engines = strtol(optarg, &end, 10);
			if (*end || engines < 1 || engines > MAX_ENGINES) {
				fprintf(stderr, "sigfs-appliance: --engines wants 1 to %d\n",
					MAX_ENGINES);
				return 2;
			}
			break;
		case 'v': app.srv.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_on || !store_dir || !app.clients_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!app.srv.name) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "appliance");
		host[sizeof(host) - 1] = '\0';
		app.srv.name = host;
	}
	if (!proto_keyid_ok(app.srv.name, strlen(app.srv.name)) || strlen(app.srv.name) > 64) {
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
	app.srv.log = stderr;
	app.srv.store = &app.store;
	app.srv.engines = &app.engines;
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
