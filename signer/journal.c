/* journal.c: the crash journal of journal.h, its records authenticated with HMAC-SHA256. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/safedir.h"
#include "common/sbuf.h"
#include "signer/journal.h"

#define NBUCKETS 4096
#define COMPACT_AT (16u << 20)
#define KEY_LEN 32
#define MAC_LEN 32
#define MAX_FIELDS 7
/*
 * Longest record format_rec() writes: op, two 20-digit numbers, 128 hex
 * digits of key, 510 of name, a uid and 64 of MAC, with their spaces. A
 * longer line was not written by us.
 */
#define REC_MAX 1024
/*
 * Ids count up from 1: one of 0 or from 2^63 on was not written by sigfsd
 * (0 means "no id yet" to the engine, and the largest would wrap next_id).
 */
#define ID_LIMIT (UINT64_C(1) << 63)

struct rec {
	struct sigfs_journal_entry e;
	struct rec *next;
};

struct sigfs_journal {
	pthread_mutex_t lock;
	int dirfd;
	char name[NAME_MAX + 1];
	char shown[PATH_MAX];        /* the journal's path, for messages */
	int fd;
	bool fsync;
	/*
	 * HMAC-SHA256 keyed once at open (it holds the only copy of the key, and
	 * wipes it when freed); used under lock, or before the journal is shared.
	 * HMAC() per record (fetching and keying each time) made an append take
	 * 11-12 us, against 4-5 without MACs; keyed once, 7-8 (300,000 appends).
	 */
	EVP_MAC_CTX *mac;
	uint64_t next_id;
	size_t npending;
	off_t size;
	struct rec *buckets[NBUCKETS];
};

static struct rec **slot(struct sigfs_journal *j, uint64_t id)
{
	struct rec **pp = &j->buckets[id % NBUCKETS];

	while (*pp && (*pp)->e.id != id)
		pp = &(*pp)->next;
	return pp;
}

/* Record e in the table of unfinished entries (op D removes). */
static void track(struct sigfs_journal *j, const struct sigfs_journal_entry *e)
{
	struct rec **pp = slot(j, e->id), *r = *pp;

	if (e->op == 'D') {
		if (r) {
			*pp = r->next;
			free(r);
			j->npending--;
		}
		return;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return;
		*pp = r;
		j->npending++;
	}
	r->e = *e;
}

/* A hex field into a string of fewer than outlen bytes without NUL bytes in it. */
static int unhex_str(const struct sbuf *field, char *out, size_t outlen)
{
	struct sbuf f = *field;
	size_t n = sbuf_avail(&f);

	if (n / 2 >= outlen || n % 2 || sbuf_get_hex_lower(&f, (uint8_t *)out, n / 2) < 0)
		return -EBADMSG;
	out[n / 2] = '\0';
	return strlen(out) == n / 2 ? 0 : -EBADMSG;
}

/* A decimal field of 1 to 20 digits that fits in 64 bits. */
static int number(const struct sbuf *field, uint64_t *v)
{
	struct sbuf f = *field;

	if (sbuf_avail(&f) > 20 || sbuf_get_u64dec(&f, v) < 0 || sbuf_avail(&f) != 0)
		return -EBADMSG;
	return 0;
}

/* HMAC-SHA256 of the record text under the journal key; -EIO if OpenSSL fails. */
static int rec_mac(const struct sigfs_journal *j, const char *text, size_t len,
		   uint8_t mac[MAC_LEN])
{
	size_t n = 0;

	/* A NULL key starts over with the key given at open. */
	if (EVP_MAC_init(j->mac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(j->mac, (const unsigned char *)text, len) != 1 ||
	    EVP_MAC_final(j->mac, mac, &n, MAC_LEN) != 1 || n != MAC_LEN)
		return -EIO;
	return 0;
}

/* The record's line, MAC and newline included, into buf: its length, or -EIO. */
static int format_rec(const struct sigfs_journal *j, const struct sigfs_journal_entry *e,
		      char *buf, size_t len)
{
	char hk[2 * sizeof(e->key) + 1], hn[2 * sizeof(e->name) + 1], uid[16];
	char hm[2 * MAC_LEN + 1];
	uint8_t mac[MAC_LEN];
	int n;

	if (e->op == 'D') {
		n = snprintf(buf, len, "D %" PRIu64, e->id);
	} else {
		sigfs_hex_encode((const uint8_t *)e->key, strlen(e->key), hk);
		sigfs_hex_encode((const uint8_t *)e->name, strlen(e->name), hn);
		if (e->uid == (uid_t)-1)
			strcpy(uid, "-");
		else
			snprintf(uid, sizeof(uid), "%u", (unsigned)e->uid);
		n = snprintf(buf, len, "%c %" PRIu64 " %" PRIu64 " %s %s %s", e->op, e->id, e->ino,
			     hk, hn, uid);
	}
	if (rec_mac(j, buf, (size_t)n, mac) < 0)
		return -EIO;
	sigfs_hex_encode(mac, MAC_LEN, hm);
	return n + snprintf(buf + n, len - (size_t)n, " %s\n", hm);
}

/* One record read back, split at its spaces: views into the line. */
struct fields {
	struct sbuf f[MAX_FIELDS];
	size_t n;
};

static int split(const char *line, size_t len, struct fields *fs)
{
	struct sbuf b;

	sbuf_view(&b, line, len);
	fs->n = 0;
	while (sbuf_avail(&b)) {
		if (fs->n == MAX_FIELDS)
			return -EBADMSG;
		if (sbuf_get_token(&b, " ", &fs->f[fs->n]) < 0)
			sbuf_get_view(&b, sbuf_avail(&b), &fs->f[fs->n]);
		else if (!sbuf_avail(&b))
			return -EBADMSG;        /* a space must be followed by a field */
		if (!sbuf_avail(&fs->f[fs->n++]))
			return -EBADMSG;
	}
	return 0;
}

/*
 * Parse one record (len bytes, its newline removed). mac becomes a view of
 * its MAC field, or is empty for a record of a version before MACs.
 */
static int parse_rec(const char *line, size_t len, struct sigfs_journal_entry *e,
		     struct sbuf *mac)
{
	struct fields fs;
	uint64_t v;
	size_t base;

	memset(e, 0, sizeof(*e));
	e->uid = (uid_t)-1;
	sbuf_view(mac, NULL, 0);
	if (len > REC_MAX || split(line, len, &fs) < 0 || fs.n == 0 ||
	    sbuf_avail(&fs.f[0]) != 1)
		return -EBADMSG;
	e->op = (char)*sbuf_ptr(&fs.f[0]);
	if (e->op == 'D')
		base = 2;
	else if (e->op == 'W' || e->op == 'A')
		base = 5;
	else
		return -EBADMSG;
	if (fs.n < base || number(&fs.f[1], &e->id) < 0 || e->id == 0 || e->id >= ID_LIMIT)
		return -EBADMSG;
	if (e->op == 'D') {
		if (fs.n == 3)
			*mac = fs.f[2];
		else if (fs.n != 2)
			return -EBADMSG;
	} else {
		/* 5 fields: before uids were journaled; 6: before MACs; 7: now. */
		if (fs.n == 7)
			*mac = fs.f[6];
		if (number(&fs.f[2], &e->ino) < 0 ||
		    unhex_str(&fs.f[3], e->key, sizeof(e->key)) < 0 ||
		    unhex_str(&fs.f[4], e->name, sizeof(e->name)) < 0)
			return -EBADMSG;
		if (fs.n >= 6 && !(fs.n == 7 && sbuf_eq(&fs.f[5], "-"))) {
			if (number(&fs.f[5], &v) < 0 || v >= (uid_t)-1)
				return -EBADMSG;
			e->uid = (uid_t)v;
		}
	}
	/* The MAC is the last field: exactly its digits to the end of the line. */
	if (sbuf_avail(mac) && sbuf_avail(mac) != 2 * MAC_LEN)
		return -EBADMSG;
	return 0;
}

/* Is mac (a view of the 2 * MAC_LEN hex digits after "line ") the record's MAC? */
static bool mac_ok(const struct sigfs_journal *j, const char *line, const struct sbuf *mac)
{
	uint8_t want[MAC_LEN], got[MAC_LEN];
	struct sbuf m = *mac;

	if (sbuf_get_hex_lower(&m, got, MAC_LEN) < 0 ||
	    rec_mac(j, line, (size_t)((const char *)sbuf_ptr(mac) - 1 - line), want) < 0)
		return false;
	return CRYPTO_memcmp(want, got, MAC_LEN) == 0;
}

static int cmp_entries(const void *a, const void *b)
{
	uint64_t x = ((const struct sigfs_journal_entry *)a)->id;
	uint64_t y = ((const struct sigfs_journal_entry *)b)->id;

	return x < y ? -1 : x > y;
}

/*
 * Write the unfinished entries to NAME.new and rename it over the journal;
 * it becomes the descriptor records are appended to.
 */
static int rewrite(struct sigfs_journal *j)
{
	char tmp[NAME_MAX + 8], buf[2048];
	off_t size = 0;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.new", j->name);
	/* A leftover of a crash, or anything planted there: never write through it. */
	if (unlinkat(j->dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(j->dirfd, tmp, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	for (size_t b = 0; b < NBUCKETS && r == 0; b++) {
		for (struct rec *p = j->buckets[b]; p && r == 0; p = p->next) {
			int n = format_rec(j, &p->e, buf, sizeof(buf));

			if (n < 0 || write(fd, buf, (size_t)n) != n)
				r = -EIO;
			size += n;
		}
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(j->dirfd, tmp, j->dirfd, j->name) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		unlinkat(j->dirfd, tmp, 0);
		return r;
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->size = size;
	return 0;
}

/* Key j->mac with HMAC-SHA256 and key. */
static int key_mac(struct sigfs_journal *j, const uint8_t key[KEY_LEN], char *err)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);

	j->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	EVP_MAC_free(hmac);
	if (!j->mac || EVP_MAC_init(j->mac, key, KEY_LEN, params) != 1)
		return sigfs_seterr(err, -EIO, "journal %s: OpenSSL has no HMAC-SHA256", j->shown);
	return 0;
}

/*
 * Read the MAC key from NAME.key, or make it if there is none (*created):
 * 32 random bytes, written with O_EXCL so that nothing planted is used.
 */
static int load_key(struct sigfs_journal *j, bool *created, char *err)
{
	char kname[NAME_MAX + 8], shown[PATH_MAX];
	uint8_t key[KEY_LEN];
	struct stat st;
	int fd, r;

	snprintf(kname, sizeof(kname), "%s.key", j->name);
	sigfs_safedir_shown(j->dirfd, kname, shown, sizeof(shown));
	*created = false;
	r = sigfs_safedir_file(j->dirfd, kname, O_RDONLY, 0, &fd, err);
	if (r == 0) {
		if (fstat(fd, &st) < 0)
			r = sigfs_seterr(err, -errno, "%s: %s", shown, strerror(errno));
		else if (st.st_mode & 077)
			r = sigfs_seterr(err, -EPERM, "refusing %s: it is readable or writable by "
					 "group or others (mode %04o); chmod 600 it if nobody else read it",
					 shown, (unsigned)(st.st_mode & 07777));
		else if (st.st_size != KEY_LEN || read(fd, key, KEY_LEN) != KEY_LEN)
			r = sigfs_seterr(err, -EBADMSG, "%s is not %d bytes; restore it from a backup, "
					 "or remove it and the journal (their unfinished jobs are lost)",
					 shown, KEY_LEN);
		close(fd);
		goto out;
	}
	if (r != -ENOENT)
		return r;
	if (RAND_bytes(key, KEY_LEN) != 1) {
		r = sigfs_seterr(err, -EIO, "cannot make %s: no random bytes from OpenSSL", shown);
		goto out;
	}
	fd = openat(j->dirfd, kname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = sigfs_seterr(err, -errno, "cannot make %s: %s", shown, strerror(errno));
		goto out;
	}
	if (write(fd, key, KEY_LEN) != KEY_LEN || fsync(fd) < 0 || fsync(j->dirfd) < 0) {
		r = sigfs_seterr(err, -EIO, "cannot write %s: %s", shown, strerror(errno));
		close(fd);
		unlinkat(j->dirfd, kname, 0);
		goto out;
	}
	close(fd);
	*created = true;
	r = 0;
out:
	if (r == 0)
		r = key_mac(j, key, err);
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

/* Replay the records of f; records without a good MAC count as forged, unless legacy_ok. */
static void replay(struct sigfs_journal *j, FILE *f, bool legacy_ok)
{
	size_t cap = 0, bad = 0, forged = 0, legacy = 0;
	struct sigfs_journal_entry e;
	char *line = NULL;
	struct sbuf mac;
	ssize_t len;

	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		if (parse_rec(line, (size_t)len, &e, &mac) < 0) {
			/* A torn last line is what a crash mid-write leaves. */
			bad++;
			continue;
		}
		if (sbuf_avail(&mac) ? !mac_ok(j, line, &mac) : !legacy_ok) {
			forged++;
			continue;
		}
		if (!sbuf_avail(&mac))
			legacy++;
		track(j, &e);
		if (e.id >= j->next_id)
			j->next_id = e.id + 1;
	}
	free(line);
	if (bad)
		log_warn("journal %s: skipped %zu unreadable records", j->shown, bad);
	if (forged)
		log_warn("journal: ignored %zu records not written by this sigfsd (%s: no MAC or "
			 "a wrong one)", forged, j->shown);
	if (legacy)
		log_info("journal: first start with %s.key: accepted %zu records of an earlier "
			 "version (no MAC); from now on such records are ignored", j->name, legacy);
}

int sigfs_journal_open(int dirfd, const char *name, bool fsync_records,
		       struct sigfs_journal **out, struct sigfs_journal_entry **pending,
		       size_t *npending, char *err)
{
	struct sigfs_journal *j = calloc(1, sizeof(*j));
	struct sigfs_journal_entry *v;
	bool created;
	size_t n = 0;
	FILE *f = NULL;
	int fd = -1, r;

	if (!j)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	j->fd = -1;
	j->fsync = fsync_records;
	j->next_id = 1;
	snprintf(j->name, sizeof(j->name), "%s", name);
	sigfs_safedir_shown(dirfd, name, j->shown, sizeof(j->shown));
	j->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (j->dirfd < 0) {
		r = sigfs_seterr(err, -errno, "journal %s: %s", j->shown, strerror(errno));
		goto fail;
	}
	/* The journal first: a refused one must not make the key, which ends the upgrade. */
	r = sigfs_safedir_file(dirfd, name, O_RDONLY, 0, &fd, err);
	if (r < 0 && r != -ENOENT)
		goto fail;
	if (fd >= 0 && !(f = fdopen(fd, "re"))) {
		r = sigfs_seterr(err, -errno, "journal %s: %s", j->shown, strerror(errno));
		close(fd);
		goto fail;
	}
	r = load_key(j, &created, err);
	if (r < 0)
		goto fail;
	if (created)
		log_info("journal: made %s.key, the key of its records' MACs", j->shown);
	if (f) {
		replay(j, f, created);
		fclose(f);
		f = NULL;
	}
	r = rewrite(j);
	if (r < 0) {
		sigfs_seterr(err, r, "journal %s: cannot rewrite it: %s", j->shown, strerror(-r));
		goto fail;
	}
	v = calloc(j->npending ? j->npending : 1, sizeof(*v));
	if (!v) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t b = 0; b < NBUCKETS; b++)
		for (struct rec *p = j->buckets[b]; p; p = p->next)
			v[n++] = p->e;
	qsort(v, n, sizeof(*v), cmp_entries);
	*pending = v;
	*npending = n;
	*out = j;
	return 0;
fail:
	if (f)
		fclose(f);
	sigfs_journal_close(j);
	return r;
}

void sigfs_journal_close(struct sigfs_journal *j)
{
	if (!j)
		return;
	for (size_t b = 0; b < NBUCKETS; b++) {
		struct rec *p = j->buckets[b], *next;

		for (; p; p = next) {
			next = p->next;
			free(p);
		}
	}
	if (j->fd >= 0)
		close(j->fd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	EVP_MAC_CTX_free(j->mac);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

uint64_t sigfs_journal_next_id(struct sigfs_journal *j)
{
	uint64_t id;

	pthread_mutex_lock(&j->lock);
	id = j->next_id++;
	pthread_mutex_unlock(&j->lock);
	return id;
}

static int append(struct sigfs_journal *j, const struct sigfs_journal_entry *e)
{
	char buf[2048];
	int n, r = 0;

	pthread_mutex_lock(&j->lock);
	track(j, e);
	n = format_rec(j, e, buf, sizeof(buf));
	if (n < 0 || write(j->fd, buf, (size_t)n) != n)
		r = -EIO;
	else if (j->fsync && fdatasync(j->fd) < 0)
		r = -errno;
	if (n > 0)
		j->size += n;
	if (r == 0 && j->size > COMPACT_AT)
		r = rewrite(j);
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		log_err("journal %s: cannot record a job: %s", j->shown, strerror(-r));
	return r;
}

int sigfs_journal_append(struct sigfs_journal *j, char op, uint64_t id, uint64_t ino, uid_t uid,
			 const char *key, const char *name)
{
	struct sigfs_journal_entry e = { .op = op, .id = id, .ino = ino, .uid = uid };

	if (strlen(key) >= sizeof(e.key) || strlen(name) >= sizeof(e.name))
		return -ENAMETOOLONG;
	strcpy(e.key, key);
	strcpy(e.name, name);
	return append(j, &e);
}

int sigfs_journal_done(struct sigfs_journal *j, uint64_t id)
{
	struct sigfs_journal_entry e = { .op = 'D', .id = id };

	return append(j, &e);
}
