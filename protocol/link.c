/*
 * link.c: TLS 1.3 external-PSK connections carrying appliance frames
 * (link.h). The client offers one PSK whose identity is its name; the server
 * finds that name in its clients file and builds the matching session. There
 * are no certificates, so a client the server does not know, or a wrong key,
 * ends the handshake with an alert: the client reports that as -EACCES.
 * The key exchange is psk_dhe_ke (OpenSSL's default), so a leaked PSK does
 * not decrypt recorded sessions.
 *
 * Sockets are non-blocking and every wait is a poll() with the caller's
 * deadline. Bytes go through a small socket BIO of our own that sends with
 * MSG_NOSIGNAL: a peer that vanishes yields EPIPE, never SIGPIPE, so the
 * library is safe in any process (sigfsd does not ignore SIGPIPE before its
 * backends connect).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "common/err.h"
#include "protocol/link.h"
#include "protocol/reply.h"

#define CIPHER_SUITE "TLS_AES_128_GCM_SHA256"
#define READ_CHUNK 16384
/* Handshakes closed at once by a busy appliance: tries, and the first pause (then doubled). */
#define CONNECT_TRIES 6
#define CONNECT_PAUSE_MS 10

/* TLS_AES_128_GCM_SHA256 on the wire (RFC 8446, B.4). */
static const unsigned char suite_id[2] = { 0x13, 0x01 };

/* What a ctx carries: the server's lookup, or the client's name and key. */
struct link_cfg {
	link_psk_lookup lookup;
	void *arg;
	char client[PROTO_MAX_STR + 1];
	uint8_t key[PROTO_PSK_LEN];
};

/* --- a socket BIO that never raises SIGPIPE ---------------------------------- */

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static int nosig_write(BIO *b, const char *p, int n)
{
	ssize_t w;

	BIO_clear_retry_flags(b);
	w = send(bio_fd(b), p, (size_t)n, MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)w;
}

static int nosig_read(BIO *b, char *p, int n)
{
	ssize_t r;

	BIO_clear_retry_flags(b);
	r = recv(bio_fd(b), p, (size_t)n, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)r;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = bio_fd(b);
		return bio_fd(b);
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int nosig_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void nosig_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
				     BIO_TYPE_DESCRIPTOR, "sigfs nosigpipe socket");

	if (m && BIO_meth_set_write(m, nosig_write) == 1 && BIO_meth_set_read(m, nosig_read) == 1 &&
	    BIO_meth_set_ctrl(m, nosig_ctrl) == 1 && BIO_meth_set_create(m, nosig_create) == 1) {
		nosig_method = m;
		return;
	}
	BIO_meth_free(m);
}

/* An SSL on fd (not owned by the BIO: link_close closes it). */
static SSL *ssl_on_fd(SSL_CTX *ctx, int fd)
{
	SSL *ssl;
	BIO *bio;

	pthread_once(&nosig_once, nosig_init);
	if (!nosig_method)
		return NULL;
	ssl = SSL_new(ctx);
	bio = BIO_new(nosig_method);
	if (!ssl || !bio) {
		SSL_free(ssl);
		BIO_free(bio);
		return NULL;
	}
	BIO_set_data(bio, (void *)(intptr_t)fd);
	SSL_set_bio(ssl, bio, bio);
	return ssl;
}

/* --- waiting ------------------------------------------------------------------ */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline timeout_ms from now; -1 (none) for a negative timeout. */
static long long deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Wait until fd is ready for ev: 0, -ETIMEDOUT past the deadline, or -errno. */
static int wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long long left;
	int r;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - now_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * After an SSL call returned rc: 0 once the socket is ready for OpenSSL to be
 * called again, or a -errno with err saying why.
 * An alert from the peer during the handshake is -EACCES: with PSK only, it
 * means the peer did not accept our identity or key.
 */
static int ssl_again(struct link *l, int rc, long long deadline, char *err)
{
	const char *what = SSL_is_server(l->ssl) ? "client" : "appliance";
	unsigned long e;
	const char *why;
	int r;

	switch (SSL_get_error(l->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		r = wait_fd(l->fd, POLLIN, deadline);
		break;
	case SSL_ERROR_WANT_WRITE:
		r = wait_fd(l->fd, POLLOUT, deadline);
		break;
	case SSL_ERROR_ZERO_RETURN:
		return sigfs_seterr(err, -ECONNRESET, "%s %s closed the connection", what, l->peer);
	case SSL_ERROR_SYSCALL:
		r = errno && errno != EPIPE ? -errno : -ECONNRESET;
		ERR_clear_error();
		return sigfs_seterr(err, r, "%s %s: %s", what, l->peer,
				    r == -ECONNRESET ? "connection closed" : strerror(-r));
	default:
		e = ERR_peek_last_error();
		why = ERR_reason_error_string(e);
		ERR_clear_error();
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			return sigfs_seterr(err, -ECONNRESET, "%s %s closed the connection",
					    what, l->peer);
		r = ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET &&
		    !SSL_is_init_finished(l->ssl) ? -EACCES : -EPROTO;
		return sigfs_seterr(err, r, "%s %s: TLS: %s", what, l->peer, why ? why : "error");
	}
	if (r == -ETIMEDOUT)
		return sigfs_seterr(err, r, "%s %s: timed out", what, l->peer);
	if (r < 0)
		return sigfs_seterr(err, r, "%s %s: poll: %s", what, l->peer, strerror(-r));
	return 0;
}

/* --- contexts ----------------------------------------------------------------- */

/* A PSK session for key: what both sides hand to OpenSSL. */
static SSL_SESSION *psk_session(SSL *ssl, const uint8_t key[PROTO_PSK_LEN])
{
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, suite_id);
	SSL_SESSION *s = SSL_SESSION_new();

	if (!c || !s || SSL_SESSION_set1_master_key(s, key, PROTO_PSK_LEN) != 1 ||
	    SSL_SESSION_set_cipher(s, c) != 1 ||
	    SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		   SSL_SESSION **sess)
{
	struct link_cfg *cfg = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	(void)md;
	*sess = psk_session(ssl, cfg->key);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)cfg->client;
	*idlen = strlen(cfg->client);
	return 1;
}

/* Server: find the offered identity; an unknown one gets no session (handshake fails). */
static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct link_cfg *cfg = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct link *l = SSL_get_app_data(ssl);
	uint8_t key[PROTO_PSK_LEN];

	*sess = NULL;
	if (!proto_keyid_ok((const char *)id, idlen))
		return 1;
	/* Only a name so far: it becomes the authenticated client when the handshake ends. */
	memcpy(l->client, id, idlen);
	l->client[idlen] = '\0';
	if (cfg->lookup(cfg->arg, l->client, key) == 0) {
		*sess = psk_session(ssl, key);
		OPENSSL_cleanse(key, sizeof(key));
		return *sess ? 1 : 0;
	}
	return 1;
}

static SSL_CTX *ctx_new(const SSL_METHOD *m, struct link_cfg **cfgp, char *err)
{
	SSL_CTX *ctx = SSL_CTX_new(m);
	struct link_cfg *cfg = calloc(1, sizeof(*cfg));

	if (!ctx || !cfg || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, CIPHER_SUITE) != 1 || SSL_CTX_set_app_data(ctx, cfg) != 1) {
		SSL_CTX_free(ctx);
		free(cfg);
		ERR_clear_error();
		sigfs_seterr(err, -ENOMEM, "appliance link: cannot set up a TLS 1.3 context");
		return NULL;
	}
	/* The PSK is the only credential: no tickets, no resumption. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	*cfgp = cfg;
	return ctx;
}

SSL_CTX *link_server_ctx(link_psk_lookup lookup, void *arg, char *err)
{
	struct link_cfg *cfg;
	SSL_CTX *ctx = ctx_new(TLS_server_method(), &cfg, err);

	if (!ctx)
		return NULL;
	cfg->lookup = lookup;
	cfg->arg = arg;
	SSL_CTX_set_psk_find_session_callback(ctx, psk_find);
	/* An idle connection holds no TLS record buffers (some 34 KiB each). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

SSL_CTX *link_client_ctx(const char *client, const uint8_t key[PROTO_PSK_LEN], char *err)
{
	struct link_cfg *cfg;
	SSL_CTX *ctx;

	if (!proto_keyid_ok(client, strlen(client))) {
		sigfs_seterr(err, -EINVAL, "appliance link: client name '%.64s' is not valid "
			     "(1 to %d of A-Z a-z 0-9 . _ -)", client, PROTO_MAX_KEYID);
		return NULL;
	}
	ctx = ctx_new(TLS_client_method(), &cfg, err);
	if (!ctx)
		return NULL;
	snprintf(cfg->client, sizeof(cfg->client), "%s", client);
	memcpy(cfg->key, key, PROTO_PSK_LEN);
	SSL_CTX_set_psk_use_session_callback(ctx, psk_use);
	return ctx;
}

void link_ctx_free(SSL_CTX *ctx)
{
	struct link_cfg *cfg;

	if (!ctx)
		return;
	cfg = SSL_CTX_get_app_data(ctx);
	if (cfg) {
		OPENSSL_cleanse(cfg, sizeof(*cfg));
		free(cfg);
	}
	SSL_CTX_free(ctx);
}

/* --- addresses ---------------------------------------------------------------- */

/* "host:port" or "[v6addr]:port" into its parts. */
static int split_hostport(const char *hostport, char *host, size_t hostlen, char *port,
			  size_t portlen, char *err)
{
	const char *colon, *h = hostport;
	size_t n;

	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');

		if (!end || end[1] != ':')
			goto bad;
		h = hostport + 1;
		n = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
			goto bad;
		n = (size_t)(colon - hostport);
	}
	if (n == 0 || n >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535)
		goto bad;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return 0;
bad:
	return sigfs_seterr(err, -EINVAL, "'%.200s' is not HOST:PORT (IPv6: [ADDR]:PORT)",
			    hostport);
}

static void addr_name(const struct sockaddr *sa, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

int link_listen(const char *hostport, int *fdp, char *bound, size_t boundlen, char *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai, *a;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[8];
	int r, fd = -1, one = 1;

	r = split_hostport(hostport, host, sizeof(host), port, sizeof(port), err);
	if (r < 0)
		return r;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return sigfs_seterr(err, -EADDRNOTAVAIL, "cannot listen on %s: %s", hostport,
				    gai_strerror(r));
	r = -EADDRNOTAVAIL;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/*
		 * The longest accept queue the kernel allows: a full one drops a
		 * client's SYN, which it sends again only after a second, and an
		 * attacker reopening connections in a loop keeps hundreds queued.
		 */
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return sigfs_seterr(err, r, "cannot listen on %s: %s", hostport, strerror(-r));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		close(fd);
		return sigfs_seterr(err, r, "getsockname: %s", strerror(-r));
	}
	addr_name((struct sockaddr *)&ss, bound, boundlen);
	*fdp = fd;
	return 0;
}

/* Connect to one of host's addresses before the deadline; the fd is non-blocking. */
static int tcp_connect(struct link *l, const char *host, const char *port, long long deadline,
		       char *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	socklen_t sl;
	int r, fd, soerr;

	r = getaddrinfo(host, port, &hints, &ai);
	if (r != 0)
		return sigfs_seterr(err, -EHOSTUNREACH, "appliance %s: cannot resolve %s: %s",
				    l->peer, host, gai_strerror(r));
	r = -EHOSTUNREACH;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			l->fd = fd;
			break;
		}
		r = -errno;
		if (r == -EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline);
			sl = sizeof(soerr);
			if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
				r = -soerr;
			if (r == 0) {
				l->fd = fd;
				break;
			}
		}
		close(fd);
		if (r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	if (l->fd >= 0)
		return 0;
	if (r == -ECONNREFUSED)
		return sigfs_seterr(err, r, "appliance %s refused the connection "
				    "(is sigfs-appliance running there?)", l->peer);
	if (r == -ETIMEDOUT)
		return sigfs_seterr(err, r, "appliance %s: connect timed out", l->peer);
	return sigfs_seterr(err, r, "appliance %s: connect: %s", l->peer, strerror(-r));
}

/* --- connections -------------------------------------------------------------- */

static void link_reset(struct link *l)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->max_frame = PROTO_MAX_FRAME;
}

/* Milliseconds left until deadline, for calls that take a timeout; -1: none. */
static int ms_left(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : (int)left;
}

static int hello(struct link *l, const char *client, long long deadline, char *err)
{
	struct reply_hello h;
	struct sbuf req, buf;
	struct proto_frame f;
	uint8_t st = PROTO_OK;
	int r;

	sbuf_init(&req, PROTO_MAX_STR + 64);
	sbuf_init(&buf, PROTO_MAX_FRAME + 4);
	if ((r = proto_begin(&req, PROTO_HELLO, 1)) < 0 ||
	    (r = sbuf_put_u8(&req, PROTO_VERSION)) < 0 ||
	    (r = sbuf_put_u8(&req, PROTO_VERSION)) < 0 || (r = proto_put_str(&req, client)) < 0 ||
	    (r = proto_end(&req)) < 0) {
		sigfs_seterr(err, r, "appliance %s: cannot encode HELLO", l->peer);
		goto out;
	}
	r = link_call(l, &req, &buf, &f, &st, ms_left(deadline), err);
	if (r == -EREMOTEIO && st == PROTO_E_VERSION)
		r = -EPROTO;
	if (r < 0)
		goto out;
	if (reply_hello(&f.body, &h) < 0 || h.ver != PROTO_VERSION) {
		r = sigfs_seterr(err, -EPROTO, "appliance %s: bad HELLO reply (protocol version "
				 "%d expected)", l->peer, PROTO_VERSION);
		goto out;
	}
	l->max_frame = h.max_frame < PROTO_MAX_FRAME ? h.max_frame : PROTO_MAX_FRAME;
	r = 0;
out:
	sbuf_free(&req);
	sbuf_free(&buf);
	return r;
}

/* TCP and the TLS handshake to host:port, once, before the deadline. */
static int handshake(struct link *l, SSL_CTX *ctx, const char *host, const char *port,
		     long long deadline, char *err)
{
	struct link_cfg *cfg = SSL_CTX_get_app_data(ctx);
	int r, rc;

	r = tcp_connect(l, host, port, deadline, err);
	if (r < 0)
		return r;
	setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	l->ssl = ssl_on_fd(ctx, l->fd);
	if (!l->ssl) {
		r = sigfs_seterr(err, -ENOMEM, "appliance %s: cannot set up TLS", l->peer);
		goto fail;
	}
	SSL_set_connect_state(l->ssl);
	ERR_clear_error();
	while ((rc = SSL_do_handshake(l->ssl)) != 1) {
		errno = 0;
		r = ssl_again(l, rc, deadline, err);
		if (r == -EACCES)
			sigfs_seterr(err, r, "appliance %s refused client %s: wrong or unknown key",
				     l->peer, cfg->client);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	link_close(l);
	return r;
}

int link_connect(struct link *l, SSL_CTX *ctx, const char *hostport, int timeout_ms, char *err)
{
	struct link_cfg *cfg = SSL_CTX_get_app_data(ctx);
	long long deadline = deadline_in(timeout_ms);
	char host[256], port[8];
	long long pause = CONNECT_PAUSE_MS;
	uint16_t jitter;
	int r, tries;

	link_reset(l);
	snprintf(l->peer, sizeof(l->peer), "%s", hostport);
	r = split_hostport(hostport, host, sizeof(host), port, sizeof(port), err);
	if (r < 0)
		return r;
	/*
	 * An appliance closes a new connection at once when its budget for
	 * connections in their handshake has no room for our address, as when
	 * all of sigfsd's workers connect together. That is not the appliance
	 * being down: try again a few times, soon and at jittered moments (so
	 * the workers do not collide again), before the deadline.
	 */
	for (tries = 1;; tries++) {
		r = handshake(l, ctx, host, port, deadline, err);
		if (r != -ECONNRESET || tries == CONNECT_TRIES ||
		    (deadline >= 0 && now_ms() + 2 * pause > deadline))
			break;
		if (RAND_bytes((unsigned char *)&jitter, sizeof(jitter)) != 1)
			jitter = (uint16_t)now_ms();
		poll(NULL, 0, (int)(pause + jitter % pause));
		pause *= 2;
		link_reset(l);
		snprintf(l->peer, sizeof(l->peer), "%s", hostport);
	}
	if (r == -ECONNRESET && tries > 1)
		return sigfs_seterr(err, r, "appliance %s closed the connection before the TLS "
				    "handshake ended, %d times: it is stopping, or busy with "
				    "handshakes from this address (its --max-handshakes-per-address)",
				    l->peer, tries);
	if (r < 0)
		return r;
	r = hello(l, cfg->client, deadline, err);
	if (r < 0)
		link_close(l);
	return r;
}

int link_accept(struct link *l, SSL_CTX *ctx, int fd, int timeout_ms, char *err)
{
	long long deadline = deadline_in(timeout_ms);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r, rc;

	link_reset(l);
	l->fd = fd;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_name((struct sockaddr *)&ss, l->peer, sizeof(l->peer));
	else
		snprintf(l->peer, sizeof(l->peer), "fd %d", fd);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = sigfs_seterr(err, -errno, "client %s: fcntl: %s", l->peer, strerror(errno));
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	l->ssl = ssl_on_fd(ctx, fd);
	if (!l->ssl) {
		r = sigfs_seterr(err, -ENOMEM, "client %s: cannot set up TLS", l->peer);
		goto fail;
	}
	SSL_set_app_data(l->ssl, l);
	SSL_set_accept_state(l->ssl);
	ERR_clear_error();
	while ((rc = SSL_do_handshake(l->ssl)) != 1) {
		errno = 0;
		r = ssl_again(l, rc, deadline, err);
		if (r < 0)
			goto refused;
	}
	/* Without a certificate the server can only have finished through the PSK. */
	if (!SSL_session_reused(l->ssl) || !l->client[0]) {
		r = sigfs_seterr(err, -EACCES, "client %s: handshake without a PSK", l->peer);
		goto fail;
	}
	return 0;
refused:
	if (l->client[0] && r != -ETIMEDOUT && r != -ECONNRESET)
		r = sigfs_seterr(err, -EACCES, "refused client %s from %s: wrong or unknown key",
				 l->client, l->peer);
fail:
	link_close(l);
	return r;
}

int link_idle_ok(struct link *l)
{
	struct pollfd p = { .fd = l->fd, .events = POLLIN | POLLRDHUP };

	if (!l->ssl || SSL_pending(l->ssl) > 0)
		return -ECONNRESET;
	while (poll(&p, 1, 0) < 0)
		if (errno != EINTR)
			return -ECONNRESET;
	return p.revents ? -ECONNRESET : 0;
}

void link_close(struct link *l)
{
	if (l->ssl) {
		/* close_notify, best effort: the socket is non-blocking. */
		if (SSL_is_init_finished(l->ssl))
			SSL_shutdown(l->ssl);
		ERR_clear_error();
		SSL_free(l->ssl);
		l->ssl = NULL;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

int link_send(struct link *l, const struct sbuf *frame, char *err)
{
	size_t w;
	int r;

	if (!l->ssl)
		return sigfs_seterr(err, -ENOTCONN, "%s: not connected", l->peer);
	ERR_clear_error();
	for (;;) {
		errno = 0;
		r = SSL_write_ex(l->ssl, frame->d, frame->len, &w);
		if (r == 1)
			return 0;
		r = ssl_again(l, r, -1, err);
		if (r < 0)
			return r;
	}
}

/* Read exactly n bytes before the deadline. */
static int read_full(struct link *l, uint8_t *p, size_t n, long long deadline, char *err)
{
	size_t got = 0, rd;
	int r;

	while (got < n) {
		errno = 0;
		r = SSL_read_ex(l->ssl, p + got, n - got, &rd);
		if (r == 1) {
			got += rd;
			continue;
		}
		r = ssl_again(l, r, deadline, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int link_recv(struct link *l, struct sbuf *buf, struct proto_frame *f, int timeout_ms, char *err)
{
	long long deadline = deadline_in(timeout_ms);
	uint8_t hdr[4], head[PROTO_HDR_LEN], *chunk = NULL;
	struct sbuf frame;
	uint32_t len;
	size_t left, n;
	int r;

	if (!l->ssl)
		return sigfs_seterr(err, -ENOTCONN, "%s: not connected", l->peer);
	sbuf_reset(buf);
	ERR_clear_error();
	r = read_full(l, hdr, sizeof(hdr), deadline, err);
	if (r < 0)
		return r;
	r = proto_frame_len(hdr, buf->max - sizeof(hdr), &len);
	if (r == -EBADMSG)
		return sigfs_seterr(err, r, "%s sent a frame of %u bytes (at least %d)", l->peer,
				    len, PROTO_HDR_LEN);
	if (r == -EMSGSIZE) {
		/* Only the header, so the refusal can answer it; never the body. */
		r = read_full(l, head, sizeof(head), deadline, err);
		if (r < 0)
			return r;
		proto_parse(head, sizeof(head), f);
		f->len = len;
		return sigfs_seterr(err, -EMSGSIZE, "%s sent a frame of %u bytes (at most %zu)",
				    l->peer, len, buf->max - sizeof(hdr));
	}
	chunk = malloc(READ_CHUNK);
	if (!chunk)
		return sigfs_seterr(err, -ENOMEM, "%s: out of memory", l->peer);
	r = sbuf_put(buf, hdr, sizeof(hdr));
	for (left = len; r == 0 && left > 0; left -= n) {
		n = left < READ_CHUNK ? left : READ_CHUNK;
		r = read_full(l, chunk, n, deadline, err);
		if (r < 0)
			break;
		r = sbuf_put(buf, chunk, n);
		if (r < 0)
			sigfs_seterr(err, r, "%s: cannot buffer a frame: %s", l->peer, strerror(-r));
	}
	/* Frames carry private keys (KEYLOAD). */
	OPENSSL_cleanse(chunk, READ_CHUNK);
	free(chunk);
	if (r < 0)
		return r;
	/* What followed the length field: len bytes, checked by proto_frame_len above. */
	sbuf_view(&frame, sbuf_ptr(buf), sbuf_avail(buf));
	if ((r = sbuf_get(&frame, NULL, sizeof(hdr))) == 0)
		r = proto_parse(sbuf_ptr(&frame), sbuf_avail(&frame), f);
	if (r < 0)
		return sigfs_seterr(err, r, "%s sent a frame that does not parse", l->peer);
	return 0;
}

int link_call(struct link *l, const struct sbuf *req, struct sbuf *buf, struct proto_frame *f,
	      uint8_t *status, int timeout_ms, char *err)
{
	char msg[PROTO_MAX_STR + 1];
	struct proto_frame q;
	struct sbuf frame;
	uint8_t st = PROTO_OK;
	int r;

	sbuf_view(&frame, sbuf_ptr(req), sbuf_avail(req));
	/* The request as proto_end left it: a length field, then the frame to check. */
	if (sbuf_get(&frame, NULL, 4) < 0 ||
	    proto_parse(sbuf_ptr(&frame), sbuf_avail(&frame), &q) < 0)
		return sigfs_seterr(err, -EINVAL, "appliance %s: request frame not finished",
				    l->peer);
	if (q.len > l->max_frame)
		return sigfs_seterr(err, -EMSGSIZE, "appliance %s accepts frames of at most %u "
				    "bytes (its --max-frame); this %s request is %u bytes", l->peer,
				    l->max_frame, proto_op_name(q.op), q.len);
	r = link_send(l, req, err);
	if (r < 0)
		return r;
	r = link_recv(l, buf, f, timeout_ms, err);
	if (r < 0)
		return r;
	r = reply_status(f, q.op, q.id, &st, msg, sizeof(msg));
	if (status)
		*status = st;
	if (r == -EPROTO)
		return sigfs_seterr(err, r, "appliance %s: reply (version %u, op %u, id %u) does not "
				    "answer request (op %u, id %u)", l->peer, f->ver, f->op, f->id,
				    q.op, q.id);
	if (r == 0)
		return 0;
	if (st == PROTO_E_DENIED)
		return sigfs_seterr(err, r, "appliance %s refused %s: %s", l->peer,
				    proto_op_name(q.op), msg);
	return sigfs_seterr(err, r, "appliance %s: %s (%s)", l->peer, msg, proto_status_name(st));
}
