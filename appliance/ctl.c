/*
 * ctl.c: `sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD`,
 * the appliance's admin client, also what the tests drive it with. Each
 * command opens one link (link.c) and sends one request; `bench` opens one
 * link per thread and signs a fixed digest in a loop. A refused request
 * prints the appliance's message and status name and exits 1. Replies are
 * read with reply.h's parsers, the ones sigfsd's backend uses.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "appliance/ctl.h"
#include "common/err.h"
#include "common/hex.h"
#include "common/secret.h"
#include "protocol/link.h"
#include "protocol/proto.h"
#include "protocol/reply.h"

#define CONNECT_MS 10000
/* Long enough for an RSA-8192 KEYGEN. */
#define CALL_MS 300000
#define MAX_BENCH_THREADS 256

/* ctl's names of signature schemes (docs/appliance.md); key types are protocol/proto.c's. */
static const struct {
	const char *name;
	uint8_t scheme;
} schemes[] = {
	{ "rsa-pss", PROTO_SCHEME_RSA_PSS },
	{ "rsa-pkcs1", PROTO_SCHEME_RSA_PKCS1 },
	{ "ecdsa", PROTO_SCHEME_ECDSA },
	{ "ed25519", PROTO_SCHEME_ED25519 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* One connection and its buffers. */
struct ctl {
	struct link l;
	uint32_t id;
	struct sbuf req, buf;
	struct proto_frame f;
	char err[SIGFS_ERRLEN];
};

static int complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int complain(const char *fmt, ...)
{
	va_list ap;

	fputs("sigfs-appliance ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static const char *type_name(uint8_t t)
{
	const char *name = proto_keytype_ctl_name(t);

	return name ? name : "?";
}

static void hex_print(const uint8_t *p, size_t n)
{
	char *hex = malloc(2 * n + 1);

	if (!hex) {
		complain("out of memory");
		return;
	}
	sigfs_hex_encode(p, n, hex);
	puts(hex);
	free(hex);
}

/* Decode hex (no separators, either case, at most max bytes) into out; -EINVAL if it is not that. */
static int hex_decode(const char *hex, uint8_t *out, size_t max, size_t *n)
{
	size_t len = strlen(hex);

	if (len % 2 || len / 2 > max || sigfs_hex_decode(hex, out, len / 2, NULL) < 0)
		return -EINVAL;
	*n = len / 2;
	return 0;
}

/* The client's key: one line of 64 hex characters, in a 0600/0400 file we own. */
static SSL_CTX *client_ctx(const char *client, const char *path, char *err)
{
	char line[80];
	uint8_t key[PROTO_PSK_LEN];
	size_t len, n;
	SSL_CTX *ctx = NULL;

	if (sigfs_read_secret("appliance", client, "secret file", "key", path, line, sizeof(line),
			      &len, err) < 0)
		return NULL;
	if (len != 2 * PROTO_PSK_LEN || hex_decode(line, key, sizeof(key), &n) < 0)
		sigfs_seterr(err, -EINVAL, "secret file %s must hold one line of %d hex characters "
			     "(the client's %d-byte key)", path, 2 * PROTO_PSK_LEN, PROTO_PSK_LEN);
	else
		ctx = link_client_ctx(client, key, err);
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(key, sizeof(key));
	return ctx;
}

static int ctl_open(struct ctl *c, SSL_CTX *ctx, const char *hostport)
{
	memset(c, 0, sizeof(*c));
	sbuf_init(&c->req, PROTO_MAX_FRAME + 4);
	sbuf_init(&c->buf, PROTO_MAX_FRAME + 4);
	return link_connect(&c->l, ctx, hostport, CONNECT_MS, c->err);
}

static void ctl_close(struct ctl *c)
{
	link_close(&c->l);
	sbuf_free(&c->req);
	sbuf_free(&c->buf);
}

static int begin(struct ctl *c, uint8_t op)
{
	sbuf_free(&c->req);
	return proto_begin(&c->req, op, ++c->id);
}

/* Finish the request and wait for its reply; c->f.body is the reply body. */
static int call(struct ctl *c)
{
	int r = proto_end(&c->req);

	if (r < 0)
		return sigfs_seterr(c->err, r, "request does not fit a frame");
	return link_call(&c->l, &c->req, &c->buf, &c->f, NULL, CALL_MS, c->err);
}

/* Put a key id unchecked: the appliance is the one that judges it. */
static int put_id(struct ctl *c, const char *id)
{
	int r = proto_put_str(&c->req, id);

	return r < 0 ? sigfs_seterr(c->err, r, "key id of %zu bytes: at most %d", strlen(id),
				    PROTO_MAX_STR) : 0;
}

static int cmd_listkeys(struct ctl *c, char **a)
{
	char id[PROTO_MAX_KEYID + 1];
	uint32_t n;
	uint16_t bits;
	uint8_t type;
	int r;

	(void)a;
	if ((r = begin(c, PROTO_LISTKEYS)) < 0 || (r = call(c)) < 0)
		return r;
	if (reply_listkeys_count(&c->f.body, &n) < 0)
		return sigfs_seterr(c->err, -EPROTO, "LISTKEYS reply does not parse");
	for (uint32_t i = 0; i < n; i++) {
		if (reply_listkeys_entry(&c->f.body, id, &type, &bits) < 0)
			return sigfs_seterr(c->err, -EPROTO, "LISTKEYS reply does not parse");
		printf("%s %s %u\n", id, type_name(type), bits);
	}
	return 0;
}

static int cmd_keygen(struct ctl *c, char **a)
{
	uint8_t type;
	char *end;
	long bits = strtol(a[2], &end, 10);
	int r;

	if (proto_keytype_by_ctl_name(a[1], &type) < 0)
		return sigfs_seterr(c->err, -EINVAL, "key type %s: want rsa, ec-p256, ec-p384, "
				    "ec-p521 or ed25519", a[1]);
	if (*end || bits < 0 || bits > 65535)
		return sigfs_seterr(c->err, -EINVAL, "bits %s: want a number", a[2]);
	if ((r = begin(c, PROTO_KEYGEN)) < 0 || (r = put_id(c, a[0])) < 0 ||
	    (r = sbuf_put_u8(&c->req, type)) < 0 ||
	    (r = sbuf_put_u16be(&c->req, (uint16_t)bits)) < 0)
		return r;
	return call(c);
}

static int cmd_keyload(struct ctl *c, char **a)
{
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	unsigned char *der = NULL;
	EVP_PKEY *pk = NULL;
	uint16_t bits;
	uint8_t type;
	FILE *f;
	int n = 0, r;

	f = fopen(a[1], "r");
	if (!f)
		return sigfs_seterr(c->err, -errno, "%s: %s", a[1], strerror(errno));
	r = sigfs_read_private_pem_fp(f, &pk);
	fclose(f);
	if (r == 0)
		p8 = EVP_PKEY2PKCS8(pk);
	if (p8)
		n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	if (n <= 0)
		return sigfs_seterr(c->err, -EINVAL, "%s is not an unencrypted PEM private key",
				    a[1]);
	if ((r = begin(c, PROTO_KEYLOAD)) == 0 && (r = put_id(c, a[0])) == 0 &&
	    (r = proto_put_blob(&c->req, der, (size_t)n)) == 0)
		r = call(c);
	OPENSSL_clear_free(der, (size_t)n);
	/* The request frame carried the private key too. */
	OPENSSL_cleanse(c->req.d, c->req.len);
	if (r < 0)
		return r;
	if (reply_keyload(&c->f.body, &type, &bits) < 0)
		return sigfs_seterr(c->err, -EPROTO, "KEYLOAD reply does not parse");
	printf("%s %s %u\n", a[0], type_name(type), bits);
	return 0;
}

static int cmd_pubkey(struct ctl *c, char **a)
{
	EVP_PKEY *pk;
	int r;

	if ((r = begin(c, PROTO_PUBKEY)) < 0 || (r = put_id(c, a[0])) < 0 || (r = call(c)) < 0)
		return r;
	if (reply_pubkey(&c->f.body, &pk) < 0)
		return sigfs_seterr(c->err, -EPROTO, "PUBKEY reply is not a DER public key");
	r = PEM_write_PUBKEY(stdout, pk) == 1 ? 0 : -EIO;
	EVP_PKEY_free(pk);
	return r;
}

static int cmd_keydel(struct ctl *c, char **a)
{
	int r;

	if ((r = begin(c, PROTO_KEYDEL)) < 0 || (r = put_id(c, a[0])) < 0)
		return r;
	return call(c);
}

/* The SIGN request: scheme and digest by ctl's names ("none" for Ed25519). */
static int sign_request(struct ctl *c, const char *id, const char *scheme, const char *digest,
			const uint8_t *data, size_t n)
{
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	size_t s;
	int r;

	for (s = 0; s < N(schemes) && strcmp(schemes[s].name, scheme) != 0; s++)
		;
	if (s == N(schemes))
		return sigfs_seterr(c->err, -EINVAL, "scheme %s: want rsa-pss, rsa-pkcs1, ecdsa or "
				    "ed25519", scheme);
	if (!d && strcmp(digest, "none") != 0)
		return sigfs_seterr(c->err, -EINVAL, "digest %s: want sha1 ... sha3-512, or none",
				    digest);
	if ((r = begin(c, PROTO_SIGN)) < 0 || (r = put_id(c, id)) < 0 ||
	    (r = sbuf_put_u8(&c->req, schemes[s].scheme)) < 0 ||
	    (r = sbuf_put_u8(&c->req, proto_digest_id(d))) < 0 ||
	    (r = proto_put_blob(&c->req, data, n)) < 0)
		return r == -ENOSPC ? sigfs_seterr(c->err, r, "data does not fit a frame") : r;
	return 0;
}

/*
 * The data to sign: HEXDATA, or @FILE for the bytes of FILE (an Ed25519
 * message too large for a command line), at most a frame's worth.
 */
static int sign_data(struct ctl *c, const char *arg, uint8_t **data, size_t *n)
{
	size_t got = 0, rd;
	struct stat st;
	FILE *f;

	if (arg[0] != '@') {
		*data = malloc(strlen(arg) / 2 + 1);
		if (!*data)
			return sigfs_seterr(c->err, -ENOMEM, "out of memory");
		if (hex_decode(arg, *data, strlen(arg) / 2, n) < 0)
			return sigfs_seterr(c->err, -EINVAL, "HEXDATA is not hex");
		return 0;
	}
	f = fopen(arg + 1, "rb");
	if (!f)
		return sigfs_seterr(c->err, -errno, "%s: %s", arg + 1, strerror(errno));
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PROTO_MAX_FRAME) {
		fclose(f);
		return sigfs_seterr(c->err, -EFBIG, "%s is not a regular file of at most %u bytes "
				    "(a frame's most)", arg + 1, PROTO_MAX_FRAME);
	}
	*data = malloc((size_t)st.st_size + 1);
	while (*data && got < (size_t)st.st_size &&
	       (rd = fread(*data + got, 1, (size_t)st.st_size - got, f)) > 0)
		got += rd;
	fclose(f);
	if (!*data)
		return sigfs_seterr(c->err, -ENOMEM, "out of memory");
	*n = got;
	return 0;
}

static int cmd_sign(struct ctl *c, char **a)
{
	const uint8_t *sig;
	uint8_t *data = NULL;
	size_t n = 0, siglen;
	int r;

	r = sign_data(c, a[3], &data, &n);
	if (r == 0 && (r = sign_request(c, a[0], a[1], a[2], data, n)) == 0 && (r = call(c)) == 0 &&
	    reply_sign(&c->f.body, &sig, &siglen) < 0)
		r = sigfs_seterr(c->err, -EPROTO, "SIGN reply does not parse");
	free(data);
	if (r == 0)
		hex_print(sig, siglen);
	return r;
}

/* One bench thread: its own connection, signing until the deadline. */
struct bench {
	pthread_t th;
	SSL_CTX *ctx;
	const char *hostport;
	char **a;
	double until;
	unsigned long count;
	int r;
	char err[SIGFS_ERRLEN];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_main(void *arg)
{
	const struct sigfs_digest *d;
	struct bench *b = arg;
	uint8_t data[SIGFS_MAX_DIGEST];
	struct ctl c;

	/* A fixed digest (or, for Ed25519, a 32-byte message). */
	d = sigfs_digest_by_name(b->a[2]);
	memset(data, 0x5a, sizeof(data));
	b->r = ctl_open(&c, b->ctx, b->hostport);
	if (b->r == 0)
		b->r = sign_request(&c, b->a[0], b->a[1], b->a[2], data, d ? d->len : 32);
	/* One frame, sent again and again: the reply id always matches. */
	if (b->r == 0)
		b->r = proto_end(&c.req);
	while (b->r == 0 && now_s() < b->until) {
		b->r = link_call(&c.l, &c.req, &c.buf, &c.f, NULL, CALL_MS, c.err);
		if (b->r == 0)
			b->count++;
	}
	snprintf(b->err, sizeof(b->err), "%s", c.err);
	ctl_close(&c);
	return NULL;
}

static int cmd_bench(SSL_CTX *ctx, const char *hostport, char **a, char *err)
{
	char *end1, *end2;
	double secs = strtod(a[3], &end1), start;
	long threads = strtol(a[4], &end2, 10), started;
	unsigned long total = 0;
	struct bench *b;
	int r = 0;

	if (*end1 || secs <= 0 || *end2 || threads < 1 || threads > MAX_BENCH_THREADS)
		return sigfs_seterr(err, -EINVAL, "bench wants SECONDS > 0 and 1 to %d THREADS",
				    MAX_BENCH_THREADS);
	b = calloc((size_t)threads, sizeof(*b));
	if (!b)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	start = now_s();
	for (started = 0; started < threads; started++) {
		b[started] = (struct bench){ .ctx = ctx, .hostport = hostport, .a = a,
					     .until = start + secs };
		if (pthread_create(&b[started].th, NULL, bench_main, &b[started]) != 0) {
			r = sigfs_seterr(err, -EAGAIN, "cannot start bench thread %ld", started);
			break;
		}
	}
	for (long i = 0; i < started; i++) {
		pthread_join(b[i].th, NULL);
		total += b[i].count;
		if (b[i].r < 0 && r == 0)
			r = sigfs_seterr(err, b[i].r, "thread %ld: %s", i, b[i].err);
	}
	if (r == 0)
		printf("signatures/s: %.1f\n", (double)total / (now_s() - start));
	free(b);
	return r;
}

static void ctl_usage(void)
{
	fprintf(stderr,
		"usage: sigfs-appliance ctl HOST:PORT --client NAME --secret-file FILE CMD ...\n"
		"  listkeys                          ID TYPE BITS lines\n"
		"  keygen ID TYPE BITS               TYPE: rsa ec-p256 ec-p384 ec-p521 ed25519\n"
		"  keyload ID PEMFILE                an unencrypted PEM private key\n"
		"  pubkey ID                         the public key, PEM\n"
		"  keydel ID\n"
		"  sign ID SCHEME DIGEST HEXDATA     SCHEME: rsa-pss rsa-pkcs1 ecdsa ed25519;\n"
		"                                    DIGEST: sha1 ... sha3-512, none for ed25519;\n"
		"                                    @FILE instead of HEXDATA: FILE's bytes\n"
		"  bench ID SCHEME DIGEST SECONDS THREADS\n");
}

int ctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "client", required_argument, NULL, 'c' },
		{ "secret-file", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	/* bench has no fn: it opens its own connections. */
	static const struct {
		const char *name;
		int nargs;
		int (*fn)(struct ctl *c, char **a);
	} cmds[] = {
		{ "listkeys", 0, cmd_listkeys }, { "keygen", 3, cmd_keygen },
		{ "keyload", 2, cmd_keyload }, { "pubkey", 1, cmd_pubkey },
		{ "keydel", 1, cmd_keydel }, { "sign", 4, cmd_sign }, { "bench", 5, NULL },
	};
	const char *client = NULL, *secret = NULL, *hostport, *cmd;
	char err[SIGFS_ERRLEN] = "";
	struct ctl c;
	SSL_CTX *ctx;
	size_t k;
	int o, r;

	if (argc < 2 || argv[1][0] == '-') {
		ctl_usage();
		return 2;
	}
	hostport = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "+c:s:", opts, NULL)) != -1) {
		switch (o) {
		case 'c': client = optarg; break;
		case 's': secret = optarg; break;
		default: ctl_usage(); return 2;
		}
	}
	if (!client || !secret || optind >= argc) {
		ctl_usage();
		return 2;
	}
	cmd = argv[optind];
	for (k = 0; k < N(cmds) && strcmp(cmds[k].name, cmd) != 0; k++)
		;
	if (k == N(cmds) || argc - optind - 1 != cmds[k].nargs) {
		ctl_usage();
		return 2;
	}
	ctx = client_ctx(client, secret, err);
	if (!ctx)
		return complain("%s", err);
	argv += optind + 1;
	if (!cmds[k].fn) {
		r = cmd_bench(ctx, hostport, argv, err);
		link_ctx_free(ctx);
		return r < 0 ? complain("%s", err) : 0;
	}
	r = ctl_open(&c, ctx, hostport);
	if (r == 0)
		r = cmds[k].fn(&c, argv);
	if (r < 0)
		complain("%s", c.err[0] ? c.err : strerror(-r));
	ctl_close(&c);
	link_ctx_free(ctx);
	return r < 0 ? 1 : 0;
}
