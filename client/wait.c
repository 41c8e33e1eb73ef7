/*
 * wait.c: `sigfs wait [--timeout S] [-v] FILE...`. Over NFS close() reports
 * nothing, so a build script polls; this is the poll, done right once.
 *
 * The daemon gives every output (NAME.sig ... or NAME.err) the modification
 * time of its input as the job saw it (signer/engine.c, write_tmp), and
 * places it by rename. So an output whose mtime equals FILE's current mtime,
 * to the nanosecond, is the output for FILE's current content: no public key,
 * no knowledge of the key's format, and a stale output (the old version's
 * .sig still in an NFS client's cache) is never taken (decision 63). The
 * daemon also gives an output to its input's owner, and nobody but root can
 * make a file another user owns: an output counts only when it has FILE's
 * owner, so another user cannot plant one (with a forged time) for FILE.
 *
 * Each round opens FILE and each candidate output and stats the open file:
 * under NFS close-to-open consistency, open() revalidates the attributes a
 * plain stat() could take from the attribute cache, and the stat asks the
 * server again anyway (fresh_stat). The directory is opened and stated the
 * same way first: a new directory time makes the NFS client drop the
 * "no such file" it may have cached for an output that has appeared since.
 * It only reads, so it works on any directory (an inbox, an NFS mount of
 * one, a copy).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/wait.h"
#include "common/err.h"
#include "common/log.h"
#include "signer/digestline.h"
#include "signer/format.h"

#define DEFAULT_TIMEOUT 60.0
#define TIMEOUT_MAX 1e7              /* about four months: a typo, not a wish */
#define POLL_FIRST_MS 100            /* a small file is signed in a few ms */
#define POLL_MAX_MS 500              /* a large one may take minutes: poll gently */
#define ERR_SUFFIX ".err"

enum wait_state { PENDING, SIGNED, FAILED };

/* One FILE of the command line and what is known of it. */
struct wait_file {
	const char *path;                  /* as given */
	char dir[PATH_MAX];                /* path up to its last '/' (may be empty) */
	const char *name;                  /* its last component */
	char bases[2][NAME_MAX + 1];       /* the names its outputs are named after */
	int nbases;
	enum wait_state state;
};

void sigfs_wait_usage(FILE *to)
{
	fprintf(to,
		"usage: sigfs wait [--timeout S] [-v] FILE...\n"
		"  Wait until every FILE written into an inbox (an artifact, NAME.sha256,\n"
		"  NAME.sigreq) has its signature for its current content, or its NAME.err.\n"
		"  --timeout S  give up after S seconds (default 60; 0: look once)\n"
		"  -v           print each FILE and its signature's path\n"
		"  Exit status: 0 all signed, 1 some failed (the .err line is printed),\n"
		"  2 usage error, 3 timed out.\n");
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

/* Does name end in an output suffix (a format's, or .err)? */
static bool is_output_name(const char *name)
{
	const struct sigfs_format *f;

	for (size_t i = 0; (f = sigfs_format_at(i)); i++)
		if (has_suffix(name, f->suffix))
			return true;
	return has_suffix(name, ERR_SUFFIX);
}

/*
 * The names w's outputs may be named after, as signer/engine.c names them:
 * NAME.sigreq gives NAME; NAME.<digest> gives NAME for a digest line and
 * NAME.<digest> when the key takes no digest lines or the content is not one
 * (the client cannot tell, so both); anything else its own name.
 */
static int file_bases(struct wait_file *w, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	w->path = path;
	w->name = slash ? slash + 1 : path;
	len = slash ? (size_t)(slash - path) + 1 : 0;
	if (!w->name[0] || strlen(w->name) > NAME_MAX || len >= sizeof(w->dir)) {
		fprintf(stderr, "sigfs: %s: not a file name\n", path);
		return -1;
	}
	if (w->name[0] == '.') {
		fprintf(stderr, "sigfs: %s: names starting with '.' are never signed\n", path);
		return -1;
	}
	if (is_output_name(w->name)) {
		fprintf(stderr, "sigfs: %s: that is an output's name; wait on the file you wrote\n",
			path);
		return -1;
	}
	snprintf(w->dir, sizeof(w->dir), "%.*s", (int)len, path);
	strcpy(w->bases[0], w->name);
	w->nbases = 1;
	if (has_suffix(w->name, ".sigreq")) {
		w->bases[0][strlen(w->name) - strlen(".sigreq")] = '\0';
	} else if (sigfs_dl_suffix(w->name, &len)) {
		snprintf(w->bases[1], sizeof(w->bases[1]), "%.*s", (int)len, w->name);
		w->nbases = 2;
	}
	return 0;
}

/*
 * fd's type, size and modification time, from the server: AT_STATX_FORCE_SYNC
 * makes NFS (and FUSE) ask rather than answer from an attribute cache.
 */
static int fresh_stat(int fd, struct stat *st)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC,
		  STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_UID, &sx) < 0)
		return errno == ENOSYS ? fstat(fd, st) : -1;
	memset(st, 0, sizeof(*st));
	st->st_mode = sx.stx_mode;
	st->st_size = (off_t)sx.stx_size;
	st->st_uid = sx.stx_uid;
	st->st_mtim.tv_sec = sx.stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = sx.stx_mtime.tv_nsec;
	return 0;
}

/* The same modification time, to the nanosecond: the output is for this content. */
static bool same_mtime(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Open base + suffix in dirfd; true when it is a regular file, non-empty,
 * with in's mtime and in's owner. If fdp, the open file is left there (else closed).
 */
static bool output_for(int dirfd, const char *base, const char *suffix, const struct stat *in,
		       int *fdp)
{
	char name[NAME_MAX + 32];
	struct stat st;
	bool ok;
	int fd;

	snprintf(name, sizeof(name), "%s%s", base, suffix);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fresh_stat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	     same_mtime(&st, in) && st.st_uid == in->st_uid;
	if (ok && fdp)
		*fdp = fd;
	else
		close(fd);
	return ok;
}

/* Print "sigfs: FILE: " and the first line of the open .err (fd, which it closes). */
static void print_err_line(const struct wait_file *w, int fd)
{
	char line[SIGFS_ERRLEN + 1], esc[SIGFS_ESCAPED_MAX];
	ssize_t n;

	do
		n = read(fd, line, sizeof(line) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	/* Anyone may write a .err into a plain directory: no control bytes to the terminal. */
	fprintf(stderr, "sigfs: %s: %s\n", w->path, sigfs_escape(line, esc, sizeof(esc)));
}

/* Has a format before format i the same suffix (raw, openpgp and sshsig all write .sig)? */
static bool suffix_seen(size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (strcmp(sigfs_format_at(k)->suffix, sigfs_format_at(i)->suffix) == 0)
			return true;
	return false;
}

/* Has FILE (open in dirfd, stat in) an output? SIGNED (printed if verbose), FAILED or PENDING. */
static enum wait_state find_output(const struct wait_file *w, int dirfd, const struct stat *in,
				   bool verbose)
{
	const struct sigfs_format *f;
	int fd;

	for (int b = 0; b < w->nbases; b++) {
		for (size_t i = 0; (f = sigfs_format_at(i)); i++) {
			if (suffix_seen(i) || !output_for(dirfd, w->bases[b], f->suffix, in, NULL))
				continue;
			if (verbose)
				printf("%s: %s%s%s\n", w->path, w->dir, w->bases[b], f->suffix);
			return SIGNED;
		}
	}
	for (int b = 0; b < w->nbases; b++) {
		if (output_for(dirfd, w->bases[b], ERR_SUFFIX, in, &fd)) {
			print_err_line(w, fd);
			return FAILED;
		}
	}
	return PENDING;
}

/* One look at w: open FILE for fresh attributes, then its outputs. */
static enum wait_state check_file(const struct wait_file *w, bool verbose)
{
	int dirfd = open(w->dir[0] ? w->dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = -1, e = 0;
	enum wait_state s = FAILED;
	struct stat dir, in;

	if (dirfd < 0 || fresh_stat(dirfd, &dir) < 0 ||
	    (fd = openat(dirfd, w->name, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
	    fresh_stat(fd, &in) < 0)
		e = errno;
	else if (!S_ISREG(in.st_mode))
		e = EINVAL;
	if (fd >= 0)
		close(fd);
	if (e == EINVAL)
		fprintf(stderr, "sigfs: %s: not a regular file\n", w->path);
	else if (e)
		fprintf(stderr, "sigfs: %s: %s\n", w->path, strerror(e));
	else
		s = find_output(w, dirfd, &in, verbose);
	if (dirfd >= 0)
		close(dirfd);
	return s;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double min_d(double a, double b)
{
	return a < b ? a : b;
}

/* Sleep s seconds (none if s <= 0). */
static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	if (s <= 0)
		return;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Look at the pending files until none is pending or timeout seconds have passed. */
static void poll_files(struct wait_file *w, int n, double timeout, bool verbose)
{
	double deadline = now_s() + timeout, interval = POLL_FIRST_MS / 1000.0;
	int pending;

	for (;;) {
		pending = 0;
		for (int i = 0; i < n; i++) {
			if (w[i].state == PENDING)
				w[i].state = check_file(&w[i], verbose);
			pending += w[i].state == PENDING;
		}
		if (!pending || now_s() >= deadline)
			return;
		sleep_s(min_d(interval, deadline - now_s()));
		interval = min_d(interval * 1.5, POLL_MAX_MS / 1000.0);
	}
}

/* --timeout's value: seconds, a decimal number from 0 to TIMEOUT_MAX. */
static int parse_timeout(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out >= 0 && *out <= TIMEOUT_MAX)) {
		fprintf(stderr, "sigfs: --timeout takes seconds (0 to %.0f), not \"%s\"\n",
			TIMEOUT_MAX, s);
		return -1;
	}
	return 0;
}

/* Read the options: -1 to go on (optind at the first FILE), or the exit status. */
static int wait_args(int argc, char **argv, double *timeout, bool *verbose)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "t:vh", opts, NULL)) != -1) {
		if (c == 't' && parse_timeout(optarg, timeout) == 0)
			continue;
		if (c == 'v') {
			*verbose = true;
			continue;
		}
		if (c == 'h') {
			sigfs_wait_usage(stdout);
			return 0;
		}
		if (c != 't')
			sigfs_wait_usage(stderr);
		return SIGFS_WAIT_USAGE;
	}
	if (optind >= argc) {
		sigfs_wait_usage(stderr);
		return SIGFS_WAIT_USAGE;
	}
	return -1;
}

/* The exit status once polling ended; says which files timed out. */
static int wait_result(const struct wait_file *w, int n, double timeout)
{
	bool failed = false, late = false;

	for (int i = 0; i < n; i++) {
		failed |= w[i].state == FAILED;
		if (w[i].state != PENDING)
			continue;
		late = true;
		fprintf(stderr, "sigfs: %s: timed out after %g s: no signature and no .err for "
			"its current content yet\n", w[i].path, timeout);
	}
	return failed ? SIGFS_WAIT_FAILED : late ? SIGFS_WAIT_TIMEOUT : SIGFS_WAIT_SIGNED;
}

int sigfs_wait_cmd(int argc, char **argv)
{
	double timeout = DEFAULT_TIMEOUT;
	bool verbose = false;
	struct wait_file *w;
	int n, rc = wait_args(argc, argv, &timeout, &verbose);

	if (rc >= 0)
		return rc;
	n = argc - optind;
	w = calloc((size_t)n, sizeof(*w));
	if (!w) {
		fprintf(stderr, "sigfs: out of memory\n");
		return SIGFS_WAIT_FAILED;
	}
	for (int i = 0; i < n; i++) {
		if (file_bases(&w[i], argv[optind + i]) < 0) {
			free(w);
			return SIGFS_WAIT_USAGE;
		}
	}
	poll_files(w, n, timeout, verbose);
	rc = wait_result(w, n, timeout);
	free(w);
	return rc;
}
