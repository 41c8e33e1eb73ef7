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
 *
 * In a plain directory that users write (a spool, issue 11) anyone can plant
 * an output with FILE's time, for a FILE of their own. So when a key
 * directory is known (--key-dir, or the spool's D/.keys/KEY/ for FILE =
 * D/KEY/NAME), an output counts only if it is a valid signature by that key
 * over FILE's content (client/verify.c, decision 68); one that is not is
 * taken for planted and waited past, since the daemon replaces it.
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

#include "client/verify.h"
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
	struct sigfs_vkey *key;            /* verify outputs with it; NULL: mtime and owner only */
	bool own_key;                      /* key is this file's (D/.keys/KEY), not --key-dir's */
	bool verified;                     /* the output found was checked with key */
	bool planted;                      /* an output was there but did not verify */
	struct stat bad;                   /* that output, not verified again while unchanged */
	char why[SIGFS_ERRLEN];            /* why it did not verify */
};

void sigfs_wait_usage(FILE *to)
{
	fprintf(to,
		"usage: sigfs wait [--timeout S] [--key-dir DIR] [-v] FILE...\n"
		"  Wait until every FILE written into an inbox (an artifact, NAME.sha256,\n"
		"  NAME.sigreq) has its signature for its current content, or its NAME.err.\n"
		"  --timeout S    give up after S seconds (default 60; 0: look once)\n"
		"  --key-dir DIR  the key's public files (a copy of .ctl/keys/KEY/): a signature\n"
		"                 counts only if it verifies with them. Without it, for FILE =\n"
		"                 D/KEY/NAME in a spool, D/.keys/KEY/ is used if it exists.\n"
		"  -v             print each FILE and its signature's path, and why an output\n"
		"                 did not verify or could not be verified\n"
		"  Exit status: 0 all signed, 1 some failed (the .err line is printed),\n"
		"  2 usage error or an untrustworthy D/.keys, 3 timed out.\n");
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
		  STATX_TYPE | STATX_SIZE | STATX_MTIME | STATX_UID | STATX_INO | STATX_CTIME,
		  &sx) < 0)
		return errno == ENOSYS ? fstat(fd, st) : -1;
	memset(st, 0, sizeof(*st));
	st->st_mode = sx.stx_mode;
	st->st_size = (off_t)sx.stx_size;
	st->st_uid = sx.stx_uid;
	st->st_ino = sx.stx_ino;
	st->st_ctim.tv_sec = sx.stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = sx.stx_ctime.tv_nsec;
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
 * with in's mtime and in's owner. If fdp, the open file is left there (else
 * closed) and its attributes in *stp.
 */
static bool output_for(int dirfd, const char *base, const char *suffix, const struct stat *in,
		       int *fdp, struct stat *stp)
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
	if (ok && fdp) {
		*fdp = fd;
		if (stp)
			*stp = st;
	} else
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

/* How the signer saw FILE when it named an output after base b (file_bases). */
static enum sigfs_vinput input_kind(const struct wait_file *w, int b)
{
	if (has_suffix(w->name, ".sigreq"))
		return SIGFS_VIN_REQUEST;
	/* NAME.sha256 is bases[0], signed as a file; NAME is bases[1], signed as a line. */
	return b == 1 ? SIGFS_VIN_DIGESTLINE : SIGFS_VIN_FILE;
}

/* The same file, unchanged (a planted output the daemon has not replaced yet)? */
static bool same_output(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size && same_mtime(a, b) &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The open output ofd, whole (at most size bytes): its length, or -1. */
static ssize_t read_output(int ofd, uint8_t *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;

	while (n < size && (r = pread(ofd, buf + n, size - n, (off_t)n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

/*
 * Is the output named after base b, open at ofd (attributes ost), w->key's
 * signature over FILE (open at fd)? One that cannot be checked from this
 * kind of input is taken by its time and owner (said with -v).
 */
static bool output_verifies(struct wait_file *w, int b, int fd, int ofd, const struct stat *ost,
			    const char *out, bool verbose)
{
	char err[SIGFS_ERRLEN] = "";
	struct stat in;
	uint8_t *buf;
	size_t max;
	ssize_t n;
	int r;

	if (w->planted && same_output(ost, &w->bad))
		return false;
	max = sigfs_vkey_output_max(w->key, w->bases[b], fstat(fd, &in) == 0 ? in.st_size : 0) + 1;
	buf = malloc(max);
	n = buf ? read_output(ofd, buf, max) : -1;
	r = n < 0 ? sigfs_seterr(err, -EIO, "cannot read it: %s", strerror(errno)) :
		    sigfs_verify_output(w->key, fd, input_kind(w, b), w->name, buf, (size_t)n, err);
	free(buf);
	if (r == -ENOTSUP && verbose)
		fprintf(stderr, "sigfs: %s: %s not verified (%s): accepted by its time and owner\n",
			w->path, out, err);
	w->verified = r == 0;
	if (r == 0 || r == -ENOTSUP)
		return true;
	if (verbose && !(w->planted && !strcmp(w->why, err)))
		fprintf(stderr, "sigfs: %s: %s does not verify (%s): waiting for sigfs's\n",
			w->path, out, err);
	w->planted = true;
	/* Not verified again while unchanged; a read error is tried again. */
	if (r == -EBADMSG)
		w->bad = *ost;
	else
		memset(&w->bad, 0, sizeof(w->bad));
	snprintf(w->why, sizeof(w->why), "%s", err);
	return false;
}

/* Is base b + suffix an output for FILE (fd, stat in): time, owner, and with a key the signature? */
static bool signed_by(struct wait_file *w, int b, const char *suffix, int dirfd, int fd,
		      const struct stat *in, bool verbose)
{
	char out[PATH_MAX + NAME_MAX + 32];
	struct stat ost;
	bool ok;
	int ofd;

	if (!w->key)
		return output_for(dirfd, w->bases[b], suffix, in, NULL, NULL);
	if (!output_for(dirfd, w->bases[b], suffix, in, &ofd, &ost))
		return false;
	snprintf(out, sizeof(out), "%s%s%s", w->dir, w->bases[b], suffix);
	ok = output_verifies(w, b, fd, ofd, &ost, out, verbose);
	close(ofd);
	return ok;
}

/* Is base b + f's suffix an output for FILE (signed_by)? Printed if verbose. */
static bool has_output(struct wait_file *w, int b, const struct sigfs_format *f, int dirfd, int fd,
		       const struct stat *in, bool verbose)
{
	if (!signed_by(w, b, f->suffix, dirfd, fd, in, verbose))
		return false;
	if (verbose)
		printf("%s: %s%s%s%s\n", w->path, w->dir, w->bases[b], f->suffix,
		       w->verified ? " (signature verified)" : "");
	return true;
}

/*
 * Has FILE (open at fd in dirfd, stat in) an output? SIGNED (printed if
 * verbose), FAILED or PENDING. With a key, only its format's suffix counts.
 */
static enum wait_state find_output(struct wait_file *w, int dirfd, int fd, const struct stat *in,
				   bool verbose)
{
	const struct sigfs_format *f;
	int efd;

	for (int b = 0; b < w->nbases; b++) {
		/* With a key, only the suffix its format gives this name. */
		if (w->key && has_output(w, b, sigfs_vkey_format_for(w->key, w->bases[b]), dirfd, fd,
					 in, verbose))
			return SIGNED;
		for (size_t i = 0; !w->key && (f = sigfs_format_at(i)); i++)
			if (!suffix_seen(i) && has_output(w, b, f, dirfd, fd, in, verbose))
				return SIGNED;
	}
	for (int b = 0; b < w->nbases; b++) {
		if (output_for(dirfd, w->bases[b], ERR_SUFFIX, in, &efd, NULL)) {
			print_err_line(w, efd);
			return FAILED;
		}
	}
	return PENDING;
}

/* Is the open directory or file fd root's and writable by nobody else? Else why not, in err. */
static bool root_only(int fd, const char *path, char *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return sigfs_seterr(err, -errno, "%s: %s", path, strerror(errno)), false;
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return sigfs_seterr(err, -EPERM, "%s: not owned by root, or writable by group or others",
				    path), false;
	return true;
}

/* openat(dirfd, name) of a directory that is no symbolic link; says why not in err. */
static int open_dir_at(int dirfd, const char *name, const char *path, char *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		sigfs_seterr(err, -errno, "%s: %s", path, errno == ELOOP ? "a symbolic link" :
			     errno == ENOTDIR ? "not a directory (or a symbolic link)" : strerror(errno));
	return fd;
}

/*
 * The spool's published key of D/.keys/KEY/ at real (D/KEY) into w->key, if
 * D/.keys exists: 0 (w->key NULL when it does not), or -1 with err set. D,
 * D/.keys, D/.keys/KEY and every file read must be root's, writable by
 * nobody else and no symbolic link: else anyone could publish a key.
 */
static int load_spool_key(struct wait_file *w, char *real, char *err)
{
	char *slash = strrchr(real, '/'), path[PATH_MAX + 16], kerr[SIGFS_ERRLEN];
	const char *key = slash + 1;
	int dfd, kfd = -1, kd = -1, r = -1;

	*slash = '\0';
	dfd = open_dir_at(AT_FDCWD, real[0] ? real : "/", real[0] ? real : "/", err);
	snprintf(path, sizeof(path), "%s/.keys", real);
	if (dfd >= 0)
		kfd = open_dir_at(dfd, ".keys", path, err);
	if (dfd >= 0 && kfd < 0 && errno == ENOENT)
		r = 0;   /* no published keys: a mount, or a directory of no spool */
	else if (kfd >= 0 && root_only(dfd, real[0] ? real : "/", err) && root_only(kfd, path, err)) {
		snprintf(path, sizeof(path), "%s/.keys/%s", real, key);
		kd = open_dir_at(kfd, key, path, err);
		if (kd >= 0 && root_only(kd, path, err)) {
			if (sigfs_vkey_load(kd, key, true, &w->key, kerr) == 0)
				r = 0;
			else
				sigfs_seterr(err, -EPERM, "%s/%s", path, kerr);
		}
	}
	w->own_key = w->key != NULL;
	if (kd >= 0)
		close(kd);
	if (kfd >= 0)
		close(kfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* The key to verify w's outputs with: --key-dir's, or the spool's; -1 (said) if untrustworthy. */
static int find_key(struct wait_file *w, struct sigfs_vkey *key_dir)
{
	char real[PATH_MAX], err[SIGFS_ERRLEN] = "";

	w->key = key_dir;
	if (key_dir)
		return 0;
	/* A directory that is not there: check_file says so. "/" has no D. */
	if (!realpath(w->dir[0] ? w->dir : ".", real) || !strcmp(real, "/"))
		return 0;
	if (load_spool_key(w, real, err) == 0)
		return 0;
	fprintf(stderr, "sigfs: %s: cannot trust the spool's published key: %s\n", w->path, err);
	return -1;
}

/* --key-dir DIR: a copy of .ctl/keys/KEY/ the user chose to trust (no owner checks). */
static int load_key_dir(const char *dir, struct sigfs_vkey **out)
{
	char real[PATH_MAX], err[SIGFS_ERRLEN] = "";
	const char *name;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0 || !realpath(dir, real)) {
		fprintf(stderr, "sigfs: --key-dir %s: %s\n", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	name = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	r = sigfs_vkey_load(fd, name, false, out, err);
	close(fd);
	if (r)
		fprintf(stderr, "sigfs: --key-dir %s: %s\n", dir, err);
	return r ? -1 : 0;
}

/* One look at w: open FILE for fresh attributes, then its outputs. */
static enum wait_state check_file(struct wait_file *w, bool verbose)
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
	if (e == EINVAL)
		fprintf(stderr, "sigfs: %s: not a regular file\n", w->path);
	else if (e)
		fprintf(stderr, "sigfs: %s: %s\n", w->path, strerror(e));
	else
		s = find_output(w, dirfd, fd, &in, verbose);
	if (fd >= 0)
		close(fd);
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
static int wait_args(int argc, char **argv, double *timeout, bool *verbose,
		     const char **key_dir)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "key-dir", required_argument, NULL, 'k' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "t:vh", opts, NULL)) != -1) {
		if (c == 't' && parse_timeout(optarg, timeout) == 0)
			continue;
		if (c == 'v' || c == 'k') {
			*verbose |= c == 'v';
			*key_dir = c == 'k' ? optarg : *key_dir;
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
		if (w[i].planted)
			fprintf(stderr, "sigfs: %s: timed out after %g s: an output was present but "
				"did not verify as the key's signature (%s)\n", w[i].path, timeout,
				w[i].why);
		else
			fprintf(stderr, "sigfs: %s: timed out after %g s: no signature and no .err "
				"for its current content yet\n", w[i].path, timeout);
	}
	return failed ? SIGFS_WAIT_FAILED : late ? SIGFS_WAIT_TIMEOUT : SIGFS_WAIT_SIGNED;
}

static void free_files(struct wait_file *w, int n, struct sigfs_vkey *key_dir)
{
	for (int i = 0; i < n; i++)
		if (w[i].own_key)
			sigfs_vkey_free(w[i].key);
	sigfs_vkey_free(key_dir);
	free(w);
}

int sigfs_wait_cmd(int argc, char **argv)
{
	double timeout = DEFAULT_TIMEOUT;
	bool verbose = false;
	const char *key_dir_path = NULL;
	struct sigfs_vkey *key_dir = NULL;
	struct wait_file *w;
	int n, rc = wait_args(argc, argv, &timeout, &verbose, &key_dir_path);

	if (rc >= 0)
		return rc;
	if (key_dir_path && load_key_dir(key_dir_path, &key_dir) < 0)
		return SIGFS_WAIT_USAGE;
	n = argc - optind;
	w = calloc((size_t)n, sizeof(*w));
	if (!w) {
		fprintf(stderr, "sigfs: out of memory\n");
		sigfs_vkey_free(key_dir);
		return SIGFS_WAIT_FAILED;
	}
	for (int i = 0; i < n; i++) {
		if (file_bases(&w[i], argv[optind + i]) < 0 || find_key(&w[i], key_dir) < 0) {
			free_files(w, n, key_dir);
			return SIGFS_WAIT_USAGE;
		}
	}
	poll_files(w, n, timeout, verbose);
	rc = wait_result(w, n, timeout);
	free_files(w, n, key_dir);
	return rc;
}
