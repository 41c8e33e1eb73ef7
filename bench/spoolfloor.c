/*
 * spoolfloor.c: the floor under bench (g): what each small file of a spool
 * costs with no daemon at all (bench/README.md (g), "What is left").
 *
 *   spoolfloor [-t THREADS] [-n COUNT] [-s BYTES] [-w WATCHERS] [-i USEC] [-r] DIR
 *
 * THREADS threads (default 2) each take files in turn, COUNT in all (default
 * 8000), and for each do what the writer and the signer must: create
 * DIR/f-K.bin, write BYTES (default 4096), close; open it again, fstat, read,
 * close; sign the bytes with Ed25519 (one context per thread, reused, as the
 * soft backend does); write the 64-byte signature to an O_TMPFILE in DIR and
 * link it as f-K.bin.sig. WATCHERS threads (default 0) each hold an inotify
 * watch on DIR (close, rename, create, as the spool's), read every USEC
 * microseconds (-i, default 0: asleep in poll, woken by each event).
 *
 * -r adds what the rules of docs/spool.md cost each file in sigfsd, still
 * with no daemon: the name looked at before it is opened (fstatat) and the
 * inbox's mode (fstat of DIR); the SHA-256 of the content for the audit
 * line; the file looked at again after the read (fstat) and the name before
 * the output is placed (fstatat); the output dated and owned as its input
 * (futimens, fchown); the audit line, hashed into the log's chain and
 * appended to a log (DIR/.floor-audit, O_APPEND, under a lock); the key's
 * counter written (pwrite of DIR/.floor-count); and the first watcher
 * looks at the name of each close event that is not a .sig (fstatat), as
 * the spool thread does. What sigfsd does beyond -r is its own overhead
 * (handing jobs to workers, its tables); what -r does beyond the plain
 * floor, the rules themselves.
 *
 * Prints one line: files=N seconds=S files_per_s=R. Compare files_per_s
 * with `openssl speed ed25519` on one core, as bench/spool.sh does.
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
static bool rules;
static int audit_fd = -1, count_fd = -1;
static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char chain[32];
static uint64_t signed_count;
static EVP_PKEY *key;
static atomic_bool stop, failed;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -r, before the file is opened: its name and the inbox looked at. */
static bool rules_before(const char *name)
{
	struct stat st;

	return fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && fstat(dirfd_, &st) == 0;
}

/* -r, before the output is placed: dated and owned, the name looked at, the audit line. */
static bool rules_place(int o, const struct stat *ast, const char *name, const unsigned char digest[32])
{
	const struct timespec times[2] = { ast->st_mtim, ast->st_mtim };
	char line[512];
	struct stat st;
	int n;
	bool ok;

	if (futimens(o, times) < 0 || fchown(o, ast->st_uid, ast->st_gid) < 0 ||
	    fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	pthread_mutex_lock(&audit_lock);
	n = snprintf(line, sizeof(line), "2026-12-07T12:00:00Z sign key=floor uid=0 owner=%u "
		     "sha256=%02x%02x%02x%02x... name=%s chain=%02x%02x%02x%02x\n",
		     (unsigned)ast->st_uid, digest[0], digest[1], digest[2], digest[3], name,
		     chain[0], chain[1], chain[2], chain[3]);
	ok = EVP_Digest(line, (size_t)n, chain, NULL, EVP_sha256(), NULL) == 1 &&
	     write(audit_fd, line, (size_t)n) == n;
	pthread_mutex_unlock(&audit_lock);
	return ok;
}

static bool one_file(EVP_MD_CTX *ctx, unsigned long k, unsigned char *buf, unsigned char *in)
{
	char name[64], out[64];
	unsigned char sig[64], digest[32];
	size_t siglen = sizeof(sig);
	struct stat st, st2;
	int fd, o;
	bool ok;

	snprintf(name, sizeof(name), "f-%lu.bin", k);
	snprintf(out, sizeof(out), "f-%lu.bin.sig", k);
	fd = openat(dirfd_, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, bytes) != (ssize_t)bytes || close(fd) < 0)
		return false;
	if (rules && !rules_before(name))
		return false;
	fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 && pread(fd, in, bytes, 0) == (ssize_t)bytes;
	/* -r: the content's SHA-256, for the audit line. */
	if (ok && rules)
		ok = EVP_Digest(in, bytes, digest, NULL, EVP_sha256(), NULL) == 1;
	if (!ok || EVP_DigestSign(ctx, sig, &siglen, in, bytes) <= 0 ||
	    (rules && fstat(fd, &st2) < 0)) {
		close(fd);
		return false;
	}
	close(fd);
	o = openat(dirfd_, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, 0444);
	if (o < 0)
		return false;
	ok = write(o, sig, siglen) == (ssize_t)siglen;
	if (ok && rules)
		ok = rules_place(o, &st, name, digest);
	ok = ok && linkat(o, "", dirfd_, out, AT_EMPTY_PATH) == 0;
	close(o);
	if (ok && rules) {
		uint64_t n = __atomic_add_fetch(&signed_count, 1, __ATOMIC_RELAXED);

		ok = pwrite(count_fd, &n, sizeof(n), 0) == (ssize_t)sizeof(n);
	}
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

/* -r, the first watcher: the spool thread's look at the name of each close event. */
static void look_at_closes(const char *buf, ssize_t n)
{
	const struct inotify_event *ev;
	struct stat st;

	for (const char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
		ev = (const struct inotify_event *)(const void *)p;
		if ((ev->mask & IN_CLOSE_WRITE) && ev->len && !strstr(ev->name, ".sig"))
			(void)fstatat(dirfd_, ev->name, &st, AT_SYMLINK_NOFOLLOW);
	}
}

static void *watcher(void *arg)
{
	char buf[1 << 16] __attribute__((aligned(__alignof__(struct inotify_event))));
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	struct pollfd p = { .fd = in, .events = POLLIN };
	bool looks = rules && (uintptr_t)arg == 0;
	ssize_t n;

	if (in < 0 || inotify_add_watch(in, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		atomic_store(&failed, true);
		return NULL;
	}
	while (!atomic_load(&stop)) {
		if (poll(&p, 1, 50) > 0)
			while ((n = read(in, buf, sizeof(buf))) > 0)
				if (looks)
					look_at_closes(buf, n);
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

	while ((c = getopt(argc, argv, "t:n:s:w:i:r")) != -1) {
		switch (c) {
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 's': bytes = strtoul(optarg, NULL, 10); break;
		case 'w': nwatchers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': read_every_us = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': rules = true; break;
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
	if (rules) {
		audit_fd = openat(dirfd_, ".floor-audit", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		count_fd = openat(dirfd_, ".floor-count", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (audit_fd < 0 || count_fd < 0) {
			fprintf(stderr, "spoolfloor: %s: cannot make the audit log: %s\n", dir, strerror(errno));
			return 1;
		}
	}
	for (unsigned i = 0; i < nwatchers; i++)
		pthread_create(&w[i], NULL, watcher, (void *)(uintptr_t)i);
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
	printf("files=%lu seconds=%.3f files_per_s=%.1f threads=%u watchers=%u read_every_us=%u rules=%s\n",
	       count, dt, (double)count / dt, nthreads, nwatchers, read_every_us, rules ? "yes" : "no");
	return 0;
usage:
	fprintf(stderr, "usage: spoolfloor [-t THREADS] [-n COUNT] [-s BYTES] [-w WATCHERS] [-i USEC] [-r] DIR\n");
	return 2;
}
