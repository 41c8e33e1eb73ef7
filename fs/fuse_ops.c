/*
 * fuse_ops.c: the sigfs tree on the libfuse low-level API.
 *
 *   /                 root: one directory per key (its inbox) and .ctl
 *   /KEY/             inbox, backed by <state>/inbox/KEY/ (a real directory)
 *   /.ctl/keys/KEY/   the key's attributes (signer/keys.h), synthesized
 *   /.ctl/status      what the engine is doing
 *
 * Node ids: backed objects use their inode number (stable across restarts,
 * resolvable after the kernel forgot them: what NFS export needs); the .ctl
 * tree uses ids tagged in the top byte, derived from the key's own inode.
 *
 * Writes go straight to the backing file and are hashed on the way when they
 * arrive in order. The flush of the last writer hands the artifact to the
 * engine and is answered when the engine is done (or the time limit passes),
 * from the engine's thread: a FUSE thread never waits for a signature.
 * With settle_ms (an NFS export: NFSv3 has no close), closes sign nothing:
 * the settle thread hands over an artifact nothing modified for settle_ms,
 * open or not.
 *
 * Open files and directories are known to the kernel by ids (fi->fh) from
 * the handle table (fs/fhtab.h), never by pointers: after a restart on a
 * kept FUSE connection the kernel (an NFS server's open files) still holds
 * the previous daemon's ids. Such an id is adopted: a file is opened again
 * under it (handle_adopt), a listing made again (dir_handle).
 *
 * Permissions are the kernel's (default_permissions) on the attributes
 * reported here; the daemon runs as root and gives each new file to the
 * user who created it. The rules the front end adds (hidden names, the
 * sticky inbox, close() results) are in fs/rules.h.
 *
 * One static function per op, as in libfuse's example/passthrough_ll.c: it
 * finds its state with fs_data(req) and sends the one reply; helpers return 0
 * or -errno and never reply (refuse() logs why and returns the error).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "fs/fhtab.h"
#include "fs/fuse_ops.h"
#include "fs/nodes.h"
#include "fs/rules.h"

#define ID_CTL 0xFF00000000000001ULL
#define ID_KEYS 0xFF00000000000002ULL
#define ID_STATUS 0xFF00000000000003ULL
#define TAG_KEYDIR 0xFEULL
#define TAG_ATTR0 0xE0ULL
#define TAG(id) ((id) >> 56)
#define INO_MASK ((1ULL << 56) - 1)
#define ATTR_MAX (64 * 1024)
/* Without settle_ms, a write carried over a worker restart waits this long for its writer. */
#define CARRY_MS 2000

/*
 * The front end, passed to every op as the session's userdata (fs_data).
 * Its locks, in the order they may be taken:
 *   names_lock      a name check and the change it allows are one step
 *                   (claim_outputs)
 *   wstate.lock     one artifact's write state (struct wstate)
 *   settle_lock     the artifacts waiting to settle (settle_ms) and their
 *                   deadlines, and the settle thread; never held together
 *                   with waiters_lock
 *   waiters_lock    the closes waiting for the engine, and the close() timer
 *   waiter.lock     one waiting close's reply (sent once)
 * wlist_lock, the handle table's lock (fs/fhtab.h) and the node table's lock
 * (fs/nodes.h) are taken alone: nothing else is taken while one of them is
 * held. The engine and the key store are called with names_lock and a
 * wstate.lock held: their own locks come after these.
 */
struct sigfs_fs {
	const struct sigfs_config *cfg;
	struct sigfs_keys *ks;
	struct sigfs_engine *eng;
	struct fuse_session *se;      /* set once the session exists */
	struct fs_nodes *nodes;
	time_t start_time;
	pthread_mutex_t names_lock;
	struct wstate *wlist;         /* write states in use */
	pthread_mutex_t wlist_lock;
	/*
	 * Open handles by fi->fh; those the kernel never releases (an unmount
	 * racing the last close drops its RELEASE) are freed at the end.
	 */
	struct fs_fhtab *fh;
	struct waiter *waiters;       /* closes waiting for their job */
	pthread_mutex_t waiters_lock;
	pthread_cond_t waiters_cond;
	pthread_t timer_thread;
	bool timer_started;
	bool timer_stop;
	/* settle_ms > 0: the artifacts waiting to settle (settle_main), by wstate.snext */
	struct wstate *settling;
	pthread_mutex_t settle_lock;
	pthread_cond_t settle_cond;     /* on CLOCK_MONOTONIC */
	pthread_t settle_thread;
	bool settle_started;
	bool settle_stop;
};

static struct sigfs_fs *fs_data(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* --- write state: one per artifact open for writing --------------------------- */

struct wstate {
	pthread_mutex_t lock;
	uint64_t ino;
	unsigned writers;             /* writable handles open */
	unsigned refs;                /* handles holding this state */
	bool dirty;                   /* modified since the last job */
	uint64_t jid;                 /* journal id of the write (engine_begin), 0 if none */
	uid_t uid;                    /* who modified it last: the audit's uid= for a release */
	int write_err;                /* a write failed (errno): the content is incomplete */
	struct sigfs_hasher *hash;    /* hash of bytes 0..next (the format's kind), valid while seq */
	off_t next;
	bool seq;
	struct wstate *lnext;
	/*
	 * settle_ms: the settle list holds a reference (w->lock) while the
	 * artifact is on it (settling) or being signed by the settle thread.
	 */
	bool settle_ref;
	bool settling;                /* on fs->settling (settle_lock) */
	struct timespec settle_at;    /* signed then unless modified again (settle_lock) */
	struct wstate *snext;         /* on fs->settling (settle_lock) */
};

static struct wstate *ws_get(struct sigfs_fs *fs, uint64_t ino)
{
	struct wstate *w;

	pthread_mutex_lock(&fs->wlist_lock);
	for (w = fs->wlist; w && w->ino != ino; w = w->lnext)
		;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (w) {
			pthread_mutex_init(&w->lock, NULL);
			w->ino = ino;
			w->lnext = fs->wlist;
			fs->wlist = w;
		}
	}
	if (w)
		w->refs++;
	pthread_mutex_unlock(&fs->wlist_lock);
	return w;
}

/* The write state of ino if there is one (a reference: ws_put), else NULL. */
static struct wstate *ws_find(struct sigfs_fs *fs, uint64_t ino)
{
	struct wstate *w;

	pthread_mutex_lock(&fs->wlist_lock);
	for (w = fs->wlist; w && w->ino != ino; w = w->lnext)
		;
	if (w)
		w->refs++;
	pthread_mutex_unlock(&fs->wlist_lock);
	return w;
}

/* One more reference to w, whose holder has one already. */
static void ws_hold(struct sigfs_fs *fs, struct wstate *w)
{
	pthread_mutex_lock(&fs->wlist_lock);
	w->refs++;
	pthread_mutex_unlock(&fs->wlist_lock);
}

static void ws_put(struct sigfs_fs *fs, struct wstate *w)
{
	struct wstate **pp;

	pthread_mutex_lock(&fs->wlist_lock);
	if (--w->refs > 0) {
		pthread_mutex_unlock(&fs->wlist_lock);
		return;
	}
	for (pp = &fs->wlist; *pp != w; pp = &(*pp)->lnext)
		;
	*pp = w->lnext;
	pthread_mutex_unlock(&fs->wlist_lock);
	sigfs_hasher_free(w->hash);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Start hashing from byte 0 with the hash key's format needs (w->lock held). */
static void ws_restart_hash(struct sigfs_fs *fs, struct wstate *w, const char *key)
{
	sigfs_hasher_free(w->hash);
	w->hash = sigfs_engine_file_hasher(fs->eng, key);
	w->next = 0;
	w->seq = w->hash != NULL;
	w->write_err = 0;       /* empty again: what failed before is gone */
}

/*
 * settle_ms: w was modified just now (w->lock held, by a holder of a
 * reference). It is signed settle_ms from now unless modified again; the
 * settle list keeps it alive until then, whether or not handles stay open.
 */
static void settle_arm_ms(struct sigfs_fs *fs, struct wstate *w, unsigned ms)
{
	struct timespec *t = &w->settle_at;

	if (!w->settle_ref) {
		ws_hold(fs, w);
		w->settle_ref = true;
	}
	pthread_mutex_lock(&fs->settle_lock);
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
	if (!w->settling) {
		w->settling = true;
		w->snext = fs->settling;
		fs->settling = w;
		pthread_cond_signal(&fs->settle_cond);
	}
	pthread_mutex_unlock(&fs->settle_lock);
}

static void settle_arm(struct sigfs_fs *fs, struct wstate *w)
{
	if (fs->cfg->settle_ms)
		settle_arm_ms(fs, w, fs->cfg->settle_ms);
}

/* Take w off the settle list (settle_lock held); false if it was not on it. */
static bool settle_unlink(struct sigfs_fs *fs, struct wstate *w)
{
	struct wstate **pp;

	if (!w->settling)
		return false;
	for (pp = &fs->settling; *pp != w; pp = &(*pp)->snext)
		;
	*pp = w->snext;
	w->settling = false;
	return true;
}

/* Is the backing file of n empty now? */
static bool is_empty(struct sigfs_fs *fs, const struct fs_node *n)
{
	char path[FS_PATH_MAX];
	struct stat st;

	return fs_path(path, n->key, n->name) == 0 &&
		fstatat(sigfs_keys_inbox_root(fs->ks), path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		st.st_size == 0;
}

/*
 * The artifact is being modified (w->lock held): the first modification since
 * the last job removes its outputs and journals the write. truncated: the
 * file is empty now, so hashing can follow the writes from byte 0. Fails
 * (nothing begun) when the write cannot be journaled: without that record a
 * crash could leave no NAME.err. With settle_ms, every modification puts
 * the artifact's signing off to settle_ms from now (settle_arm).
 */
static int ws_modify(struct sigfs_fs *fs, struct wstate *w, const struct fs_node *n,
		     bool truncated, uint64_t jid, uid_t uid)
{
	int r;

	w->uid = uid;
	if (w->dirty && jid) {
		/*
		 * A new file (journaled as jid) has the number of a removed one whose
		 * write still waited to settle: that write went with its file.
		 */
		sigfs_engine_drop(fs->eng, w->jid);
		w->dirty = false;
	}
	if (w->dirty) {
		sigfs_engine_drop(fs->eng, jid);
	} else {
		if (jid) {
			/* Journaled (and outputs removed) before the file was created. */
			r = sigfs_engine_begun(fs->eng, jid, n->key, n->name, w->ino, uid);
			if (r < 0) {
				sigfs_engine_drop(fs->eng, jid);
				return r;
			}
			w->jid = jid;
		} else {
			r = sigfs_engine_begin(fs->eng, n->key, n->name, w->ino, uid, &w->jid);
			if (r < 0)
				return r;
		}
		w->dirty = true;
		if (!truncated) {
			truncated = is_empty(fs, n);
			if (!truncated)
				w->seq = false;
		}
	}
	if (truncated)
		ws_restart_hash(fs, w, n->key);
	settle_arm(fs, w);
	return 0;
}

/* --- handles ------------------------------------------------------------------ */

struct handle {
	int fd;                       /* backing file (FS_FILE) */
	uint64_t id;
	uint64_t fh;                  /* what the kernel holds in fi->fh: h's id in fs->fh */
	bool writable;                /* counted in ws->writers */
	struct wstate *ws;
	/* .ctl files: a snapshot to read, or the bytes written so far */
	enum fs_kind kind;
	int attr;
	char key[65];
	char *buf;
	size_t len;
	bool attr_dirty;
	bool attr_bad;
	bool wrote;                   /* this handle wrote since its last flush */
	uid_t uid;                    /* who opened it */
};

/* A new handle, registered in fs->fh under a new id (h->fh). */
static struct handle *handle_new(struct sigfs_fs *fs)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->fd = -1;
	if (fs_fhtab_add(fs->fh, FS_FH_FILE, h, &h->fh) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

/* The handle fi->fh stands for; NULL if this process neither issued nor adopted it. */
static struct handle *hnd(struct sigfs_fs *fs, struct fuse_file_info *fi)
{
	return fs_fhtab_get(fs->fh, fi->fh, FS_FH_FILE);
}

/* Close and free h, which the handle table does not hold (any more). */
static void handle_destroy(struct handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->buf) {
		explicit_bzero(h->buf, h->len);
		free(h->buf);
	}
	free(h);
}

static void handle_free(struct sigfs_fs *fs, struct handle *h)
{
	fs_fhtab_del(fs->fh, h->fh, h);
	handle_destroy(h);
}

/* --- node resolution and attributes ---------------------------------------------- */

static size_t n_attrs(void)
{
	size_t n = 0;

	while (sigfs_key_attr_at(n))
		n++;
	return n;
}

static int resolve(struct sigfs_fs *fs, uint64_t id, struct fs_node *n)
{
	uint64_t tag = TAG(id);
	struct sigfs_key k;

	memset(n, 0, sizeof(*n));
	n->id = id;
	n->parent = FUSE_ROOT_ID;
	if (id == FUSE_ROOT_ID) {
		n->kind = FS_ROOT;
		return 0;
	}
	if (id == ID_CTL || id == ID_KEYS || id == ID_STATUS) {
		n->kind = id == ID_CTL ? FS_CTL : id == ID_KEYS ? FS_KEYS : FS_STATUS;
		n->parent = id == ID_CTL ? FUSE_ROOT_ID : ID_CTL;
		strcpy(n->name, id == ID_CTL ? ".ctl" : id == ID_KEYS ? "keys" : "status");
		return 0;
	}
	if (tag == TAG_KEYDIR || (tag >= TAG_ATTR0 && tag < TAG_ATTR0 + n_attrs())) {
		if (sigfs_keys_get_by_ino(fs->ks, id & INO_MASK, &k) < 0)
			return -ENOENT;
		strcpy(n->key, k.name);
		if (tag == TAG_KEYDIR) {
			n->kind = FS_KEYDIR;
			n->parent = ID_KEYS;
			strcpy(n->name, k.name);
		} else {
			n->kind = FS_ATTR;
			n->attr = (int)(tag - TAG_ATTR0);
			n->parent = (TAG_KEYDIR << 56) | (id & INO_MASK);
			strcpy(n->name, sigfs_key_attr_at((size_t)n->attr)->name);
		}
		return 0;
	}
	if (tag != 0)
		return -ENOENT;
	return fs_nodes_get(fs->nodes, id, n);
}

/* The backing path of inbox or file n (FS_PATH_MAX bytes). */
static int backing_path(const struct fs_node *n, char *path)
{
	return fs_path(path, n->key, n->kind == FS_INBOX ? NULL : n->name);
}

static int ctl_content(struct sigfs_fs *fs, const struct fs_node *n, char **buf, size_t *len)
{
	if (n->kind == FS_STATUS)
		return sigfs_engine_status(fs->eng, buf, len);
	return sigfs_keys_attr_read(fs->ks, n->key, (size_t)n->attr, buf, len);
}

/* The attributes of inbox or file n are its backing object's. */
static int backed_stat(struct sigfs_fs *fs, const struct fs_node *n, struct stat *st,
		       uint64_t *gen)
{
	char path[FS_PATH_MAX];
	struct statx sx;
	int r = backing_path(n, path);

	if (r < 0)
		return r;
	if (statx(sigfs_keys_inbox_root(fs->ks), path, AT_SYMLINK_NOFOLLOW,
		  STATX_BASIC_STATS | STATX_BTIME, &sx) < 0)
		return -errno;
	/* The name now holds another file (an output replaced by the signer). */
	if (sx.stx_ino != n->id)
		return -ESTALE;
	st->st_mode = sx.stx_mode;
	st->st_nlink = sx.stx_nlink;
	st->st_uid = sx.stx_uid;
	st->st_gid = sx.stx_gid;
	st->st_size = (off_t)sx.stx_size;
	st->st_blocks = (blkcnt_t)sx.stx_blocks;
	st->st_blksize = sx.stx_blksize;
	st->st_atim.tv_sec = sx.stx_atime.tv_sec;
	st->st_atim.tv_nsec = sx.stx_atime.tv_nsec;
	st->st_mtim.tv_sec = sx.stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = sx.stx_mtime.tv_nsec;
	st->st_ctim.tv_sec = sx.stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = sx.stx_ctime.tv_nsec;
	/* A reused inode number gets another generation: stale NFS handles stay stale. */
	if (sx.stx_mask & STATX_BTIME)
		*gen = ((uint64_t)sx.stx_btime.tv_sec << 30) ^ sx.stx_btime.tv_nsec;
	return 0;
}

static int node_stat(struct sigfs_fs *fs, const struct fs_node *n, struct stat *st,
		     uint64_t *gen)
{
	gid_t admin = fs->cfg->admin_gid;

	memset(st, 0, sizeof(*st));
	*gen = 0;
	st->st_ino = n->id;
	st->st_atime = st->st_mtime = st->st_ctime = fs->start_time;
	switch (n->kind) {
	case FS_ROOT:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	case FS_CTL:
	case FS_KEYS:
	case FS_KEYDIR:
		st->st_mode = S_IFDIR | (n->kind == FS_KEYS ? 0770 : 0750);
		st->st_nlink = 2;
		st->st_gid = admin;
		return 0;
	case FS_STATUS:
	case FS_ATTR: {
		char *buf = NULL;
		size_t len = 0;

		st->st_mode = S_IFREG | (n->kind == FS_STATUS ? 0440 :
					 sigfs_key_attr_at((size_t)n->attr)->mode);
		st->st_nlink = 1;
		st->st_gid = admin;
		if (ctl_content(fs, n, &buf, &len) == 0)
			st->st_size = (off_t)len;
		free(buf);
		return 0;
	}
	case FS_INBOX:
	case FS_FILE:
		return backed_stat(fs, n, st, gen);
	}
	return -ENOENT;
}

static int make_entry(struct sigfs_fs *fs, const struct fs_node *n, struct fuse_entry_param *e)
{
	uint64_t gen;
	int r;

	memset(e, 0, sizeof(*e));
	r = node_stat(fs, n, &e->attr, &gen);
	if (r < 0)
		return r;
	e->ino = n->id;
	e->generation = gen;
	/*
	 * Names in an inbox change under clients (outputs appear, get replaced by
	 * new inodes): never cache them. A file's own attributes change only
	 * through this mount, so they may be cached; .ctl contents may not. Nor
	 * an inbox's attributes: its mtime changes when an output appears or
	 * goes, and an NFS server exporting the inbox (ganesha) trusts the names
	 * it cached while the mtime it sees stays, so it served an overwritten
	 * file's old .sig (tests/e2e/nfs_ganesha.sh, the overwrite).
	 */
	if (n->kind == FS_FILE) {
		e->attr_timeout = 1.0;
		e->entry_timeout = 0;
	} else if (n->kind == FS_ATTR || n->kind == FS_STATUS) {
		e->attr_timeout = 0;
		e->entry_timeout = 0;
	} else {
		e->attr_timeout = n->kind == FS_INBOX ? 0 : 1.0;
		e->entry_timeout = 1.0;
	}
	return 0;
}

static void reply_entry(fuse_req_t req, const struct fs_node *n)
{
	struct fuse_entry_param e;
	int r = make_entry(fs_data(req), n, &e);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, &e);
}

/* Register the backing object key[/name] and fill n. */
static int learn(struct sigfs_fs *fs, const char *key, const char *name, struct fs_node *n)
{
	int root = sigfs_keys_inbox_root(fs->ks);
	char path[FS_PATH_MAX];
	struct stat st;
	int r = fs_path(path, key, name);

	if (r < 0)
		return r;
	if (fstatat(root, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (st.st_ino == 0 || st.st_ino == FUSE_ROOT_ID || TAG((uint64_t)st.st_ino) != 0) {
		log_err("%s: inode number %llu cannot be a node id; put the state directory on "
			"another filesystem", path, (unsigned long long)st.st_ino);
		return -EOVERFLOW;
	}
	memset(n, 0, sizeof(*n));
	n->id = st.st_ino;
	n->kind = name ? FS_FILE : FS_INBOX;
	snprintf(n->key, sizeof(n->key), "%s", key);
	snprintf(n->name, sizeof(n->name), "%s", name ? name : key);
	if (name) {
		struct fs_node in;

		r = learn(fs, key, NULL, &in);
		if (r < 0)
			return r;
		n->parent = in.id;
	} else {
		n->parent = FUSE_ROOT_ID;
	}
	return fs_nodes_put(fs->nodes, n->id, n->parent, n->kind, n->key, n->name);
}

/* Log why req is refused; returns -code, for the op to reply with. */
static int refuse(fuse_req_t req, int code, const char *what, const char *name)
{
	char esc[SIGFS_ESCAPED_MAX];

	log_warn("refused (%s): %s: uid %u", strerror(code), what,
		 (unsigned)fuse_req_ctx(req)->uid);
	if (name)
		log_debug("  name: %s", sigfs_escape(name, esc, sizeof(esc)));
	return -code;
}

/* --- who may take an artifact's output names ----------------------------------------- */

/*
 * The sticky rule of fs_owner_only (fs/rules.h): no member can remove,
 * replace or shadow another member's signature by writing a digest line or a
 * request for the same name. fs->names_lock makes the check and the change it
 * allows one step.
 */
struct claim {
	uid_t uid;                    /* who asks */
	struct stat inbox;
	char in_the_way[NAME_MAX + 1];
	uid_t owner;
};

static int claim_cb(void *arg, const char *name, const struct stat *st)
{
	struct claim *c = arg;

	if (c->uid == st->st_uid)
		return 0;
	snprintf(c->in_the_way, sizeof(c->in_the_way), "%s", name);
	c->owner = st->st_uid;
	return -EPERM;
}

/*
 * May the caller of req take the output names of name in inbox key, whose
 * own file (when it exists) the kernel has let them write? 0, or -EPERM with
 * a log line naming the file in the way. fs->names_lock held.
 */
static int claim_outputs(fuse_req_t req, const char *key, const char *name)
{
	struct sigfs_fs *fs = fs_data(req);
	struct claim c = { .uid = fuse_req_ctx(req)->uid };
	char esc[SIGFS_ESCAPED_MAX], esc2[SIGFS_ESCAPED_MAX];
	int r;

	if (c.uid == 0)
		return 0;
	if (fstatat(sigfs_keys_inbox_root(fs->ks), key, &c.inbox, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!fs_owner_only(c.uid, &c.inbox))
		return 0;
	r = sigfs_engine_siblings(fs->eng, key, name, claim_cb, &c);
	if (r == -EPERM)
		log_warn("refused (%s): uid %u: %s/%s shares its outputs with %s, which belongs to "
			 "uid %u, in a sticky inbox: only that user, the inbox's owner or root may "
			 "replace them", strerror(EPERM), (unsigned)c.uid, key,
			 sigfs_escape(name, esc, sizeof(esc)),
			 sigfs_escape(c.in_the_way, esc2, sizeof(esc2)), (unsigned)c.owner);
	return r;
}

/* --- lookup, getattr ----------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sigfs_fs *fs = fs_data(req);
	struct fs_node p, n;
	struct sigfs_key k;
	int r, a;

	r = resolve(fs, parent, &p);
	if (r < 0)
		goto out_err;
	/* NFS export: "." on any node and ".." on directories must resolve. */
	if (strcmp(name, ".") == 0)
		return reply_entry(req, &p);
	if (strcmp(name, "..") == 0) {
		r = resolve(fs, p.parent, &n);
		if (r < 0)
			goto out_err;
		return reply_entry(req, &n);
	}
	switch (p.kind) {
	case FS_ROOT:
		if (strcmp(name, ".ctl") == 0)
			r = resolve(fs, ID_CTL, &n);
		else if (sigfs_keys_get(fs->ks, name, &k) < 0)
			r = -ENOENT;
		else
			r = learn(fs, name, NULL, &n);
		break;
	case FS_INBOX:
		r = fs_name_hidden(name) ? -ENOENT : learn(fs, p.key, name, &n);
		break;
	case FS_CTL:
		if (strcmp(name, "keys") == 0)
			r = resolve(fs, ID_KEYS, &n);
		else if (strcmp(name, "status") == 0)
			r = resolve(fs, ID_STATUS, &n);
		else
			r = -ENOENT;
		break;
	case FS_KEYS:
		r = sigfs_keys_get(fs->ks, name, &k);
		if (r == 0)
			r = resolve(fs, (TAG_KEYDIR << 56) | k.ino, &n);
		break;
	case FS_KEYDIR:
		a = sigfs_key_attr_find(name);
		r = a < 0 || sigfs_keys_get(fs->ks, p.key, &k) < 0 ? -ENOENT :
			resolve(fs, ((TAG_ATTR0 + (uint64_t)a) << 56) | k.ino, &n);
		break;
	default:
		r = -ENOTDIR;
	}
	if (r < 0)
		goto out_err;
	return reply_entry(req, &n);
out_err:
	fuse_reply_err(req, -r);
}

static void reply_attr(fuse_req_t req, fuse_ino_t ino)
{
	struct sigfs_fs *fs = fs_data(req);
	struct fs_node n;
	struct stat st;
	uint64_t gen;
	int r;

	r = resolve(fs, ino, &n);
	if (r == 0)
		r = node_stat(fs, &n, &st, &gen);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st,
				n.kind == FS_ATTR || n.kind == FS_STATUS || n.kind == FS_INBOX ? 0 : 1.0);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	reply_attr(req, ino);
}

/* --- submitting jobs and answering close() ------------------------------------------------ */

/*
 * A close() waiting for its job. Its reply is sent once, by whoever comes
 * first: the job's done(), the close() timer, or the flush that failed to
 * submit.
 */
struct waiter {
	struct sigfs_fs *fs;
	pthread_mutex_t lock;
	fuse_req_t req;
	bool replied;
	int refs;
	struct timespec deadline;
	struct waiter *next;
};

static void waiter_put(struct waiter *w)
{
	bool last;

	pthread_mutex_lock(&w->lock);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (last) {
		pthread_mutex_destroy(&w->lock);
		free(w);
	}
}

static void waiter_reply(struct waiter *w, int err)
{
	pthread_mutex_lock(&w->lock);
	if (!w->replied) {
		w->replied = true;
		fuse_reply_err(w->req, err);
	}
	pthread_mutex_unlock(&w->lock);
}

/* Engine callback: the job of a waiting close() ended. */
static void job_done(void *arg, int result)
{
	struct waiter *w = arg;
	struct sigfs_fs *fs = w->fs;

	waiter_reply(w, fs_close_errno(result));
	pthread_mutex_lock(&fs->waiters_lock);
	for (struct waiter **pp = &fs->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->waiters_lock);
	waiter_put(w);
}

/* Answers close() calls whose signature takes longer than close_timeout. */
static void *timer_main(void *arg)
{
	struct sigfs_fs *fs = arg;

	pthread_mutex_lock(&fs->waiters_lock);
	while (!fs->timer_stop) {
		struct timespec now, next = { 0, 0 };

		clock_gettime(CLOCK_REALTIME, &now);
		for (struct waiter **pp = &fs->waiters, *w; (w = *pp);) {
			if (w->deadline.tv_sec < now.tv_sec ||
			    (w->deadline.tv_sec == now.tv_sec && w->deadline.tv_nsec <= now.tv_nsec)) {
				/* The job goes on; its output comes later. */
				waiter_reply(w, ETIMEDOUT);
				*pp = w->next;
				continue;
			}
			if (!next.tv_sec || w->deadline.tv_sec < next.tv_sec)
				next = w->deadline;
			pp = &w->next;
		}
		if (!next.tv_sec)
			next.tv_sec = now.tv_sec + 3600;
		pthread_cond_timedwait(&fs->waiters_cond, &fs->waiters_lock, &next);
	}
	pthread_mutex_unlock(&fs->waiters_lock);
	return NULL;
}

/*
 * A waiter for the reply to flush req, known to the close() timer. Two
 * references: the flush's and the job's done(). NULL without memory.
 */
static struct waiter *waiter_new(struct sigfs_fs *fs, fuse_req_t req)
{
	struct waiter *wt = calloc(1, sizeof(*wt));

	if (!wt)
		return NULL;
	wt->fs = fs;
	pthread_mutex_init(&wt->lock, NULL);
	wt->req = req;
	wt->refs = 2;
	clock_gettime(CLOCK_REALTIME, &wt->deadline);
	wt->deadline.tv_sec += fs->cfg->close_timeout;
	pthread_mutex_lock(&fs->waiters_lock);
	wt->next = fs->waiters;
	fs->waiters = wt;
	pthread_cond_signal(&fs->waiters_cond);
	pthread_mutex_unlock(&fs->waiters_lock);
	return wt;
}

/*
 * Hand artifact n to the engine; with wt, the job's done() answers the close()
 * waiting there. Called with w->lock held when w is not NULL. 0, or -errno
 * when nothing was queued (then wt was not answered).
 */
static int submit(struct sigfs_fs *fs, const struct fs_node *n, struct wstate *w, int fd,
		  uid_t uid, struct waiter *wt)
{
	struct sigfs_submit s = { .key = n->key, .name = n->name, .ino = n->id, .uid = uid };
	struct stat st;

	if (w) {
		s.id = w->jid;
		w->jid = 0;
		w->dirty = false;
		s.write_err = w->write_err;
		/* The writes covered the whole file, in order: hand over a copy of their hash. */
		if (w->seq && w->hash && fd >= 0 && fstat(fd, &st) == 0 && st.st_size == w->next)
			s.state = sigfs_hasher_dup(w->hash);
	}
	if (sigfs_engine_ignored(n->name)) {
		sigfs_hasher_free(s.state);
		sigfs_engine_drop(fs->eng, s.id);
		return 0;
	}
	if (wt) {
		s.done = job_done;
		s.arg = wt;
	}
	return sigfs_engine_submit(fs->eng, &s);
}

/*
 * A job that no close() waits for could not be queued. The operation that
 * asked for it succeeded all the same, so the log says what failed.
 */
static void not_queued(const struct fs_node *n, const char *why, int r)
{
	char esc[SIGFS_ESCAPED_MAX];

	log_err("key %s: %s: %snot queued for signing: %s", n->key,
		sigfs_escape(n->name, esc, sizeof(esc)), why, strerror(-r));
}

/* The last close of h: a writer that wrote hands its file to the engine. */
static void handle_release(struct sigfs_fs *fs, fuse_ino_t ino, struct handle *h)
{
	struct wstate *w = h->ws;
	struct fs_node n;
	int r;

	if (w) {
		pthread_mutex_lock(&w->lock);
		if (h->writable)        /* an adopted handle that never wrote is no writer */
			w->writers--;
		/* With settle_ms the settle thread signs it, not a close. */
		if (w->writers == 0 && w->dirty && !fs->cfg->settle_ms) {
			if (resolve(fs, ino, &n) == 0) {
				r = submit(fs, &n, w, h->fd, w->uid, NULL);
				if (r < 0)
					not_queued(&n, "", r);
			} else {
				sigfs_engine_drop(fs->eng, w->jid);
			}
			w->dirty = false;
		}
		pthread_mutex_unlock(&w->lock);
		ws_put(fs, w);
	}
	handle_free(fs, h);
}

/*
 * A descriptor of file n's backing file opened with flags, or -errno:
 * -ESTALE when the name holds another file now.
 */
static int open_backing(struct sigfs_fs *fs, const struct fs_node *n, int flags)
{
	char path[FS_PATH_MAX];
	struct stat st;
	int fd, r = backing_path(n, path);

	if (r < 0)
		return r;
	fd = openat(sigfs_keys_inbox_root(fs->ks), path, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_ino != n->id) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* --- settle_ms: signing what nothing modified for a while ------------------------------ */

/*
 * settle_ms: w's time came; sign its content if it was modified (w->lock
 * held). A file removed meanwhile has nothing to sign.
 */
static void settle_submit(struct sigfs_fs *fs, struct wstate *w)
{
	struct fs_node n;
	int fd, r;

	if (!w->dirty)
		return;
	if (resolve(fs, w->ino, &n) < 0 || n.kind != FS_FILE) {
		sigfs_engine_drop(fs->eng, w->jid);
		w->jid = 0;
		w->dirty = false;
		return;
	}
	/* submit() checks the size on a descriptor: a streamed hash spares reading the file. */
	fd = open_backing(fs, &n, O_RDONLY);
	/* The audit's uid is the last modifier's, as for a release. */
	r = submit(fs, &n, w, fd, w->uid, NULL);
	if (r < 0)
		not_queued(&n, "", r);
	if (fd >= 0)
		close(fd);
}

/*
 * w, taken off the settle list by the settle thread, which owns the list's
 * reference: sign it, unless it was modified (and put back) meanwhile.
 */
static void settle_due(struct sigfs_fs *fs, struct wstate *w)
{
	bool again;

	pthread_mutex_lock(&w->lock);
	pthread_mutex_lock(&fs->settle_lock);
	again = w->settling;
	pthread_mutex_unlock(&fs->settle_lock);
	if (!again) {
		/* Without settle_ms only a carried write settles; back open, its close signs it. */
		if (fs->cfg->settle_ms || w->writers == 0)
			settle_submit(fs, w);
		w->settle_ref = false;
	}
	pthread_mutex_unlock(&w->lock);
	if (!again)
		ws_put(fs, w);
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/*
 * The first artifact on the settle list whose time came, taken off it
 * (settle_lock held). NULL if none; then *next is the earliest deadline and
 * *any says whether there is one.
 */
static struct wstate *settle_take_due(struct sigfs_fs *fs, struct timespec *next, bool *any)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	*any = false;
	for (struct wstate *w = fs->settling; w; w = w->snext) {
		if (!ts_before(&now, &w->settle_at)) {
			settle_unlink(fs, w);
			return w;
		}
		if (!*any || ts_before(&w->settle_at, next))
			*next = w->settle_at;
		*any = true;
	}
	return NULL;
}

/* The settle thread: sleeps until the earliest deadline, signs what is due. */
static void *settle_main(void *arg)
{
	struct sigfs_fs *fs = arg;
	struct timespec next;
	struct wstate *w;
	bool any;

	pthread_mutex_lock(&fs->settle_lock);
	while (!fs->settle_stop) {
		w = settle_take_due(fs, &next, &any);
		if (w) {
			pthread_mutex_unlock(&fs->settle_lock);
			settle_due(fs, w);
			pthread_mutex_lock(&fs->settle_lock);
		} else if (any) {
			pthread_cond_timedwait(&fs->settle_cond, &fs->settle_lock, &next);
		} else {
			pthread_cond_wait(&fs->settle_cond, &fs->settle_lock);
		}
	}
	pthread_mutex_unlock(&fs->settle_lock);
	return NULL;
}

/*
 * settle_ms: file ino is gone (unlinked, or replaced by a rename). Its write
 * waits no longer, nothing is signed for it, and its number may be reused.
 */
static void settle_forget(struct sigfs_fs *fs, uint64_t ino)
{
	struct wstate *w = ws_find(fs, ino);
	bool taken;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	pthread_mutex_lock(&fs->settle_lock);
	taken = settle_unlink(fs, w);
	pthread_mutex_unlock(&fs->settle_lock);
	if (w->dirty) {
		sigfs_engine_drop(fs->eng, w->jid);
		w->jid = 0;
		w->dirty = false;
	}
	/* Not on the list but referenced: the settle thread has it and puts it. */
	if (taken)
		w->settle_ref = false;
	pthread_mutex_unlock(&w->lock);
	if (taken)
		ws_put(fs, w);
	ws_put(fs, w);
}

/*
 * Start the settle thread (also without settle_ms: writes carried over a
 * worker restart settle, sigfs_fs_take_write). 0 or -errno.
 */
static int settle_start(struct sigfs_fs *fs)
{
	int r;

	r = -pthread_create(&fs->settle_thread, NULL, settle_main, fs);
	fs->settle_started = r == 0;
	return r;
}

/*
 * A write the last worker left unfinished, taken over after a restart on a
 * kept mount (sigfs_engine_unfinished, fs/keeper.h): its writer may still be
 * writing, or may have closed the file while no worker served. It settles:
 * signed once nothing modified it for settle_ms, or CARRY_MS without
 * settle_ms (then a writer that shows up first signs it at its close).
 */
void sigfs_fs_take_write(void *arg, const struct sigfs_submit *s)
{
	struct sigfs_fs *fs = arg;
	struct wstate *w = ws_get(fs, s->ino);

	if (!w) {
		log_err("key %s: cannot take over an unfinished write: out of memory", s->key);
		return;         /* still journaled: the next start gives it NAME.err */
	}
	pthread_mutex_lock(&w->lock);
	w->dirty = true;
	w->jid = s->id;
	w->uid = s->uid;
	w->seq = false;
	settle_arm_ms(fs, w, fs->cfg->settle_ms ? fs->cfg->settle_ms : CARRY_MS);
	pthread_mutex_unlock(&w->lock);
	ws_put(fs, w);
}

/* --- files --------------------------------------------------------------------------- */

/*
 * The write state of writable handle h on file n: a truncating open (or
 * create(), which journaled the write as jid) begins the new content.
 */
static int open_write_state(struct sigfs_fs *fs, struct handle *h, const struct fs_node *n,
			    int flags, bool created, uint64_t jid)
{
	int r = 0;

	h->ws = ws_get(fs, n->id);
	if (!h->ws)
		return -ENOMEM;
	pthread_mutex_lock(&h->ws->lock);
	h->ws->writers++;
	if (created || (flags & O_TRUNC)) {
		r = ws_modify(fs, h->ws, n, true, jid, h->uid);
		if (r == 0 && !created && ftruncate(h->fd, 0) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&h->ws->lock);
	return r;
}

/*
 * The kernel writes through h, so h was opened for writing: an adopted
 * handle (handle_adopt) becomes a writer at its first change, and its
 * release then signs like any last writer's. h->ws->lock held, if h->ws.
 */
static void adopted_writes(struct handle *h)
{
	if (h->ws && !h->writable) {
		h->writable = true;
		h->ws->writers++;
	}
}

/*
 * Open file n; created: by create(), which journaled the write as jid. A
 * caller opening for writing holds names_lock.
 */
static int open_file(fuse_req_t req, const struct fs_node *n, int flags, bool created,
		     uint64_t jid, struct handle **out)
{
	struct sigfs_fs *fs = fs_data(req);
	int fd, acc = flags & O_ACCMODE, r;
	struct handle *h;

	if (fs_flags_write(flags) && !created) {
		char err[SIGFS_ERRLEN];

		if (sigfs_engine_name_check(n->name, err) == -EPERM)
			return refuse(req, EPERM, "outputs are read-only", n->name);
		r = claim_outputs(req, n->key, n->name);
		if (r < 0)
			return r;
	}
	/*
	 * O_TRUNC is done here, not by open(): only once the file is known to be
	 * n and its write is begun (outputs gone, running jobs stale) may it lose
	 * its content.
	 */
	if ((flags & O_TRUNC) && acc == O_RDONLY)
		acc = O_RDWR;
	fd = open_backing(fs, n, acc | (flags & O_APPEND));
	if (fd < 0)
		return fd;
	h = handle_new(fs);
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->id = n->id;
	h->kind = FS_FILE;
	h->writable = fs_flags_write(flags);
	h->uid = fuse_req_ctx(req)->uid;
	r = h->writable ? open_write_state(fs, h, n, flags, created, jid) : 0;
	if (r < 0) {
		handle_release(fs, n->id, h);
		return r;
	}
	*out = h;
	return 0;
}

static int open_ctl(struct sigfs_fs *fs, const struct fs_node *n, int flags, struct handle **out)
{
	struct handle *h = handle_new(fs);
	int r = 0;

	if (!h)
		return -ENOMEM;
	h->fd = -1;
	h->id = n->id;
	h->kind = n->kind;
	h->attr = n->attr;
	snprintf(h->key, sizeof(h->key), "%s", n->key);
	h->writable = fs_flags_write(flags);
	if ((flags & O_ACCMODE) != O_WRONLY)
		r = ctl_content(fs, n, &h->buf, &h->len);
	if (r < 0) {
		handle_free(fs, h);
		return r;
	}
	*out = h;
	return 0;
}

/*
 * Adopt fh, a handle of node ino that this process did not issue: after a
 * restart on a kept FUSE connection the kernel still holds the previous
 * daemon's (an NFS server keeps files open), and they must keep working. fh
 * is a number, looked up and never dereferenced. A file is opened again and
 * registered under fh, so later ops find it; it shares the file's write state
 * and becomes a writer at its first write (write_file), so its release signs
 * like any last writer's. What a .ctl handle held (a snapshot, a value being
 * written) went with the old process: EBADF. 0 or -errno.
 */
static int handle_adopt(fuse_req_t req, fuse_ino_t ino, uint64_t fh, struct handle **out)
{
	struct sigfs_fs *fs = fs_data(req);
	char esc[SIGFS_ESCAPED_MAX];
	struct handle *h;
	struct fs_node n;
	void *got = NULL;
	int r;

	if (resolve(fs, ino, &n) < 0)
		return -ESTALE;
	if (n.kind != FS_FILE) {
		log_warn("refused (%s): handle %#llx of %s is from an earlier sigfsd: open it again",
			 strerror(EBADF), (unsigned long long)fh, n.name);
		return -EBADF;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fh = fh;
	h->id = n.id;
	h->kind = FS_FILE;
	h->uid = fuse_req_ctx(req)->uid;
	h->fd = open_backing(fs, &n, O_RDWR);
	r = h->fd == -ENOENT ? -ESTALE : h->fd;
	if (r >= 0) {
		h->ws = ws_get(fs, n.id);
		r = h->ws ? fs_fhtab_adopt(fs->fh, fh, FS_FH_FILE, h, &got) : -ENOMEM;
	}
	if (got == h) {
		log_info("key %s: %s: handle %#llx from an earlier sigfsd adopted", n.key,
			 sigfs_escape(n.name, esc, sizeof(esc)), (unsigned long long)fh);
	} else {
		/* Failed, or another thread adopted fh first: use its handle. */
		if (h->ws)
			ws_put(fs, h->ws);
		if (h->fd < 0)
			h->fd = -1;
		handle_destroy(h);
	}
	if (r < 0)
		return r;
	*out = got;
	return 0;
}

/* The handle of fi for read, write and fsync: ours, or adopted (handle_adopt). */
static int file_handle(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		       struct handle **out)
{
	*out = hnd(fs_data(req), fi);
	return *out ? 0 : handle_adopt(req, ino, fi->fh, out);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	bool writes = fs_flags_write(fi->flags);
	struct handle *h = NULL;
	struct fs_node n;
	int r;

	r = resolve(fs, ino, &n);
	if (r < 0)
		goto out_err;
	if (n.kind == FS_FILE) {
		if (writes)
			pthread_mutex_lock(&fs->names_lock);
		r = open_file(req, &n, fi->flags, false, 0, &h);
		if (writes)
			pthread_mutex_unlock(&fs->names_lock);
	} else if (n.kind == FS_ATTR || n.kind == FS_STATUS) {
		r = open_ctl(fs, &n, fi->flags, &h);
		fi->direct_io = 1;
	} else {
		r = -EISDIR;
	}
	if (r < 0)
		goto out_err;
	fi->fh = h->fh;
	/* ENOENT: the open was interrupted; the kernel will never release h. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_release(fs, ino, h);
	return;
out_err:
	fuse_reply_err(req, -r);
}

/* The backing file at path, new, owned by the caller of req with the mode asked for. */
static int create_backing(fuse_req_t req, const char *path, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int root = sigfs_keys_inbox_root(fs_data(req)->ks), fd, r;

	fd = openat(root, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = fchown(fd, ctx->uid, ctx->gid) < 0 || fchmod(fd, mode & 0777 & ~ctx->umask) < 0 ?
		-errno : 0;
	close(fd);
	if (r < 0)
		unlinkat(root, path, 0);
	return r;
}

/*
 * Create name in inbox p for the calling user; with h, open it for writing.
 * fs->names_lock held.
 */
static int create_locked(fuse_req_t req, const struct fs_node *p, const char *name, mode_t mode,
			 int flags, struct fs_node *n, struct handle **h)
{
	struct sigfs_fs *fs = fs_data(req);
	char path[FS_PATH_MAX];
	uint64_t jid = 0;
	struct stat st;
	int r;

	r = fs_path(path, p->key, name);
	if (r < 0)
		return r;
	if (fstatat(sigfs_keys_inbox_root(fs->ks), path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		/* Created since the kernel looked (by another client, or over NFS). */
		if (!h || (flags & O_EXCL))
			return -EEXIST;
		r = learn(fs, p->key, name, n);
		return r < 0 ? r : open_file(req, n, flags, false, 0, h);
	}
	r = claim_outputs(req, p->key, name);
	/* Journal the write before the file exists: a crash in between still ends in NAME.err. */
	if (r == 0 && h)
		r = sigfs_engine_begin(fs->eng, p->key, name, 0, fuse_req_ctx(req)->uid, &jid);
	if (r < 0)
		return r;
	r = create_backing(req, path, mode);
	if (r == 0)
		r = learn(fs, p->key, name, n);
	if (r == 0 && h)
		r = open_file(req, n, flags | O_TRUNC, true, jid, h);
	else if (r == 0)
		sigfs_engine_forget(fs->eng, p->key, name);  /* mknod: earlier outputs are void */
	/* On success the open file's write state owns jid (ws_modify is open_file's last step). */
	if (r < 0 || !h)
		sigfs_engine_drop(fs->eng, jid);
	return r;
}

/* Create name in inbox parent for the calling user; with h, open it for writing. */
static int do_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, int flags,
		     struct fs_node *n, struct handle **h)
{
	struct sigfs_fs *fs = fs_data(req);
	char err[SIGFS_ERRLEN];
	struct fs_node p;
	int r;

	r = resolve(fs, parent, &p);
	if (r < 0)
		return r;
	if (p.kind != FS_INBOX)
		return refuse(req, EPERM, "files can be created only in an inbox", name);
	r = sigfs_engine_name_check(name, err);
	if (r < 0)
		return refuse(req, -r, err, name);
	pthread_mutex_lock(&fs->names_lock);
	r = create_locked(req, &p, name, mode, flags, n, h);
	pthread_mutex_unlock(&fs->names_lock);
	return r;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct fuse_entry_param e;
	struct handle *h = NULL;
	struct fs_node n;
	int r;

	r = do_create(req, parent, name, mode, fi->flags, &n, &h);
	if (r == 0)
		r = make_entry(fs, &n, &e);
	if (r < 0) {
		if (h)
			handle_release(fs, n.id, h);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = h->fh;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		handle_release(fs, e.ino, h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h;
	char *buf;
	ssize_t n;
	int r;

	r = file_handle(req, ino, fi, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	buf = malloc(size ? size : 1);
	if (buf && h->kind != FS_FILE) {
		/*
		 * Reply from a copy: once the kernel has the reply, the reader may
		 * close and release (freeing h) before fuse_reply_buf() returns.
		 */
		n = (size_t)off >= h->len ? 0 : (ssize_t)(size < h->len - (size_t)off ?
							  size : h->len - (size_t)off);
		memcpy(buf, h->buf + off, (size_t)n);
		fuse_reply_buf(req, buf, (size_t)n);
		free(buf);
		return;
	}
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(h->fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* A value written to a key attribute is refused: say so in the log and in .ctl. */
static void attr_refused(struct sigfs_fs *fs, const struct handle *h, uid_t uid, const char *err)
{
	const char *attr = sigfs_key_attr_at((size_t)h->attr)->name;

	log_warn("key %s: %s: %s", h->key, attr, err);
	sigfs_keys_set_last_error(fs->ks, h->key, uid, attr, err);
}

static int write_ctl(struct sigfs_fs *fs, struct handle *h, const char *buf, size_t size,
		     off_t off, uid_t uid)
{
	char err[SIGFS_ERRLEN];
	size_t end = (size_t)off + size;
	char *nb;
	int r;

	if (h->kind != FS_ATTR || off < 0 || end > ATTR_MAX)
		return -EFBIG;
	if (end > h->len) {
		nb = calloc(1, end);
		if (!nb)
			return -ENOMEM;
		if (h->buf) {
			memcpy(nb, h->buf, h->len);
			explicit_bzero(h->buf, h->len);
			free(h->buf);
		}
		h->buf = nb;
		h->len = end;
	}
	memcpy(h->buf + off, buf, size);
	h->attr_dirty = true;
	/* A whole line can be judged now, so `echo bad > attr` fails at write(). */
	if (memchr(h->buf, '\n', h->len)) {
		r = sigfs_keys_attr_check(fs->ks, h->key, (size_t)h->attr, (uint8_t *)h->buf,
					  h->len, err);
		if (r < 0) {
			attr_refused(fs, h, uid, err);
			h->attr_bad = true;
			return r;
		}
	}
	return 0;
}

/*
 * Write to file n through h (w->lock held): the first write since the last
 * job begins a new version. The bytes written, or -errno. *hash_it: the
 * bytes follow the ones hashed so far; the caller feeds them to w->hash,
 * still holding w->lock, after it has answered the write.
 */
static ssize_t write_file(struct sigfs_fs *fs, struct handle *h, const struct fs_node *n,
			  const char *buf, size_t size, off_t off, uid_t uid, bool *hash_it)
{
	struct wstate *w = h->ws;
	ssize_t done;
	int r;

	adopted_writes(h);
	r = ws_modify(fs, w, n, false, 0, uid);
	if (r < 0)
		return r;
	h->wrote = true;
	done = pwrite(h->fd, buf, size, off);
	if (done < 0) {
		/* The file lacks these bytes now: it must not be signed as it is. */
		w->write_err = errno;
		return -w->write_err;
	}
	if (done > 0) {
		*hash_it = w->seq && off == w->next;
		w->seq = *hash_it;
		w->next = off + done;
	}
	return done;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	uid_t uid = fuse_req_ctx(req)->uid;
	struct handle *h;
	struct fs_node n;
	ssize_t done;

	done = file_handle(req, ino, fi, &h);
	if (done < 0) {
		fuse_reply_err(req, (int)-done);
		return;
	}
	if (h->kind != FS_FILE) {
		done = write_ctl(fs, h, buf, size, off, uid);
		if (done == 0)
			done = (ssize_t)size;
	} else if (resolve(fs, ino, &n) < 0) {
		/* Unlinked while open: write on, nothing will be signed. */
		done = pwrite(h->fd, buf, size, off);
		if (done < 0)
			done = -errno;
	} else {
		struct wstate *w = h->ws;
		bool hash_it = false;

		/*
		 * The writer gets its answer before the bytes are hashed: it sends
		 * its next write meanwhile (FUSE writes wait for their answer), and
		 * that write waits for w->lock, so the hash still sees the bytes in
		 * order, and a close() (flush) sees the hash complete (decision 80).
		 * The handle may be released once answered: w is held meanwhile.
		 */
		ws_hold(fs, w);
		pthread_mutex_lock(&w->lock);
		done = write_file(fs, h, &n, buf, size, off, uid, &hash_it);
		if (done < 0)
			fuse_reply_err(req, (int)-done);
		else
			fuse_reply_write(req, (size_t)done);
		if (hash_it)
			w->seq = sigfs_hasher_update(w->hash, buf, (size_t)done) == 0;
		pthread_mutex_unlock(&w->lock);
		ws_put(fs, w);
		return;
	}
	if (done < 0)
		fuse_reply_err(req, (int)-done);
	else
		fuse_reply_write(req, (size_t)done);
}

/* The close of a .ctl attribute written through h stores the value. */
static int flush_attr(struct sigfs_fs *fs, struct handle *h, uid_t uid)
{
	char err[SIGFS_ERRLEN];
	int r;

	h->attr_dirty = false;
	if (h->attr_bad)
		return -EINVAL;
	r = sigfs_keys_attr_write(fs->ks, h->key, (size_t)h->attr, (uint8_t *)h->buf, h->len,
				  uid, err);
	if (r < 0)
		attr_refused(fs, h, uid, err);
	return r;
}

/*
 * Submit file n for the close() of req through h (h->ws->lock held). *wt is
 * the waiter that answers req when the close waits for the signature.
 */
static int flush_submit(fuse_req_t req, const struct fs_node *n, struct handle *h,
			struct waiter **wt)
{
	struct sigfs_fs *fs = fs_data(req);

	if (fs->cfg->wait_on_close && !sigfs_engine_ignored(n->name)) {
		*wt = waiter_new(fs, req);
		if (!*wt)
			return -ENOMEM;
	}
	return submit(fs, n, h->ws, h->fd, fuse_req_ctx(req)->uid, *wt);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct handle *h = hnd(fs, fi);
	struct wstate *w = h ? h->ws : NULL;
	struct waiter *wt = NULL;
	struct fs_node n;
	int r = 0;

	/* A handle not adopted yet has not written in this process: nothing to sign. */
	if (!h) {
		fuse_reply_err(req, 0);
		return;
	}
	if (h->kind == FS_ATTR && h->attr_dirty) {
		fuse_reply_err(req, -flush_attr(fs, h, fuse_req_ctx(req)->uid));
		return;
	}
	if (!w || resolve(fs, ino, &n) < 0) {
		fuse_reply_err(req, 0);
		return;
	}
	pthread_mutex_lock(&w->lock);
	/*
	 * Only the last writer's close() signs (and waits), and only a close of a
	 * descriptor that wrote: a shell's `cmd > file` opens the file, dups it
	 * and closes the original before cmd writes a byte. Modifications without
	 * such a close are signed at release. With settle_ms, no close signs or
	 * waits: the settle thread signs.
	 */
	if (w->dirty && w->writers == 1 && h->wrote && !fs->cfg->settle_ms)
		r = flush_submit(req, &n, h, &wt);
	h->wrote = false;
	pthread_mutex_unlock(&w->lock);
	if (!wt) {
		fuse_reply_err(req, r < 0 ? EIO : 0);
		return;
	}
	/* The waiter owns the reply: the job's done(), the close() timer, or this failure. */
	if (r < 0)
		job_done(wt, r);
	waiter_put(wt);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct handle *h = hnd(fs, fi);

	/* Not adopted: it did not write in this process, so there is nothing to sign. */
	if (h)
		handle_release(fs, ino, h);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h;
	int r;

	r = file_handle(req, ino, fi, &h);
	if (r == 0 && h->fd >= 0)
		r = (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
	fuse_reply_err(req, -r);
}

/* chmod, chown, chgrp of the backing object at path (h: the file's open handle, or NULL). */
static int set_mode_owner(struct sigfs_fs *fs, const struct handle *h, const char *path,
			  const struct stat *attr, int to_set)
{
	int root = sigfs_keys_inbox_root(fs->ks);

	if (to_set & FUSE_SET_ATTR_MODE) {
		int r = h && h->fd >= 0 ? fchmod(h->fd, attr->st_mode & 07777) :
			fchmodat(root, path, attr->st_mode & 07777, 0);

		if (r < 0)
			return -errno;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t u = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t g = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(root, path, u, g, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return 0;
}

/* utimensat of the backing object at path. */
static int set_times(struct sigfs_fs *fs, const char *path, const struct stat *attr, int to_set)
{
	struct timespec tv[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

	if (!(to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)))
		return 0;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	return utimensat(sigfs_keys_inbox_root(fs->ks), path, tv, AT_SYMLINK_NOFOLLOW) < 0 ?
		-errno : 0;
}

/*
 * Truncate file n at path to size, through h or a descriptor of its own
 * (names_lock and w->lock held). Like a write it begins a new version; a
 * truncate(2) without an open writer is submitted at once, since nobody else
 * will close the file (with settle_ms, once it settled: an NFS client
 * truncates before it writes).
 */
static int truncate_file(fuse_req_t req, struct wstate *w, struct handle *h,
			 const struct fs_node *n, const char *path, off_t size)
{
	struct sigfs_fs *fs = fs_data(req);
	uid_t uid = fuse_req_ctx(req)->uid;
	int root = sigfs_keys_inbox_root(fs->ks), fd, r;
	bool own_fd = !(h && h->fd >= 0);
	struct stat st;

	fd = own_fd ? openat(root, path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC) : h->fd;
	if (fd < 0)
		r = -errno;
	else if (own_fd && (fstat(fd, &st) < 0 || st.st_ino != n->id))
		r = -ESTALE;        /* the name holds another file now */
	else
		r = ws_modify(fs, w, n, size == 0, 0, uid);
	if (r == 0 && ftruncate(fd, size) < 0)
		r = -errno;
	if (r == 0 && size != 0)
		w->seq = false;
	if (r == 0 && h) {
		adopted_writes(h);
		h->wrote = true;
	}
	if (w->writers == 0 && w->dirty && !fs->cfg->settle_ms) {
		int q = submit(fs, n, w, fd, uid, NULL);

		if (q < 0)
			not_queued(n, "", q);
	}
	if (fd >= 0 && own_fd)
		close(fd);
	return r;
}

/* The size part of setattr on n: only files, never outputs, under the sticky rule. */
static int set_size(fuse_req_t req, struct handle *h, const struct fs_node *n, const char *path,
		    off_t size)
{
	struct sigfs_fs *fs = fs_data(req);
	char err[SIGFS_ERRLEN];
	struct wstate *w;
	int r;

	if (n->kind != FS_FILE)
		return -EISDIR;
	if (sigfs_engine_name_check(n->name, err) == -EPERM)
		return refuse(req, EPERM, "outputs are read-only", n->name);
	pthread_mutex_lock(&fs->names_lock);
	r = claim_outputs(req, n->key, n->name);
	w = r == 0 ? ws_get(fs, n->id) : NULL;
	if (w) {
		pthread_mutex_lock(&w->lock);
		r = truncate_file(req, w, h, n, path, size);
		pthread_mutex_unlock(&w->lock);
		ws_put(fs, w);
	} else if (r == 0) {
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&fs->names_lock);
	return r;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct handle *h = fi ? hnd(fs, fi) : NULL;
	char path[FS_PATH_MAX];
	struct fs_node n;
	int r;

	r = resolve(fs, ino, &n);
	if (r < 0)
		goto out_err;
	/* `echo x > attr`: the new value comes with write(). */
	if (n.kind == FS_ATTR && to_set == FUSE_SET_ATTR_SIZE && attr->st_size == 0)
		return reply_attr(req, ino);
	if (n.kind != FS_INBOX && n.kind != FS_FILE) {
		r = refuse(req, EPERM,
			   "the root and .ctl cannot be changed with chmod/chown/truncate", NULL);
		goto out_err;
	}
	/*
	 * ftruncate through a handle of the daemon before: adopted, so that its
	 * writes that follow make one version with the truncation.
	 */
	if (fi && !h && n.kind == FS_FILE) {
		r = handle_adopt(req, ino, fi->fh, &h);
		if (r < 0)
			goto out_err;
	}
	r = backing_path(&n, path);
	if (r == 0)
		r = set_mode_owner(fs, h, path, attr, to_set);
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = set_size(req, h, &n, path, attr->st_size);
	if (r == 0)
		r = set_times(fs, path, attr, to_set);
	if (r < 0)
		goto out_err;
	return reply_attr(req, ino);
out_err:
	fuse_reply_err(req, -r);
}

/* --- directories and names ---------------------------------------------------------- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sigfs_fs *fs = fs_data(req);
	char err[SIGFS_ERRLEN], key[NAME_MAX + 1];
	struct fuse_entry_param e;
	struct fs_node p, n;
	const char *backend;
	struct sigfs_key k;
	int r;

	(void)mode;
	r = resolve(fs, parent, &p);
	if (r < 0)
		goto out_err;
	if (p.kind != FS_KEYS) {
		r = refuse(req, EPERM, p.kind == FS_INBOX ?
			   "directories cannot be created in an inbox" :
			   "keys are created with mkdir in .ctl/keys/", name);
		goto out_err;
	}
	fs_key_split(name, key, &backend);
	r = sigfs_keys_create(fs->ks, key, backend, fuse_req_ctx(req)->uid, err);
	if (r < 0) {
		r = refuse(req, -r, err, name);
		goto out_err;
	}
	/* The new inbox's node id; should this fail, its first lookup learns it. */
	learn(fs, key, NULL, &n);
	r = sigfs_keys_get(fs->ks, key, &k);
	if (r == 0)
		r = resolve(fs, (TAG_KEYDIR << 56) | k.ino, &n);
	if (r == 0)
		r = make_entry(fs, &n, &e);
	if (r < 0)
		goto out_err;
	/* The kernel names the new entry KEY@BACKEND: let it ask again, so it learns KEY. */
	if (backend)
		e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
	return;
out_err:
	fuse_reply_err(req, -r);
}

/* What the thread of inval_inbox needs: the session outlives it, the name is its own. */
struct inval {
	struct fuse_session *se;
	char name[];
};

static void *inval_inbox_main(void *arg)
{
	struct inval *iv = arg;

	fuse_lowlevel_notify_inval_entry(iv->se, FUSE_ROOT_ID, iv->name, strlen(iv->name));
	free(iv);
	return NULL;
}

/*
 * Make the kernel forget the deleted key's inbox at once rather than after
 * the entry timeout. Not from the rmdir handler itself: the kernel may hold
 * locks the invalidation needs until the handler has replied.
 */
static void inval_inbox(struct sigfs_fs *fs, const char *name)
{
	struct inval *iv = NULL;
	pthread_attr_t attr;
	pthread_t t;

	if (fs->se)
		iv = malloc(sizeof(*iv) + strlen(name) + 1);
	if (!iv)
		return;
	iv->se = fs->se;
	strcpy(iv->name, name);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, inval_inbox_main, iv) == 0)
		iv = NULL;
	pthread_attr_destroy(&attr);
	free(iv);
}

/* Delete key name (rmdir in .ctl/keys/): 0, or -errno with the reason in the log and .ctl. */
static int delete_key(fuse_req_t req, const char *name)
{
	struct sigfs_fs *fs = fs_data(req);
	uid_t uid = fuse_req_ctx(req)->uid;
	char err[SIGFS_ERRLEN];
	struct fs_node in;
	int r;

	if (!fs->cfg->allow_key_delete) {
		snprintf(err, sizeof(err), "key deletion is switched off (allow_key_delete = no)");
		sigfs_keys_set_last_error(fs->ks, name, uid, "rmdir", err);
		return refuse(req, EPERM, err, name);
	}
	if (learn(fs, name, NULL, &in) < 0)
		in.id = 0;
	r = sigfs_keys_delete(fs->ks, name, uid, err);
	if (r < 0) {
		sigfs_keys_set_last_error(fs->ks, name, uid, "rmdir", err);
		return refuse(req, -r, err, name);
	}
	if (in.id)
		fs_nodes_del(fs->nodes, in.id);
	return 0;
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sigfs_fs *fs = fs_data(req);
	struct fs_node p;
	int r;

	r = resolve(fs, parent, &p);
	if (r == 0 && p.kind != FS_KEYS) {
		/* .ctl/keys is a directory: refusing it with ENOTDIR would be a lie. */
		r = refuse(req, p.kind == FS_ROOT || (p.kind == FS_CTL && !strcmp(name, "keys")) ?
			   EPERM : ENOTDIR, "keys are deleted with rmdir in .ctl/keys/", name);
	} else if (r == 0) {
		r = delete_key(req, name);
	}
	fuse_reply_err(req, -r);
	if (r == 0)
		inval_inbox(fs, name);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sigfs_fs *fs = fs_data(req);
	char path[FS_PATH_MAX];
	struct fs_node p, n;
	int r;

	r = resolve(fs, parent, &p);
	if (r < 0)
		goto out_err;
	if (p.kind != FS_INBOX) {
		r = refuse(req, EPERM, "only files in an inbox can be removed", name);
		goto out_err;
	}
	r = learn(fs, p.key, name, &n);
	if (r == 0)
		r = fs_path(path, p.key, name);
	if (r < 0)
		goto out_err;
	if (unlinkat(sigfs_keys_inbox_root(fs->ks), path, 0) < 0) {
		r = -errno;
		goto out_err;
	}
	fs_nodes_del(fs->nodes, n.id);
	settle_forget(fs, n.id);
	fuse_reply_err(req, 0);
	return;
out_err:
	fuse_reply_err(req, -r);
}

/* May a file of inbox p be renamed to newname in np? 0, or -errno with the reason logged. */
static int rename_check(fuse_req_t req, const struct fs_node *p, const struct fs_node *np,
			const char *newname, unsigned int flags)
{
	char err[SIGFS_ERRLEN];
	int r;

	if (p->kind != FS_INBOX || np->kind != FS_INBOX)
		return refuse(req, EPERM, "only files can be renamed, into an inbox", newname);
	if (flags & RENAME_EXCHANGE)
		return refuse(req, EINVAL, "rename with RENAME_EXCHANGE is not supported", newname);
	r = sigfs_engine_name_check(newname, err);
	return r < 0 ? refuse(req, -r, err, newname) : 0;
}

/*
 * File n, renamed into an inbox under a signable name as write jid: sign it,
 * now or at its last close. The rename happened, so it succeeds; what failed
 * here is in the log.
 */
static void sign_renamed(struct sigfs_fs *fs, const struct fs_node *n, uint64_t jid, uid_t uid)
{
	struct wstate *w = ws_get(fs, n->id);
	int r;

	if (w) {
		pthread_mutex_lock(&w->lock);
		if (w->dirty)
			sigfs_engine_drop(fs->eng, w->jid);
		w->dirty = false;
		r = ws_modify(fs, w, n, false, jid, uid);
		if (r == 0 && w->writers == 0)
			r = submit(fs, n, w, -1, uid, NULL);
		pthread_mutex_unlock(&w->lock);
		ws_put(fs, w);
	} else {
		sigfs_engine_drop(fs->eng, jid);
		r = -ENOMEM;
	}
	if (r < 0)
		not_queued(n, "renamed into the inbox but ", r);
}

/*
 * Rename file n to newname in inbox np (fs->names_lock held). The write of
 * the new name is journaled before the rename: a crash in between leaves
 * NEWNAME.err, not nothing.
 */
static int rename_locked(fuse_req_t req, struct fs_node *n, const struct fs_node *np,
			 const char *newname, unsigned int flags, uint64_t replaced)
{
	struct sigfs_fs *fs = fs_data(req);
	int root = sigfs_keys_inbox_root(fs->ks), r;
	char from[FS_PATH_MAX], to[FS_PATH_MAX];
	uid_t uid = fuse_req_ctx(req)->uid;
	uint64_t jid = 0;

	r = fs_path(from, n->key, n->name);
	if (r == 0)
		r = fs_path(to, np->key, newname);
	if (r == 0)
		r = claim_outputs(req, np->key, newname);
	if (r == 0)
		r = sigfs_engine_begin(fs->eng, np->key, newname, n->id, uid, &jid);
	if (r == 0 && renameat2(root, from, root, to, flags) < 0) {
		r = -errno;
		sigfs_engine_drop(fs->eng, jid);
	}
	if (r < 0)
		return r;
	if (replaced && replaced != n->id) {
		fs_nodes_del(fs->nodes, replaced);
		settle_forget(fs, replaced);
	}
	fs_nodes_put(fs->nodes, n->id, np->id, FS_FILE, np->key, newname);
	snprintf(n->key, sizeof(n->key), "%s", np->key);
	snprintf(n->name, sizeof(n->name), "%s", newname);
	n->parent = np->id;
	if (jid)
		sign_renamed(fs, n, jid, uid);
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct sigfs_fs *fs = fs_data(req);
	struct fs_node p, np, n, old;
	uint64_t replaced = 0;
	int r;

	r = resolve(fs, parent, &p);
	if (r == 0)
		r = resolve(fs, newparent, &np);
	if (r == 0)
		r = rename_check(req, &p, &np, newname, flags);
	if (r == 0)
		r = learn(fs, p.key, name, &n);
	if (r == 0 && n.kind != FS_FILE)
		r = -EISDIR;
	if (r == 0 && learn(fs, np.key, newname, &old) == 0)
		replaced = old.id;
	if (r == 0 && replaced && (flags & RENAME_NOREPLACE))
		r = -EEXIST;
	if (r == 0) {
		pthread_mutex_lock(&fs->names_lock);
		r = rename_locked(req, &n, &np, newname, flags, replaced);
		pthread_mutex_unlock(&fs->names_lock);
	}
	fuse_reply_err(req, -r);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs_node n;
	int r;

	(void)rdev;
	/* An empty file: it is signed once someone writes it and closes it. */
	if (!S_ISREG(mode))
		r = refuse(req, EPERM, "only regular files can be created in an inbox", name);
	else
		r = do_create(req, parent, name, mode, O_EXCL, &n, NULL);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, &n);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	fuse_reply_err(req, -refuse(req, EPERM, "symbolic links are not allowed in sigfs", name));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	fuse_reply_err(req, -refuse(req, EPERM, "hard links are not allowed in sigfs", newname));
}

struct dirent_rec {
	uint64_t ino;
	mode_t type;
	char *name;
};

struct dirhandle {
	struct dirent_rec *v;
	size_t n, cap;
};

static int dh_add(struct dirhandle *d, uint64_t ino, mode_t type, const char *name)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct dirent_rec *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n].ino = ino;
	d->v[d->n].type = type;
	d->v[d->n].name = strdup(name);
	return d->v[d->n++].name ? 0 : -ENOMEM;
}

static void dh_free(struct dirhandle *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d);
}

static int list_inbox(struct sigfs_fs *fs, struct dirhandle *d, const struct fs_node *n)
{
	int fd = openat(sigfs_keys_inbox_root(fs->ks), n->key, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fs_name_hidden(de->d_name))
			continue;
		r = dh_add(d, de->d_ino, S_IFREG, de->d_name);
	}
	closedir(dir);
	return r;
}

/* List directory n into d. */
static int list_dir(struct sigfs_fs *fs, const struct fs_node *n, struct dirhandle *d)
{
	struct sigfs_key *keys = NULL;
	struct fs_node in;
	int nk = 0;

	dh_add(d, n->id, S_IFDIR, ".");
	dh_add(d, n->parent, S_IFDIR, "..");
	switch (n->kind) {
	case FS_ROOT:
		dh_add(d, ID_CTL, S_IFDIR, ".ctl");
		/* fall through */
	case FS_KEYS:
		nk = sigfs_keys_list(fs->ks, &keys);
		for (int i = 0; i < nk; i++) {
			if (n->kind == FS_KEYS)
				dh_add(d, (TAG_KEYDIR << 56) | keys[i].ino, S_IFDIR, keys[i].name);
			else if (learn(fs, keys[i].name, NULL, &in) == 0)
				dh_add(d, in.id, S_IFDIR, keys[i].name);
		}
		free(keys);
		break;
	case FS_CTL:
		dh_add(d, ID_KEYS, S_IFDIR, "keys");
		dh_add(d, ID_STATUS, S_IFREG, "status");
		break;
	case FS_KEYDIR: {
		struct sigfs_key k;

		if (sigfs_keys_get(fs->ks, n->key, &k) < 0)
			return -ENOENT;
		for (size_t i = 0; sigfs_key_attr_at(i); i++)
			dh_add(d, ((TAG_ATTR0 + i) << 56) | k.ino, S_IFREG,
			       sigfs_key_attr_at(i)->name);
		break;
	}
	case FS_INBOX:
		return list_inbox(fs, d, n);
	default:
		return -ENOTDIR;
	}
	return 0;
}

/* A new listing of directory ino. */
static int dir_new(struct sigfs_fs *fs, fuse_ino_t ino, struct dirhandle **out)
{
	struct dirhandle *d = calloc(1, sizeof(*d));
	struct fs_node n;
	int r;

	if (!d)
		return -ENOMEM;
	r = resolve(fs, ino, &n);
	if (r == 0)
		r = list_dir(fs, &n, d);
	if (r < 0) {
		dh_free(d);
		return r;
	}
	*out = d;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct dirhandle *d;
	uint64_t id;
	int r;

	r = dir_new(fs, ino, &d);
	if (r == 0) {
		r = fs_fhtab_add(fs->fh, FS_FH_DIR, d, &id);
		if (r < 0)
			dh_free(d);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = id;
	/* ENOENT: the opendir was interrupted; the kernel will never release d. */
	if (fuse_reply_open(req, fi) == -ENOENT && fs_fhtab_del(fs->fh, id, d) == 0)
		dh_free(d);
}

/*
 * The listing of fi: ours, or, for a handle this process did not issue
 * (handle_adopt says when), one made again and registered under fi->fh. The
 * new listing may differ from the old one as a directory changing during a
 * listing does: names that came and went may be missed or seen twice.
 */
static int dir_handle(struct sigfs_fs *fs, fuse_ino_t ino, struct fuse_file_info *fi,
		      struct dirhandle **out)
{
	struct dirhandle *d = fs_fhtab_get(fs->fh, fi->fh, FS_FH_DIR);
	void *got = NULL;
	int r;

	if (d) {
		*out = d;
		return 0;
	}
	r = dir_new(fs, ino, &d);
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	r = fs_fhtab_adopt(fs->fh, fi->fh, FS_FH_DIR, d, &got);
	if (got == d)
		log_info("directory handle %#llx from an earlier sigfsd adopted",
			 (unsigned long long)fi->fh);
	else
		dh_free(d);     /* failed, or another thread adopted it first */
	if (r < 0)
		return r;
	*out = got;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirhandle *d;
	char *buf;
	size_t used = 0;
	int r;

	r = dir_handle(fs_data(req), ino, fi, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct stat st = { .st_ino = d->v[i].ino, .st_mode = d->v[i].type };
		size_t len = fuse_add_direntry(req, buf + used, size - used, d->v[i].name, &st,
					       (off_t)(i + 1));

		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sigfs_fs *fs = fs_data(req);
	struct dirhandle *d = fs_fhtab_get(fs->fh, fi->fh, FS_FH_DIR);

	(void)ino;
	/* Not adopted: nothing of it lives in this process. */
	if (d && fs_fhtab_del(fs->fh, fi->fh, d) == 0)
		dh_free(d);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(sigfs_keys_inbox_root(fs_data(req)->ks), &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Exportable over NFS: LOOKUP "." and ".." work, node ids are stable. */
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Writes reach us in order and uncached: hashing follows them. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = 1u << 20;
}

const struct fuse_lowlevel_ops sigfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.mknod = op_mknod,
	.symlink = op_symlink,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
};


/* Learn every inbox and file, so node ids from before a restart resolve. */
static void learn_all(struct sigfs_fs *fs)
{
	struct sigfs_key *keys;
	struct fs_node n;
	int nk;

	nk = sigfs_keys_list(fs->ks, &keys);
	for (int i = 0; i < nk; i++) {
		struct dirhandle d = { 0 };

		if (learn(fs, keys[i].name, NULL, &n) < 0)
			continue;
		if (list_inbox(fs, &d, &n) == 0)
			for (size_t j = 0; j < d.n; j++)
				learn(fs, keys[i].name, d.v[j].name, &n);
		for (size_t j = 0; j < d.n; j++)
			free(d.v[j].name);
		free(d.v);
	}
	if (nk >= 0)
		free(keys);
}

int sigfs_fs_new(const struct sigfs_config *cfg, struct sigfs_keys *ks, struct sigfs_engine *eng,
		 struct sigfs_fs **out)
{
	struct sigfs_fs *fs = calloc(1, sizeof(*fs));
	pthread_condattr_t cattr;
	int r;

	if (!fs)
		return -ENOMEM;
	fs->cfg = cfg;
	fs->ks = ks;
	fs->eng = eng;
	fs->start_time = time(NULL);
	pthread_mutex_init(&fs->names_lock, NULL);
	pthread_mutex_init(&fs->wlist_lock, NULL);
	pthread_mutex_init(&fs->waiters_lock, NULL);
	pthread_cond_init(&fs->waiters_cond, NULL);
	pthread_mutex_init(&fs->settle_lock, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->settle_cond, &cattr);
	pthread_condattr_destroy(&cattr);
	r = fs_fhtab_new(&fs->fh);
	if (r == 0)
		r = fs_nodes_new(&fs->nodes);
	if (r == 0) {
		learn_all(fs);
		r = -pthread_create(&fs->timer_thread, NULL, timer_main, fs);
		fs->timer_started = r == 0;
	}
	if (r == 0)
		r = settle_start(fs);
	if (r < 0) {
		sigfs_fs_free(fs);
		return r;
	}
	*out = fs;
	return 0;
}

void sigfs_fs_set_session(struct sigfs_fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

/* Free the handles the kernel did not release: their writes stay journaled (W). */
static void free_handles(struct sigfs_fs *fs)
{
	enum fs_fh_kind kind;
	void *p;

	while ((p = fs_fhtab_pop(fs->fh, &kind))) {
		struct handle *h = p;

		if (kind == FS_FH_DIR) {
			dh_free(p);
			continue;
		}
		if (h->ws)
			ws_put(fs, h->ws);
		handle_destroy(h);
	}
	fs_fhtab_free(fs->fh);
}

void sigfs_fs_stop(struct sigfs_fs *fs)
{
	if (!fs || !fs->settle_started)
		return;
	pthread_mutex_lock(&fs->settle_lock);
	fs->settle_stop = true;
	pthread_cond_signal(&fs->settle_cond);
	pthread_mutex_unlock(&fs->settle_lock);
	pthread_join(fs->settle_thread, NULL);
	fs->settle_started = false;
}

void sigfs_fs_free(struct sigfs_fs *fs)
{
	if (!fs)
		return;
	sigfs_fs_stop(fs);
	if (fs->fh)
		free_handles(fs);
	/* So do the writes still waiting to settle: the next start gives them NAME.err. */
	while (fs->settling) {
		struct wstate *w = fs->settling;

		settle_unlink(fs, w);
		w->settle_ref = false;
		ws_put(fs, w);
	}
	if (fs->timer_started) {
		pthread_mutex_lock(&fs->waiters_lock);
		fs->timer_stop = true;
		pthread_cond_signal(&fs->waiters_cond);
		pthread_mutex_unlock(&fs->waiters_lock);
		pthread_join(fs->timer_thread, NULL);
	}
	fs_nodes_free(fs->nodes);
	pthread_cond_destroy(&fs->settle_cond);
	pthread_mutex_destroy(&fs->settle_lock);
	pthread_cond_destroy(&fs->waiters_cond);
	pthread_mutex_destroy(&fs->waiters_lock);
	pthread_mutex_destroy(&fs->wlist_lock);
	pthread_mutex_destroy(&fs->names_lock);
	free(fs);
}
