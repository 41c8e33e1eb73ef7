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
#include "signer/request.h"

#define HASH_CHUNK (1u << 20)
#define OUTPUT_MAX (256u << 10)             /* the largest output a format may write */
#define DIGEST_FILE_MAX 4096
#define NAME_MAX_LEN 255

struct job {
	uint64_t id;
	char key[SIGFS_KEYNAME_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	char base[NAME_MAX_LEN + 1];       /* outputs are base + suffix */
	uint64_t ino;
	uid_t uid;                          /* who asked: the closer or renamer */
	struct sigfs_hasher *state;         /* hash of the whole file made while it was written, or NULL */
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

/* Hash the whole file with md into a new hasher state. */
static int hash_fd(int fd, const EVP_MD *md, struct sigfs_hasher **out, char *err)
{
	struct sigfs_hasher *h = sigfs_hasher_new(md);
	uint8_t *buf = malloc(HASH_CHUNK);
	off_t off = 0;
	ssize_t n;
	int r = 0;

	if (!h || !buf) {
		r = sigfs_seterr(err, -ENOMEM, "cannot start %s", EVP_MD_get0_name(md));
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while ((n = pread(fd, buf, HASH_CHUNK, off)) > 0) {
		sigfs_hasher_update(h, buf, (size_t)n);
		off += n;
	}
	if (n < 0)
		r = sigfs_seterr(err, -EIO, "cannot read the artifact: %s", strerror(errno));
out:
	free(buf);
	if (r < 0) {
		sigfs_hasher_free(h);
		return r;
	}
	*out = h;
	return 0;
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

/* What was signed, for the audit log: a digest name and value. */
struct signed_what {
	char name[32];
	uint8_t value[SIGFS_MAX_DIGEST];
	size_t len;
};

static void note_state(struct signed_what *w, const struct sigfs_hasher *h)
{
	const struct sigfs_digest *d = sigfs_digest_by_ossl(h->name);

	snprintf(w->name, sizeof(w->name), "%s", d ? d->name : h->name);
	for (char *p = w->name; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	w->len = h->len <= sizeof(w->value) && sigfs_hasher_peek(h, w->value) == 0 ? h->len : 0;
}

static void note_digest(struct signed_what *w, const struct sigfs_digest *d, const uint8_t *v)
{
	snprintf(w->name, sizeof(w->name), "%s", d->name);
	memcpy(w->value, v, d->len);
	w->len = d->len;
}

/* Parse NAME.sigreq: what it asks to sign goes into in, its format into *f. */
static int read_request(int fd, const struct sigfs_key *k, struct sigfs_request *req,
			const struct sigfs_format **f, char *err)
{
	uint8_t *buf = malloc(SIGFS_REQUEST_MAX + 1);
	const struct sigfs_digest *d;
	size_t len = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	r = read_small(fd, buf, SIGFS_REQUEST_MAX + 1, &len);
	if (r < 0)
		sigfs_seterr(err, r, "cannot read the request: %s", strerror(-r));
	else if (len > SIGFS_REQUEST_MAX)
		r = sigfs_seterr(err, -EFBIG, "the request is larger than %d bytes",
				 SIGFS_REQUEST_MAX);
	else
		r = sigfs_request_parse(buf, len, req, err);
	free(buf);
	if (r < 0)
		return r;
	if (req->format)
		*f = req->format;
	if (req->digest && sigfs_digest_is_weak(req->digest) && !k->allow_sha1)
		return sigfs_seterr(err, -EPERM, "key %s does not allow sha1 digests", k->name);
	/* Judge the pair by what the request hashed with, not by the key's setting. */
	d = req->digest ? req->digest : req->state ? sigfs_digest_by_ossl(req->state->name) : NULL;
	return (*f)->check(k->alg, d ? d : k->digest, err);
}

/*
 * Produce the output of job j with key k into out, in format *f (the key's,
 * or the one a request asks for). Returns 0, or a negative errno with the
 * reason in err.
 */
static int make_output(struct sigfs_engine *e, struct job *j, const struct sigfs_key *k, int fd,
		       const struct stat *st, unsigned worker, struct sbuf *out,
		       const struct sigfs_format **f, struct signed_what *what, char *err)
{
	struct sigfs_format_input in = { .name = j->base, .now = time(NULL) };
	struct sign_ctx sc = { e->ks, k, worker };
	struct sigfs_request req = { 0 };
	struct sigfs_hasher *state = NULL;
	const struct sigfs_digest *dd;
	struct sigfs_format_key fk;
	uint8_t dv[SIGFS_MAX_DIGEST];
	void *map = MAP_FAILED;
	size_t base_len;
	int r;

	*f = k->format;
	dd = k->digest_files ? sigfs_dl_suffix(j->name, &base_len) : NULL;
	if (has_suffix(j->name, ".sigreq")) {
		r = read_request(fd, k, &req, f, err);
		if (r < 0)
			goto out;
		if (req.state) {
			in.state = req.state;
			note_state(what, req.state);
		} else {
			in.digest = req.digest;
			in.digest_value = req.digest_value;
			note_digest(what, req.digest, req.digest_value);
		}
	} else if (dd) {
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
			if ((*f)->needs_message(k->alg))
				return sigfs_seterr(err, -EINVAL, "key %s is %s: it signs whole "
						    "files, not digests; copy the file itself",
						    k->name, k->alg->name);
			r = (*f)->check(k->alg, dd, err);
			if (r < 0)
				return r;
			in.digest = dd;
			in.digest_value = dv;
			note_digest(what, dd, dv);
			break;
		case SIGFS_DL_BAD:
			return -EINVAL;
		case SIGFS_DL_NOT_A_LINE:
			/* An ordinary artifact that happens to have a digest's suffix. */
			strcpy(j->base, j->name);
			dd = NULL;
			break;
		}
	}
	if (!in.state && !in.digest) {
		const EVP_MD *md = sigfs_format_file_md(*f, k->alg, k->digest);

		if (st->st_size == 0)
			return sigfs_seterr(err, -ENODATA, "the file is empty: there is nothing to sign");
		if (j->state && sigfs_hasher_is(j->state, md)) {
			log_debug("key %s: job %" PRIu64 ": digest computed while the file was written",
				  k->name, j->id);
			state = j->state;
			j->state = NULL;
		} else {
			log_debug("key %s: job %" PRIu64 ": reading the file to hash it", k->name, j->id);
			r = hash_fd(fd, md, &state, err);
			if (r < 0)
				return r;
		}
		in.state = state;
		note_state(what, state);
		if ((*f)->needs_message(k->alg)) {
			map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_SHARED, fd, 0);
			if (map == MAP_FAILED) {
				r = sigfs_seterr(err, -errno, "cannot map the artifact: %s",
						 strerror(errno));
				goto out;
			}
			in.message = map;
			in.message_len = (size_t)st->st_size;
		}
	}
	r = sigfs_keys_format_key(e->ks, k, *f, &fk, err);
	if (r == 0) {
		in.key = &fk;
		r = (*f)->produce(&in, sign_cb, &sc, out, err);
		sigfs_keys_format_key_free(&fk);
	}
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st->st_size);
	sigfs_hasher_free(state);
	sigfs_request_free(&req);
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
	struct signed_what what = { .len = 0 };
	const struct sigfs_format *f = NULL;
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
	sbuf_init(&out, OUTPUT_MAX);
	if (!S_ISREG(st.st_mode))
		r = sigfs_seterr(err, -EINVAL, "not a regular file");
	else
		r = make_output(e, j, &k, fd, &st, worker, &out, &f, &what, err);
	if (r == 0) {
		r = place_output(e, j, dirfd, f->suffix, out.d, out.len, st.st_uid, st.st_gid);
		if (r == 0) {
			sigfs_audit_append(e->audit, "sign", k.name, j->uid, st.st_uid, what.name,
					   what.value, what.len, j->name);
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
		sigfs_hasher_free(j->state);
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
			    uint64_t ino, uid_t uid)
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
	sigfs_journal_append(e->journal, 'W', id, ino, uid, key, name);
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
			uint64_t ino, uid_t uid)
{
	if (id)
		sigfs_journal_append(e->journal, 'W', id, ino, uid, key, name);
}

const EVP_MD *sigfs_engine_file_md(struct sigfs_engine *e, const char *key)
{
	struct sigfs_key k;

	if (sigfs_keys_get(e->ks, key, &k) < 0)
		return NULL;
	return sigfs_format_file_md(k.format, k.alg, k.digest);
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

	if (strlen(s->key) > SIGFS_KEYNAME_MAX || strlen(s->name) > NAME_MAX_LEN) {
		sigfs_hasher_free(s->state);
		return -ENAMETOOLONG;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		sigfs_hasher_free(s->state);
		return -ENOMEM;
	}
	strcpy(j->key, s->key);
	strcpy(j->name, s->name);
	j->ino = s->ino;
	j->uid = s->uid;
	j->id = s->id ? s->id : sigfs_journal_next_id(e->journal);
	j->state = s->state;
	j->done = s->done;
	j->arg = s->arg;
	r = sigfs_journal_append(e->journal, 'A', j->id, j->ino, j->uid, j->key, j->name);
	if (r < 0) {
		sigfs_hasher_free(j->state);
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
					  .id = v[i].id, .uid = v[i].uid };
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
	r = sigfs_journal_open(sigfs_keys_state_dir(ks), "journal", cfg->fsync, &e->journal,
			       &pending, &npending, err);
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
	sigfs_keys_backends_status(e->ks, &b);
	*buf = (char *)b.d;
	*len = b.len;
	return *buf ? 0 : -ENOMEM;
}
