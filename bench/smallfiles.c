/*
 * smallfiles.c: load generator for sigfs: many small artifacts through an inbox.
 *
 *   smallfiles [-t THREADS] [-d SECONDS | -n COUNT] [-s BYTES] [-p PREFIX] [-k] [-q] INBOX
 *
 * Each of THREADS threads (default: 2 x online CPUs) loops over
 * open(O_CREAT|O_WRONLY|O_TRUNC) / write(BYTES) / close() on its own file
 * names INBOX/PREFIX-T-I.bin. With sigfsd's default wait_on_close = yes,
 * close() returns only when the signature is on disk, so a file counts only
 * when close() succeeded. The run lasts SECONDS (default 10) or until COUNT
 * files in total are done. At the end every counted file's .sig is checked
 * to exist (and be non-empty); a missing one makes the run fail.
 *
 * Output (one line, key=value, for scripts):
 *   files=N seconds=S files_per_s=R threads=T bytes=B errors=E missing_sig=M
 *
 * -k keeps the files (default: unlink them after the check, artifact and .sig
 * are removed through the mount). -q: no progress output on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct worker {
	pthread_t tid;
	unsigned idx;
	uint64_t done;    /* files whose close() succeeded: 0 .. done-1 */
	uint64_t errors;
	int first_errno;
	const char *first_op;
};

static const char *inbox;
static const char *prefix = "bench";
static size_t payload_len = 1024;
static char *payload;
static double duration = 10.0;
static uint64_t count_total;      /* 0: run for duration */
static atomic_uint_fast64_t claimed;
static atomic_bool stop;
static bool quiet;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void file_name(char *buf, size_t len, unsigned t, uint64_t i, const char *suffix)
{
	snprintf(buf, len, "%s/%s-%u-%llu.bin%s", inbox, prefix, t, (unsigned long long)i,
		 suffix);
}

static void note_error(struct worker *w, const char *op, int e)
{
	if (w->errors++ == 0) {
		w->first_errno = e;
		w->first_op = op;
	}
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	char path[4096];

	while (!atomic_load(&stop)) {
		if (count_total) {
			uint64_t c = atomic_fetch_add(&claimed, 1);

			if (c >= count_total)
				break;
		}
		file_name(path, sizeof(path), w->idx, w->done, "");
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0) {
			note_error(w, "open", errno);
			if (w->errors > 100)
				break;
			continue;
		}
		if (!write_all(fd, payload, payload_len)) {
			note_error(w, "write", errno);
			close(fd);
			if (w->errors > 100)
				break;
			continue;
		}
		if (close(fd) < 0) {
			note_error(w, "close", errno);
			if (w->errors > 100)
				break;
			continue;
		}
		w->done++;
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: smallfiles [-t THREADS] [-d SECONDS | -n COUNT] [-s BYTES] "
		   "[-p PREFIX] [-k] [-q] INBOX\n");
}

/* The command line: -1 to go on, or the exit status. */
static int options(int argc, char **argv, unsigned *nthreads, bool *keep)
{
	int c;

	while ((c = getopt(argc, argv, "t:d:n:s:p:kqh")) != -1) {
		switch (c) {
		case 't': *nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': duration = strtod(optarg, NULL); break;
		case 'n': count_total = strtoull(optarg, NULL, 10); break;
		case 's': payload_len = strtoul(optarg, NULL, 10); break;
		case 'p': prefix = optarg; break;
		case 'k': *keep = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || *nthreads == 0 || *nthreads > 4096 || duration <= 0) {
		usage(stderr);
		return 2;
	}
	inbox = argv[optind];
	return -1;
}

/* Let the workers run until duration seconds after t0, then stop them. */
static void run_for_duration(double t0)
{
	double end = t0 + duration;

	for (double t = now(); t < end; t = now()) {
		double left = end - t;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };

		if (left < 0.1)
			ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
	atomic_store(&stop, true);
}

/* How many counted files have no (or an empty) signature; the first five are named. */
static uint64_t missing_sigs(const struct worker *ws, unsigned nthreads)
{
	uint64_t missing = 0;
	char path[4096];
	struct stat st;

	for (unsigned i = 0; i < nthreads; i++) {
		for (uint64_t j = 0; j < ws[i].done; j++) {
			file_name(path, sizeof(path), i, j, ".sig");
			if (stat(path, &st) < 0 || st.st_size == 0) {
				if (missing++ < 5)
					fprintf(stderr, "smallfiles: missing signature %s\n", path);
			}
		}
	}
	return missing;
}

/* Unlink every file a worker may have made: artifact, .sig and .err. */
static void remove_files(const struct worker *ws, unsigned nthreads)
{
	char path[4096];

	for (unsigned i = 0; i < nthreads; i++) {
		for (uint64_t j = 0; j <= ws[i].done + ws[i].errors; j++) {
			file_name(path, sizeof(path), i, j, ".sig");
			unlink(path);
			file_name(path, sizeof(path), i, j, ".err");
			unlink(path);
			file_name(path, sizeof(path), i, j, "");
			unlink(path);
		}
	}
}

/* Start nthreads workers into ws; 0, or -1 after a message. */
static int start_workers(struct worker *ws, unsigned nthreads)
{
	for (unsigned i = 0; i < nthreads; i++) {
		ws[i].idx = i;
		int r = pthread_create(&ws[i].tid, NULL, run, &ws[i]);

		if (r) {
			fprintf(stderr, "smallfiles: pthread_create: %s\n", strerror(r));
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nthreads = (unsigned)(ncpu > 0 ? 2 * ncpu : 2);
	uint64_t files = 0, errors = 0, missing;
	bool keep = false;
	int rc = options(argc, argv, &nthreads, &keep);

	if (rc >= 0)
		return rc;
	payload = malloc(payload_len ? payload_len : 1);
	if (!payload) {
		perror("malloc");
		return 1;
	}
	for (size_t i = 0; i < payload_len; i++)
		payload[i] = (char)('a' + i % 26);

	struct worker *ws = calloc(nthreads, sizeof(*ws));

	if (!ws) {
		perror("calloc");
		return 1;
	}
	double t0 = now();

	if (start_workers(ws, nthreads) < 0)
		return 1;
	if (!count_total)
		run_for_duration(t0);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(ws[i].tid, NULL);
	double secs = now() - t0;

	for (unsigned i = 0; i < nthreads; i++) {
		files += ws[i].done;
		errors += ws[i].errors;
		if (ws[i].errors && !quiet)
			fprintf(stderr, "smallfiles: thread %u: %llu errors, first: %s: %s\n", i,
				(unsigned long long)ws[i].errors, ws[i].first_op,
				strerror(ws[i].first_errno));
	}
	/* Every counted file must have its signature. */
	missing = missing_sigs(ws, nthreads);
	if (!keep)
		remove_files(ws, nthreads);
	printf("files=%llu seconds=%.3f files_per_s=%.1f threads=%u bytes=%zu errors=%llu "
	       "missing_sig=%llu\n",
	       (unsigned long long)files, secs, secs > 0 ? (double)files / secs : 0.0, nthreads,
	       payload_len, (unsigned long long)errors, (unsigned long long)missing);
	free(ws);
	free(payload);
	return (missing || (errors && !files)) ? 1 : 0;
}
