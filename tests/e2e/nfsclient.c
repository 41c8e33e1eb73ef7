/*
 * nfsclient: an NFS client for the e2e stories (libnfs, userspace: this kernel
 * has no NFS client). URL is nfs://SERVER/EXPORT/FILE[?version=3|4]; the last
 * component is the file, the rest the export (one export per inbox).
 *
 *   nfsclient put URL LOCAL [--chunk N] [--gap MS] [--wsize W] [--wait-for NAME] [--timeout S]
 *       write LOCAL to URL (created, or truncated if it exists) in chunks of N
 *       bytes (default 1 MiB) MS ms apart, each chunk as NFS WRITEs of at most W
 *       bytes (default: 2048 over NFSv4, else N), then fsync (COMMIT) and close. With
 *       --wait-for, then poll for NAME (a file of the same directory) and print
 *       "visible after SECONDS" (the time from the close to the first stat that
 *       finds it); exit 3 when it did not appear within S seconds (default 60).
 *   nfsclient get URL LOCAL        read URL into LOCAL
 *   nfsclient ls URL               the names in the directory URL (its export), one a line
 *   nfsclient rename URL NEWNAME   rename within the directory
 *   nfsclient rm URL               remove
 *   nfsclient wait-for URL [--timeout S]
 *       poll (every 20 ms) until URL exists: exit 0, or 3 after S seconds (default 60)
 *   nfsclient hold URL [FIFO]
 *       open URL read-write (created if missing), print "ready", and keep that
 *       one handle; then for each line of FIFO (default stdin):
 *         pwrite OFFSET TEXT   write TEXT at OFFSET     -> "ok pwrite N"
 *         read LOCAL           read the whole file into LOCAL -> "ok read N"
 *         fsync                COMMIT                   -> "ok fsync"
 *         close                close the handle, exit   -> "ok close"
 *       a failure prints "error CMD: MESSAGE" and the loop goes on.
 *
 * --version 3|4 (any command) overrides the URL's version. libnfs 4.0's NFSv4
 * WRITE of more than about 3.5 KB fails inside the client itself ("Failed to
 * encode COMPOUND4args"), hence the small writes over NFSv4. Errors: "nfsclient: WHAT: MESSAGE" on stderr, exit 1
 * (2 for usage errors).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct opts {
	size_t chunk;
	size_t wsize;
	long gap_ms;
	double timeout;
	int version;
	const char *wait_for;
};

struct conn {
	struct nfs_context *nfs;
	struct nfs_url *url;
};

static int usage(void)
{
	fprintf(stderr, "usage: nfsclient put|get|ls|rename|rm|wait-for|hold URL [ARGS] [OPTIONS]\n"
			"(see the comment at the top of tests/e2e/nfsclient.c)\n");
	return 2;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int nfs_fail(struct conn *c, const char *what)
{
	fprintf(stderr, "nfsclient: %s: %s\n", what, nfs_get_error(c->nfs));
	return 1;
}

static int sys_fail(const char *what)
{
	fprintf(stderr, "nfsclient: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Connect to the URL's server and mount its export. dir: the URL names a
 * directory (the export itself), not a file in it. */
static int conn_open(struct conn *c, const char *url, int dir, const struct opts *o)
{
	c->nfs = nfs_init_context();
	if (!c->nfs) {
		fprintf(stderr, "nfsclient: nfs_init_context failed\n");
		return 1;
	}
	c->url = dir ? nfs_parse_url_dir(c->nfs, url) : nfs_parse_url_full(c->nfs, url);
	if (!c->url)
		return nfs_fail(c, url);
	/* A server that stops answering fails the call instead of hanging the test. */
	nfs_set_timeout(c->nfs, 60000);
	if (o->version && nfs_set_version(c->nfs, o->version) != 0)
		return nfs_fail(c, "nfs_set_version");
	if (nfs_mount(c->nfs, c->url->server, c->url->path) != 0)
		return nfs_fail(c, "mount");
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->url)
		nfs_destroy_url(c->url);
	if (c->nfs)
		nfs_destroy_context(c->nfs);
}

/* A path in the same directory as the URL's file. */
static void sibling(char *out, size_t len, const char *name)
{
	snprintf(out, len, "/%s", name[0] == '/' ? name + 1 : name);
}

static int exists(struct conn *c, const char *path)
{
	struct nfs_stat_64 st;

	return nfs_stat64(c->nfs, path, &st) == 0;
}

/* Poll for path until it exists (0) or timeout seconds passed (3). */
static int poll_for(struct conn *c, const char *path, double timeout, double *waited)
{
	double start = now();

	for (;;) {
		if (exists(c, path)) {
			*waited = now() - start;
			return 0;
		}
		if (now() - start > timeout)
			return 3;
		sleep_ms(20);
	}
}

/* Open for writing, truncated: libnfs 4.0's NFSv4 create fails on an existing
 * file (NFS4ERR_EXIST), so an existing file is opened with O_TRUNC instead. */
static int open_for_write(struct conn *c, const char *path, int flags, struct nfsfh **fh)
{
	if (exists(c, path))
		return nfs_open(c->nfs, path, flags, fh);
	return nfs_create(c->nfs, path, flags | O_CREAT, 0644, fh);
}

/* Write n bytes at off as WRITEs of at most o->wsize bytes. */
static int write_at(struct conn *c, struct nfsfh *fh, uint64_t off, const char *buf, size_t n,
		    const struct opts *o)
{
	size_t done, len;

	for (done = 0; done < n; done += len) {
		len = n - done < o->wsize ? n - done : o->wsize;
		if (nfs_pwrite(c->nfs, fh, off + done, len, (void *)(buf + done)) != (int)len)
			return nfs_fail(c, "write");
	}
	return 0;
}

static int write_chunks(struct conn *c, struct nfsfh *fh, FILE *in, const struct opts *o)
{
	char *buf = malloc(o->chunk);
	uint64_t off = 0;
	size_t n;
	int rc = 0;

	if (!buf)
		return sys_fail("malloc");
	while (!rc && (n = fread(buf, 1, o->chunk, in)) > 0) {
		if (off > 0 && o->gap_ms > 0)
			sleep_ms(o->gap_ms);
		rc = write_at(c, fh, off, buf, n, o);
		off += n;
	}
	if (!rc && ferror(in))
		rc = sys_fail("read local file");
	free(buf);
	return rc;
}

static int cmd_put(struct conn *c, const char *local, const struct opts *o)
{
	struct nfsfh *fh;
	char path[4096];
	double waited;
	FILE *in;
	int rc;

	in = fopen(local, "rb");
	if (!in)
		return sys_fail(local);
	rc = open_for_write(c, c->url->file, O_WRONLY | O_TRUNC, &fh);
	if (rc != 0) {
		fclose(in);
		return nfs_fail(c, "open");
	}
	rc = write_chunks(c, fh, in, o);
	fclose(in);
	if (!rc && nfs_fsync(c->nfs, fh) != 0)
		rc = nfs_fail(c, "fsync");
	if (nfs_close(c->nfs, fh) != 0 && !rc)
		rc = nfs_fail(c, "close");
	if (rc || !o->wait_for)
		return rc;
	sibling(path, sizeof(path), o->wait_for);
	rc = poll_for(c, path, o->timeout, &waited);
	if (rc == 0)
		printf("visible after %.3f s\n", waited);
	else
		fprintf(stderr, "nfsclient: %s did not appear within %.0f s\n", o->wait_for, o->timeout);
	return rc;
}

/* Read the whole file behind fh into local. */
static int read_all(struct conn *c, struct nfsfh *fh, const char *local, uint64_t *total)
{
	char buf[65536];
	FILE *out = fopen(local, "wb");
	int n;

	if (!out)
		return sys_fail(local);
	*total = 0;
	while ((n = nfs_pread(c->nfs, fh, *total, sizeof(buf), buf)) > 0) {
		if (fwrite(buf, 1, n, out) != (size_t)n)
			break;
		*total += n;
	}
	if (fclose(out) != 0)
		return sys_fail(local);
	return n < 0 ? nfs_fail(c, "read") : 0;
}

static int cmd_get(struct conn *c, const char *local)
{
	struct nfsfh *fh;
	uint64_t total;
	int rc;

	if (nfs_open(c->nfs, c->url->file, O_RDONLY, &fh) != 0)
		return nfs_fail(c, "open");
	rc = read_all(c, fh, local, &total);
	nfs_close(c->nfs, fh);
	return rc;
}

static int cmd_ls(struct conn *c)
{
	struct nfsdirent *e;
	struct nfsdir *d;

	if (nfs_opendir(c->nfs, "/", &d) != 0)
		return nfs_fail(c, "opendir");
	while ((e = nfs_readdir(c->nfs, d)) != NULL) {
		if (strcmp(e->name, ".") != 0 && strcmp(e->name, "..") != 0)
			printf("%s\n", e->name);
	}
	nfs_closedir(c->nfs, d);
	return 0;
}

static int cmd_rename(struct conn *c, const char *newname)
{
	char path[4096];

	sibling(path, sizeof(path), newname);
	if (nfs_rename(c->nfs, c->url->file, path) != 0)
		return nfs_fail(c, "rename");
	return 0;
}

static int cmd_rm(struct conn *c)
{
	if (nfs_unlink(c->nfs, c->url->file) != 0)
		return nfs_fail(c, "unlink");
	return 0;
}

static int cmd_wait_for(struct conn *c, const struct opts *o)
{
	double waited;
	int rc = poll_for(c, c->url->file, o->timeout, &waited);

	if (rc == 0)
		printf("visible after %.3f s\n", waited);
	else
		fprintf(stderr, "nfsclient: %s did not appear within %.0f s\n", c->url->file, o->timeout);
	return rc;
}

/* One command of hold on the held handle; prints its result. 1: close. */
static int hold_line(struct conn *c, struct nfsfh *fh, char *line)
{
	char *arg = strchr(line, ' '), *text;
	unsigned long long off;
	uint64_t total;

	if (arg)
		*arg++ = '\0';
	if (strcmp(line, "pwrite") == 0 && arg && (text = strchr(arg, ' ')) != NULL) {
		*text++ = '\0';
		off = strtoull(arg, NULL, 10);
		if (nfs_pwrite(c->nfs, fh, off, strlen(text), text) != (int)strlen(text))
			printf("error pwrite: %s\n", nfs_get_error(c->nfs));
		else
			printf("ok pwrite %zu\n", strlen(text));
	} else if (strcmp(line, "read") == 0 && arg) {
		if (read_all(c, fh, arg, &total) == 0)
			printf("ok read %llu\n", (unsigned long long)total);
		else
			printf("error read: %s\n", nfs_get_error(c->nfs));
	} else if (strcmp(line, "fsync") == 0) {
		if (nfs_fsync(c->nfs, fh) != 0)
			printf("error fsync: %s\n", nfs_get_error(c->nfs));
		else
			printf("ok fsync\n");
	} else if (strcmp(line, "close") == 0) {
		return 1;
	} else {
		printf("error %s: unknown command\n", line);
	}
	return 0;
}

static int cmd_hold(struct conn *c, const char *fifo)
{
	FILE *in = fifo ? fopen(fifo, "r") : stdin;
	char line[4096];
	struct nfsfh *fh;
	int rc = 0;

	if (!in)
		return sys_fail(fifo);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (open_for_write(c, c->url->file, O_RDWR, &fh) != 0)
		return nfs_fail(c, "open");
	printf("ready\n");
	while (fgets(line, sizeof(line), in)) {
		line[strcspn(line, "\n")] = '\0';
		if (hold_line(c, fh, line))
			break;
	}
	if (nfs_close(c->nfs, fh) != 0) {
		printf("error close: %s\n", nfs_get_error(c->nfs));
		rc = 1;
	} else {
		printf("ok close\n");
	}
	if (in != stdin)
		fclose(in);
	return rc;
}

/* Options after the positional arguments; returns how many positional ones. */
static int parse_opts(int argc, char **argv, char **pos, int maxpos, struct opts *o)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "--", 2) != 0) {
			if (n == maxpos)
				return -1;
			pos[n++] = argv[i];
			continue;
		}
		if (i + 1 == argc)
			return -1;
		if (strcmp(a, "--chunk") == 0)
			o->chunk = strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--wsize") == 0)
			o->wsize = strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--gap") == 0)
			o->gap_ms = strtol(argv[++i], NULL, 10);
		else if (strcmp(a, "--timeout") == 0)
			o->timeout = strtod(argv[++i], NULL);
		else if (strcmp(a, "--version") == 0)
			o->version = atoi(argv[++i]);
		else if (strcmp(a, "--wait-for") == 0)
			o->wait_for = argv[++i];
		else
			return -1;
	}
	return o->chunk > 0 ? n : -1;
}

/* The largest WRITE: what libnfs 4.0 can encode over NFSv4 (see the top). */
static void default_wsize(struct opts *o, const char *url)
{
	if (o->wsize > 0)
		return;
	if (o->version == 4 || (o->version == 0 && strstr(url, "version=4")))
		o->wsize = 2048;
	else
		o->wsize = o->chunk;
}

static int run(struct conn *c, const char *cmd, char **pos, int n, const struct opts *o)
{
	if (strcmp(cmd, "put") == 0 && n == 2)
		return cmd_put(c, pos[1], o);
	if (strcmp(cmd, "get") == 0 && n == 2)
		return cmd_get(c, pos[1]);
	if (strcmp(cmd, "ls") == 0 && n == 1)
		return cmd_ls(c);
	if (strcmp(cmd, "rename") == 0 && n == 2)
		return cmd_rename(c, pos[1]);
	if (strcmp(cmd, "rm") == 0 && n == 1)
		return cmd_rm(c);
	if (strcmp(cmd, "wait-for") == 0 && n == 1)
		return cmd_wait_for(c, o);
	if (strcmp(cmd, "hold") == 0 && (n == 1 || n == 2))
		return cmd_hold(c, n == 2 ? pos[1] : NULL);
	return usage();
}

int main(int argc, char **argv)
{
	struct opts o = { .chunk = 1 << 20, .timeout = 60 };
	struct conn c = { 0 };
	char *pos[2];
	int n, rc;

	if (argc < 3)
		return usage();
	n = parse_opts(argc - 2, argv + 2, pos, 2, &o);
	if (n < 1)
		return usage();
	default_wsize(&o, pos[0]);
	rc = conn_open(&c, pos[0], strcmp(argv[1], "ls") == 0, &o);
	if (rc == 0)
		rc = run(&c, argv[1], pos, n, &o);
	conn_close(&c);
	return rc;
}
