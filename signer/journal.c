/* journal.c: the crash journal of journal.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "signer/journal.h"

#define NBUCKETS 4096
#define COMPACT_AT (16u << 20)
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
	char *path;
	int fd;
	bool fsync;
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

static void hex(const char *s, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (; *s; s++) {
		*out++ = digits[(unsigned char)*s >> 4];
		*out++ = digits[(unsigned char)*s & 15];
	}
	*out = '\0';
}

static int unhex(const char *s, char *out, size_t outlen)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 >= outlen)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return strlen(out) == n / 2 ? 0 : -EINVAL;
}

static int format_rec(const struct sigfs_journal_entry *e, char *buf, size_t len)
{
	char hk[2 * sizeof(e->key) + 1], hn[2 * sizeof(e->name) + 1];

	if (e->op == 'D')
		return snprintf(buf, len, "D %" PRIu64 "\n", e->id);
	hex(e->key, hk);
	hex(e->name, hn);
	if (e->uid == (uid_t)-1)
		return snprintf(buf, len, "%c %" PRIu64 " %" PRIu64 " %s %s\n", e->op, e->id, e->ino,
				hk, hn);
	return snprintf(buf, len, "%c %" PRIu64 " %" PRIu64 " %s %s %u\n", e->op, e->id, e->ino,
			hk, hn, (unsigned)e->uid);
}

static int parse_rec(char *line, struct sigfs_journal_entry *e)
{
	char hk[256], hn[1024];
	unsigned uid;
	int n;

	memset(e, 0, sizeof(*e));
	e->uid = (uid_t)-1;
	if (sscanf(line, "D %" SCNu64, &e->id) == 1 && line[0] == 'D') {
		e->op = 'D';
		return e->id > 0 && e->id < ID_LIMIT ? 0 : -EINVAL;
	}
	n = sscanf(line, "%c %" SCNu64 " %" SCNu64 " %255s %1023s %u", &e->op, &e->id, &e->ino, hk,
		   hn, &uid);
	if (n < 5 || (e->op != 'W' && e->op != 'A') || e->id == 0 || e->id >= ID_LIMIT)
		return -EINVAL;
	if (n == 6)
		e->uid = (uid_t)uid;
	if (unhex(hk, e->key, sizeof(e->key)) < 0 || unhex(hn, e->name, sizeof(e->name)) < 0)
		return -EINVAL;
	return 0;
}

static int cmp_entries(const void *a, const void *b)
{
	uint64_t x = ((const struct sigfs_journal_entry *)a)->id;
	uint64_t y = ((const struct sigfs_journal_entry *)b)->id;

	return x < y ? -1 : x > y;
}

/* Write the unfinished entries to a new file and put it in place of the old one. */
static int rewrite(struct sigfs_journal *j)
{
	char tmp[4200], buf[2048];
	off_t size = 0;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.new", j->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t b = 0; b < NBUCKETS && r == 0; b++) {
		for (struct rec *p = j->buckets[b]; p && r == 0; p = p->next) {
			int n = format_rec(&p->e, buf, sizeof(buf));

			if (write(fd, buf, (size_t)n) != n)
				r = -EIO;
			size += n;
		}
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, j->path) < 0)
		r = -errno;
	if (r < 0)
		return r;
	fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->size = size;
	return 0;
}

int sigfs_journal_open(const char *path, bool fsync_records, struct sigfs_journal **out,
		       struct sigfs_journal_entry **pending, size_t *npending, char *err)
{
	struct sigfs_journal *j = calloc(1, sizeof(*j));
	struct sigfs_journal_entry e, *v;
	char *line = NULL;
	size_t cap = 0, n = 0, bad = 0;
	FILE *f;
	int r;

	if (!j)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	j->fd = -1;
	j->fsync = fsync_records;
	j->next_id = 1;
	j->path = strdup(path);
	f = fopen(path, "re");
	if (f) {
		while (getline(&line, &cap, f) > 0) {
			if (parse_rec(line, &e) < 0) {
				/* A torn last line is what a crash mid-write leaves. */
				bad++;
				continue;
			}
			track(j, &e);
			if (e.id >= j->next_id)
				j->next_id = e.id + 1;
		}
		free(line);
		fclose(f);
		if (bad)
			log_warn("journal %s: skipped %zu unreadable records", path, bad);
	} else if (errno != ENOENT) {
		r = sigfs_seterr(err, -errno, "journal %s: %s", path, strerror(errno));
		goto fail;
	}
	r = rewrite(j);
	if (r < 0) {
		sigfs_seterr(err, r, "journal %s: cannot rewrite it: %s", path, strerror(-r));
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
	pthread_mutex_destroy(&j->lock);
	free(j->path);
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
	int n = format_rec(e, buf, sizeof(buf)), r = 0;

	pthread_mutex_lock(&j->lock);
	track(j, e);
	if (write(j->fd, buf, (size_t)n) != n)
		r = -EIO;
	else if (j->fsync && fdatasync(j->fd) < 0)
		r = -errno;
	j->size += n;
	if (r == 0 && j->size > COMPACT_AT)
		r = rewrite(j);
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		log_err("journal %s: cannot record a job: %s", j->path, strerror(-r));
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
