/*
 * spool.c: spool mode (spool.h, docs/spool.md). One thread reads inotify:
 * the spool directory's events and each inbox's; once a second, and when a
 * directory appears in the spool directory, it compares the inboxes it
 * watches with the key store's keys. An overflowed event queue makes it
 * scan every inbox again, as at start: a scan submits every file that has
 * no up-to-date output (engine.h, sigfs_engine_output_current), so no event
 * lost, and no file that arrived while the daemon was down, goes unsigned.
 *
 * With settle_ms (a spool exported over NFS: NFSv3 has no close, and the
 * server's fd cache closes files in the middle of a write) an event does not
 * sign: it removes the name's old outputs and puts the name on the settle
 * list, and the name is signed once its ctime is settle_ms old (writes
 * through a descriptor kept open bring no event; the ctime shows them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dirutil.h"
#include "common/err.h"
#include "common/log.h"
#include "spool/pubdir.h"
#include "spool/rules.h"
#include "spool/spool.h"

#define SYNC_MS 1000                /* how often the inboxes are compared with the keys */
#define PUBLISH_MS 60000            /* .keys/KEY/ is rewritten at least this often */
#define SETTLE_BUCKETS 16384        /* hash chains of the settle list (struct settling) */
#define EVENT_WAIT_MS 1000          /* a scanned file its event may still bring: quiet this long */
#define LINGER_US 1000              /* with jobs waiting, events are read this often */
#define READ_SIZE 65536             /* one read of inotify */
#define READ_EVENTS (READ_SIZE / sizeof(struct inotify_event)) /* the most one read brings */
_Static_assert(READ_EVENTS <= SPOOL_FOLLOW_MAX, "one read's events fit spool_mark_followed");
#define READS_PER_TURN 64           /* inotify reads (64 KiB each) before the settle list's turn */
#define INBOX_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MOVE_SELF | IN_ONLYDIR | \
		    IN_EXCL_UNLINK)
#define ROOT_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

/* One watched inbox. */
struct inbox {
	char key[SIGFS_KEYNAME_MAX + 1];
	int fd;                             /* DIR/<key>, opened without following a link */
	struct sigfs_dirref *ref;           /* fd, shared with the jobs queued for it */
	int wd;
	struct timespec watched;            /* CLOCK_REALTIME just before the watch was added */
	bool seen;                          /* its key was in the last list */
	char *meta;                         /* the key's settings when .keys/KEY/ was written */
	uint64_t published_ms;              /* and when (CLOCK_MONOTONIC) */
};

struct sigfs_spool {
	const struct sigfs_config *cfg;
	struct sigfs_keys *ks;
	struct sigfs_engine *eng;
	int root;                           /* DIR */
	int in;                             /* the inotify descriptor */
	int stop[2];                        /* a byte on stop[1] ends the thread */
	pthread_t thread;
	struct inbox *boxes;                /* only the spool's thread touches them after start */
	size_t nboxes;
	/*
	 * settle_ms: the names waiting to be quiet, in the order they are due
	 * (head first), and a hash by key and name to find one. A batch of
	 * tens of thousands of files settles at once over NFS: every step is
	 * O(1) per name, so the batch costs what its files cost.
	 */
	struct settling *settle_head, *settle_tail;
	struct settling **settle_hash;      /* SETTLE_BUCKETS chains, made at the first use */
	struct timespec read_at;            /* CLOCK_REALTIME before the last read of inotify */
	/* One read's events, and which creates a later event of the read follows (rules.h). */
	const struct inotify_event *evs[READ_EVENTS];
	bool followed[READ_EVENTS];
	uint16_t slots[2 * SPOOL_FOLLOW_MAX];
};

/* A name waiting for settle_ms without a modification (spool thread only). */
struct settling {
	struct settling *prev, *next;       /* the due order */
	struct settling *hnext;             /* its hash chain */
	uint64_t due_ms;                    /* CLOCK_MONOTONIC: when to look at it again */
	unsigned quiet_ms;                  /* signed once its ctime is this old */
	char key[SIGFS_KEYNAME_MAX + 1];
	char name[NAME_MAX + 1];
};

struct claim {
	uid_t uid;                          /* the file's owner */
	char in_the_way[NAME_MAX + 1];
	uid_t owner;
};

static int claim_cb(void *arg, const char *name, const struct stat *st)
{
	struct claim *c = arg;
	char err[SIGFS_ERRLEN];

	/*
	 * Only another user's input claims the output names. An output name
	 * another user owns with no input of theirs behind it was planted
	 * there (in the mount output names cannot be created): it is replaced.
	 */
	if (c->uid == st->st_uid || sigfs_engine_name_check(name, err) == -EPERM)
		return 0;
	snprintf(c->in_the_way, sizeof(c->in_the_way), "%s", name);
	c->owner = st->st_uid;
	return -EPERM;
}

/*
 * May name (whose stat is st) of inbox b take its output names? The sticky
 * rule (spool_owner_only): the mount refuses such a create; the spool sees
 * the file only once it is written, so it neither removes the other user's
 * outputs nor signs it, and says so in the log (no NAME.err: that name is
 * the other user's too).
 */
static bool may_claim(struct sigfs_spool *sp, struct inbox *b, const char *name,
		      const struct stat *st)
{
	struct claim c = { .uid = st->st_uid };
	char esc[SIGFS_ESCAPED_MAX], esc2[SIGFS_ESCAPED_MAX];
	struct stat inbox;

	if (fstat(b->fd, &inbox) < 0 || !spool_owner_only(c.uid, &inbox) ||
	    sigfs_engine_siblings_at(sp->eng, b->key, b->fd, name, claim_cb, &c) != -EPERM)
		return true;
	log_warn("spool: refused: key %s: %s of uid %u shares its outputs with %s, which belongs "
		 "to uid %u, in a sticky inbox: only that user, the inbox's owner or root may "
		 "replace them", b->key, sigfs_escape(name, esc, sizeof(esc)), (unsigned)c.uid,
		 sigfs_escape(c.in_the_way, esc2, sizeof(esc2)), (unsigned)c.owner);
	return false;
}

static struct inbox *box_by_wd(struct sigfs_spool *sp, int wd)
{
	for (size_t i = 0; i < sp->nboxes; i++)
		if (sp->boxes[i].wd == wd)
			return &sp->boxes[i];
	return NULL;
}

static struct inbox *box_by_key(struct sigfs_spool *sp, const char *key)
{
	for (size_t i = 0; i < sp->nboxes; i++)
		if (strcmp(sp->boxes[i].key, key) == 0)
			return &sp->boxes[i];
	return NULL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The hash chain of key's name. */
static struct settling **settle_chain(struct sigfs_spool *sp, const char *key, const char *name)
{
	return &sp->settle_hash[sigfs_name_hash(key, name) % SETTLE_BUCKETS];
}

static void settle_unlink(struct sigfs_spool *sp, struct settling *e)
{
	*(e->prev ? &e->prev->next : &sp->settle_head) = e->next;
	*(e->next ? &e->next->prev : &sp->settle_tail) = e->prev;
	e->prev = e->next = NULL;
}

/* Into the due order: from the tail, where a new due time almost always goes. */
static void settle_insert(struct sigfs_spool *sp, struct settling *e, uint64_t due)
{
	struct settling *after = sp->settle_tail;

	e->due_ms = due;
	while (after && after->due_ms > due)
		after = after->prev;
	e->prev = after;
	e->next = after ? after->next : sp->settle_head;
	*(e->next ? &e->next->prev : &sp->settle_tail) = e;
	*(after ? &after->next : &sp->settle_head) = e;
}

/* Off the list and freed. */
static void settle_drop(struct sigfs_spool *sp, struct settling *e)
{
	struct settling **pp = settle_chain(sp, e->key, e->name);

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	settle_unlink(sp, e);
	free(e);
}

/* The settle list's entry of name in key's inbox, or NULL. */
static struct settling *settle_find(struct sigfs_spool *sp, const char *key, const char *name)
{
	if (!sp->settle_hash)
		return NULL;
	for (struct settling *e = *settle_chain(sp, key, name); e; e = e->hnext)
		if (strcmp(e->key, key) == 0 && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* Put name of inbox b on the settle list (again), to be signed once quiet_ms quiet. */
static void settle_add(struct sigfs_spool *sp, struct inbox *b, const char *name, unsigned quiet_ms)
{
	uint64_t due = mono_ms() + quiet_ms;
	struct settling **chain, *e;

	if (!sp->settle_hash && !(sp->settle_hash = calloc(SETTLE_BUCKETS, sizeof(*sp->settle_hash)))) {
		log_err("spool: key %s: out of memory: %s is not signed", b->key, name);
		return;
	}
	e = settle_find(sp, b->key, name);
	if (e) {
		e->quiet_ms = quiet_ms;
		settle_unlink(sp, e);
		settle_insert(sp, e, due);
		return;
	}
	chain = settle_chain(sp, b->key, name);
	e = calloc(1, sizeof(*e));
	if (!e) {
		log_err("spool: key %s: out of memory: %s is not signed", b->key, name);
		return;
	}
	snprintf(e->key, sizeof(e->key), "%s", b->key);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->quiet_ms = quiet_ms;
	e->hnext = *chain;
	*chain = e;
	settle_insert(sp, e, due);
}

/*
 * Hand name of inbox b to the engine (unless, without force, it has an
 * up-to-date output): at once, or (quiet_ms) on the settle list, to be
 * signed once it has been quiet that long.
 */
static void submit(struct sigfs_spool *sp, struct inbox *b, const char *name, const struct stat *st,
		   bool force, unsigned quiet_ms)
{
	struct sigfs_submit s = { .key = b->key, .name = name, .ino = st->st_ino, .uid = st->st_uid,
				  .spool = true, .dir = b->ref, .admit = spool_admit };
	char esc[SIGFS_ESCAPED_MAX];
	int r;

	if (!force && sigfs_engine_output_current(sp->eng, b->key, b->fd, name, st))
		return;
	if (!may_claim(sp, b, name, st))
		return;
	/* Its old outputs are stale: removed at once, and no job still running places one. */
	sigfs_engine_forget_at(sp->eng, b->key, b->fd, name);
	if (quiet_ms) {
		settle_add(sp, b, name, quiet_ms);
		return;
	}
	r = sigfs_engine_submit(sp->eng, &s);
	if (r < 0)
		log_err("spool: key %s: %s: cannot queue it: %s", b->key,
			sigfs_escape(name, esc, sizeof(esc)), strerror(-r));
}

/*
 * Sign what has been quiet for settle_ms on the settle list; look again
 * later at what was modified meanwhile. Returns the ms until the next
 * look (-1: the list is empty).
 */
static int settle_due(struct sigfs_spool *sp)
{
	uint64_t now = mono_ms();
	struct timespec real;
	struct settling *e;

	clock_gettime(CLOCK_REALTIME, &real);
	while ((e = sp->settle_head) && e->due_ms <= now) {
		struct inbox *b = box_by_key(sp, e->key);
		struct stat st;
		unsigned left;

		/* Gone, or no longer a name to sign: nothing to do (its event brings the rest). */
		if (!b || fstatat(b->fd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    spool_event_action(IN_MOVED_TO, e->name, &st) != SPOOL_SUBMIT) {
			settle_drop(sp, e);
			continue;
		}
		left = spool_settle_left(&st, &real, e->quiet_ms);
		if (left) {
			settle_unlink(sp, e);
			settle_insert(sp, e, now + left);
			continue;
		}
		submit(sp, b, e->name, &st, true, 0);
		settle_drop(sp, e);
	}
	return e ? (int)(e->due_ms - now) : -1;
}

/* An event on name in inbox b; followed: a later event of this read brings it complete. */
static void on_event(struct sigfs_spool *sp, struct inbox *b, uint32_t mask, const char *name,
		     bool followed)
{
	struct settling *e;
	struct stat st;

	/* A name made here, maybe an output (a user's, or a job's): forget looks for it. */
	if (mask & (IN_CREATE | IN_MOVED_TO))
		sigfs_engine_output_seen(sp->eng, b->key, name);
	if (followed || !spool_event_wanted(mask, name) ||
	    fstatat(b->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    spool_event_action(mask, name, &st) != SPOOL_SUBMIT)
		return;
	/* A scan's entry that waited for this event: the event signs it, once. */
	if (!sp->cfg->settle_ms && (e = settle_find(sp, b->key, name)))
		settle_drop(sp, e);
	/*
	 * Signed again even if an output has its mtime: a rewrite within one
	 * tick of the kernel's clock keeps the mtime (the scan cannot tell).
	 */
	submit(sp, b, name, &st, true, sp->cfg->settle_ms);
}

/*
 * Submit every file of inbox b that has no up-to-date output. first: b was
 * just opened, no job of this run can be writing there yet, so temporary
 * outputs (SIGFS_TMP_PREFIX) are what a killed daemon left: removed.
 * since: events from then on are still to be read. A file changed since
 * then waits for its event (or EVENT_WAIT_MS of quiet, if the change was
 * one no event reports), so the scan and the event do not both sign it.
 */
static void scan(struct sigfs_spool *sp, struct inbox *b, bool first, const struct timespec *since)
{
	struct dirent *d;
	int fd = openat(b->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	size_t n = 0;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		log_err("spool: key %s: cannot read its inbox: %s", b->key, strerror(errno));
		return;
	}
	/*
	 * First every output name there (readdir's order is the directory's
	 * hash order: a file's stale outputs can come after it), then the files.
	 */
	while ((d = readdir(dir)))
		sigfs_engine_output_seen(sp->eng, b->key, d->d_name);
	rewinddir(dir);
	while ((d = readdir(dir))) {
		struct stat st;

		if (first && strncmp(d->d_name, SIGFS_TMP_PREFIX, strlen(SIGFS_TMP_PREFIX)) == 0) {
			unlinkat(b->fd, d->d_name, 0);
			continue;
		}
		/* As if each had just been renamed in: complete, or to be refused. */
		if (fstatat(b->fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) ||
		    spool_event_action(IN_MOVED_TO, d->d_name, &st) != SPOOL_SUBMIT)
			continue;
		submit(sp, b, d->d_name, &st, false,
		       sp->cfg->settle_ms ? sp->cfg->settle_ms
					  : spool_event_may_follow(&st, since) ? EVENT_WAIT_MS : 0);
		n++;
	}
	closedir(dir);
	log_debug("spool: key %s: scanned %zu inputs", b->key, n);
}

static void box_drop(struct sigfs_spool *sp, struct inbox *b, bool rm_watch)
{
	if (rm_watch)
		inotify_rm_watch(sp->in, b->wd);
	sigfs_dirref_put(b->ref);   /* closes fd once no queued job needs it */
	free(b->meta);
	*b = sp->boxes[--sp->nboxes];
}

/*
 * Open DIR/key, making it as the mount makes an inbox (root, cfg inbox_gid,
 * inbox_mode) if it is missing. A directory that exists keeps its owner and
 * mode: admins chown and chmod it.
 */
static int open_inbox(struct sigfs_spool *sp, const char *key)
{
	const struct sigfs_config *cfg = sp->cfg;
	bool made = mkdirat(sp->root, key, cfg->inbox_mode) == 0;
	int fd = openat(sp->root, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		log_err("spool: key %s: cannot open its inbox: %s", key, strerror(errno));
		return -1;
	}
	if (made && (fchown(fd, 0, cfg->inbox_gid) < 0 || fchmod(fd, cfg->inbox_mode) < 0))
		log_err("spool: key %s: cannot set its inbox's owner and mode: %s", key,
			strerror(errno));
	if (made)
		log_info("spool: key %s: made its inbox", key);
	return fd;
}

/*
 * Write .keys/KEY/ for b's key k when its settings changed since the last
 * time, or PUBLISH_MS passed (an admin's cert.pem is not in the settings).
 */
static void publish(struct sigfs_spool *sp, struct inbox *b, const struct sigfs_key *k)
{
	char meta[SIGFS_KEY_META_MAX];
	uint64_t now = mono_ms();

	if (sigfs_key_meta_format(k, meta, sizeof(meta)) < 0)
		meta[0] = '\0';
	if (b->meta && strcmp(b->meta, meta) == 0 && now - b->published_ms < PUBLISH_MS)
		return;
	if (spool_publish(sp->root, sp->ks, k) < 0)
		return;
	free(b->meta);
	b->meta = strdup(meta);
	b->published_ms = now;
}

/* Watch the inbox of key and scan it. */
static void box_add(struct sigfs_spool *sp, const struct sigfs_key *k)
{
	const char *key = k->name;
	struct sigfs_dirref *ref;
	struct inbox *nb, *b;
	struct timespec watched;
	char path[64];
	int fd, wd;

	nb = realloc(sp->boxes, (sp->nboxes + 1) * sizeof(*nb));
	if (!nb)
		return;
	sp->boxes = nb;
	fd = open_inbox(sp, key);
	if (fd < 0)
		return;
	/* The directory just opened, not whatever the name means by now. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	clock_gettime(CLOCK_REALTIME, &watched);
	wd = inotify_add_watch(sp->in, path, INBOX_MASK);
	if (wd < 0) {
		log_err("spool: key %s: cannot watch its inbox: %s", key, strerror(errno));
		close(fd);
		return;
	}
	ref = sigfs_dirref_new(fd);
	if (!ref) {
		log_err("spool: key %s: out of memory", key);
		inotify_rm_watch(sp->in, wd);
		return;
	}
	b = &sp->boxes[sp->nboxes++];
	memset(b, 0, sizeof(*b));
	snprintf(b->key, sizeof(b->key), "%s", key);
	b->fd = fd;
	b->ref = ref;
	b->wd = wd;
	b->watched = watched;
	b->seen = true;
	/* Its public side first: a waiting `sigfs wait` checks the outputs with it. */
	publish(sp, b, k);
	scan(sp, b, true, &b->watched);
}

/* Watch the inboxes of new keys; stop watching those of deleted keys (their directories stay). */
static void sync_keys(struct sigfs_spool *sp)
{
	struct sigfs_key *keys;
	int n = sigfs_keys_list(sp->ks, &keys);

	if (n < 0)
		return;
	for (size_t i = 0; i < sp->nboxes; i++)
		sp->boxes[i].seen = false;
	for (int i = 0; i < n; i++) {
		struct inbox *b = box_by_key(sp, keys[i].name);

		if (b) {
			b->seen = true;
			publish(sp, b, &keys[i]);
		} else {
			box_add(sp, &keys[i]);
		}
	}
	free(keys);
	for (size_t i = 0; i < sp->nboxes;) {
		if (sp->boxes[i].seen) {
			i++;
			continue;
		}
		log_info("spool: key %s is gone: its inbox is no longer signed", sp->boxes[i].key);
		box_drop(sp, &sp->boxes[i], true);
	}
}

static void rescan(struct sigfs_spool *sp)
{
	log_warn("spool: inotify's queue overflowed: scanning every inbox");
	for (size_t i = 0; i < sp->nboxes; i++) {
		sigfs_engine_outputs_unknown(sp->eng, sp->boxes[i].key);
		/* The events after the overflow came with the read that brought it, or later. */
		scan(sp, &sp->boxes[i], false, &sp->read_at);
	}
}

/* Read and handle one buffer of what inotify has; false when there is no more (*failed: why). */
static bool read_events(struct sigfs_spool *sp, bool *failed)
{
	char buf[READ_SIZE] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool sync = false;
	size_t nev = 0;
	ssize_t n;

	clock_gettime(CLOCK_REALTIME, &sp->read_at);
	n = read(sp->in, buf, sizeof(buf));
	if (n <= 0) {
		*failed = n == 0 || (errno != EINTR && errno != EAGAIN);
		return false;
	}
	for (char *p = buf; p < buf + n && nev < READ_EVENTS; nev++) {
		sp->evs[nev] = (const struct inotify_event *)p;
		p += sizeof(struct inotify_event) + sp->evs[nev]->len;
	}
	spool_mark_followed(sp->evs, nev, sp->followed, sp->slots);
	for (size_t i = 0; i < nev; i++) {
		const struct inotify_event *ev = sp->evs[i];
		struct inbox *b;

		if (ev->mask & IN_Q_OVERFLOW) {
			rescan(sp);
			sync = true;
		} else if (!(b = box_by_wd(sp, ev->wd))) {
			sync = true;                /* the spool directory: a new directory */
		} else if (ev->mask & IN_IGNORED) {
			box_drop(sp, b, false);     /* removed: made again by sync */
			sync = true;
		} else if (ev->mask & IN_MOVE_SELF) {
			box_drop(sp, b, true);      /* renamed by an admin: no longer KEY's inbox */
			sync = true;
		} else if (ev->len) {
			on_event(sp, b, ev->mask, ev->name, sp->followed[i]);
		}
	}
	if (sync)
		sync_keys(sp);
	return true;
}

/*
 * Read what inotify has (up to READS_PER_TURN buffers): events before the
 * settle list, so that an entry waiting for its event meets the event
 * first. The number of buffers read, or -1 when reading failed.
 */
static int drain_events(struct sigfs_spool *sp)
{
	bool failed = false;
	int i;

	for (i = 0; i < READS_PER_TURN && read_events(sp, &failed); i++)
		;
	return failed ? -1 : i;
}

static void *spool_main(void *arg)
{
	struct sigfs_spool *sp = arg;
	struct pollfd p[2] = { { .fd = sp->in, .events = POLLIN }, { .fd = sp->stop[0], .events = POLLIN } };
	uint64_t synced = mono_ms();
	int wait = 0;

	for (;;) {
		int r = poll(p, 2, wait >= 0 && wait < SYNC_MS ? wait : SYNC_MS), reads = 0;
		size_t waiting = sigfs_engine_backlog(sp->eng);

		if (r < 0 && errno != EINTR) {
			log_err("spool: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (r > 0 && (p[0].revents & POLLIN) && (reads = drain_events(sp)) < 0) {
			log_err("spool: reading inotify: %s", strerror(errno));
			break;
		}
		if (mono_ms() - synced >= SYNC_MS) {
			sync_keys(sp);
			synced = mono_ms();
		}
		wait = settle_due(sp);
		/*
		 * Events came while jobs waited for a worker, and jobs still wait:
		 * the next events can wait too. inotify is read again in LINGER_US,
		 * not at a wake-up per event, each of which costs the writer or
		 * worker whose system call queued it and this thread a switch
		 * (decision 81). A writer who waits for each signature finds no
		 * job waiting when its next file comes, and is not held back. Once
		 * a look finds no event, the thread sleeps in poll again.
		 */
		if (reads > 0 && waiting > 0 && sigfs_engine_backlog(sp->eng) > 0) {
			struct timespec ts = { 0, LINGER_US * 1000L };

			if (ppoll(&p[1], 1, &ts, NULL) > 0)
				break;
			wait = 0;
		}
	}
	return NULL;
}

/*
 * Open the spool directory: made 0755 if missing; it must be a directory
 * owned by root (or the daemon's euid) that nobody else may write, since
 * the daemon makes inboxes in it and a planted DIR/<key> would be trusted.
 */
static int open_root(const char *path, int *fd, char *err)
{
	struct stat st;

	if (path[0] != '/')
		return sigfs_seterr(err, -EINVAL, "spool directory %s: not an absolute path", path);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return sigfs_seterr(err, -errno, "spool directory %s: cannot make it: %s", path,
				    strerror(errno));
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return sigfs_seterr(err, -errno, "spool directory %s: %s", path, strerror(errno));
	if (fstat(*fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(*fd);
		return sigfs_seterr(err, -EPERM, "spool directory %s: must be owned by root and "
				    "writable by nobody else (chown root %s; chmod go-w %s)",
				    path, path, path);
	}
	return 0;
}

static void spool_free(struct sigfs_spool *sp)
{
	while (sp->nboxes)
		box_drop(sp, &sp->boxes[0], false);
	free(sp->boxes);
	while (sp->settle_head)
		settle_drop(sp, sp->settle_head);
	free(sp->settle_hash);
	if (sp->in >= 0)
		close(sp->in);
	if (sp->root >= 0)
		close(sp->root);
	if (sp->stop[0] >= 0) {
		close(sp->stop[0]);
		close(sp->stop[1]);
	}
	free(sp);
}

int sigfs_spool_start(const struct sigfs_config *cfg, struct sigfs_keys *ks,
		      struct sigfs_engine *eng, struct sigfs_spool **out, char *err)
{
	struct sigfs_spool *sp = calloc(1, sizeof(*sp));
	char path[64];
	int r;

	if (!sp)
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	*sp = (struct sigfs_spool){ .cfg = cfg, .ks = ks, .eng = eng, .root = -1, .in = -1,
				    .stop = { -1, -1 } };
	r = open_root(cfg->spool_dir, &sp->root, err);
	if (r < 0)
		goto fail;
	sp->in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (sp->in < 0 || pipe2(sp->stop, O_CLOEXEC) < 0) {
		r = sigfs_seterr(err, -errno, "spool: cannot start inotify: %s", strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", sp->root);
	if (inotify_add_watch(sp->in, path, ROOT_MASK) < 0) {
		r = sigfs_seterr(err, -errno, "spool directory %s: cannot watch it: %s",
				 cfg->spool_dir, strerror(errno));
		goto fail;
	}
	/* Watch first, then scan: a file that arrives meanwhile is seen by one or both. */
	sync_keys(sp);
	if (pthread_create(&sp->thread, NULL, spool_main, sp) != 0) {
		r = sigfs_seterr(err, -EAGAIN, "spool: cannot start its thread");
		goto fail;
	}
	log_info("spool: watching %s (%zu inboxes)", cfg->spool_dir, sp->nboxes);
	*out = sp;
	return 0;
fail:
	spool_free(sp);
	return r;
}

void sigfs_spool_stop(struct sigfs_spool *sp)
{
	if (!sp)
		return;
	if (write(sp->stop[1], "", 1) != 1)
		log_warn("spool: cannot tell its thread to stop: %s", strerror(errno));
	pthread_join(sp->thread, NULL);
	spool_free(sp);
}
