/*
 * audit.c: the hash-chained audit log of audit.h; the line format is in
 * docs/audit.md. Each append is one write() on an O_APPEND descriptor under a
 * mutex, so a line is never interleaved with another; each line names the
 * SHA-256 of the line before it, so verify() finds any edit, removal,
 * insertion or reordering of lines by reading the file once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "common/alg.h"
#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/safedir.h"
#include "common/sbuf.h"
#include "signer/audit.h"

/*
 * Longest line append() can produce: four escaped fields (event, key,
 * digest name, name) of at most SIGFS_ESCAPED_MAX - 1 bytes each, a digest of
 * 2 * SIGFS_MAX_DIGEST hex digits and well under 256 bytes for the rest.
 * Anything longer in a log was not written by us.
 */
#define AUDIT_LINE_MAX (4 * SIGFS_ESCAPED_MAX + 2 * SIGFS_MAX_DIGEST + 256)
#define AUDIT_HASH 32
#define AUDIT_FIELDS 9            /* with owner=; lines of older versions have 8 */

struct sigfs_audit {
	pthread_mutex_t lock;
	int fd;
	uint64_t seq;                   /* seq of the last line, 0 for an empty log */
	uint8_t prev[AUDIT_HASH];       /* SHA-256 of the last line, zeros for an empty log */
	off_t size;                     /* file size after the last complete line */
};

static void hash_line(const void *line, size_t len, uint8_t out[AUDIT_HASH])
{
	EVP_Digest(line, len, out, NULL, EVP_sha256(), NULL);
}

/*
 * One field value: sigfs_escape() plus spaces as \x20, so that every line
 * splits into exactly AUDIT_FIELDS fields at its spaces. A missing or empty
 * value is "-"; a literal "-" is written \x2d so the two cannot be confused.
 */
static const char *field(const char *s, char *out, size_t outlen)
{
	char tmp[SIGFS_ESCAPED_MAX];
	size_t o = 0;

	if (!s || !*s)
		return "-";
	if (strcmp(s, "-") == 0)
		return "\\x2d";
	sigfs_escape(s, tmp, sizeof(tmp));
	for (const char *p = tmp; *p; p++) {
		size_t need = *p == ' ' ? 4 : 1;

		if (o + need >= outlen)
			break;
		if (*p == ' ') {
			memcpy(out + o, "\\x20", 4);
		} else {
			out[o] = *p;
		}
		o += need;
	}
	out[o] = '\0';
	return out;
}

/* A field of 1 to 20 decimal digits. */
static bool all_digits(const struct sbuf *f)
{
	size_t n = sbuf_avail(f);

	return n > 0 && n <= 20 && sbuf_span(f, "0123456789") == n;
}

/* Does field f start with prefix and hold more after it? */
static bool has_prefix(const struct sbuf *f, const char *prefix)
{
	struct sbuf rest = *f, head;

	return sbuf_get_view(&rest, strlen(prefix), &head) == 0 && sbuf_eq(&head, prefix) &&
	       sbuf_avail(&rest) > 0;
}

/* The fields of line, split at each space, as views into f; *n says how many. */
static int split(const struct sbuf *line, struct sbuf f[AUDIT_FIELDS], size_t *n, char *why)
{
	struct sbuf b = *line;

	for (*n = 0;; (*n)++) {
		if (*n == AUDIT_FIELDS)
			return sigfs_seterr(why, -EBADMSG, "more than %d fields", AUDIT_FIELDS);
		if (sbuf_get_token(&b, " ", &f[*n]) < 0)
			break;
	}
	/* The last field runs to the end of the line. */
	sbuf_get_view(&b, sbuf_avail(&b), &f[(*n)++]);
	return 0;
}

/*
 * Check the shape of one line (len bytes, without its "\n") and extract its
 * seq and prev. On error, why receives the reason (without "line N: ").
 */
static int parse_line(const char *line, size_t len, uint64_t *seq, uint8_t prev[AUDIT_HASH],
		      char *why)
{
	static const char *const prefix[AUDIT_FIELDS] = {
		NULL, NULL, NULL, "key=", "uid=", "owner=", "digest=", "name=", "prev=",
	};
	/* A line of a version before owner= (8 fields) skips that prefix. */
	static const char *const prefix8[AUDIT_FIELDS - 1] = {
		NULL, NULL, NULL, "key=", "uid=", "digest=", "name=", "prev=",
	};
	const char *const *want;
	struct sbuf b, f[AUDIT_FIELDS], hash, num;
	size_t n;
	int r;

	sbuf_view(&b, line, len);
	if (len > AUDIT_LINE_MAX)
		return sigfs_seterr(why, -EBADMSG, "longer than any audit line (%zu bytes)", len);
	if (sbuf_find(&b, '\0', NULL) == 0)
		return sigfs_seterr(why, -EBADMSG, "contains a NUL byte");
	r = split(&b, f, &n, why);
	if (r < 0)
		return r;
	if (n != AUDIT_FIELDS && n != AUDIT_FIELDS - 1)
		return sigfs_seterr(why, -EBADMSG, "%zu fields, expected %d", n, AUDIT_FIELDS);
	want = n == AUDIT_FIELDS ? prefix : prefix8;
	if (!all_digits(&f[0]) || *sbuf_ptr(&f[0]) == '0')
		return sigfs_seterr(why, -EBADMSG, "the sequence number is not a number");
	if (!all_digits(&f[1]))
		return sigfs_seterr(why, -EBADMSG, "the time is not a number");
	if (sbuf_avail(&f[2]) == 0)
		return sigfs_seterr(why, -EBADMSG, "no event");
	for (size_t i = 3; i < n; i++) {
		if (!has_prefix(&f[i], want[i]))
			return sigfs_seterr(why, -EBADMSG, "field %zu does not start with %s", i + 1,
					    want[i]);
	}
	hash = f[n - 1];
	if (sbuf_get(&hash, NULL, strlen("prev=")) < 0 || sbuf_avail(&hash) != 2 * AUDIT_HASH ||
	    sbuf_get_hex_lower(&hash, prev, AUDIT_HASH) < 0)
		return sigfs_seterr(why, -EBADMSG, "prev= is not %d lowercase hex digits",
				    2 * AUDIT_HASH);
	num = f[0];
	if (sbuf_get_u64dec(&num, seq) < 0)
		return sigfs_seterr(why, -EBADMSG, "the sequence number is larger than 2^64-1");
	return 0;
}

/* Find the last line of the log to continue its chain; fd is open for reading. */
static int load_tail(struct sigfs_audit *a, const char *path, char *err)
{
	char why[SIGFS_ERRLEN], *buf;
	size_t want, start;
	struct stat st;
	ssize_t got;
	int r;

	if (fstat(a->fd, &st) < 0)
		return sigfs_seterr(err, -errno, "%s: %s", path, strerror(errno));
	a->size = st.st_size;
	if (st.st_size == 0)
		return 0;
	/* A log grows without bound; its last line is all we need. */
	want = st.st_size > AUDIT_LINE_MAX + 1 ? AUDIT_LINE_MAX + 1 : (size_t)st.st_size;
	buf = malloc(want);
	if (!buf)
		return sigfs_seterr(err, -ENOMEM, "%s: out of memory", path);
	got = pread(a->fd, buf, want, st.st_size - (off_t)want);
	if (got != (ssize_t)want) {
		r = sigfs_seterr(err, got < 0 ? -errno : -EIO, "%s: cannot read its last line: %s",
				 path, got < 0 ? strerror(errno) : "short read");
		goto out;
	}
	if (buf[want - 1] != '\n') {
		/* A crash in the middle of a write; cutting it is the admin's call. */
		r = sigfs_seterr(err, -EBADMSG,
				 "%s: the last line is incomplete; check it with sigfsd --verify-audit, then cut that line",
				 path);
		goto out;
	}
	for (start = want - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && want < (size_t)st.st_size) {
		r = sigfs_seterr(err, -EBADMSG, "%s: the last line is longer than any audit line",
				 path);
		goto out;
	}
	r = parse_line(buf + start, want - 1 - start, &a->seq, a->prev, why);
	if (r < 0) {
		sigfs_seterr(err, r, "%s: last line: %s", path, why);
		goto out;
	}
	/* The next line's number would wrap to 0, which no line can have. */
	if (a->seq == UINT64_MAX) {
		r = sigfs_seterr(err, -EBADMSG, "%s: the log is full (its last line is number "
				 "2^64-1); move it away so that a new log begins", path);
		goto out;
	}
	hash_line(buf + start, want - start, a->prev);
	r = 0;
out:
	free(buf);
	return r;
}

int sigfs_audit_open(int dirfd, const char *name, struct sigfs_audit **out, char *err)
{
	char path[PATH_MAX];
	struct sigfs_audit *a;
	int r;

	sigfs_safedir_shown(dirfd, name, path, sizeof(path));
	a = calloc(1, sizeof(*a));
	if (!a)
		return sigfs_seterr(err, -ENOMEM, "%s: out of memory", path);
	r = sigfs_safedir_file(dirfd, name, O_RDWR | O_APPEND | O_CREAT, 0600, &a->fd, err);
	if (r < 0) {
		free(a);
		return r;
	}
	/* Two writers would fork the chain: one daemon per log. */
	if (flock(a->fd, LOCK_EX | LOCK_NB) < 0) {
		r = sigfs_seterr(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
				 "the audit log %s is in use by another process: %s", path,
				 strerror(errno));
		goto fail;
	}
	r = load_tail(a, path, err);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&a->lock, NULL);
	*out = a;
	return 0;
fail:
	close(a->fd);
	free(a);
	return r;
}

void sigfs_audit_close(struct sigfs_audit *a)
{
	if (!a)
		return;
	close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static void uid_field(uid_t uid, char out[24])
{
	if (uid == (uid_t)-1)
		strcpy(out, "-");
	else
		snprintf(out, 24, "%u", (unsigned)uid);
}

int sigfs_audit_append(struct sigfs_audit *a, const char *event, const char *key, uid_t uid,
		       uid_t owner, const char *digest_name, const uint8_t *digest,
		       size_t digest_len, const char *name)
{
	char line[AUDIT_LINE_MAX + 1], prevhex[2 * AUDIT_HASH + 1];
	char evbuf[SIGFS_ESCAPED_MAX], kbuf[SIGFS_ESCAPED_MAX], nbuf[SIGFS_ESCAPED_MAX];
	char dnbuf[SIGFS_ESCAPED_MAX], dig[SIGFS_ESCAPED_MAX + 2 * SIGFS_MAX_DIGEST + 2];
	const char *ev = field(event, evbuf, sizeof(evbuf));
	const char *k = field(key, kbuf, sizeof(kbuf));
	const char *n = field(name, nbuf, sizeof(nbuf));
	char uidbuf[24], ownerbuf[24];
	ssize_t w;
	int len, r = 0;

	if (digest_len > SIGFS_MAX_DIGEST)
		return -EINVAL;
	if (digest_name && digest && digest_len > 0) {
		char h[2 * SIGFS_MAX_DIGEST + 1];

		sigfs_hex_encode(digest, digest_len, h);
		snprintf(dig, sizeof(dig), "%s:%s", field(digest_name, dnbuf, sizeof(dnbuf)), h);
	} else {
		strcpy(dig, "-");
	}
	uid_field(uid, uidbuf);
	uid_field(owner, ownerbuf);

	pthread_mutex_lock(&a->lock);
	sigfs_hex_encode(a->prev, AUDIT_HASH, prevhex);
	len = snprintf(line, sizeof(line),
		       "%" PRIu64 " %lld %s key=%s uid=%s owner=%s digest=%s name=%s prev=%s\n",
		       a->seq + 1, (long long)time(NULL), ev, k, uidbuf, ownerbuf, dig, n, prevhex);
	w = write(a->fd, line, (size_t)len);
	if (w == len) {
		a->seq++;
		a->size += len;
		hash_line(line, (size_t)len, a->prev);
		goto out;
	}
	r = w < 0 ? -errno : -EIO;
	/* A partial line would break the chain for every later line: take it back. */
	if (w > 0 && ftruncate(a->fd, a->size) < 0)
		log_err("audit log: cannot remove a partial line (%s); run sigfsd --verify-audit",
			strerror(errno));
	log_err("audit log: cannot append a %s event: %s", ev, strerror(-r));
out:
	pthread_mutex_unlock(&a->lock);
	return r;
}

int sigfs_audit_verify(const char *path, size_t *lines, char *err)
{
	uint8_t expect[AUDIT_HASH] = { 0 }, prev[AUDIT_HASH];
	char why[SIGFS_ERRLEN], *line = NULL;
	size_t cap = 0, n = 0;
	uint64_t seq;
	ssize_t len;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f)
		return sigfs_seterr(err, -errno, "cannot open the audit log %s: %s", path,
				    strerror(errno));
	while ((len = getline(&line, &cap, f)) > 0) {
		n++;
		if (line[len - 1] != '\n') {
			r = sigfs_seterr(err, -EBADMSG, "line %zu: no newline at its end (cut short)", n);
			goto out;
		}
		r = parse_line(line, (size_t)len - 1, &seq, prev, why);
		if (r < 0) {
			sigfs_seterr(err, r, "line %zu: %s", n, why);
			goto out;
		}
		if (seq != n) {
			r = sigfs_seterr(err, -EBADMSG,
					 "line %zu: sequence number %" PRIu64 ", expected %zu (%s)",
					 n, seq, n, seq > n ? "lines removed before it" :
					 "lines inserted or reordered");
			goto out;
		}
		if (memcmp(prev, expect, AUDIT_HASH) != 0) {
			r = sigfs_seterr(err, -EBADMSG,
					 "line %zu: prev= does not match the line before it (%s)", n,
					 n == 1 ? "the first line must have 64 zeros" :
					 "that line was edited, or lines were removed, inserted or reordered");
			goto out;
		}
		hash_line(line, (size_t)len, expect);
	}
	if (ferror(f))
		r = sigfs_seterr(err, -EIO, "cannot read the audit log %s", path);
	else if (lines)
		*lines = n;
out:
	free(line);
	fclose(f);
	return r;
}
