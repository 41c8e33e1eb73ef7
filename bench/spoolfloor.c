/*
 * spoolfloor.c: the floor under bench (g): what each small file of a spool
 * costs with no daemon at all (bench/README.md (g), "What is left").
 *
 *   spoolfloor [-t THREADS] [-n COUNT] [-s BYTES] [-w WATCHERS] [-i USEC] DIR
 *
 * THREADS threads (default 2) each take files in turn, COUNT in all (default
 * 8000), and for each do what the writer and the signer must: create
 * DIR/f-K.bin, write BYTES (default 4096), close; open it again, fstat, read,
 * close; sign the bytes with Ed25519 (one context per thread, reused, as the
 * soft backend does); write the 64-byte signature to an O_TMPFILE in DIR and
 * link it as f-K.bin.sig. WATCHERS threads (default 0) each hold an inotify
 * watch on DIR (close, rename, create, as the spool's), read every USEC
 * microseconds (-i, default 0: asleep in poll, woken by each event). Prints
 * one line: files=N seconds=S files_per_s=R. Compare files_per_s with
 * `openssl speed ed25519` on one core, as bench/spool.sh does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int dirfd_;
static const char *dir;
static unsigned nthreads = 2, nwatchers, read_every_us;
static unsigned long count = 8000;
static size_t bytes = 4096;
static EVP_PKEY *key;
static atomic_bool stop, failed;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool one_file(EVP_MD_CTX *ctx, unsigned long k, unsigned char *buf, unsigned char *in)
{
	char name[64], out[64];
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	struct stat st;
	int fd, o;
	bool ok;

	snprintf(name, sizeof(name), "f-%lu.bin", k);
	snprintf(out, sizeof(out), "f-%lu.bin.sig", k);
	fd = openat(dirfd_, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, bytes) != (ssize_t)bytes || close(fd) < 0)
		return false;
	fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 && pread(fd, in, bytes, 0) == (ssize_t)bytes;
	close(fd);
	if (!ok || EVP_DigestSign(ctx, sig, &siglen, in, bytes) <= 0)
		return false;
	o = openat(dirfd_, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, 0444);
	if (o < 0)
		return false;
	ok = write(o, sig, siglen) == (ssize_t)siglen && linkat(o, "", dirfd_, out, AT_EMPTY_PATH) == 0;
	close(o);
	return ok;
}

static void *signer(void *arg)
{
	unsigned long first = (unsigned long)(uintptr_t)arg;
	unsigned char *buf = malloc(bytes), *in = malloc(bytes);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!buf || !in || !ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) <= 0) {
		atomic_store(&failed, true);
	} else {
		memset(buf, 'x', bytes);
		for (unsigned long k = first; k < count && !atomic_load(&failed); k += nthreads)
			if (!one_file(ctx, k, buf, in))
				atomic_store(&failed, true);
	}
	EVP_MD_CTX_free(ctx);
	free(buf);
	free(in);
	return NULL;
}

static void *watcher(void *arg)
{
	char buf[1 << 16] __attribute__((aligned(__alignof__(struct inotify_event))));
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	struct pollfd p = { .fd = in, .events = POLLIN };

	(void)arg;
	if (in < 0 || inotify_add_watch(in, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		atomic_store(&failed, true);
		return NULL;
	}
	while (!atomic_load(&stop)) {
		if (poll(&p, 1, 50) > 0)
			while (read(in, buf, sizeof(buf)) > 0)
				;
		if (read_every_us) {
			struct timespec ts = { read_every_us / 1000000,
					       (long)(read_every_us % 1000000) * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	close(in);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[64], w[64];
	EVP_PKEY_CTX *kctx;
	double t0, dt;
	int c;

	while ((c = getopt(argc, argv, "t:n:s:w:i:")) != -1) {
		switch (c) {
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 's': bytes = strtoul(optarg, NULL, 10); break;
		case 'w': nwatchers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': read_every_us = (unsigned)strtoul(optarg, NULL, 10); break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || !nthreads || nthreads > 64 || nwatchers > 64 || !bytes)
		goto usage;
	dir = argv[optind];
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	if (dirfd_ < 0 || !kctx || EVP_PKEY_keygen_init(kctx) <= 0 || EVP_PKEY_keygen(kctx, &key) <= 0) {
		fprintf(stderr, "spoolfloor: %s: cannot start: %s\n", dir, strerror(errno));
		return 1;
	}
	EVP_PKEY_CTX_free(kctx);
	for (unsigned i = 0; i < nwatchers; i++)
		pthread_create(&w[i], NULL, watcher, NULL);
	t0 = now();
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, signer, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	dt = now() - t0;
	atomic_store(&stop, true);
	for (unsigned i = 0; i < nwatchers; i++)
		pthread_join(w[i], NULL);
	EVP_PKEY_free(key);
	if (atomic_load(&failed)) {
		fprintf(stderr, "spoolfloor: %s: a file failed: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("files=%lu seconds=%.3f files_per_s=%.1f threads=%u watchers=%u read_every_us=%u\n",
	       count, dt, (double)count / dt, nthreads, nwatchers, read_every_us);
	return 0;
usage:
	fprintf(stderr, "usage: spoolfloor [-t THREADS] [-n COUNT] [-s BYTES] [-w WATCHERS] [-i USEC] DIR\n");
	return 2;
}
