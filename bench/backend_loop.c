/*
 * backend_loop.c: a backend's own signing rate through sigfs's client code,
 * the baseline of figures (d) and (e) in bench/backends.sh.
 *
 *   backend_loop -b TYPE -k KEY_ID -a ALGORITHM [-t THREADS] [-d SECONDS] [SETTING=VALUE ...]
 *
 * Opens a backend of TYPE (nethsm, appliance, pkcs11 ...) through backends/
 * backend.h, with the SETTING=VALUE pairs as its [backend bench] section and
 * THREADS as the number of workers, then THREADS threads call ->sign on the
 * existing key KEY_ID in a loop for SECONDS (default 5), thread i as worker i,
 * exactly as sigfsd's signer workers do. The input is a fixed SHA-256 digest
 * (RSA keys: PSS, the default padding), or a 1 KiB message for ed25519. This
 * is the rate the backend gives sigfs without FUSE, the engine or any file.
 * The setting state_dir=DIR also serves as the daemon's state directory
 * (default /tmp), for backends that keep files there.
 *
 * Output: `signatures/s: X` (and `signatures: N seconds: S threads: T`).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/log.h"
#include "loop.h"

static struct sigfs_backend *backend;
static const char *key_id;
static const struct sigfs_alg *alg;
static char **settings;       /* SETTING=VALUE from the command line */
static int nsettings;

static const char *conf_get(const struct sigfs_backend_conf *c, const char *key, const char *def)
{
	size_t n = strlen(key);

	(void)c;
	for (int i = 0; i < nsettings; i++)
		if (strncmp(settings[i], key, n) == 0 && settings[i][n] == '=')
			return settings[i] + n + 1;
	return def;
}

/* One signature as sigfsd's worker `thread` would ask for it. */
static int sign_once(unsigned thread, void **state, char *err)
{
	static const uint8_t digest[32] = { 0x5a, 0x17, 0x42 };  /* any 32 bytes */
	static const uint8_t message[1024];
	struct sigfs_sign_input in = {
		.alg = alg,
		.padding = alg->kind == SIGFS_KIND_RSA ? SIGFS_PAD_PSS : SIGFS_PAD_NONE,
		.digest = alg->kind == SIGFS_KIND_ED25519 ? NULL : sigfs_digest_by_name("sha256"),
		.data = alg->kind == SIGFS_KIND_ED25519 ? message : digest,
		.len = alg->kind == SIGFS_KIND_ED25519 ? sizeof(message) : sizeof(digest),
		.worker = thread,
	};
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen = sizeof(sig);

	(void)state;
	return backend->ops->sign(backend, key_id, &in, sig, &siglen, err);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: backend_loop -b TYPE -k KEY_ID -a ALGORITHM [-t THREADS] "
		     "[-d SECONDS] [SETTING=VALUE ...]\n");
}

int main(int argc, char **argv)
{
	const char *type = NULL, *alg_name = NULL;
	unsigned nthreads = 1;
	double duration = 5;
	char err[SIGFS_ERRLEN] = "";
	int c, r;

	while ((c = getopt(argc, argv, "b:k:a:t:d:h")) != -1) {
		switch (c) {
		case 'b': type = optarg; break;
		case 'k': key_id = optarg; break;
		case 'a': alg_name = optarg; break;
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': duration = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!type || !key_id || !alg_name || nthreads == 0 || nthreads > 1024 || duration <= 0) {
		usage(stderr);
		return 2;
	}
	settings = argv + optind;
	nsettings = argc - optind;
	for (int i = 0; i < nsettings; i++) {
		if (!strchr(settings[i], '=')) {
			usage(stderr);
			return 2;
		}
	}
	alg = sigfs_alg_by_name(alg_name);
	if (!alg) {
		fprintf(stderr, "backend_loop: unknown algorithm %s\n", alg_name);
		return 2;
	}
	const struct sigfs_backend_ops *ops = sigfs_backend_type(type);

	if (!ops) {
		fprintf(stderr, "backend_loop: unknown backend type %s\n", type);
		return 2;
	}
	sigfs_log_init(false, SIGFS_LOG_WARN);

	const struct sigfs_backend_conf conf = {
		.name = "bench",
		.state_dir = conf_get(NULL, "state_dir", "/tmp"),
		.get = conf_get,
		.workers = nthreads,
	};

	r = ops->open(&conf, &backend, err);
	if (r < 0) {
		fprintf(stderr, "backend_loop: %s\n", err);
		return 1;
	}

	const struct bench_loop loop = {
		.prog = "backend_loop", .threads = nthreads, .seconds = duration,
		.sign = sign_once,
	};
	int status = bench_loop_run(&loop);

	backend->ops->close(backend);
	return status;
}
