/*
 * engine.c: job queue, workers, and the rules of engine.h.
 *
 * A job's life: submit() journals "A" and queues it; a worker hashes the
 * artifact if the front end could not hash it while it was written, signs
 * through the key's backend, writes the output under a temporary name and,
 * holding out_lock, renames it into place unless the artifact was rewritten
 * meanwhile (begin() marks such jobs stale under the same lock). Then the
 * journal gets "D" and the front end's done() callback runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "common/err.h"
#include "common/log.h"
#include "signer/digestline.h"
#include "signer/engine.h"
#include "signer/format.h"
#include "signer/journal.h"

#define HASH_CHUNK (1u << 20)
#define DIGEST_FILE_MAX 4096
#define NAME_MAX_LEN 255

struct job {
	uint64_t id;
	char key[SIGFS_KEYNAME_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	char base[NAME_MAX_LEN + 1];       /* outputs are base + suffix */
	uint64_t ino;
	const struct sigfs_digest *digest;  /* streamed digest, or NULL */
	uint8_t dv[SIGFS_MAX_DIGEST];
	bool stale;
	void (*done)(void *arg, int result);
	void *arg;
	struct job *next;                   /* queue */
	struct job *lprev, *lnext;          /* live list */
};

struct sigfs_engine {
	const struct sigfs_config *cfg;
	struct sigfs_keys *ks;
	struct sigfs_audit *audit;
	struct sigfs_journal *journal;
	int inbox_root;

	pthread_mutex_t lock;               /* queue, live list, counters */
	pthread_cond_t cond;
	struct job *head, *tail;
	struct job *live;
	bool stopping;
	unsigned running;
	size_t queued;
	uint64_t signed_total, failed_total;

	pthread_mutex_t out_lock;           /* outputs: removal and placement */
	pthread_t *threads;
	unsigned nthreads;
};

/* --- names ------------------------------------------------------------------ */

bool sigfs_engine_ignored(const char *name)
{
	return name[0] == '.';
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && strcmp(name + n - s, suffix) == 0;
}

static bool is_output_name(const char *name)
{
	const struct sigfs_format *f;

	if (has_suffix(name, ".err"))
		return true;
	for (size_t i = 0; (f = sigfs_format_at(i)); i++)
		if (has_suffix(name, f->suffix))
			return true;
	return false;
}

int sigfs_engine_name_check(const char *name, char *err)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return sigfs_seterr(err, -EINVAL, "names with control characters "
					    "(newline, tab ...) are refused");
	/* The engine's own temporary outputs: a client holding one open could write a .sig. */
	if (strncmp(name, ".sigfs-tmp.", strlen(".sigfs-tmp.")) == 0)
		return sigfs_seterr(err, -EPERM, "names starting with .sigfs-tmp. are reserved "
				    "for sigfs's temporary outputs");
	if (sigfs_engine_ignored(name))
		return 0;
	if (is_output_name(name))
		return sigfs_seterr(err, -EPERM, "names ending in an output suffix (.sig, .err) "
				    "are reserved for sigfs's outputs");
	if (strlen(name) + sigfs_format_max_suffix() > NAME_MAX_LEN)
		return sigfs_seterr(err, -ENAMETOOLONG, "names longer than %zu bytes leave no "
				    "room for the output's suffix",
				    NAME_MAX_LEN - sigfs_format_max_suffix());
	return 0;
}

/*
 * The base name outputs are named after: NAME for NAME.<digest> digest lines
 * and NAME.sigreq requests, else the name itself.
 */
static void output_base(const struct sigfs_key *k, const char *name, char *base)
{
	size_t n;

	strcpy(base, name);
	if (k->digest_files && sigfs_dl_suffix(name, &n))
		base[n] = '\0';
	else if (has_suffix(name, ".sigreq"))
		base[strlen(name) - strlen(".sigreq")] = '\0';
}

/* Remove every output of base (all formats' suffixes and .err). */
static void remove_outputs(int dirfd, const char *base)
{
	const struct sigfs_format *f;
	char out[NAME_MAX_LEN + 16];

	for (size_t i = 0; (f = sigfs_format_at(i)); i++) {
		snprintf(out, sizeof(out), "%s%s", base, f->suffix);
		unlinkat(dirfd, out, 0);
	}
	snprintf(out, sizeof(out), "%s.err", base);
	unlinkat(dirfd, out, 0);
}

/* --- output files ------------------------------------------------------------ */

/*
 * Write data as base+suffix in dirfd, atomically, owned by uid/gid, read-only.
 * Placed only if the job is still current; returns -ESTALE if it is not.
 */
static int place_output(struct sigfs_engine *e, struct job *j, int dirfd, const char *suffix,
			const void *data, size_t len, uid_t uid, gid_t gid)
{
	char tmp[64], out[NAME_MAX_LEN + 16];
	struct stat st;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), ".sigfs-tmp.%" PRIu64 ".%lx", j->id, (unsigned long)pthread_self());
	snprintf(out, sizeof(out), "%s%s", j->base, suffix);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		r = -EIO;
	else if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0444) < 0)
		r = -errno;
	else if (e->cfg->fsync && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		goto fail;
	pthread_mutex_lock(&e->out_lock);
	if (j->stale || fstatat(dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != j->ino) {
		r = -ESTALE;
	} else {
		/* One result per artifact: a .sig replaces an old .err and back. */
		bool is_err = strcmp(suffix, ".err") == 0;
		char other[NAME_MAX_LEN + 16];

		if (is_err)
			remove_outputs(dirfd, j->base);
		if (renameat(dirfd, tmp, dirfd, out) < 0) {
			r = -errno;
		} else if (!is_err) {
			snprintf(other, sizeof(other), "%s.err", j->base);
			unlinkat(dirfd, other, 0);
		}
	}
	pthread_mutex_unlock(&e->out_lock);
	if (r == 0)
		return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	return r;
}

/* --- hashing and signing -------------------------------------------------------- */

static int hash_fd(int fd, const struct sigfs_digest *d, uint8_t *out, char *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = malloc(HASH_CHUNK);
	off_t off = 0;
	ssize_t n;
	int r = 0;

	if (!ctx || !buf || !EVP_DigestInit_ex(ctx, sigfs_digest_md(d), NULL)) {
		r = sigfs_seterr(err, -ENOMEM, "cannot start %s", d->name);
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while ((n = pread(fd, buf, HASH_CHUNK, off)) > 0) {
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += n;
	}
	if (n < 0)
		r = sigfs_seterr(err, -EIO, "cannot read the artifact: %s", strerror(errno));
	else
		EVP_DigestFinal_ex(ctx, out, NULL);
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

struct sign_ctx {
	struct sigfs_keys *ks;
	const struct sigfs_key *k;
	unsigned worker;
};

static int sign_cb(void *arg, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		   char *err)
{
	struct sign_ctx *c = arg;
	struct sigfs_sign_input i = *in;

	i.worker = c->worker;
	return sigfs_keys_sign(c->ks, c->k, &i, sig, siglen, err);
}

static int read_small(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	ssize_t n = pread(fd, buf, cap, 0);

	if (n < 0)
		return -errno;
	*len = (size_t)n;
	return 0;
}

/*
 * Produce the output of job j with key k into out. Returns 0, or a negative
 * errno with the reason in err.
 */
static int make_output(struct sigfs_engine *e, struct job *j, const struct sigfs_key *k, int fd,
		       const struct stat *st, unsigned worker, struct sbuf *out,
		       const struct sigfs_digest **used, uint8_t *dv, char *err)
{
	struct sigfs_format_input in = { .alg = k->alg, .padding = k->padding, .name = j->base,
					 .now = time(NULL) };
	struct sign_ctx sc = { e->ks, k, worker };
	const struct sigfs_digest *dd;
	void *map = MAP_FAILED;
	size_t base_len;
	int r;

	if (has_suffix(j->name, ".sigreq"))
		return sigfs_seterr(err, -EOPNOTSUPP, "signing requests (.sigreq) are not supported "
				    "by this version of sigfs; copy the artifact or a digest line");
	dd = k->digest_files ? sigfs_dl_suffix(j->name, &base_len) : NULL;
	if (dd) {
		uint8_t content[DIGEST_FILE_MAX + 1];
		size_t len = 0;

		r = read_small(fd, content, sizeof(content), &len);
		if (r < 0)
			return sigfs_seterr(err, r, "cannot read the digest file: %s", strerror(-r));
		switch (sigfs_dl_parse(dd, j->base, content, len, dv, err)) {
		case SIGFS_DL_OK:
			if (sigfs_digest_is_weak(dd) && !k->allow_sha1)
				return sigfs_seterr(err, -EPERM, "key %s does not allow sha1 "
						    "digests", k->name);
			if (k->format->needs_message(k->alg))
				return sigfs_seterr(err, -EINVAL, "key %s is %s: it signs whole "
						    "files, not digests; copy the file itself",
						    k->name, k->alg->name);
			r = k->format->check(k->alg, dd, err);
			if (r < 0)
				return r;
			in.digest = dd;
			in.digest_value = dv;
			*used = dd;
			return k->format->produce(&in, sign_cb, &sc, out, err);
		case SIGFS_DL_BAD:
			return -EINVAL;
		case SIGFS_DL_NOT_A_LINE:
			/* An ordinary artifact that happens to have a digest's suffix. */
			strcpy(j->base, j->name);
			break;
		}
	}
	if (st->st_size == 0)
		return sigfs_seterr(err, -ENODATA, "the file is empty: there is nothing to sign");
	if (j->digest == k->digest) {
		log_debug("key %s: job %" PRIu64 ": digest computed while the file was written",
			  k->name, j->id);
		memcpy(dv, j->dv, k->digest->len);
	} else {
		log_debug("key %s: job %" PRIu64 ": reading the file to hash it", k->name, j->id);
		r = hash_fd(fd, k->digest, dv, err);
		if (r < 0)
			return r;
	}
	in.digest = k->digest;
	in.digest_value = dv;
	*used = k->digest;
	if (k->format->needs_message(k->alg)) {
		map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			return sigfs_seterr(err, -errno, "cannot map the artifact: %s",
					    strerror(errno));
		in.message = map;
		in.message_len = (size_t)st->st_size;
	}
	r = k->format->produce(&in, sign_cb, &sc, out, err);
	if (map != MAP_FAILED)
		munmap(map, (size_t)st->st_size);
	return r;
}

static void log_failure(const struct job *j, const char *err)
{
	char esc[SIGFS_ESCAPED_MAX];

	log_err("key %s: %s: %s", j->key, sigfs_escape(j->name, esc, sizeof(esc)), err);
}

/* Run one job; returns the result passed to done(). */
static int run_job(struct sigfs_engine *e, struct job *j, unsigned worker)
{
	const struct sigfs_digest *used = NULL;
	uint8_t dv[SIGFS_MAX_DIGEST];
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_key k;
	struct sbuf out;
	struct stat st;
	int dirfd, fd = -1, r;

	if (sigfs_keys_get(e->ks, j->key, &k) < 0) {
		log_warn("key %s: deleted before its job for an artifact ran", j->key);
		return -ENOENT;
	}
	output_base(&k, j->name, j->base);
	dirfd = openat(e->inbox_root, j->key, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	fd = openat(dirfd, j->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != j->ino) {
		/* Removed or replaced since: the replacement has its own job. */
		r = -ESTALE;
		goto out;
	}
	sbuf_init(&out, SIGFS_MAX_SIG * 16);
	if (!S_ISREG(st.st_mode))
		r = sigfs_seterr(err, -EINVAL, "not a regular file");
	else
		r = make_output(e, j, &k, fd, &st, worker, &out, &used, dv, err);
	if (r == 0) {
		r = place_output(e, j, dirfd, k.format->suffix, out.d, out.len, st.st_uid, st.st_gid);
		if (r == 0) {
			sigfs_audit_append(e->audit, "sign", k.name, st.st_uid, used->name, dv,
					   used->len, j->name);
			sigfs_keys_count(e->ks, k.name);
		} else if (r != -ESTALE) {
			snprintf(err, sizeof(err), "cannot write the signature: %s", strerror(-r));
		}
	}
	sbuf_free(&out);
	if (r < 0 && r != -ESTALE) {
		char line[SIGFS_ERRLEN + 2];
		int n;

		if (!err[0])
			snprintf(err, sizeof(err), "signing failed: %s", strerror(-r));
		log_failure(j, err);
		n = snprintf(line, sizeof(line), "%s\n", err);
		place_output(e, j, dirfd, ".err", line, (size_t)n, st.st_uid, st.st_gid);
	}
out:
	if (fd >= 0)
		close(fd);
	close(dirfd);
	return r;
}

/* --- queue ------------------------------------------------------------------ */

static void live_unlink(struct sigfs_engine *e, struct job *j)
{
	if (j->lprev)
		j->lprev->lnext = j->lnext;
	else
		e->live = j->lnext;
	if (j->lnext)
		j->lnext->lprev = j->lprev;
}

struct worker_arg {
	struct sigfs_engine *e;
	unsigned index;
};

static void *worker_main(void *p)
{
	struct worker_arg *wa = p;
	struct sigfs_engine *e = wa->e;
	unsigned index = wa->index;

	free(wa);
	for (;;) {
		struct job *j;
		int r;

		pthread_mutex_lock(&e->lock);
		while (!e->head && !e->stopping)
			pthread_cond_wait(&e->cond, &e->lock);
		j = e->head;
		if (!j) {
			pthread_mutex_unlock(&e->lock);
			break;
		}
		e->head = j->next;
		if (!e->head)
			e->tail = NULL;
		e->queued--;
		e->running++;
		pthread_mutex_unlock(&e->lock);

		r = run_job(e, j, index);
		sigfs_journal_done(e->journal, j->id);

		pthread_mutex_lock(&e->lock);
		e->running--;
		if (r == 0)
			e->signed_total++;
		else if (r != -ESTALE)
			e->failed_total++;
		pthread_mutex_lock(&e->out_lock);
		live_unlink(e, j);
		pthread_mutex_unlock(&e->out_lock);
		pthread_mutex_unlock(&e->lock);
		if (j->done)
			j->done(j->arg, r == -ESTALE ? 0 : r);
		free(j);
	}
	return NULL;
}

static int enqueue(struct sigfs_engine *e, struct job *j)
{
	pthread_mutex_lock(&e->lock);
	j->next = NULL;
	if (e->tail)
		e->tail->next = j;
	else
		e->head = j;
	e->tail = j;
	e->queued++;
	pthread_mutex_lock(&e->out_lock);
	j->lnext = e->live;
	j->lprev = NULL;
	if (e->live)
		e->live->lprev = j;
	e->live = j;
	pthread_mutex_unlock(&e->out_lock);
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

uint64_t sigfs_engine_begin(struct sigfs_engine *e, const char *key, const char *name,
			    uint64_t ino)
{
	char base[NAME_MAX_LEN + 1];
	struct sigfs_key k;
	uint64_t id;
	int dirfd;

	if (sigfs_engine_ignored(name) || sigfs_keys_get(e->ks, key, &k) < 0 ||
	    strlen(name) > NAME_MAX_LEN)
		return 0;
	/* Journal first: a crash from here on leaves NAME.err, never nothing. */
	id = sigfs_journal_next_id(e->journal);
	sigfs_journal_append(e->journal, 'W', id, ino, key, name);
	output_base(&k, name, base);
	dirfd = openat(e->inbox_root, key, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pthread_mutex_lock(&e->out_lock);
	for (struct job *j = e->live; j; j = j->lnext) {
		char jbase[NAME_MAX_LEN + 1];

		output_base(&k, j->name, jbase);
		if (strcmp(j->key, key) == 0 && strcmp(jbase, base) == 0)
			j->stale = true;
	}
	if (dirfd >= 0)
		remove_outputs(dirfd, base);
	pthread_mutex_unlock(&e->out_lock);
	if (dirfd >= 0)
		close(dirfd);
	return id;
}

void sigfs_engine_begun(struct sigfs_engine *e, uint64_t id, const char *key, const char *name,
			uint64_t ino)
{
	if (id)
		sigfs_journal_append(e->journal, 'W', id, ino, key, name);
}

void sigfs_engine_drop(struct sigfs_engine *e, uint64_t id)
{
	if (id)
		sigfs_journal_done(e->journal, id);
}

int sigfs_engine_submit(struct sigfs_engine *e, const struct sigfs_submit *s)
{
	struct job *j;
	int r;

	if (strlen(s->key) > SIGFS_KEYNAME_MAX || strlen(s->name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	strcpy(j->key, s->key);
	strcpy(j->name, s->name);
	j->ino = s->ino;
	j->id = s->id ? s->id : sigfs_journal_next_id(e->journal);
	if (s->digest) {
		j->digest = s->digest;
		memcpy(j->dv, s->digest_value, s->digest->len);
	}
	j->done = s->done;
	j->arg = s->arg;
	r = sigfs_journal_append(e->journal, 'A', j->id, j->ino, j->key, j->name);
	if (r < 0) {
		free(j);
		return r;
	}
	return enqueue(e, j);
}

/* --- start, stop, status ---------------------------------------------------------- */

/* Finish what the journal says was left when the daemon last stopped. */
static void recover(struct sigfs_engine *e, const struct sigfs_journal_entry *v, size_t n)
{
	size_t resumed = 0, incomplete = 0;

	for (size_t i = 0; i < n; i++) {
		struct job j = { .id = v[i].id, .ino = v[i].ino };
		struct sigfs_submit s = { .key = v[i].key, .name = v[i].name, .ino = v[i].ino,
					  .id = v[i].id };
		struct sigfs_key k;
		struct stat st;
		int dirfd;

		if (v[i].op == 'A') {
			sigfs_engine_submit(e, &s);
			resumed++;
			continue;
		}
		/*
		 * 'W': the writer never closed the file while we ran. Inode 0: the
		 * daemon stopped while creating it; whatever holds the name now is
		 * that file.
		 */
		dirfd = openat(e->inbox_root, v[i].key, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd >= 0 && sigfs_keys_get(e->ks, v[i].key, &k) == 0 &&
		    fstatat(dirfd, v[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (st.st_ino == v[i].ino || v[i].ino == 0)) {
			j.ino = st.st_ino;
			static const char msg[] = "sigfsd stopped while this file was being "
						  "written: it was not signed; write it again\n";

			strcpy(j.key, v[i].key);
			strcpy(j.name, v[i].name);
			output_base(&k, j.name, j.base);
			place_output(e, &j, dirfd, ".err", msg, sizeof(msg) - 1, st.st_uid, st.st_gid);
			incomplete++;
		}
		if (dirfd >= 0)
			close(dirfd);
		sigfs_journal_done(e->journal, v[i].id);
	}
	if (resumed || incomplete)
		log_info("journal: resumed %zu accepted jobs, marked %zu unfinished writes",
			 resumed, incomplete);
}

int sigfs_engine_start(const struct sigfs_config *cfg, struct sigfs_keys *ks,
		       struct sigfs_audit *audit, struct sigfs_engine **out, char *err)
{
	struct sigfs_engine *e = calloc(1, sizeof(*e));
	struct sigfs_journal_entry *pending = NULL;
	size_t npending = 0;
	char path[4200];
	int r;

	if (!e)
		return -ENOMEM;
	e->cfg = cfg;
	e->ks = ks;
	e->audit = audit;
	e->inbox_root = sigfs_keys_inbox_root(ks);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->out_lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	snprintf(path, sizeof(path), "%s/journal", cfg->state_dir);
	r = sigfs_journal_open(path, cfg->fsync, &e->journal, &pending, &npending, err);
	if (r < 0) {
		free(e);
		return r;
	}
	e->nthreads = cfg->workers ? cfg->workers : 1;
	e->threads = calloc(e->nthreads, sizeof(*e->threads));
	for (unsigned i = 0; e->threads && i < e->nthreads; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));

		wa->e = e;
		wa->index = i;
		pthread_create(&e->threads[i], NULL, worker_main, wa);
	}
	recover(e, pending, npending);
	free(pending);
	*out = e;
	return 0;
}

void sigfs_engine_stop(struct sigfs_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	for (unsigned i = 0; i < e->nthreads; i++)
		pthread_join(e->threads[i], NULL);
	free(e->threads);
	sigfs_journal_close(e->journal);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->out_lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}

int sigfs_engine_status(struct sigfs_engine *e, char **buf, size_t *len)
{
	struct sigfs_key *keys;
	struct sbuf b;
	char line[512];
	int n, nk;

	sbuf_init(&b, 1 << 20);
	pthread_mutex_lock(&e->lock);
	n = snprintf(line, sizeof(line),
		     "queue: %zu waiting, %u signing\nworkers: %u\nsigned: %" PRIu64 "\n"
		     "failed: %" PRIu64 "\n", e->queued, e->running, e->nthreads,
		     e->signed_total, e->failed_total);
	pthread_mutex_unlock(&e->lock);
	sbuf_put(&b, line, (size_t)n);
	nk = sigfs_keys_list(e->ks, &keys);
	for (int i = 0; i < nk; i++) {
		n = snprintf(line, sizeof(line), "key %s: %s %s %s backend=%s count=%" PRIu64 "\n",
			     keys[i].name, keys[i].alg->name, keys[i].digest->name,
			     keys[i].format->name, keys[i].backend, keys[i].count);
		sbuf_put(&b, line, (size_t)n);
	}
	if (nk >= 0)
		free(keys);
	*buf = (char *)b.d;
	*len = b.len;
	return *buf ? 0 : -ENOMEM;
}
