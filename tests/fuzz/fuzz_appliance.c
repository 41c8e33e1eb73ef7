/*
 * fuzz_appliance.c: libFuzzer target for the appliance daemon's request
 * handling (appliance/server.c), which reads whatever an authenticated
 * client sends. An input is one connection: frames, each a u32be length and
 * that many bytes (cut to what remains), served in order the way conn_main
 * does, up to where the daemon would close the connection. Each frame is
 * copied to a buffer of its own size, so ASan sees any read past its end.
 *
 * The store is a temporary directory made once (under TMPDIR, else /dev/shm,
 * else /tmp: it fsyncs every key it writes), holding keys "rsa"
 * (RSA-2048), "p256" and "ed" (Ed25519); after every input it is put back to
 * exactly those keys, so an input does the same thing whenever it runs.
 * A KEYGEN that would make an RSA key is left out (one of 1024 bits is tens
 * of milliseconds under ASan, and made the target run under 300 inputs a
 * second); it parses nothing an EC KEYGEN does not, and the RSA sizes the
 * daemon refuses are still served (tests/e2e/appliance_daemon.sh makes RSA
 * keys up to 8192 bits). The client's roles for each request are the top two
 * bits of its id, inverted: the seeds (small ids) have every role, and the
 * fuzzer reaches the refusals by flipping them.
 * Frames over the daemon's default --max-frame (1 MiB) are not served, as
 * link_recv refuses them before reading. Besides ASan and UBSan findings, it
 * aborts when a reply is not a well-formed frame answering the request, is
 * over max_frame, or a refusal lacks its one-line message. Built by
 * tests/fuzz/run.sh.
 */
#include <limits.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "appliance/server.h"
#include "appliance/store.h"
#include "common/err.h"
#include "protocol/proto.h"

#define CLIENT "fuzz"
#define MAX_FRAME (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
	const char *id, *type, *group;
	size_t bits;
} preload[] = {
	{ "rsa", "RSA", NULL, 2048 },
	{ "p256", "EC", "P-256", 0 },
	{ "ed", "ED25519", NULL, 0 },
};
#define NPRELOAD (sizeof(preload) / sizeof(preload[0]))

static struct store store;
static sem_t engines;
static struct server srv = { .name = "fuzz-appliance", .verbose = true,
			     .store = &store, .engines = &engines, .max_frame = MAX_FRAME };
static EVP_PKEY *keys[NPRELOAD];
static char dir[PATH_MAX];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_appliance: %s\n", what);
	exit(1);
}

/* Index of id in preload[], or -1. */
static int preloaded(const char *id)
{
	for (size_t i = 0; i < NPRELOAD; i++)
		if (strcmp(preload[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* Put the store back to the preloaded keys, after an input added or deleted some. */
static void restore(void)
{
	char err[SIGFS_ERRLEN];
	EVP_PKEY *pk;
	uint8_t type;
	uint16_t bits;

	for (size_t i = store.n; i-- > 0;) {
		int k = preloaded(store.keys[i].id);

		if ((k < 0 || EVP_PKEY_eq(store.keys[i].pk, keys[k]) != 1) &&
		    store_del(&store, store.keys[i].id, err) < 0)
			die(err);
	}
	for (size_t k = 0; k < NPRELOAD; k++) {
		if (store_get(&store, preload[k].id, &pk, &type, &bits) == 0)
			EVP_PKEY_free(pk);
		else if (store_add(&store, preload[k].id, keys[k], err) < 0)
			die(err);
	}
}

static void cleanup(void)
{
	char err[SIGFS_ERRLEN];

	while (store.n > 0)
		if (store_del(&store, store.keys[0].id, err) < 0)
			die(err);
	store_close(&store);
	rmdir(dir);
	for (size_t k = 0; k < NPRELOAD; k++)
		EVP_PKEY_free(keys[k]);
	fclose(srv.log);
	sem_destroy(&engines);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char err[SIGFS_ERRLEN];
	struct stat st;

	(void)argc;
	(void)argv;
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz-appliance.XXXXXX", tmp);
	if (!mkdtemp(dir))
		die("cannot make a temporary directory for the store");
	if (store_open(&store, dir, err) < 0)
		die(err);
	for (size_t k = 0; k < NPRELOAD; k++) {
		if (preload[k].group)
			keys[k] = EVP_PKEY_Q_keygen(NULL, NULL, preload[k].type, preload[k].group);
		else if (preload[k].bits)
			keys[k] = EVP_PKEY_Q_keygen(NULL, NULL, preload[k].type, preload[k].bits);
		else
			keys[k] = EVP_PKEY_Q_keygen(NULL, NULL, preload[k].type);
		if (!keys[k])
			die("cannot generate the preloaded keys");
	}
	restore();
	/* Every request is logged (verbose), to run the log line too, but not shown. */
	srv.log = fopen("/dev/null", "w");
	if (!srv.log || sem_init(&engines, 0, 1) < 0)
		die("cannot set up the log or the engines");
	atexit(cleanup);
	return 0;
}

/* A KEYGEN that would make an RSA key: 1024 to 8192 bits, a multiple of 8. */
static bool slow_keygen(const struct proto_frame *f)
{
	struct sbuf b = f->body;
	char id[PROTO_MAX_STR + 1];
	uint8_t type;
	uint16_t bits;

	return f->op == PROTO_KEYGEN && proto_get_str(&b, id, sizeof(id)) == 0 &&
	       sbuf_get_u8(&b, &type) == 0 && sbuf_get_u16be(&b, &bits) == 0 &&
	       type == PROTO_KEY_RSA && bits >= 1024 && bits <= 8192 && bits % 8 == 0;
}

/* The reply in out must be one frame answering f: op | PROTO_REPLY, same id, a status. */
static void check_reply(const struct proto_frame *f, const struct sbuf *out)
{
	char msg[PROTO_MAX_STR + 1];
	struct proto_frame r;
	uint8_t st;

	if (out->len < 4 || out->len - 4 > MAX_FRAME ||
	    ((uint32_t)out->d[0] << 24 | (uint32_t)out->d[1] << 16 | (uint32_t)out->d[2] << 8 |
	     out->d[3]) != out->len - 4 ||
	    proto_parse(out->d + 4, out->len - 4, &r) < 0 || r.ver != PROTO_VERSION ||
	    r.op != (uint8_t)(f->op | PROTO_REPLY) || r.id != f->id || sbuf_get_u8(&r.body, &st) < 0)
		abort();
	if (st != PROTO_OK && (proto_get_str(&r.body, msg, sizeof(msg)) < 0 || !msg[0] ||
			       sbuf_avail(&r.body) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbuf out;
	struct proto_frame f;
	bool greeted = false, keep = true;

	sbuf_init(&out, MAX_FRAME + 4);
	while (keep && size >= 4) {
		size_t len = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 |
			     data[3];
		uint8_t *frame;

		data += 4;
		size -= 4;
		if (len > size)
			len = size;
		/* Like link_recv: a frame too short for its header ends the connection. */
		frame = malloc(len ? len : 1);
		if (!frame)
			die("out of memory");
		memcpy(frame, data, len);
		data += len;
		size -= len;
		if (len > MAX_FRAME || proto_parse(frame, len, &f) < 0) {
			keep = false;
		} else if (!slow_keygen(&f)) {
			keep = server_serve(&srv, CLIENT, ~f.id >> 30 & (CLIENT_SIGN | CLIENT_MANAGE),
					    &f, &greeted, &out);
			check_reply(&f, &out);
		}
		free(frame);
	}
	sbuf_free(&out);
	restore();
	return 0;
}
