/*
 * engine.c: job queues, workers, and the rules of engine.h. The life of a
 * job, from submit() to the output placed and done() called, is told in
 * docs/architecture.md; lanes (one per backend) and flows (one per user in a
 * lane) are declared below.
 *
 * The artifact belongs to a client who may change it at any time: it is only
 * ever read with read(2), never mapped. A format that needs the whole message
 * (pure Ed25519) signs a private copy, made while hashing, so no client can
 * change or truncate what is being signed, and a job whose artifact changed
 * while it was read ends without an output. A streaming format (a Mender
 * artifact, a .swu image: gigabytes) reads the artifact itself instead, and
 * its payload is copied into the output by the kernel: an artifact changed
 * meanwhile makes the job stale like any other, so nothing is placed
 * (decision 79).
 *
 * The locks are described in struct sigfs_engine.
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
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "common/dirutil.h"
#include "common/err.h"
#include "common/log.h"
#include "signer/digestline.h"
#include "signer/engine.h"
#include "signer/format.h"
#include "signer/journal.h"
#include "signer/request.h"

#define HASH_CHUNK (1u << 20)
#define LIVE_BUCKETS 4096           /* the live table: a queue of thousands stays short per name */
#define SEEN_BUCKETS 64             /* keys whose spool outputs are tracked (struct seen) */
#define SEEN_ERR (1u << 31)         /* the .err bit of a seen mask; bit i: format i's suffix */
#define SEEN_ALL UINT32_MAX
#define SEEN_BASE_LOG 18            /* a key's filter of output bases (struct seen): 2^18 bits, 32 KiB */
#define SEEN_BASE_BITS (1u << SEEN_BASE_LOG)
#define OUT_STRIPES 64              /* out locks: outputs of different names are placed in parallel */
#define SLICE_MS 50                         /* a reading job's turn when others wait */
#define COPY_MEM_MAX (16u << 20)            /* larger messages are copied to a file */
#define OUTPUT_MAX (256u << 10)             /* the largest output a format may write */
#define DIGEST_FILE_MAX 4096
#define NAME_MAX_LEN 255
#define DEFER_FIRST_MS 500                  /* retrying a job that found no space */
#define DEFER_MAX_MS 5000
#define JOB_YIELD 1                         /* run_job: the job gave its worker up */
#define JOB_RETRY 2                         /* run_job: a spool job starts again (same_file) */
#define RETRY_MAX 3

enum input_kind { IN_FILE, IN_DIGEST, IN_REQUEST };

/* What a job keeps between its slices: the artifact open, and what was read. */
struct job_io {
	bool open;
	int dirfd, fd;
	bool dir_borrowed;                  /* dirfd is the job's own sdir: not closed here */
	struct stat st;                     /* the artifact when the job opened it */
	struct sigfs_key k;                 /* the key's settings for this job */
	enum input_kind kind;
	const struct sigfs_format *f;
	struct sigfs_hasher *h;             /* hash of bytes 0..off */
	off_t off;
	bool done_reading;
	bool need_msg;                      /* the format signs the message itself */
	bool stream;                        /* ... by streaming it from the artifact itself */
	int copyfd;                         /* private copy of the message, or -1 */
	uint8_t *copy;                      /* the same in memory, or NULL */
	const uint8_t *msg;                 /* the message to sign (mapped copy or copy) */
};

/*
 * An output being made: an unnamed file (O_TMPFILE) in the inbox, or where
 * the file system has none, a file named tmp there.
 */
struct outfile {
	int fd;                             /* open while it is written, and until an unnamed one is linked */
	bool unnamed;                       /* made with O_TMPFILE */
	char tmp[64];                       /* its name, if it has one */
	char tmp_unnamed[64];               /* the name an unnamed one takes to be renamed */
};

/* What is what: an output's digest name and value, for the audit log. */
struct signed_what {
	char name[32];
	uint8_t value[SIGFS_MAX_DIGEST];
	size_t len;
};

/*
 * An output made but not placed yet: kept while the state directory has no
 * room for it, so a retry only writes it (signing is not done twice).
 */
struct ready {
	bool made;                          /* an output was made: it is to be placed */
	struct sbuf out;                    /* its bytes */
	/*
	 * streamed: a streaming format's output (produce_stream), written
	 * straight into its file, which waits here to be placed; out is empty.
	 */
	bool streamed;
	struct outfile file;
	char base[NAME_MAX_LEN + 1];        /* it is placed as base + suffix */
	const char *suffix;
	bool is_sig;                        /* a signature (audited), or NAME.err */
	struct signed_what what;
	int result;                         /* the job's result once it is placed */
	struct stat st;                     /* the artifact: owner, inode */
};

struct lane;

struct job {
	uint64_t id;
	char key[SIGFS_KEYNAME_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	uint64_t ino;
	uid_t uid;                          /* who asked: the closer or renamer */
	int write_err;                      /* a write to the artifact failed: not signed */
	struct sigfs_hasher *state;         /* hash of the whole file made while it was written, or NULL */
	bool stale;                         /* set under its out lock; read atomically */
	unsigned defers;                    /* times it found no space */
	struct timespec not_before;         /* a deferred job waits until then */
	void (*done)(void *arg, int result);
	void *arg;
	bool spool;                         /* a spool job (engine.h): not journaled */
	unsigned retries;                   /* times it started again (JOB_RETRY) */
	struct sigfs_dirref *sdir;          /* its inbox (spool jobs: a reference), else NULL */
	int (*admit)(const struct stat *dir, const struct stat *file, char *err);
	struct lane *lane;
	struct job *next;                   /* its flow, or the lane's delayed list (lock) */
	struct job *lprev, *lnext;          /* its chain of the live table (live_lock) */
	bool derived;                       /* its name is not its outputs' base (a digest line, .sigreq) */
	struct job_io io;
	struct ready ready;
};

/* The jobs of one user in one lane, oldest first. */
struct flow {
	uid_t uid;
	struct job *head, *tail;
	struct flow *next;
};

/* The queue and workers of one backend; all but e, backend and threads under e->lock. */
struct lane {
	struct sigfs_engine *e;
	char backend[64];
	struct flow *flows, *flows_tail;    /* flows with jobs, served from the head */
	struct job *delayed;                /* deferred jobs, waiting for not_before */
	pthread_cond_t cond;                /* waited on with e->lock */
	size_t queued;
	unsigned running;
	pthread_t *threads;
	unsigned nthreads;
	struct lane *next;
};

struct sigfs_engine {
	const struct sigfs_config *cfg;
	struct sigfs_keys *ks;
	struct sigfs_audit *audit;
	struct sigfs_journal *journal;
	int inbox_root;

	/*
	 * The engine's two locks. They are never held together: a thread takes
	 * one, lets it go, then may take the other. No backend call, no read of
	 * an artifact and no journal write is made under either.
	 *
	 * lock      the queues: the lanes list and each lane's flows, delayed
	 *           jobs, counters (queued, running) and condition variable; a
	 *           job's next and lane; stopping; signed_total, failed_total.
 * out_locks  the outputs, one lock for all outputs named after the
	 *           same base of the same key (out_lock_of: a stripe of
	 *           OUT_STRIPES): each job's stale flag (written under it, read
	 *           with an atomic load by a worker) and placing outputs in the
	 *           inboxes, so that begin()/forget() marking a job stale and the
	 *           job placing its output are one step or the other (forget
	 *           removes the old outputs after it, without the lock). The
	 *           audit line of a placed signature is written under it (the
	 *           audit log's own lock comes after). Jobs of other names place
	 *           their outputs in parallel.
	 * live_lock the live table (every job from enqueue to its end, chained by
	 *           lprev/lnext in the bucket of its key and name, live_bucket);
	 *           taken after an out lock, never before.
	 */
	pthread_mutex_t lock;
	struct lane *lanes;
	bool stopping;
	uint64_t signed_total, failed_total;
	size_t backlog;                     /* jobs queued in every lane (atomic) */

	pthread_mutex_t out_locks[OUT_STRIPES];
	pthread_mutex_t live_lock;
	size_t live_derived;                /* live jobs with derived set (live_lock) */
	struct job *live[LIVE_BUCKETS];

	/*
	 * Per key, which output suffixes may exist in its spool inbox
	 * (struct seen, outputs_may_exist). Entries are added under seen_lock
	 * and never removed before stop; masks only gain bits (atomics).
	 */
	pthread_mutex_t seen_lock;
	struct seen *seen[SEEN_BUCKETS];

	/* The process's umask takes bits of 0444: outputs need an fchmod after the create. */
	bool umask_masks_0444;

	/* What the journal held at start, for sigfs_engine_unfinished (its 'W' entries). */
	struct sigfs_journal_entry *pending;
	size_t npending;
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

/* Is format i the first of the table with its suffix (formats can share one)? */
static bool first_with_suffix(size_t i)
{
	const struct sigfs_format *f = sigfs_format_at(i), *g;

	for (size_t j = 0; j < i && (g = sigfs_format_at(j)); j++)
		if (strcmp(f->suffix, g->suffix) == 0)
			return false;
	return true;
}

/*
 * The bit of name's output suffix in a seen mask: SEEN_ERR for .err, else
 * bit i of the first format i with that suffix; 0: no output name.
 */
static uint32_t suffix_bit(const char *name)
{
	const struct sigfs_format *f;

	if (has_suffix(name, ".err"))
		return SEEN_ERR;
	for (size_t i = 0; i < 31 && (f = sigfs_format_at(i)); i++)
		if (has_suffix(name, f->suffix) && first_with_suffix(i))
			return 1u << i;
	return 0;
}

int sigfs_engine_name_check(const char *name, char *err)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return sigfs_seterr(err, -EINVAL, "names with control characters "
					    "(newline, tab ...) are refused");
	/* The engine's own temporary outputs: a client holding one open could write a .sig. */
	if (strncmp(name, SIGFS_TMP_PREFIX, strlen(SIGFS_TMP_PREFIX)) == 0)
		return sigfs_seterr(err, -EPERM, "names starting with " SIGFS_TMP_PREFIX " are reserved "
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

/* What the input name of key k is: a request, a digest line or a file. */
static enum input_kind input_kind(const struct sigfs_key *k, const char *name)
{
	size_t n;

	if (has_suffix(name, ".sigreq"))
		return IN_REQUEST;
	if (k->digest_files && sigfs_dl_suffix(name, &n))
		return IN_DIGEST;
	return IN_FILE;
}

/*
 * The base name the outputs of input name of kind are named after: NAME for
 * NAME.<digest> digest lines and NAME.sigreq requests, else the name itself.
 */
static void kind_base(enum input_kind kind, const char *name, char *base)
{
	size_t n = strlen(name);

	strcpy(base, name);
	if (kind == IN_DIGEST && sigfs_dl_suffix(name, &n))
		base[n] = '\0';
	else if (kind == IN_REQUEST)
		base[n - strlen(".sigreq")] = '\0';
}

/* The base name of input name of key k's outputs, as its kind says. */
static void output_base(const struct sigfs_key *k, const char *name, char *base)
{
	kind_base(input_kind(k, name), name, base);
}

/* FNV-1a over key, '/' and name. */
uint32_t sigfs_name_hash(const char *key, const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

/* The live table's chain for a job of key named name. */
static struct job **live_bucket(struct sigfs_engine *e, const char *key, const char *name)
{
	return &e->live[sigfs_name_hash(key, name) % LIVE_BUCKETS];
}

/* The out lock of the outputs of key named after base. */
static pthread_mutex_t *out_lock_of(struct sigfs_engine *e, const char *key, const char *base)
{
	return &e->out_locks[sigfs_name_hash(key, base) % OUT_STRIPES];
}

/* Unlink dirfd/name if it exists: a lookup shares the directory's lock, unlink() does not. */
static void remove_if_there(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		unlinkat(dirfd, name, 0);
}

/*
 * Remove every output of base whose suffix is in mask (SEEN_ALL: all
 * formats' suffixes, each once, and .err). Each is a look-up of a name the
 * directory has seldom seen, a slow one in a big inbox: the spool passes
 * the suffixes its inbox may hold (outputs_may_exist).
 */
static void remove_outputs(int dirfd, const char *base, uint32_t mask)
{
	const struct sigfs_format *f;
	char out[NAME_MAX_LEN + 16];

	for (size_t i = 0; (f = sigfs_format_at(i)); i++) {
		if (!first_with_suffix(i) || (i < 31 && !(mask & (1u << i))))
			continue;
		snprintf(out, sizeof(out), "%s%s", base, f->suffix);
		remove_if_there(dirfd, out);
	}
	if (mask & SEEN_ERR) {
		snprintf(out, sizeof(out), "%s.err", base);
		remove_if_there(dirfd, out);
	}
}

/* --- which outputs a spool inbox may hold ------------------------------------- */

/*
 * A key's mask: which output suffixes its spool inbox may hold; and which
 * bases: a Bloom filter (two bits a base) of the bases of every output name
 * placed or seen there, so that a name never signed before costs no look-up
 * of its outputs (decision 81).
 */
struct seen {
	struct seen *next;
	uint32_t mask;
	bool unknown;                       /* events were lost: any base may have outputs */
	uint64_t bases[SEEN_BASE_BITS / 64];
	char key[];
};

/* key's entry, made if missing (NULL: out of memory). */
static struct seen *seen_of(struct sigfs_engine *e, const char *key)
{
	struct seen **head = &e->seen[sigfs_name_hash(key, "") % SEEN_BUCKETS], *s;

	for (s = __atomic_load_n(head, __ATOMIC_ACQUIRE); s; s = s->next)
		if (strcmp(s->key, key) == 0)
			return s;
	pthread_mutex_lock(&e->seen_lock);
	for (s = *head; s && strcmp(s->key, key) != 0; s = s->next)
		;
	if (!s && (s = calloc(1, sizeof(*s) + strlen(key) + 1))) {
		strcpy(s->key, key);
		s->next = *head;
		__atomic_store_n(head, s, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&e->seen_lock);
	return s;
}

/* Add bits to the mask of s (seen_of's); the mask now (SEEN_ALL without an entry: out of memory). */
static uint32_t seen_add(struct seen *s, uint32_t bits)
{
	return s ? __atomic_or_fetch(&s->mask, bits, __ATOMIC_ACQ_REL) : SEEN_ALL;
}

/* The two bits of base in a filter of struct seen: its name hash, and that hash mixed again. */
static void base_bits(const char *base, uint32_t bit[2])
{
	uint32_t h = sigfs_name_hash("", base);

	bit[0] = h % SEEN_BASE_BITS;
	bit[1] = (h * 2654435761u) >> (32 - SEEN_BASE_LOG);
}

/* Put base (a string of len bytes) into s's filter. */
static void seen_base(struct seen *s, const char *base, size_t len)
{
	char b[NAME_MAX_LEN + 1];
	uint32_t bit[2];

	if (!s || len > NAME_MAX_LEN)
		return;
	memcpy(b, base, len);
	b[len] = '\0';
	base_bits(b, bit);
	for (int i = 0; i < 2; i++)
		__atomic_or_fetch(&s->bases[bit[i] / 64], 1ull << (bit[i] % 64), __ATOMIC_ACQ_REL);
}

/*
 * May key's spool inbox hold an output named after base? Yes for every
 * base put into the filter (and some others: a filter errs only that way),
 * and for all after events were lost or without an entry.
 */
static bool base_may_have_outputs(struct sigfs_engine *e, const char *key, const char *base)
{
	struct seen *s = seen_of(e, key);
	uint32_t bit[2];

	if (!s || __atomic_load_n(&s->unknown, __ATOMIC_ACQUIRE))
		return true;
	base_bits(base, bit);
	for (int i = 0; i < 2; i++)
		if (!(__atomic_load_n(&s->bases[bit[i] / 64], __ATOMIC_ACQUIRE) &
		      (1ull << (bit[i] % 64))))
			return false;
	return true;
}

/*
 * The suffixes of the outputs key's spool inbox may hold: every suffix
 * placed there by a job, seen there by a scan or an event (a user can make
 * any name), or all of them after inotify lost events. A bit is never
 * cleared, so the mask can only say "may exist" too often, never too
 * seldom. Without an entry (out of memory): all.
 */
static uint32_t outputs_may_exist(struct sigfs_engine *e, const char *key)
{
	struct seen *s = seen_of(e, key);

	return s ? __atomic_load_n(&s->mask, __ATOMIC_ACQUIRE) : SEEN_ALL;
}

void sigfs_engine_output_seen(struct sigfs_engine *e, const char *key, const char *name)
{
	uint32_t bit = suffix_bit(name);
	const struct sigfs_format *f;
	struct seen *s;
	size_t n = strlen(name);

	if (!bit)
		return;
	s = seen_of(e, key);
	seen_add(s, bit);
	/* Its base for every suffix it ends in (".signed" and ".mender.signed" both). */
	if (has_suffix(name, ".err"))
		seen_base(s, name, n - strlen(".err"));
	for (size_t i = 0; (f = sigfs_format_at(i)); i++)
		if (has_suffix(name, f->suffix))
			seen_base(s, name, n - strlen(f->suffix));
}

void sigfs_engine_outputs_unknown(struct sigfs_engine *e, const char *key)
{
	struct seen *s = seen_of(e, key);

	seen_add(s, SEEN_ALL);
	if (s)
		__atomic_store_n(&s->unknown, true, __ATOMIC_RELEASE);
}

/* Call cb for name if it exists in dirfd (not following a symlink). */
static int sibling(int dirfd, const char *name, sigfs_sibling_fn cb, void *arg)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return cb(arg, name, &st);
}

/*
 * A descriptor of key's inbox for a front-end call: dir itself (the caller
 * keeps it open during the call), or (dir < 0) the key store's, opened.
 * Release it with inbox_done.
 */
static int inbox_dir(struct sigfs_engine *e, const char *key, int dir)
{
	if (dir >= 0)
		return dir;
	return openat(e->inbox_root, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static void inbox_done(int dirfd, int dir)
{
	if (dirfd >= 0 && dirfd != dir)
		close(dirfd);
}

int sigfs_engine_siblings(struct sigfs_engine *e, const char *key, const char *name,
			  sigfs_sibling_fn cb, void *arg)
{
	return sigfs_engine_siblings_at(e, key, -1, name, cb, arg);
}

int sigfs_engine_siblings_at(struct sigfs_engine *e, const char *key, int dir, const char *name,
			     sigfs_sibling_fn cb, void *arg)
{
	char base[NAME_MAX_LEN + 1], cand[NAME_MAX_LEN + 32];
	const struct sigfs_digest *d;
	const struct sigfs_format *f;
	struct sigfs_key k;
	int dirfd, r = 0;

	if (sigfs_engine_ignored(name) || strlen(name) > NAME_MAX_LEN ||
	    sigfs_keys_get(e->ks, key, &k) < 0)
		return 0;
	output_base(&k, name, base);
	dirfd = inbox_dir(e, key, dir);
	if (dirfd < 0)
		return 0;
	/* The other inputs whose outputs would have the same names. */
	if (strcmp(base, name) != 0)
		r = sibling(dirfd, base, cb, arg);
	for (size_t i = 0; r == 0 && k.digest_files && (d = sigfs_digest_at(i)); i++) {
		snprintf(cand, sizeof(cand), "%s.%s", base, d->name);
		if (strcmp(cand, name) != 0)
			r = sibling(dirfd, cand, cb, arg);
	}
	snprintf(cand, sizeof(cand), "%s.sigreq", base);
	if (r == 0 && strcmp(cand, name) != 0)
		r = sibling(dirfd, cand, cb, arg);
	/* And the outputs. */
	for (size_t i = 0; r == 0 && (f = sigfs_format_at(i)); i++) {
		snprintf(cand, sizeof(cand), "%s%s", base, f->suffix);
		r = sibling(dirfd, cand, cb, arg);
	}
	snprintf(cand, sizeof(cand), "%s.err", base);
	if (r == 0)
		r = sibling(dirfd, cand, cb, arg);
	inbox_done(dirfd, dir);
	return r;
}

/*
 * A descriptor of the job's inbox: the spool job's own copy of its directory
 * (kept until the job ends), or the key store's inbox of its key, opened.
 * Release it with job_dir_done.
 */
static int job_dir(struct sigfs_engine *e, const struct job *j)
{
	if (j->spool)
		return sigfs_dirref_fd(j->sdir);
	return openat(e->inbox_root, j->key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static void job_dir_done(const struct job *j, int dirfd)
{
	if (dirfd >= 0 && !j->spool)
		close(dirfd);
}

/*
 * Is st (the file now) the file the job signed (ast)? 0, -ECANCELED (other
 * content: its own event brings its own job), or -ESTALE: for a spool job,
 * only the ctime moved (chmod, chown, a hard link made meanwhile): no event
 * brings a new job for that, so the job starts again (JOB_RETRY). The
 * mount's inboxes are written through the front end, which marks a
 * rewritten file's jobs stale: there the inode says enough.
 */
static int same_file(const struct job *j, const struct stat *st, const struct stat *ast)
{
	if (st->st_ino != j->ino)
		return -ECANCELED;
	if (!j->spool)
		return 0;
	if (st->st_ino != ast->st_ino || st->st_size != ast->st_size ||
	    st->st_mtim.tv_sec != ast->st_mtim.tv_sec || st->st_mtim.tv_nsec != ast->st_mtim.tv_nsec)
		return -ECANCELED;
	if (st->st_ctim.tv_sec != ast->st_ctim.tv_sec || st->st_ctim.tv_nsec != ast->st_ctim.tv_nsec)
		return -ESTALE;
	return 0;
}

/* --- output files ------------------------------------------------------------ */

/* No room in the state directory: the job waits and tries again (no NAME.err). */
static bool no_space(int r)
{
	return r == -ENOSPC || r == -EDQUOT;
}

/*
 * Make o, a new file in dirfd for an output. Fill it, then out_finish.
 *
 * The file has no name while it is written (O_TMPFILE): making it takes no
 * lock of the inbox's directory, which writers in a spool contend for, and a
 * daemon killed meanwhile leaves nothing behind. A file system without
 * O_TMPFILE gets a named temporary file (o->tmp), as before.
 */
static int out_open(int dirfd, struct outfile *o)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

	o->fd = openat(dirfd, ".", O_WRONLY | O_TMPFILE | O_CLOEXEC, 0444);
	if (o->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR)
		return -errno;
	o->unnamed = o->fd >= 0;
	if (o->unnamed) {
		o->tmp[0] = '\0';
		return 0;
	}
	/* One left by a killed daemon (same job id and thread) is removed, then made anew. */
	o->fd = openat(dirfd, o->tmp, flags, 0444);
	if (o->fd < 0 && errno == EEXIST && unlinkat(dirfd, o->tmp, 0) == 0)
		o->fd = openat(dirfd, o->tmp, flags, 0444);
	return o->fd < 0 ? -errno : 0;
}

/*
 * The output o is written: owned by the artifact's owner (ast), read-only,
 * and carrying the artifact's modification time as the job saw it (ast: the
 * stat the job opened it with, which its stale checks compare against),
 * atime too. That time is the output's claim "I am for the content of that
 * time": `sigfs wait` compares the two (docs/inbox.md, decision 63). Set
 * after the last write (a write would move it) and before the file gets its
 * name, so no output is ever visible without it; fsync, not fdatasync, so a
 * crash cannot lose it. A named file is closed; an unnamed one stays open
 * for put_out to link.
 */
static int out_finish(struct sigfs_engine *e, struct outfile *o, const struct stat *ast)
{
	const struct timespec times[2] = { ast->st_mtim, ast->st_mtim };
	int r = 0;

	if (futimens(o->fd, times) < 0)
		r = -errno;
	if (r == 0 && (fchown(o->fd, ast->st_uid, ast->st_gid) < 0 ||
		       (e->umask_masks_0444 && fchmod(o->fd, 0444) < 0)))
		r = -errno;
	if (r == 0 && e->cfg->fsync && fsync(o->fd) < 0)
		r = -errno;
	if (!o->unnamed) {
		if (close(o->fd) < 0 && r == 0)
			r = -errno;
		o->fd = -1;
	}
	return r;
}

/* Write data into a new file in dirfd (o), made as out_open and out_finish say. */
static int write_out(struct sigfs_engine *e, int dirfd, struct outfile *o, const struct stat *ast,
		     const void *data, size_t len)
{
	int r = out_open(dirfd, o);

	if (r == 0)
		r = sigfs_write_all(o->fd, data, len);
	return r == 0 ? out_finish(e, o, ast) : r;
}

/*
 * Give the unnamed file fd the name out in dirfd: by the descriptor itself
 * (AT_EMPTY_PATH; it needs CAP_DAC_READ_SEARCH, which root has), else by its
 * /proc/self/fd name (proc), a look-up in /proc that costs about 3 us of the
 * 45 an output takes (docs/decisions.md 71). -1 and errno as linkat.
 */
static int link_unnamed(int fd, const char *proc, int dirfd, const char *out)
{
	if (linkat(fd, "", dirfd, out, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EPERM && errno != ENOENT && errno != EINVAL)
		return -1;
	return linkat(AT_FDCWD, proc, dirfd, out, AT_SYMLINK_FOLLOW);
}

/*
 * Give o the name out in dirfd, replacing what has that name (never
 * following it: a planted symlink is replaced). An unnamed file is linked as
 * out when out does not exist (the common case: one step), else linked as
 * its temporary name and renamed over out.
 */
static int put_out(int dirfd, struct outfile *o, const char *out)
{
	char proc[64];

	if (o->unnamed) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
		if (link_unnamed(o->fd, proc, dirfd, out) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
		unlinkat(dirfd, o->tmp_unnamed, 0);
		if (link_unnamed(o->fd, proc, dirfd, o->tmp_unnamed) < 0)
			return -errno;
		snprintf(o->tmp, sizeof(o->tmp), "%s", o->tmp_unnamed);
	}
	return renameat(dirfd, o->tmp, dirfd, out) < 0 ? -errno : 0;
}

/* Whatever of o is left (after a failure, or once placed): closed, and unnamed. */
static void out_done(int dirfd, struct outfile *o, bool placed)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (!placed && o->tmp[0])
		unlinkat(dirfd, o->tmp, 0);
	o->tmp[0] = '\0';
}

/* The temporary names of job j's outputs (made by this thread). */
static void out_names(const struct job *j, struct outfile *o)
{
	o->fd = -1;
	o->unnamed = false;
	snprintf(o->tmp, sizeof(o->tmp), SIGFS_TMP_PREFIX "%" PRIu64 ".%lx", j->id,
		 (unsigned long)pthread_self());
	snprintf(o->tmp_unnamed, sizeof(o->tmp_unnamed), "%s", o->tmp);
}

/*
 * Write data as j->ready.base + suffix in the job's inbox dirfd, atomically
 * (write_out says how it is made), or with data NULL, place the streamed
 * output made already (j->ready.file). Placed only if the job is still
 * current (-ECANCELED if not). A signature (what != NULL) is audited in the
 * same step, so the log has a line for every signature placed and none is
 * placed whose line could not be written.
 */
static int place_output(struct sigfs_engine *e, struct job *j, int dirfd, const struct stat *ast,
			const char *suffix, const void *data, size_t len,
			const struct signed_what *what)
{
	struct outfile own, *op = &own;
	char out[NAME_MAX_LEN + 16];
	pthread_mutex_t *ol;
	struct stat st;
	int r;

	snprintf(out, sizeof(out), "%s%s", j->ready.base, suffix);
	if (data) {
		out_names(j, &own);
		r = write_out(e, dirfd, &own, ast, data, len);
	} else {
		/* Kept from a try that found no room (a named one is finished and closed). */
		op = &j->ready.file;
		r = op->fd >= 0 ? out_finish(e, op, ast) : op->tmp[0] ? 0 : -EIO;
	}
	if (r < 0)
		goto done;
	ol = out_lock_of(e, j->key, j->ready.base);
	pthread_mutex_lock(ol);
	if (j->stale || fstatat(dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -ECANCELED;
	else
		r = same_file(j, &st, ast);
	if (r == 0 && what) {
		r = sigfs_audit_append(e->audit, "sign", j->key, j->uid, ast->st_uid, what->name,
				       what->value, what->len, j->name);
		if (r < 0 && r != -ENOSPC && r != -EDQUOT)
			r = -EIO;
	}
	if (r == 0) {
		/* One result per artifact: a .sig replaces an old .err and back. */
		uint32_t mask = SEEN_ALL;
		char other[NAME_MAX_LEN + 16];

		/* Before the name exists: a forget after this lock looks for it. */
		if (j->spool) {
			struct seen *s = seen_of(e, j->key);

			mask = seen_add(s, suffix_bit(out));
			seen_base(s, j->ready.base, strlen(j->ready.base));
		}
		if (!what)
			remove_outputs(dirfd, j->ready.base, mask);
		r = put_out(dirfd, op, out);
		if (r == 0 && what && (mask & SEEN_ERR)) {
			snprintf(other, sizeof(other), "%s.err", j->ready.base);
			remove_if_there(dirfd, other);
		}
	}
	pthread_mutex_unlock(ol);
	if (r == 0 && what)
		sigfs_keys_count(e->ks, j->key);
done:
	/* A streamed output that found no room waits for the job's next try. */
	if (data || !no_space(r))
		out_done(dirfd, op, r == 0);
	return r;
}

/* --- reading the artifact ---------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does a user other than uid wait in lane l? */
static bool others_waiting(struct sigfs_engine *e, struct lane *l, uid_t uid)
{
	bool r = false;

	pthread_mutex_lock(&e->lock);
	for (struct flow *fl = l->flows; fl && !r; fl = fl->next)
		r = fl->uid != uid;
	pthread_mutex_unlock(&e->lock);
	return r;
}

static void io_close(struct job_io *io)
{
	if (!io->open)
		return;
	if (io->msg && io->copyfd >= 0)
		munmap((void *)io->msg, (size_t)io->st.st_size);
	if (io->copyfd >= 0)
		close(io->copyfd);
	free(io->copy);
	sigfs_hasher_free(io->h);
	if (io->fd >= 0)
		close(io->fd);
	if (io->dirfd >= 0 && !io->dir_borrowed)
		close(io->dirfd);
	memset(io, 0, sizeof(*io));
}

/*
 * Where the copy of a message goes: memory for small ones, else an unnamed
 * file in the state directory, which no client can reach.
 */
static int copy_start(struct sigfs_engine *e, struct job_io *io, char *err)
{
	size_t size = (size_t)io->st.st_size;

	if (size > COPY_MEM_MAX) {
		io->copyfd = openat(e->inbox_root, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		/* Its full size at once (a hole): the mapping never reaches past its end. */
		if (io->copyfd >= 0 && ftruncate(io->copyfd, io->st.st_size) == 0)
			return 0;
		if (errno == ENOSPC || errno == EDQUOT)
			return -errno;
		log_debug("O_TMPFILE in the state directory: %s; copying into memory",
			  strerror(errno));
	}
	io->copy = malloc(size);
	if (!io->copy)
		return sigfs_seterr(err, -ENOMEM, "not enough memory to copy the %zu-byte file "
				    "(the key's format signs the whole file)", size);
	return 0;
}

/* The copy is complete: the message to sign. */
static int copy_finish(struct job_io *io, char *err)
{
	void *m;

	if (io->copy) {
		io->msg = io->copy;
		return 0;
	}
	m = mmap(NULL, (size_t)io->st.st_size, PROT_READ, MAP_PRIVATE, io->copyfd, 0);
	if (m == MAP_FAILED)
		return sigfs_seterr(err, -errno, "cannot map the copy of the artifact: %s",
				    strerror(errno));
	io->msg = m;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Copy n bytes at off into the copy file; zeros stay a hole (sparse images stay cheap). */
static int copy_out(int fd, const uint8_t *p, size_t n, off_t off)
{
	if (all_zero(p, n))
		return 0;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w <= 0)
			return w < 0 && errno != EINTR ? -errno : w == 0 ? -EIO : 0;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * Read the artifact on from io->off: hash it and, for formats that sign the
 * message, copy it. Returns 0 when all of it was read, JOB_YIELD when another
 * user waits and this job had its turn, -ECANCELED when the file changed
 * size, or an error.
 */
static int read_file(struct sigfs_engine *e, struct job *j, char *err)
{
	struct job_io *io = &j->io;
	long long start = now_ms();
	/* No bigger than what is left to read: most artifacts are small, and the buffer is wiped. */
	size_t cap = io->st.st_size - io->off < HASH_CHUNK ?
		(size_t)(io->st.st_size - io->off) + 1 : HASH_CHUNK;
	uint8_t *buf = malloc(cap);
	size_t used = 0;
	int r = 0;

	if (!buf)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	while (io->off < io->st.st_size) {
		size_t want = io->st.st_size - io->off < (off_t)cap ?
			(size_t)(io->st.st_size - io->off) : cap;
		ssize_t n = pread(io->fd, buf, want, io->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = sigfs_seterr(err, -EIO, "cannot read the artifact: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			r = -ECANCELED;         /* truncated while it was read */
			break;
		}
		used = (size_t)n > used ? (size_t)n : used;
		sigfs_hasher_update(io->h, buf, (size_t)n);
		if (io->copy) {
			memcpy(io->copy + io->off, buf, (size_t)n);
		} else if (io->copyfd >= 0) {
			r = copy_out(io->copyfd, buf, (size_t)n, io->off);
			if (r < 0 && !no_space(r))
				r = sigfs_seterr(err, -EIO, "cannot copy the artifact: %s",
						 strerror(-r));
			if (r < 0)
				break;
		}
		io->off += n;
		if (io->off < io->st.st_size && now_ms() - start >= SLICE_MS &&
		    others_waiting(e, j->lane, j->uid)) {
			r = JOB_YIELD;
			break;
		}
	}
	OPENSSL_cleanse(buf, used);
	free(buf);
	if (r == 0) {
		io->done_reading = true;
		if (io->need_msg && !io->stream)
			r = copy_finish(io, err);
	}
	return r;
}

/*
 * Has the artifact changed since the job opened it? Then nothing is placed:
 * -ECANCELED, or -ESTALE for a spool file whose ctime alone moved (same_file).
 */
static int artifact_changed(const struct job *j)
{
	const struct job_io *io = &j->io;
	struct stat st;

	if (fstat(io->fd, &st) < 0 || st.st_size != io->st.st_size ||
	    st.st_mtim.tv_sec != io->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != io->st.st_mtim.tv_nsec)
		return -ECANCELED;
	if (j->spool && (st.st_ctim.tv_sec != io->st.st_ctim.tv_sec ||
			 st.st_ctim.tv_nsec != io->st.st_ctim.tv_nsec))
		return -ESTALE;
	return 0;
}

/* --- signing ------------------------------------------------------------------ */

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

/* Encode what in describes with format f and key k into out. */
static int produce(struct sigfs_engine *e, const struct sigfs_key *k, const struct sigfs_format *f,
		   struct sigfs_format_input *in, unsigned worker, struct sbuf *out, char *err)
{
	struct sign_ctx sc = { e->ks, k, worker };
	struct sigfs_format_key fk;
	int r;

	r = sigfs_keys_format_key(e->ks, k, f, &fk, err);
	if (r < 0)
		return r;
	in->key = &fk;
	r = sigfs_format_produce(f, in, sign_cb, &sc, out, err);
	sigfs_keys_format_key_free(&fk);
	return r;
}

/* NAME.sigreq: sign what the request says, in the format it asks for. */
static int sign_request(struct sigfs_engine *e, struct job *j, unsigned worker, struct sbuf *out,
			struct signed_what *what, char *err)
{
	const struct sigfs_key *k = &j->io.k;
	char base[NAME_MAX_LEN + 1];
	struct sigfs_format_input in = { .name = base, .now = sigfs_keys_now(e->ks) };
	struct sigfs_request req = { 0 };
	const struct sigfs_digest *d;
	uint8_t *buf = malloc(SIGFS_REQUEST_MAX + 1);
	size_t len = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	kind_base(IN_REQUEST, j->name, base);
	r = read_small(j->io.fd, buf, SIGFS_REQUEST_MAX + 1, &len);
	if (r < 0)
		sigfs_seterr(err, r, "cannot read the request: %s", strerror(-r));
	else if (len > SIGFS_REQUEST_MAX)
		r = sigfs_seterr(err, -EFBIG, "the request is larger than %d bytes",
				 SIGFS_REQUEST_MAX);
	else
		r = sigfs_request_parse(buf, len, &req, err);
	free(buf);
	if (r < 0)
		goto out;
	if (req.format)
		j->io.f = req.format;
	if (req.digest && sigfs_digest_is_weak(req.digest) && !k->allow_sha1) {
		r = sigfs_seterr(err, -EPERM, "key %s does not allow sha1 digests", k->name);
		goto out;
	}
	/* Judge the pair by what the request hashed with, not by the key's setting. */
	d = req.digest ? req.digest : req.state ? sigfs_digest_by_ossl(req.state->name) : NULL;
	r = j->io.f->check(k->alg, d ? d : k->digest, err);
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
	r = produce(e, k, j->io.f, &in, worker, out, err);
out:
	sigfs_request_free(&req);
	return r;
}

/*
 * NAME.<digest>: sign the digest line's value. A file that is not meant as a
 * digest line turns the job into an ordinary file (*as_file).
 */
static int sign_digest_line(struct sigfs_engine *e, struct job *j, unsigned worker,
			    struct sbuf *out, struct signed_what *what, bool *as_file, char *err)
{
	const struct sigfs_key *k = &j->io.k;
	const struct sigfs_format *f = j->io.f;
	char base[NAME_MAX_LEN + 1];
	struct sigfs_format_input in = { .name = base, .now = sigfs_keys_now(e->ks) };
	uint8_t content[DIGEST_FILE_MAX + 1], dv[SIGFS_MAX_DIGEST];
	const struct sigfs_digest *dd;
	size_t len = 0, base_len;
	int r;

	*as_file = false;
	dd = sigfs_dl_suffix(j->name, &base_len);
	kind_base(IN_DIGEST, j->name, base);
	r = read_small(j->io.fd, content, sizeof(content), &len);
	if (r < 0)
		return sigfs_seterr(err, r, "cannot read the digest file: %s", strerror(-r));
	switch (sigfs_dl_parse(dd, base, content, len, dv, err)) {
	case SIGFS_DL_OK:
		break;
	case SIGFS_DL_BAD:
		return -EINVAL;
	case SIGFS_DL_NOT_A_LINE:
		/* An ordinary artifact that happens to have a digest's suffix. */
		*as_file = true;
		return 0;
	}
	if (sigfs_digest_is_weak(dd) && !k->allow_sha1)
		return sigfs_seterr(err, -EPERM, "key %s does not allow sha1 digests", k->name);
	if (f->whole_artifact)
		return sigfs_seterr(err, -EINVAL, "key %s has format %s: its output is the signed "
				    "file itself; copy the file, not a digest line", k->name, f->name);
	if (f->needs_message(k->alg))
		return sigfs_seterr(err, -EINVAL, "key %s is %s: it signs whole files, not "
				    "digests; copy the file itself", k->name, k->alg->name);
	r = f->check(k->alg, dd, err);
	if (r < 0)
		return r;
	in.digest = dd;
	in.digest_value = dv;
	note_digest(what, dd, dv);
	return produce(e, k, f, &in, worker, out, err);
}

/* Set a file job up to hash (and maybe copy) the artifact, unless its writes were hashed. */
static int file_start(struct sigfs_engine *e, struct job *j, char *err)
{
	struct job_io *io = &j->io;
	const EVP_MD *md = sigfs_format_file_md(io->f, io->k.alg, io->k.digest);

	io->kind = IN_FILE;
	if (j->write_err)
		return sigfs_seterr(err, -EIO, "a write to this file failed (%s): it is "
				    "incomplete and was not signed; write it again",
				    strerror(j->write_err));
	if (io->st.st_size == 0)
		return sigfs_seterr(err, -ENODATA, "the file is empty: there is nothing to sign");
	io->need_msg = io->f->needs_message(io->k.alg);
	/* A streaming format reads the artifact itself, not a private copy (decision 79). */
	io->stream = io->need_msg && io->f->produce_stream;
	if ((!io->need_msg || io->stream) && j->state && sigfs_hasher_is(j->state, md)) {
		log_debug("key %s: job %" PRIu64 ": digest computed while the file was written",
			  io->k.name, j->id);
		io->h = j->state;
		j->state = NULL;
		io->done_reading = true;
		return 0;
	}
	log_debug("key %s: job %" PRIu64 ": reading the file to hash it", io->k.name, j->id);
	io->h = sigfs_hasher_new(md);
	if (!io->h)
		return sigfs_seterr(err, -ENOMEM, "cannot start %s", EVP_MD_get0_name(md));
	return io->need_msg && !io->stream ? copy_start(e, io, err) : 0;
}

/*
 * A streaming format (produce_stream) writes its output straight into a new
 * file in the inbox, j->ready.file, which place_output places.
 */
static int stream_out(struct sigfs_engine *e, struct job *j, struct sigfs_format_input *in,
		      unsigned worker, char *err)
{
	struct job_io *io = &j->io;
	struct outfile *o = &j->ready.file;
	struct sign_ctx sc = { e->ks, &io->k, worker };
	const struct sigfs_sink sink = sigfs_sink_fd(&o->fd);
	struct sigfs_format_key fk;
	int r;

	out_names(j, o);
	r = out_open(io->dirfd, o);
	if (r < 0)
		return no_space(r) ? r : sigfs_seterr(err, r, "cannot make the output file: %s",
						      strerror(-r));
	r = sigfs_keys_format_key(e->ks, &io->k, io->f, &fk, err);
	if (r == 0) {
		in->key = &fk;
		r = io->f->produce_stream(in, sign_cb, &sc, &sink, err);
		sigfs_keys_format_key_free(&fk);
	}
	if (r < 0)
		out_done(io->dirfd, o, false);
	else
		j->ready.streamed = true;
	return r;
}

/* The whole file was read (or hashed while written): sign it. */
static int sign_file(struct sigfs_engine *e, struct job *j, unsigned worker, struct sbuf *out,
		     struct signed_what *what, char *err)
{
	struct job_io *io = &j->io;
	struct sigfs_format_input in = { .name = j->name, .now = sigfs_keys_now(e->ks), .state = io->h,
					 .message_fd = -1 };
	int r = artifact_changed(j);

	if (r < 0)
		return r;
	note_state(what, io->h);
	if (io->stream) {
		in.message_len = (size_t)io->st.st_size;
		in.message_file = true;
		in.message_fd = io->fd;
	} else if (io->need_msg) {
		in.message = io->msg;
		in.message_len = (size_t)io->st.st_size;
		in.message_file = !io->msg;
		in.message_fd = io->copyfd;
	}
	if (io->f->produce_stream)
		return stream_out(e, j, &in, worker, err);
	/* NAME.signed holds the artifact: room for it besides the signature. */
	if (io->f->whole_artifact && (uint64_t)io->st.st_size <= SIZE_MAX - OUTPUT_MAX)
		out->max = OUTPUT_MAX + (size_t)io->st.st_size;
	return produce(e, &io->k, io->f, &in, worker, out, err);
}

/*
 * A spool job's name before it is opened: what is not a regular file (a
 * symbolic link, a FIFO, a device) is refused without opening it; its
 * stat, for the NAME.err, stays in io->st.
 */
static int spool_precheck(struct job *j, char *err)
{
	struct job_io *io = &j->io;

	if (fstatat(io->dirfd, j->name, &io->st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    io->st.st_ino != j->ino)
		return -ECANCELED;
	if (S_ISLNK(io->st.st_mode))
		return sigfs_seterr(err, -EPERM, "symbolic links are refused: copy the file "
				    "itself into the inbox");
	if (!S_ISREG(io->st.st_mode))
		return sigfs_seterr(err, -EPERM, "not a regular file (a FIFO, a device, a "
				    "socket or a directory): refused");
	return 0;
}

/* Open the job's artifact and find out what it is. */
static int job_open(struct sigfs_engine *e, struct job *j, char *err)
{
	struct job_io *io = &j->io;
	char base[NAME_MAX_LEN + 1];

	memset(io, 0, sizeof(*io));
	io->open = true;
	io->dirfd = io->fd = io->copyfd = -1;
	if (sigfs_keys_get(e->ks, j->key, &io->k) < 0) {
		log_warn("key %s: deleted before its job for an artifact ran", j->key);
		return -ECANCELED;
	}
	io->kind = input_kind(&io->k, j->name);
	kind_base(io->kind, j->name, base);
	io->f = sigfs_format_for(io->k.format, base);
	io->dirfd = job_dir(e, j);
	io->dir_borrowed = j->spool;
	if (io->dirfd < 0)
		return -ECANCELED;
	if (j->spool) {
		int r = spool_precheck(j, err);

		if (r < 0)
			return r;
	}
	io->fd = openat(io->dirfd, j->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	/* Removed or replaced since: the replacement has its own job. */
	if (io->fd < 0 || fstat(io->fd, &io->st) < 0 || io->st.st_ino != j->ino)
		return -ECANCELED;
	if (!S_ISREG(io->st.st_mode))
		return sigfs_seterr(err, -EINVAL, "not a regular file");
	if (j->spool && j->admit) {
		struct stat dst;
		int r = fstat(io->dirfd, &dst) < 0 ? -errno : j->admit(&dst, &io->st, err);

		if (r < 0)
			return r;
	}
	return io->kind == IN_FILE ? file_start(e, j, err) : 0;
}

static void log_failure(const struct job *j, const char *err)
{
	char esc[SIGFS_ESCAPED_MAX];

	log_err("key %s: %s: %s", j->key, sigfs_escape(j->name, esc, sizeof(esc)), err);
}

/* A file: read it, in turns (JOB_YIELD), unless its writes were hashed; then sign it. */
static int make_file(struct sigfs_engine *e, struct job *j, unsigned worker, char *err)
{
	int r = j->io.done_reading ? 0 : read_file(e, j, err);

	return r == 0 ? sign_file(e, j, worker, &j->ready.out, &j->ready.what, err) : r;
}

/* A digest line, or a file that only has a digest's suffix: then it is made as a file. */
static int make_digest(struct sigfs_engine *e, struct job *j, unsigned worker, char *err)
{
	bool as_file = false;
	int r = sign_digest_line(e, j, worker, &j->ready.out, &j->ready.what, &as_file, err);

	if (r == 0 && as_file) {
		r = file_start(e, j, err);
		if (r == 0)
			r = make_file(e, j, worker, err);
	}
	return r;
}

static int make_request(struct sigfs_engine *e, struct job *j, unsigned worker, char *err)
{
	return sign_request(e, j, worker, &j->ready.out, &j->ready.what, err);
}

/*
 * The job's result r becomes j->ready: its signature, or the one line of
 * NAME.err saying why it failed (err). Returns 0 (j->ready holds an output)
 * or r when nothing is to be placed (-ECANCELED, -ENOSPC, -EDQUOT).
 */
static int make_result(struct job *j, int r, char *err)
{
	struct ready *rd = &j->ready;
	char line[SIGFS_ERRLEN + 2];
	int n;

	rd->st = j->io.st;
	rd->result = r;
	kind_base(j->io.kind, j->name, rd->base);
	if (r == 0) {
		rd->suffix = j->io.f->suffix;
		rd->is_sig = true;
		rd->made = true;
		return 0;
	}
	if (r == -ECANCELED || r == -ESTALE || no_space(r))
		return r;
	if (j->io.st.st_ino != j->ino)
		return -ECANCELED;
	/*
	 * Failed because the artifact changed under it (a streaming format read
	 * past its new end): the change has its own job, this one no NAME.err.
	 */
	if (__atomic_load_n(&j->stale, __ATOMIC_RELAXED))
		return -ECANCELED;
	if (j->io.open && j->io.fd >= 0) {
		int c = artifact_changed(j);

		if (c < 0)
			return c;
	}
	if (!err[0])
		snprintf(err, SIGFS_ERRLEN, "signing failed: %s", strerror(-r));
	log_failure(j, err);
	n = snprintf(line, sizeof(line), "%s\n", err);
	sbuf_free(&rd->out);
	sbuf_init(&rd->out, OUTPUT_MAX);
	rd->suffix = ".err";
	rd->is_sig = false;
	if (sbuf_put(&rd->out, line, (size_t)n) < 0)
		return -ENOMEM;
	rd->made = true;
	return 0;
}

/*
 * Make the job's output into j->ready, by the kind of its input. Returns 0
 * (j->ready holds an output), JOB_YIELD, -ECANCELED (nothing to place), or
 * -ENOSPC/-EDQUOT (no room for the private copy of the message).
 */
static int make_output(struct sigfs_engine *e, struct job *j, unsigned worker)
{
	static int (*const make[])(struct sigfs_engine *, struct job *, unsigned, char *) = {
		[IN_FILE] = make_file, [IN_DIGEST] = make_digest, [IN_REQUEST] = make_request,
	};
	char err[SIGFS_ERRLEN] = "";
	int r = 0;

	if (!j->io.open)
		r = job_open(e, j, err);
	if (r == 0)
		r = make[j->io.kind](e, j, worker, err);
	return r == JOB_YIELD ? r : make_result(j, r, err);
}

/* j->ready is done with: its bytes wiped, a streamed output's file closed and unnamed. */
static void ready_free(struct sigfs_engine *e, struct job *j)
{
	struct ready *rd = &j->ready;

	if (rd->streamed) {
		int dirfd = job_dir(e, j);

		out_done(dirfd, &rd->file, false);
		job_dir_done(j, dirfd);
		rd->streamed = false;
	}
	sbuf_free(&rd->out);
	rd->made = false;
}

/* Place j->ready; a signature that cannot be written becomes NAME.err. */
static int place_ready(struct sigfs_engine *e, struct job *j)
{
	struct ready *rd = &j->ready;
	int dirfd, r;

	dirfd = job_dir(e, j);
	if (dirfd < 0)
		return -ECANCELED;
	r = place_output(e, j, dirfd, &rd->st, rd->suffix, rd->streamed ? NULL : rd->out.d,
			 rd->out.len, rd->is_sig ? &rd->what : NULL);
	rd->streamed = rd->streamed && no_space(r);     /* else placed, or given up */
	if (r < 0 && rd->is_sig && r != -ECANCELED && r != -ESTALE && !no_space(r)) {
		char line[SIGFS_ERRLEN + 2];
		int n = snprintf(line, sizeof(line), "cannot write the signature: %s\n",
				 strerror(-r));

		log_failure(j, line);
		rd->result = r;
		r = place_output(e, j, dirfd, &rd->st, ".err", line, (size_t)n, NULL);
	}
	job_dir_done(j, dirfd);
	return r < 0 ? r : rd->result;
}

/*
 * Run one turn of a job. Returns 0 (signed), JOB_YIELD (more to read, another
 * user waits), JOB_RETRY (a spool file's ctime alone moved: start it again,
 * a few times), -ECANCELED (the artifact changed or went: nothing placed),
 * -ENOSPC/-EDQUOT (no room for the copy, the output or the audit line: try
 * again later; a made output is kept for that), or another negative errno
 * (failed, NAME.err written).
 */
static int run_job(struct sigfs_engine *e, struct job *j, unsigned worker)
{
	int r = 0;

	/* Rewritten or replaced since it was queued (or while it waited for its turn). */
	if (__atomic_load_n(&j->stale, __ATOMIC_RELAXED)) {
		r = -ECANCELED;
		goto out;
	}
	if (!j->ready.made) {
		sbuf_init(&j->ready.out, OUTPUT_MAX);
		r = make_output(e, j, worker);
		if (r == JOB_YIELD)
			return r;
		if (r < 0)
			goto out;
	}
	io_close(&j->io);
	r = place_ready(e, j);
	if (no_space(r))
		return r;
out:
	io_close(&j->io);
	ready_free(e, j);
	if (r == -ESTALE && j->retries++ < RETRY_MAX)
		return JOB_RETRY;
	return r == -ESTALE ? -ECANCELED : r;
}

/* --- lanes -------------------------------------------------------------------- */

static void live_unlink(struct sigfs_engine *e, struct job *j)
{
	pthread_mutex_lock(&e->live_lock);
	e->live_derived -= j->derived;
	if (j->lprev)
		j->lprev->lnext = j->lnext;
	else
		*live_bucket(e, j->key, j->name) = j->lnext;
	if (j->lnext)
		j->lnext->lprev = j->lprev;
	pthread_mutex_unlock(&e->live_lock);
}

static void job_free(struct job *j)
{
	sigfs_dirref_put(j->sdir);
	io_close(&j->io);
	sbuf_free(&j->ready.out);
	if (j->ready.streamed && j->ready.file.fd >= 0)
		close(j->ready.file.fd);
	sigfs_hasher_free(j->state);
	free(j);
}

/* Queue j in its user's flow (lock held): at the end, or first (a job resuming its turn). */
static int flow_push(struct lane *l, struct job *j, bool front)
{
	struct flow *fl;

	for (fl = l->flows; fl && fl->uid != j->uid; fl = fl->next)
		;
	if (!fl) {
		fl = calloc(1, sizeof(*fl));
		if (!fl)
			return -ENOMEM;
		fl->uid = j->uid;
		if (l->flows_tail)
			l->flows_tail->next = fl;
		else
			l->flows = fl;
		l->flows_tail = fl;
	}
	if (front) {
		j->next = fl->head;
		fl->head = j;
		if (!fl->tail)
			fl->tail = j;
	} else {
		j->next = NULL;
		if (fl->tail)
			fl->tail->next = j;
		else
			fl->head = j;
		fl->tail = j;
	}
	l->queued++;
	__atomic_add_fetch(&l->e->backlog, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&l->cond);
	return 0;
}

static bool due(const struct timespec *t, const struct timespec *now)
{
	return t->tv_sec < now->tv_sec || (t->tv_sec == now->tv_sec && t->tv_nsec <= now->tv_nsec);
}

/*
 * The next job of lane l (lock held): the first job of the first flow, whose
 * flow then goes to the end of the line. Deferred jobs whose time has come
 * join their flows first. NULL if nothing is ready; *wake is then when the
 * next deferred job is (tv_sec 0: none).
 */
static struct job *lane_next(struct lane *l, struct timespec *wake)
{
	struct timespec now;
	struct flow *fl;
	struct job *j;

	clock_gettime(CLOCK_MONOTONIC, &now);
	wake->tv_sec = 0;
	for (struct job **pp = &l->delayed; (j = *pp);) {
		if (due(&j->not_before, &now)) {
			*pp = j->next;
			if (flow_push(l, j, false) == 0)
				continue;
			j->next = *pp;      /* no memory for a flow: stays delayed */
			*pp = j;
		}
		if (!wake->tv_sec || !due(wake, &j->not_before))
			*wake = j->not_before;
		pp = &j->next;
	}
	fl = l->flows;
	if (!fl)
		return NULL;
	j = fl->head;
	fl->head = j->next;
	if (!fl->head)
		fl->tail = NULL;
	l->flows = fl->next;
	if (!l->flows)
		l->flows_tail = NULL;
	if (fl->head) {
		fl->next = NULL;
		if (l->flows_tail)
			l->flows_tail->next = fl;
		else
			l->flows = fl;
		l->flows_tail = fl;
	} else {
		free(fl);
	}
	l->queued--;
	__atomic_sub_fetch(&l->e->backlog, 1, __ATOMIC_RELAXED);
	return j;
}

/* A job that found no space waits and tries again, later each time (lock held). */
static void lane_defer(struct lane *l, struct job *j)
{
	unsigned ms = DEFER_FIRST_MS << (j->defers < 4 ? j->defers : 4);

	if (ms > DEFER_MAX_MS)
		ms = DEFER_MAX_MS;
	j->defers++;
	clock_gettime(CLOCK_MONOTONIC, &j->not_before);
	j->not_before.tv_sec += ms / 1000;
	j->not_before.tv_nsec += (long)(ms % 1000) * 1000000;
	if (j->not_before.tv_nsec >= 1000000000) {
		j->not_before.tv_sec++;
		j->not_before.tv_nsec -= 1000000000;
	}
	j->next = l->delayed;
	l->delayed = j;
}

/* Tell the front end once; a deferred job's later end has nobody to tell. */
static void job_report(struct job *j, int result)
{
	void (*done)(void *, int) = j->done;

	j->done = NULL;
	if (done)
		done(j->arg, result);
}

struct worker_arg {
	struct lane *l;
	unsigned index;
};

static void *worker_main(void *p)
{
	struct worker_arg *wa = p;
	struct lane *l = wa->l;
	struct sigfs_engine *e = l->e;
	unsigned index = wa->index;

	free(wa);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct timespec wake;
		struct job *j;
		int r;

		if (e->stopping)
			break;
		j = lane_next(l, &wake);
		if (!j) {
			if (wake.tv_sec)
				pthread_cond_timedwait(&l->cond, &e->lock, &wake);
			else
				pthread_cond_wait(&l->cond, &e->lock);
			continue;
		}
		l->running++;
		pthread_mutex_unlock(&e->lock);

		r = run_job(e, j, index);

		pthread_mutex_lock(&e->lock);
		l->running--;
		/* A yielding job keeps its place at the head of its flow; a retry goes last. */
		if ((r == JOB_YIELD || r == JOB_RETRY) && !e->stopping &&
		    flow_push(l, j, r == JOB_YIELD) == 0)
			continue;
		if (no_space(r) && !e->stopping) {
			char esc[SIGFS_ESCAPED_MAX];

			if (j->defers == 0)
				log_err("key %s: %s: no space left for its output: it is signed when "
					"the state directory has room again", j->key,
					sigfs_escape(j->name, esc, sizeof(esc)));
			lane_defer(l, j);
			pthread_mutex_unlock(&e->lock);
			job_report(j, r);
			pthread_mutex_lock(&e->lock);
			continue;
		}
		if (r == JOB_YIELD || r == JOB_RETRY || no_space(r)) {
			/* Stopping: the job stays journaled and is done at the next start. */
			pthread_mutex_unlock(&e->lock);
			live_unlink(e, j);
			job_report(j, -ETIMEDOUT);
			job_free(j);
			pthread_mutex_lock(&e->lock);
			continue;
		}
		if (r == 0)
			e->signed_total++;
		else if (r != -ECANCELED)
			e->failed_total++;
		pthread_mutex_unlock(&e->lock);
		if (!j->spool)
			sigfs_journal_done(e->journal, j->id);
		live_unlink(e, j);
		job_report(j, r);
		job_free(j);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* The lane of backend (lock held), made with its workers on first use. */
static int lane_get(struct sigfs_engine *e, const char *backend, struct lane **out)
{
	unsigned n = e->cfg->workers ? e->cfg->workers : 1;
	pthread_condattr_t ca;
	struct lane *l;

	for (l = e->lanes; l; l = l->next) {
		if (strcmp(l->backend, backend) == 0) {
			*out = l;
			return 0;
		}
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->threads = calloc(n, sizeof(*l->threads));
	if (!l->threads) {
		free(l);
		return -ENOMEM;
	}
	l->e = e;
	snprintf(l->backend, sizeof(l->backend), "%s", backend);
	/* Deferred jobs wake workers at CLOCK_MONOTONIC times (lane_next). */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	for (unsigned i = 0; i < n; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));

		if (!wa)
			break;
		wa->l = l;
		wa->index = i;
		if (pthread_create(&l->threads[i], NULL, worker_main, wa) != 0) {
			free(wa);
			break;
		}
		l->nthreads++;
	}
	if (l->nthreads == 0) {
		pthread_cond_destroy(&l->cond);
		free(l->threads);
		free(l);
		log_err("backend %s: cannot start a signer thread", backend);
		return -EAGAIN;
	}
	if (l->nthreads < n)
		log_warn("backend %s: started %u of %u signer threads", backend, l->nthreads, n);
	l->next = e->lanes;
	e->lanes = l;
	*out = l;
	return 0;
}

static int enqueue(struct sigfs_engine *e, struct job *j)
{
	struct sigfs_key k;
	struct job **head;
	int r;

	/* A job of a deleted key goes anywhere: it ends at once. */
	if (sigfs_keys_get(e->ks, j->key, &k) < 0) {
		snprintf(k.backend, sizeof(k.backend), "%s", "");
		j->derived = true;
	} else {
		j->derived = input_kind(&k, j->name) != IN_FILE;
	}
	/* Live before it is queued: a worker may take it (and end it) at once. */
	pthread_mutex_lock(&e->live_lock);
	e->live_derived += j->derived;
	head = live_bucket(e, j->key, j->name);
	j->lnext = *head;
	j->lprev = NULL;
	if (*head)
		(*head)->lprev = j;
	*head = j;
	pthread_mutex_unlock(&e->live_lock);
	pthread_mutex_lock(&e->lock);
	r = e->stopping ? -ESHUTDOWN : lane_get(e, k.backend, &j->lane);
	if (r == 0)
		r = flow_push(j->lane, j, false);
	pthread_mutex_unlock(&e->lock);
	if (r < 0)
		live_unlink(e, j);
	return r;
}

/* --- the front end's calls ---------------------------------------------------- */

void sigfs_engine_forget(struct sigfs_engine *e, const char *key, const char *name)
{
	sigfs_engine_forget_at(e, key, -1, name);
}

/*
 * Mark stale the live jobs of key named cand whose outputs are named after
 * base (spool: of the spool, else of the mount). base's out lock and live_lock held.
 */
static void stale_named(struct sigfs_engine *e, const struct sigfs_key *k, const char *cand,
			const char *base, bool spool)
{
	for (struct job *j = *live_bucket(e, k->name, cand); j; j = j->lnext) {
		char jbase[NAME_MAX_LEN + 1];

		/* A daemon has one spool: its jobs and the mount's never share outputs. */
		if (j->spool != spool || strcmp(j->key, k->name) != 0 || strcmp(j->name, cand) != 0)
			continue;
		output_base(k, j->name, jbase);
		if (strcmp(jbase, base) == 0)
			__atomic_store_n(&j->stale, true, __ATOMIC_RELAXED);
	}
}

void sigfs_engine_forget_at(struct sigfs_engine *e, const char *key, int dir, const char *name)
{
	char base[NAME_MAX_LEN + 1], cand[NAME_MAX_LEN + 32];
	const struct sigfs_digest *d;
	pthread_mutex_t *ol;
	struct sigfs_key k;
	int dirfd;

	if (sigfs_engine_ignored(name) || strlen(name) > NAME_MAX_LEN ||
	    sigfs_keys_get(e->ks, key, &k) < 0)
		return;
	output_base(&k, name, base);
	dirfd = inbox_dir(e, key, dir);
	ol = out_lock_of(e, key, base);
	pthread_mutex_lock(ol);
	pthread_mutex_lock(&e->live_lock);
	/*
	 * The inputs whose outputs can be named after base: base, and, while
	 * any live job has such a name, base.<digest> and base.sigreq.
	 */
	stale_named(e, &k, base, base, dir >= 0);
	for (size_t i = 0; e->live_derived && (d = sigfs_digest_at(i)); i++) {
		snprintf(cand, sizeof(cand), "%s.%s", base, d->name);
		stale_named(e, &k, cand, base, dir >= 0);
	}
	if (e->live_derived) {
		snprintf(cand, sizeof(cand), "%s.sigreq", base);
		stale_named(e, &k, cand, base, dir >= 0);
	}
	pthread_mutex_unlock(&e->live_lock);
	pthread_mutex_unlock(ol);
	/*
	 * Outside the out lock (placing outputs waits for it): no job marked stale
	 * places anything any more, and an output a job of base places meanwhile
	 * is removed or kept just as if it had been placed before or after this
	 * call held the lock.
	 */
	if (dirfd >= 0)
		remove_outputs(dirfd, base, dir < 0 ? SEEN_ALL :
					    !base_may_have_outputs(e, key, base) ? 0 :
					    outputs_may_exist(e, key));
	inbox_done(dirfd, dir);
}

int sigfs_engine_begin(struct sigfs_engine *e, const char *key, const char *name, uint64_t ino,
		       uid_t uid, uint64_t *id)
{
	struct sigfs_key k;
	uint64_t nid;
	int r;

	*id = 0;
	if (sigfs_engine_ignored(name) || sigfs_keys_get(e->ks, key, &k) < 0 ||
	    strlen(name) > NAME_MAX_LEN)
		return 0;
	/* Journal first: a crash from here on leaves NAME.err, never nothing. */
	nid = sigfs_journal_next_id(e->journal);
	r = sigfs_journal_append(e->journal, 'W', nid, ino, uid, key, name);
	if (r < 0)
		return r;
	sigfs_engine_forget(e, key, name);
	*id = nid;
	return 0;
}

int sigfs_engine_begun(struct sigfs_engine *e, uint64_t id, const char *key, const char *name,
		       uint64_t ino, uid_t uid)
{
	return id ? sigfs_journal_append(e->journal, 'W', id, ino, uid, key, name) : 0;
}

struct sigfs_hasher *sigfs_engine_file_hasher(struct sigfs_engine *e, const char *key)
{
	struct sigfs_key k;
	const EVP_MD *md;

	if (sigfs_keys_get(e->ks, key, &k) < 0)
		return NULL;
	md = sigfs_format_file_md(k.format, k.alg, k.digest);
	return md ? sigfs_hasher_new(md) : NULL;
}

void sigfs_engine_drop(struct sigfs_engine *e, uint64_t id)
{
	if (id)
		sigfs_journal_done(e->journal, id);
}

/* A spool job: a reference to its directory, and queued without a journal record. */
static int submit_spool(struct sigfs_engine *e, struct job *j, const struct sigfs_submit *s)
{
	int r;

	j->spool = true;
	j->admit = s->admit;
	j->sdir = sigfs_dirref_get(s->dir);
	r = enqueue(e, j);
	if (r < 0)
		job_free(j);
	return r;
}

/* Is out in dirfd a regular file of st's owner, with st's mtime (an output for st's content)? */
static bool output_is_for(int dirfd, const char *out, const struct stat *st)
{
	struct stat ost;

	return fstatat(dirfd, out, &ost, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(ost.st_mode) &&
	       ost.st_uid == st->st_uid && ost.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	       ost.st_mtim.tv_nsec == st->st_mtim.tv_nsec;
}

bool sigfs_engine_output_current(struct sigfs_engine *e, const char *key, int dir,
				 const char *name, const struct stat *st)
{
	char base[NAME_MAX_LEN + 1], out[NAME_MAX_LEN + 32];
	const struct sigfs_format *f;
	struct sigfs_key k;
	bool current;
	int dirfd;

	if (strlen(name) > NAME_MAX_LEN || sigfs_keys_get(e->ks, key, &k) < 0)
		return false;
	output_base(&k, name, base);
	dirfd = inbox_dir(e, key, dir);
	if (dirfd < 0)
		return false;
	snprintf(out, sizeof(out), "%s.err", base);
	current = output_is_for(dirfd, out, st);
	for (size_t i = 0; !current && (f = sigfs_format_at(i)); i++) {
		snprintf(out, sizeof(out), "%s%s", base, f->suffix);
		current = output_is_for(dirfd, out, st);
	}
	inbox_done(dirfd, dir);
	return current;
}

int sigfs_engine_submit(struct sigfs_engine *e, const struct sigfs_submit *s)
{
	bool reported;
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
	j->write_err = s->write_err;
	j->id = s->id ? s->id : sigfs_journal_next_id(e->journal);
	j->state = s->state;
	j->done = s->done;
	j->arg = s->arg;
	j->sdir = NULL;
	if (s->spool)
		return submit_spool(e, j, s);
	r = sigfs_journal_append(e->journal, 'A', j->id, j->ino, j->uid, j->key, j->name);
	reported = no_space(r);
	if (reported) {
		/*
		 * Not accepted for good (a crash now leaves NAME.err, from the write's
		 * record), but it is signed, or gets its NAME.err, once there is room;
		 * the writer learns that at once.
		 */
		job_report(j, r);
		r = 0;
	}
	if (r == 0)
		r = enqueue(e, j);
	if (r < 0) {
		job_free(j);
		return reported ? 0 : r;    /* done() ran already: it was told */
	}
	return 0;
}

/* --- start, stop, status ---------------------------------------------------------- */

/* 'W' left by the last run: the writer never finished; say so in NAME.err. */
static void mark_unfinished(struct sigfs_engine *e, const struct sigfs_journal_entry *v)
{
	static const char msg[] = "sigfsd stopped while this file was being written: it was not "
				  "signed; write it again\n";
	struct job j = { .id = v->id, .ino = v->ino, .uid = v->uid };
	struct job_io *io = &j.io;
	int r;

	io->dirfd = io->fd = io->copyfd = -1;
	io->open = true;
	strcpy(j.key, v->key);
	strcpy(j.name, v->name);
	io->dirfd = openat(e->inbox_root, v->key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* Inode 0: the daemon stopped while creating it; whatever holds the name now is that file. */
	if (io->dirfd >= 0 && sigfs_keys_get(e->ks, v->key, &io->k) == 0 &&
	    fstatat(io->dirfd, v->name, &io->st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(io->st.st_mode) && (io->st.st_ino == v->ino || v->ino == 0)) {
		j.ino = io->st.st_ino;
		output_base(&io->k, j.name, j.ready.base);
		r = place_output(e, &j, io->dirfd, &io->st, ".err", msg, sizeof(msg) - 1, NULL);
		if (r < 0)
			log_err("journal: cannot mark %s/%s as unfinished: %s", v->key, v->name,
				strerror(-r));
	}
	io_close(io);
}

/* Sign again what the journal says was accepted when the daemon last stopped. */
static void recover(struct sigfs_engine *e, const struct sigfs_journal_entry *v, size_t n)
{
	size_t resumed = 0;

	for (size_t i = 0; i < n; i++) {
		struct sigfs_submit s = { .key = v[i].key, .name = v[i].name, .ino = v[i].ino,
					  .id = v[i].id, .uid = v[i].uid };

		if (v[i].op != 'A')
			continue;
		if (sigfs_engine_submit(e, &s) == 0)
			resumed++;
		else
			log_err("journal: cannot queue the accepted job for %s/%s again",
				v[i].key, v[i].name);
	}
	if (resumed)
		log_info("journal: resumed %zu accepted jobs", resumed);
}

void sigfs_engine_unfinished(struct sigfs_engine *e, sigfs_take_fn take, void *arg)
{
	const struct sigfs_journal_entry *v = e->pending;
	size_t n = 0;

	for (size_t i = 0; i < e->npending; i++) {
		struct sigfs_submit s = { .key = v[i].key, .name = v[i].name, .ino = v[i].ino,
					  .id = v[i].id, .uid = v[i].uid };

		if (v[i].op != 'W')
			continue;
		n++;
		/* Inode 0: it was being created; only its name says which file it is. */
		if (take && v[i].ino != 0) {
			take(arg, &s);
			continue;
		}
		mark_unfinished(e, &v[i]);
		sigfs_journal_done(e->journal, v[i].id);
	}
	if (n)
		log_info("journal: %s %zu unfinished writes", take ? "took over" : "marked", n);
	free(e->pending);
	e->pending = NULL;
	e->npending = 0;
}

static void out_locks_destroy(struct sigfs_engine *e)
{
	for (size_t i = 0; i < OUT_STRIPES; i++)
		pthread_mutex_destroy(&e->out_locks[i]);
	pthread_mutex_destroy(&e->live_lock);
}

/*
 * Does the umask take bits of 0444? Read from /proc/self/status: umask()
 * would change it for a moment under threads that create files. Unknown
 * counts as yes (one more fchmod per output).
 */
static bool umask_masks_0444(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned mask = 0777;
	char line[128];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Umask: %o", &mask) == 1)
			break;
	if (f)
		fclose(f);
	return (mask & 0444) != 0;
}

int sigfs_engine_start(const struct sigfs_config *cfg, struct sigfs_keys *ks,
		       struct sigfs_audit *audit, struct sigfs_engine **out, char *err)
{
	struct sigfs_engine *e = calloc(1, sizeof(*e));
	struct sigfs_journal_entry *pending = NULL;
	size_t npending = 0;
	int r;

	if (!e)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	e->cfg = cfg;
	e->ks = ks;
	e->audit = audit;
	e->inbox_root = sigfs_keys_inbox_root(ks);
	e->umask_masks_0444 = umask_masks_0444();
	pthread_mutex_init(&e->lock, NULL);
	for (size_t i = 0; i < OUT_STRIPES; i++)
		pthread_mutex_init(&e->out_locks[i], NULL);
	pthread_mutex_init(&e->live_lock, NULL);
	pthread_mutex_init(&e->seen_lock, NULL);
	r = sigfs_journal_open(sigfs_keys_state_dir(ks), "journal", cfg->fsync, &e->journal,
			       &pending, &npending, err);
	if (r < 0) {
		pthread_mutex_destroy(&e->lock);
		out_locks_destroy(e);
		free(e);
		return r;
	}
	recover(e, pending, npending);
	e->pending = pending;
	e->npending = npending;
	*out = e;
	return 0;
}

/* Jobs still queued at stop stay journaled: the next start signs them. */
static void lane_drop_queued(struct sigfs_engine *e, struct lane *l)
{
	struct timespec wake;
	struct job *j;

	while ((j = l->delayed)) {
		l->delayed = j->next;
		live_unlink(e, j);
		job_free(j);
	}
	while ((j = lane_next(l, &wake))) {
		live_unlink(e, j);
		job_report(j, -ETIMEDOUT);
		job_free(j);
	}
}

void sigfs_engine_stop(struct sigfs_engine *e)
{
	struct lane *l, *next;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	for (l = e->lanes; l; l = l->next)
		pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&e->lock);
	for (l = e->lanes; l; l = l->next)
		for (unsigned i = 0; i < l->nthreads; i++)
			pthread_join(l->threads[i], NULL);
	for (l = e->lanes; l; l = next) {
		next = l->next;
		lane_drop_queued(e, l);
		pthread_cond_destroy(&l->cond);
		free(l->threads);
		free(l);
	}
	sigfs_journal_close(e->journal);
	free(e->pending);
	for (size_t i = 0; i < SEEN_BUCKETS; i++) {
		for (struct seen *s = e->seen[i], *n; s; s = n) {
			n = s->next;
			free(s);
		}
	}
	pthread_mutex_destroy(&e->seen_lock);
	pthread_mutex_destroy(&e->lock);
	out_locks_destroy(e);
	free(e);
}

size_t sigfs_engine_backlog(struct sigfs_engine *e)
{
	return __atomic_load_n(&e->backlog, __ATOMIC_RELAXED);
}

int sigfs_engine_status(struct sigfs_engine *e, char **buf, size_t *len)
{
	struct sigfs_key *keys;
	size_t queued = 0;
	unsigned running = 0;
	struct sbuf b;
	char line[512];
	int n, nk;

	sbuf_init(&b, 1 << 20);
	pthread_mutex_lock(&e->lock);
	for (struct lane *l = e->lanes; l; l = l->next) {
		queued += l->queued;
		running += l->running;
	}
	n = snprintf(line, sizeof(line),
		     "queue: %zu waiting, %u signing\nworkers: %u\nsigned: %" PRIu64
		     "\nfailed: %" PRIu64 "\n", queued, running, e->cfg->workers ? e->cfg->workers : 1,
		     e->signed_total, e->failed_total);
	sbuf_put(&b, line, (size_t)n);
	for (struct lane *l = e->lanes; l; l = l->next) {
		size_t users = 0, delayed = 0;

		for (struct flow *fl = l->flows; fl; fl = fl->next)
			users++;
		for (struct job *j = l->delayed; j; j = j->next)
			delayed++;
		n = snprintf(line, sizeof(line), "lane %s: %zu waiting (%zu users), %u signing, "
			     "%zu deferred (no space), %u workers\n", l->backend[0] ? l->backend : "-",
			     l->queued, users, l->running, delayed, l->nthreads);
		sbuf_put(&b, line, (size_t)n);
	}
	pthread_mutex_unlock(&e->lock);
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
