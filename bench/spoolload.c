/*
 * spoolload.c: load generator for bench/spool.sh: small files into a spool
 * inbox (sigfsd --spool), where close() does not wait for the signature.
 *
 *   spoolload [-t THREADS] -n COUNT [-s BYTES] [-p PREFIX] [-w SECONDS] [-i USEC] [-c] [-l] INBOX
 *
 * Throughput (default): THREADS threads (default 2 x CPUs) write COUNT files
 * in total, INBOX/PREFIX-K.bin, each open(O_CREAT|O_WRONLY|O_TRUNC) / write
 * (BYTES, default 4096) / close. An inotify watch on INBOX, set before the
 * first file, sees each PREFIX-K.bin.sig arrive (IN_MOVED_TO: the daemon
 * renames outputs into place; IN_CREATE too). The run ends when every .sig
 * has been seen, or after SECONDS (default 120) without all of them: then the
 * run fails. The time is from the first open to the last .sig. The watch is
 * read every USEC microseconds (-i, default 1000; 0: woken by each event):
 * a reader woken per event costs every writer's and the daemon's system call
 * that queues one, so a watcher asleep in poll would slow what it measures
 * (bench/README.md (g)). The last .sig is seen up to USEC late.
 *
 * -c: close() waits for the signature (a sigfs mount with wait_on_close):
 * no inotify (a FUSE mount does not report what the daemon does behind it);
 * the time is from the first open to the last close, as bench/smallfiles.
 *
 * -l: latency: one writer, one file at a time; for each, the time from just
 * before close() until its .sig is seen (with -c: until close() returned).
 * Prints the median, the 99th percentile and the maximum.
 *
 * Either way, at the end every file's .sig must exist and be non-empty
 * (stat), or the run fails. Output, one line, key=value:
 *   files=N seconds=S files_per_s=R write_seconds=W threads=T bytes=B errors=E missing_sig=M
 *   files=N p50_ms=A p99_ms=B max_ms=C missing_sig=M          (-l)
 * Files are kept (the caller removes the work directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

static const char *inbox;
static const char *prefix = "spool";
static size_t payload_len = 4096;
static char *payload;
static uint64_t count_total;
static double wait_seconds = 120.0;
static bool close_waits, latency_mode;
static unsigned read_every_us = 1000;  /* -i: throughput watcher's pause between reads */
static atomic_uint_fast64_t claimed, errors;
static unsigned char *seen;  /* one byte per file: its .sig was seen */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void file_name(char *buf, size_t len, uint64_t k, const char *suffix)
{
	snprintf(buf, len, "%s/%s-%llu.bin%s", inbox, prefix, (unsigned long long)k, suffix);
}

/* Write file k; true when open, write and close succeeded. */
static bool write_one(uint64_t k, double *before_close)
{
	char path[4096];
	int fd;
	size_t off = 0;

	file_name(path, sizeof(path), k, "");
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	while (off < payload_len) {
		ssize_t r = write(fd, payload + off, payload_len - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return false;
		}
		off += (size_t)r;
	}
	if (before_close)
		*before_close = now();
	return close(fd) == 0;
}

static void *writer(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t k = atomic_fetch_add(&claimed, 1);

		if (k >= count_total)
			break;
		if (!write_one(k, NULL))
			atomic_fetch_add(&errors, 1);
	}
	return NULL;
}

/* The file number of a name "PREFIX-K.bin.sig", or -1. */
static int64_t sig_index(const char *name)
{
	size_t pl = strlen(prefix);
	char *end;

	if (strncmp(name, prefix, pl) != 0 || name[pl] != '-')
		return -1;
	errno = 0;
	unsigned long long k = strtoull(name + pl + 1, &end, 10);

	if (errno || strcmp(end, ".bin.sig") != 0 || k >= count_total)
		return -1;
	return (int64_t)k;
}

static bool sig_exists(uint64_t k)
{
	char path[4096];
	struct stat st;

	file_name(path, sizeof(path), k, ".sig");
	return stat(path, &st) == 0 && st.st_size > 0;
}

/*
 * Read the watch's events for up to timeout_ms, marking .sig names seen.
 * Returns how many new ones; *look is set when the caller must stat the
 * files instead: the queue overflowed, or no event came in time. (The new
 * ones read before an overflow count too: a run that overflowed once waited
 * for its timeout, having marked names seen that it never counted.)
 */
static int read_events(int ifd, int timeout_ms, bool *look)
{
	char buf[1 << 16] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd p = { .fd = ifd, .events = POLLIN };
	int fresh = 0;

	*look = false;
	if (poll(&p, 1, timeout_ms) <= 0) {
		*look = true;
		return 0;
	}
	ssize_t n = read(ifd, buf, sizeof(buf));

	for (char *q = buf; n > 0 && q < buf + n;) {
		struct inotify_event *ev = (struct inotify_event *)q;

		if (ev->mask & IN_Q_OVERFLOW)
			*look = true;
		if (ev->len) {
			int64_t k = sig_index(ev->name);

			if (k >= 0 && !seen[k]) {
				seen[k] = 1;
				fresh++;
			}
		}
		q += sizeof(*ev) + ev->len;
	}
	return fresh;
}

/* Mark every file whose .sig exists now; how many new ones. */
static uint64_t stat_all(void)
{
	uint64_t fresh = 0;

	for (uint64_t k = 0; k < count_total; k++) {
		if (!seen[k] && sig_exists(k)) {
			seen[k] = 1;
			fresh++;
		}
	}
	return fresh;
}

/* Wait until all count_total .sig were seen: the time of the last, or -1. */
static double wait_all(int ifd, double t_start)
{
	uint64_t got = 0;
	double last = now(), give_up = t_start + wait_seconds;

	while (got < count_total && now() < give_up) {
		bool look;
		int r = read_events(ifd, 200, &look);

		if (r > 0) {
			got += (uint64_t)r;
			last = now();
		}
		if (read_every_us && got < count_total) {
			struct timespec ts = { read_every_us / 1000000,
					       (long)(read_every_us % 1000000) * 1000 };

			nanosleep(&ts, NULL);
		}
		if (look) {
			/* Overflow, or 200 ms without events: look at the files themselves. */
			uint64_t s = stat_all();

			if (s) {
				got += s;
				last = now();
			}
		}
	}
	return got == count_total ? last : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Latency mode: one file at a time; prints the line; 0 or 1. */
static int run_latency(int ifd)
{
	double *lat = calloc(count_total, sizeof(*lat));
	uint64_t missing = 0;

	if (!lat)
		return 1;
	for (uint64_t k = 0; k < count_total; k++) {
		double t0 = 0, give_up;

		if (!write_one(k, &t0)) {
			fprintf(stderr, "spoolload: writing file %llu: %s\n", (unsigned long long)k,
				strerror(errno));
			free(lat);
			return 1;
		}
		give_up = t0 + wait_seconds;
		while (!close_waits && !seen[k] && now() < give_up) {
			/* Events first; a stat each 100 ms in case one was missed. */
			bool look;

			read_events(ifd, 100, &look);
			if (look && sig_exists(k))
				seen[k] = 1;
		}
		lat[k] = now() - t0;
		if (!sig_exists(k))
			missing++;
	}
	qsort(lat, count_total, sizeof(*lat), cmp_double);
	printf("files=%llu p50_ms=%.3f p99_ms=%.3f max_ms=%.3f missing_sig=%llu\n",
	       (unsigned long long)count_total, lat[count_total / 2] * 1e3,
	       lat[(count_total * 99) / 100 < count_total ? (count_total * 99) / 100 : count_total - 1] * 1e3,
	       lat[count_total - 1] * 1e3, (unsigned long long)missing);
	free(lat);
	return missing ? 1 : 0;
}

static int usage(FILE *f, int rc)
{
	fprintf(f, "usage: spoolload [-t THREADS] -n COUNT [-s BYTES] [-p PREFIX] [-w SECONDS] [-i USEC] [-c] [-l] INBOX\n");
	return rc;
}

/* Throughput mode; prints the line; 0 or 1. */
static int run_throughput(int ifd, unsigned nthreads)
{
	pthread_t *tids = calloc(nthreads, sizeof(*tids));
	double t0 = now(), t_written, t_end;
	uint64_t missing = 0;

	if (!tids)
		return 1;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, writer, NULL) != 0) {
			/* The threads started stop at count_total; wait for them. */
			fprintf(stderr, "spoolload: pthread_create failed\n");
			atomic_store(&claimed, count_total);
			for (unsigned j = 0; j < i; j++)
				pthread_join(tids[j], NULL);
			free(tids);
			return 1;
		}
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	t_written = now();
	t_end = close_waits ? t_written : wait_all(ifd, t0);
	for (uint64_t k = 0; k < count_total; k++) {
		if (!sig_exists(k) && missing++ < 5) {
			char path[4096];

			file_name(path, sizeof(path), k, ".sig");
			fprintf(stderr, "spoolload: missing signature %s\n", path);
		}
	}
	if (t_end < 0) {
		fprintf(stderr, "spoolload: not every .sig came within %.0f s\n", wait_seconds);
		t_end = now();
	}
	double secs = t_end - t0;

	printf("files=%llu seconds=%.3f files_per_s=%.1f write_seconds=%.3f threads=%u bytes=%zu "
	       "errors=%llu missing_sig=%llu\n",
	       (unsigned long long)count_total, secs, secs > 0 ? (double)count_total / secs : 0.0,
	       t_written - t0, nthreads, payload_len, (unsigned long long)atomic_load(&errors),
	       (unsigned long long)missing);
	return (missing || atomic_load(&errors)) ? 1 : 0;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nthreads = (unsigned)(ncpu > 0 ? 2 * ncpu : 2);
	int c, ifd = -1, rc;

	while ((c = getopt(argc, argv, "t:n:s:p:w:i:clh")) != -1) {
		switch (c) {
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': count_total = strtoull(optarg, NULL, 10); break;
		case 's': payload_len = strtoul(optarg, NULL, 10); break;
		case 'p': prefix = optarg; break;
		case 'w': wait_seconds = strtod(optarg, NULL); break;
		case 'i': read_every_us = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': close_waits = true; break;
		case 'l': latency_mode = true; break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (optind != argc - 1 || !count_total || !nthreads || nthreads > 4096 || !payload_len)
		return usage(stderr, 2);
	inbox = argv[optind];
	payload = malloc(payload_len);
	seen = calloc(count_total, 1);
	if (!payload || !seen) {
		perror("spoolload: malloc");
		return 1;
	}
	for (size_t i = 0; i < payload_len; i++)
		payload[i] = (char)('a' + i % 26);
	if (!close_waits) {
		ifd = inotify_init1(IN_CLOEXEC);
		if (ifd < 0 || inotify_add_watch(ifd, inbox, IN_MOVED_TO | IN_CREATE) < 0) {
			fprintf(stderr, "spoolload: inotify on %s: %s\n", inbox, strerror(errno));
			return 1;
		}
	}
	rc = latency_mode ? run_latency(ifd) : run_throughput(ifd, nthreads);
	if (ifd >= 0)
		close(ifd);
	free(seen);
	free(payload);
	return rc;
}
