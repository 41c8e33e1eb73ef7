/*
 * keys.c: the key store of keys.h.
 *
 * Layout under the state directory:
 *   keys/NAME/meta    settings, "name=value" lines, replaced atomically
 *   keys/NAME/count   signatures made, rewritten in place (one pwrite per signature)
 *   inbox/NAME/       the inbox: artifacts and outputs; its owner, group and
 *                     mode are the inbox's access control and survive restarts
 * Key material lives in the key's backend, never here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/dirutil.h"
#include "common/err.h"
#include "common/log.h"
#include "common/safedir.h"
#include "common/sbuf.h"
#include "signer/keys.h"

struct keyent {
	struct sigfs_key k;
	int countfd;
	EVP_PKEY *pub;              /* public key, loaded on first use; NULL after a change */
	/*
	 * Its backend is changing it (delete, regenerate, import): the store's
	 * lock is not held meanwhile, so a slow or unreachable backend stalls
	 * nothing else, and other changes of this key are refused (EBUSY).
	 */
	bool busy;
	char last_error[SIGFS_ERRLEN + 64];  /* the last refused change, for .ctl */
	struct keyent *next;
};

#define MAX_BACKENDS 16
/*
 * The backend lines of .ctl/status are reused for this long: one `cat` makes
 * the status several times (lookup, getattr for the size, open), and each
 * would otherwise ask every backend again, a down NetHSM costing its connect
 * timeout each time. Creating or deleting a key makes them stale at once.
 */
#define BACKENDS_STATUS_MS 1000
#define BACKENDS_STATUS_MAX (1 << 16)

struct sigfs_keys {
	/*
	 * The store's locks, in the order they may be taken: status_lock, then
	 * lock, then the audit log's own lock (a key's delete or import is
	 * audited under lock). No backend operation runs under lock: a change
	 * marks its key busy and lets lock go meanwhile (keyent.busy).
	 *
	 * lock         the key list and every keyent's fields; the backends
	 *              table (a backend is opened under it, then used without it)
	 * status_lock  the cached backend lines: status, status_at, status_gen;
	 *              held while the backends are listed, so one listing runs at
	 *              a time and later readers reuse it
	 * changes is atomic and needs neither.
	 */
	pthread_mutex_t lock;
	struct keyent *list;
	int state_fd;
	int keys_fd;
	int inbox_fd;
	const struct sigfs_config *cfg;
	struct sigfs_audit *audit;
	struct sigfs_backend *backends[MAX_BACKENDS];
	size_t nbackends;
	pthread_mutex_t status_lock;
	struct sbuf status;           /* the last backend lines */
	struct timespec status_at;    /* when they were made (CLOCK_MONOTONIC) */
	unsigned long status_gen;     /* changes when they were made */
	unsigned long changes;        /* keys created or deleted (atomic) */
	struct sigfs_env env;         /* every field set: the real ones or a test's */
};

enum { A_ALGORITHM, A_DIGEST, A_FORMAT, A_PADDING, A_ALLOW_SHA1, A_DIGEST_FILES,
       A_IMPORT, A_PUBKEY, A_COUNT, A_BACKEND, A_CREATED, A_UID, A_NAMESPACE, A_LAST_ERROR,
       A_N };

/* Attributes past A_N are the formats' files (format.h), in format table order. */
#define MAX_FORMAT_ATTRS 16
#define CACHE_PREFIX "cache."
/* A path under keys/: NAME/, a file name and the temporary name's dot and .tmp. */
#define KEYPATH_MAX (SIGFS_KEYNAME_MAX + 96)
#define DELETING_PREFIX ".deleting."

static const struct sigfs_key_attr attrs[A_N] = {
	[A_ALGORITHM] = { "algorithm", 0660 },
	[A_DIGEST] = { "digest", 0660 },
	[A_FORMAT] = { "format", 0660 },
	[A_PADDING] = { "padding", 0660 },
	[A_ALLOW_SHA1] = { "allow_sha1", 0660 },
	[A_DIGEST_FILES] = { "digest_files", 0660 },
	[A_IMPORT] = { "import", 0220 },
	[A_PUBKEY] = { "pubkey.pem", 0440 },
	[A_COUNT] = { "count", 0440 },
	[A_BACKEND] = { "backend", 0440 },
	[A_CREATED] = { "created", 0440 },
	[A_UID] = { "uid", 0660 },
	[A_NAMESPACE] = { "namespace", 0660 },
	[A_LAST_ERROR] = { "last-error", 0440 },
};

static struct sigfs_key_attr format_attrs[MAX_FORMAT_ATTRS];
static size_t n_format_attrs;
static pthread_once_t format_attrs_once = PTHREAD_ONCE_INIT;

static void collect_format_attrs(void)
{
	const struct sigfs_format_attr *fa;

	for (size_t i = 0; (fa = sigfs_format_attr_at(i)) && i < MAX_FORMAT_ATTRS; i++) {
		format_attrs[i].name = fa->name;
		format_attrs[i].mode = fa->writable ? 0660 : 0440;
		n_format_attrs = i + 1;
	}
}

const struct sigfs_key_attr *sigfs_key_attr_at(size_t i)
{
	pthread_once(&format_attrs_once, collect_format_attrs);
	if (i < A_N)
		return &attrs[i];
	return i - A_N < n_format_attrs ? &format_attrs[i - A_N] : NULL;
}

int sigfs_key_attr_find(const char *name)
{
	const struct sigfs_key_attr *a;

	for (size_t i = 0; (a = sigfs_key_attr_at(i)); i++)
		if (strcmp(a->name, name) == 0)
			return (int)i;
	return -ENOENT;
}

int sigfs_keys_name_ok(const char *name, char *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > SIGFS_KEYNAME_MAX)
		return sigfs_seterr(err, -EINVAL, "key names have 1 to %d characters",
				    SIGFS_KEYNAME_MAX);
	if (name[0] == '.')
		return sigfs_seterr(err, -EINVAL, "key names must not start with '.'");
	if (strstr(name, ".."))
		return sigfs_seterr(err, -EINVAL, "key names must not contain '..'");
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return sigfs_seterr(err, -EINVAL,
					    "key names may hold only letters, digits, '.', '_' and '-'");
	}
	return 0;
}

/* --- backends ------------------------------------------------------------ */

/* The type setting of backend name (soft needs none); NULL if unset. */
static const char *backend_type(struct sigfs_keys *ks, const char *name,
				struct sigfs_backend_conf *conf)
{
	sigfs_config_backend(ks->cfg, name, conf);
	return conf->get(conf, "type", strcmp(name, "soft") == 0 ? "soft" : NULL);
}

/* Backend name, opened on first use into *out; 0 or the reason it cannot be (in err). */
static int backend_open(struct sigfs_keys *ks, const char *name, struct sigfs_backend **out,
			char *err)
{
	struct sigfs_backend_conf conf;
	const struct sigfs_backend_ops *ops;
	struct sigfs_backend *b;
	const char *type;
	int r;

	for (size_t i = 0; i < ks->nbackends; i++) {
		if (strcmp(ks->backends[i]->name, name) == 0) {
			*out = ks->backends[i];
			return 0;
		}
	}
	if (ks->nbackends == MAX_BACKENDS)
		return sigfs_seterr(err, -ENOSPC, "too many backends (at most %d)", MAX_BACKENDS);
	type = backend_type(ks, name, &conf);
	if (!type)
		return sigfs_seterr(err, -ENOENT,
				    "backend %s is not configured: add [backend %s] with a type",
				    name, name);
	ops = ks->env.backend_type(type);
	if (!ops)
		return sigfs_seterr(err, -EINVAL, "backend %s has unknown type %s", name, type);
	r = ops->open(&conf, &b, err);
	if (r < 0)
		return r;
	snprintf(b->name, sizeof(b->name), "%s", name);
	ks->backends[ks->nbackends++] = b;
	*out = b;
	return 0;
}

static struct sigfs_backend *backend_get(struct sigfs_keys *ks, const char *name, char *err)
{
	struct sigfs_backend *b = NULL;

	return backend_open(ks, name, &b, err) < 0 ? NULL : b;
}

/* One status line of backend name; the list runs without the store's lock. */
static int backend_status(struct sigfs_keys *ks, const char *name, struct sbuf *out)
{
	struct sigfs_backend_conf conf;
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN], line[SIGFS_ERRLEN + 256], **ids = NULL;
	const char *type;
	size_t n = 0;
	int len, r;

	pthread_mutex_lock(&ks->lock);
	r = backend_open(ks, name, &b, err);
	type = r == 0 ? b->ops->type : backend_type(ks, name, &conf);
	pthread_mutex_unlock(&ks->lock);
	if (r == 0 && b->ops->list)
		r = b->ops->list(b, &ids, &n, err);
	if (r < 0)
		len = snprintf(line, sizeof(line), "backend %s: %s, unreachable: %s\n", name,
			       type ? type : "no type", err);
	else if (b->ops->list)
		len = snprintf(line, sizeof(line), "backend %s: %s, %zu key%s\n", name, type, n,
			       n == 1 ? "" : "s");
	else
		len = snprintf(line, sizeof(line), "backend %s: %s\n", name, type);
	sigfs_backend_list_free(ids, n);
	return sbuf_put(out, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

int sigfs_keys_backends_status(struct sigfs_keys *ks, struct sbuf *out)
{
	unsigned long changes = __atomic_load_n(&ks->changes, __ATOMIC_ACQUIRE);
	struct timespec now;
	const char *name;
	int r = 0;

	pthread_mutex_lock(&ks->status_lock);
	ks->env.mono(&now);
	if (!ks->status.len || ks->status_gen != changes ||
	    (now.tv_sec - ks->status_at.tv_sec) * 1000 +
	    (now.tv_nsec - ks->status_at.tv_nsec) / 1000000 >= BACKENDS_STATUS_MS) {
		sbuf_free(&ks->status);
		sbuf_init(&ks->status, BACKENDS_STATUS_MAX);
		r = backend_status(ks, "soft", &ks->status);
		for (size_t i = 0; r == 0 && (name = sigfs_config_backend_at(ks->cfg, i)); i++)
			if (strcmp(name, "soft") != 0)
				r = backend_status(ks, name, &ks->status);
		ks->env.mono(&ks->status_at);
		ks->status_gen = changes;
	}
	if (r == 0)
		r = sbuf_put(out, ks->status.d, ks->status.len);
	pthread_mutex_unlock(&ks->status_lock);
	return r;
}

/* A key was created or deleted: the backend lines of the status are stale. */
static void status_changed(struct sigfs_keys *ks)
{
	__atomic_add_fetch(&ks->changes, 1, __ATOMIC_RELEASE);
}

/* --- metadata files -------------------------------------------------------- */

int sigfs_key_meta_format(const struct sigfs_key *k, char *buf, size_t len)
{
	int n = snprintf(buf, len,
			 "algorithm=%s\ndigest=%s\ndigest_auto=%s\nformat=%s\npadding=%s\n"
			 "allow_sha1=%s\ndigest_files=%s\nbackend=%s\ncreated=%lld\nuid=%s\n"
			 "namespace=%s\n",
			 k->alg->name, k->digest->name, k->digest_auto ? "yes" : "no",
			 k->format->name, sigfs_padding_name(k->padding),
			 k->allow_sha1 ? "yes" : "no", k->digest_files ? "yes" : "no", k->backend,
			 (long long)k->created, k->uid, k->ssh_namespace);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

/* The path of keys/NAME/file relative to keys/, or of its temporary twin: 0 or -ENAMETOOLONG. */
static int key_path(char *path, const char *name, const char *file, bool tmp)
{
	int n = snprintf(path, KEYPATH_MAX, tmp ? "%s/.%s.tmp" : "%s/%s", name, file);

	return n < 0 || n >= KEYPATH_MAX ? -ENAMETOOLONG : 0;
}

/* Write keys/NAME/file atomically (and durably when sync). */
static int write_keyfile(struct sigfs_keys *ks, const char *name, const char *file,
			 const void *data, size_t len, bool sync)
{
	char tmp[KEYPATH_MAX], path[KEYPATH_MAX];
	int r;

	r = key_path(tmp, name, file, true);
	if (r == 0)
		r = key_path(path, name, file, false);
	if (r < 0)
		return r;
	return sigfs_replace_file(ks->keys_fd, path, tmp, data, len, 0600, sync);
}

static int write_meta(struct sigfs_keys *ks, const struct sigfs_key *k)
{
	char buf[SIGFS_KEY_META_MAX];
	int n = sigfs_key_meta_format(k, buf, sizeof(buf));

	return n < 0 ? n : write_keyfile(ks, k->name, "meta", buf, (size_t)n, ks->cfg->fsync);
}

/*
 * The digest a key of alg gets unless an admin chooses one: the configured
 * default, raised to the curve's size for ECDSA P-384 and P-521 (sha384,
 * sha512), as gpg does, so that formats which refuse a digest shorter than
 * the curve (OpenPGP) work with those keys out of the box.
 */
static const struct sigfs_digest *default_digest(const struct sigfs_alg *alg,
						 const struct sigfs_digest *cfg_default)
{
	const struct sigfs_digest *want = NULL;

	if (strcmp(alg->name, "ecdsa-p384") == 0)
		want = sigfs_digest_by_name("sha384");
	else if (strcmp(alg->name, "ecdsa-p521") == 0)
		want = sigfs_digest_by_name("sha512");
	return want && want->len > cfg_default->len ? want : cfg_default;
}

/* Settings a key has from its name until an admin changes them. */
static void set_default_names(struct sigfs_key *k)
{
	if (!k->uid[0])
		snprintf(k->uid, sizeof(k->uid), "%s (sigfs)", k->name);
	if (!k->ssh_namespace[0])
		snprintf(k->ssh_namespace, sizeof(k->ssh_namespace), "file");
}

/* dst = v if it fits in size bytes with its NUL. */
static bool set_str(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size)
		return false;
	strcpy(dst, v);
	return true;
}

/* Seconds since 1970 as the store writes them: [-]digits, nothing else. */
static bool set_created(struct sigfs_key *k, const struct sbuf *val)
{
	struct sbuf num = *val;
	int64_t t;

	if (sbuf_get_i64dec(&num, &t) < 0 || sbuf_avail(&num) != 0 || (time_t)t != t)
		return false;
	k->created = (time_t)t;
	return true;
}

/*
 * One setting name=v (val: v's bytes as read) into k; false if v is bad.
 * Names of no setting of this version are skipped.
 */
static bool meta_setting(struct sigfs_key *k, const char *name, const char *v,
			 const struct sbuf *val, bool *digest_auto_seen)
{
	if (!strcmp(name, "algorithm"))
		return (k->alg = sigfs_alg_by_name(v)) != NULL;
	if (!strcmp(name, "digest"))
		return (k->digest = sigfs_digest_by_name(v)) != NULL;
	if (!strcmp(name, "format"))
		return (k->format = sigfs_format_by_name(v)) != NULL;
	if (!strcmp(name, "padding"))
		return strcmp(v, "none") == 0 || sigfs_padding_parse(v, &k->padding) == 0;
	if (!strcmp(name, "digest_auto"))
		return (*digest_auto_seen = sigfs_parse_bool(v, &k->digest_auto) == 0);
	if (!strcmp(name, "allow_sha1"))
		return sigfs_parse_bool(v, &k->allow_sha1) == 0;
	if (!strcmp(name, "digest_files"))
		return sigfs_parse_bool(v, &k->digest_files) == 0;
	if (!strcmp(name, "backend"))
		return set_str(k->backend, sizeof(k->backend), v);
	if (!strcmp(name, "created"))
		return set_created(k, val);
	if (!strcmp(name, "uid"))
		return set_str(k->uid, sizeof(k->uid), v);
	if (!strcmp(name, "namespace"))
		return set_str(k->ssh_namespace, sizeof(k->ssh_namespace), v);
	return true;
}

int sigfs_key_meta_parse(const uint8_t *buf, size_t len, struct sigfs_key *k,
			 bool *digest_auto_seen, char *err)
{
	char q[SIGFS_ESCAPED_MAX];
	struct sbuf b, line, nm;

	sbuf_view(&b, buf, len);
	if (len > SIGFS_KEY_META_MAX)
		return sigfs_seterr(err, -EINVAL, "key %s: its settings file is larger than %d bytes",
				    k->name, SIGFS_KEY_META_MAX);
	if (sbuf_find(&b, '\0', NULL) == 0)
		return sigfs_seterr(err, -EINVAL, "key %s: its settings file holds a NUL byte",
				    k->name);
	*digest_auto_seen = false;
	while (sbuf_get_line_or_rest(&b, &line) == 0) {
		/* No setting has a longer name or value than these; the store writes none. */
		char name[32], v[256];
		struct sbuf val;

		/* Lines without '=' and longer names are no setting of this version. */
		if (sbuf_get_token(&line, "=", &nm) < 0 || sbuf_avail(&nm) >= sizeof(name))
			continue;
		name[sbuf_avail(&nm)] = '\0';
		sbuf_get(&nm, name, sbuf_avail(&nm));
		if (sbuf_avail(&line) >= sizeof(v))
			return sigfs_seterr(err, -EINVAL, "key %s: %s= is longer than %zu bytes in its "
					    "settings", k->name, sigfs_escape(name, q, sizeof(q)),
					    sizeof(v) - 1);
		val = line;
		v[sbuf_avail(&line)] = '\0';
		sbuf_get(&line, v, sbuf_avail(&line));
		if (!meta_setting(k, name, v, &val, digest_auto_seen))
			return sigfs_seterr(err, -EINVAL, "key %s: bad %s=%s in its settings",
					    k->name, name, sigfs_escape(v, q, sizeof(q)));
	}
	if (!k->alg || !k->digest || !k->format || !k->backend[0])
		return sigfs_seterr(err, -EINVAL, "key %s: incomplete settings file", k->name);
	set_default_names(k);
	return 0;
}

static int read_meta(struct sigfs_keys *ks, struct sigfs_key *k, char *err)
{
	char path[KEYPATH_MAX];
	uint8_t buf[SIGFS_KEY_META_MAX + 1];
	bool auto_seen;
	ssize_t n;
	int fd, r;

	r = key_path(path, k->name, "meta", false);
	if (r < 0)
		return sigfs_seterr(err, r, "key %s: its settings' path is too long", k->name);
	fd = openat(ks->keys_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return sigfs_seterr(err, -errno, "key %s: cannot open its settings: %s", k->name,
				    strerror(errno));
	/* One byte more than the parser takes, so that a larger file is refused, not cut. */
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return sigfs_seterr(err, -EIO, "key %s: cannot read its settings", k->name);
	r = sigfs_key_meta_parse(buf, (size_t)n, k, &auto_seen, err);
	if (r < 0)
		return r;
	/* Settings of a version before digest_auto: the digest follows the key if it is the default. */
	if (!auto_seen)
		k->digest_auto = k->digest == default_digest(k->alg, ks->cfg->default_digest);
	return 0;
}

static int open_count(struct sigfs_keys *ks, struct keyent *e)
{
	char path[SIGFS_KEYNAME_MAX + 16];
	uint8_t buf[31];
	struct sbuf b;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/count", e->k.name);
	e->countfd = openat(ks->keys_fd, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (e->countfd < 0)
		return -errno;
	n = pread(e->countfd, buf, sizeof(buf), 0);
	sbuf_view(&b, buf, n > 0 ? (size_t)n : 0);
	/*
	 * What write_count() writes: digits and a newline; a new file is 0. A count
	 * past 2^64-1 stays the largest, so that the key still counts as used.
	 */
	switch (sbuf_get_u64dec(&b, &e->k.count)) {
	case 0: break;
	case -ERANGE: e->k.count = UINT64_MAX; break;
	default: e->k.count = 0; break;
	}
	return 0;
}

static void write_count(const struct keyent *e)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%020" PRIu64 "\n", e->k.count);

	if (pwrite(e->countfd, buf, (size_t)n, 0) != n)
		log_err("key %s: cannot record its signature count: %s", e->k.name, strerror(errno));
}

static struct keyent *find(struct sigfs_keys *ks, const char *name)
{
	for (struct keyent *e = ks->list; e; e = e->next)
		if (strcmp(e->k.name, name) == 0)
			return e;
	return NULL;
}

/* Key name, unless its backend is changing it (lock held): 0, -ENOENT or -EBUSY. */
static int find_idle(struct sigfs_keys *ks, const char *name, struct keyent **out, char *err)
{
	*out = find(ks, name);
	if (!*out)
		return sigfs_seterr(err, -ENOENT, "no key %s", name);
	if ((*out)->busy)
		return sigfs_seterr(err, -EBUSY, "key %s is being changed on its backend; try "
				    "again when that is done", name);
	return 0;
}

static void free_ent(struct keyent *e)
{
	if (e->countfd >= 0)
		close(e->countfd);
	EVP_PKEY_free(e->pub);
	free(e);
}

static int load_key(struct sigfs_keys *ks, const char *name, struct keyent **out, char *err)
{
	struct keyent *e = calloc(1, sizeof(*e));
	struct stat st;
	int r;

	if (!e)
		return -ENOMEM;
	e->countfd = -1;
	snprintf(e->k.name, sizeof(e->k.name), "%s", name);
	r = read_meta(ks, &e->k, err);
	if (r == 0 && fstatat(ks->keys_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (r == 0) {
		e->k.ino = st.st_ino;
		r = open_count(ks, e);
	}
	if (r < 0) {
		free_ent(e);
		return r;
	}
	*out = e;
	return 0;
}

/*
 * Inboxes left aside by a delete the daemon did not finish (it stopped
 * meanwhile): back in place if their key is still there, else gone if empty.
 */
static void restore_aside(struct sigfs_keys *ks)
{
	DIR *d = fdopendir(dup(ks->inbox_fd));
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *key = de->d_name + strlen(DELETING_PREFIX);

		if (strncmp(de->d_name, DELETING_PREFIX, strlen(DELETING_PREFIX)) != 0)
			continue;
		if (find(ks, key) && renameat(ks->inbox_fd, de->d_name, ks->inbox_fd, key) == 0)
			log_info("key %s: its inbox is back (a delete was interrupted)", key);
		else if (!find(ks, key))
			unlinkat(ks->inbox_fd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static time_t real_wall(void)
{
	return time(NULL);
}

static void real_mono(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

int sigfs_keys_open(const struct sigfs_config *cfg, int state_fd, struct sigfs_audit *audit,
		    struct sigfs_keys **out, char *err)
{
	return sigfs_keys_open_env(cfg, state_fd, audit, NULL, out, err);
}

int sigfs_keys_open_env(const struct sigfs_config *cfg, int state_fd, struct sigfs_audit *audit,
			const struct sigfs_env *env, struct sigfs_keys **out, char *err)
{
	struct sigfs_keys *ks = calloc(1, sizeof(*ks));
	struct dirent *de;
	int r = 0;
	DIR *d;

	if (!ks)
		return -ENOMEM;
	ks->env.backend_type = env && env->backend_type ? env->backend_type : sigfs_backend_type;
	ks->env.wall = env && env->wall ? env->wall : real_wall;
	ks->env.mono = env && env->mono ? env->mono : real_mono;
	pthread_mutex_init(&ks->lock, NULL);
	pthread_mutex_init(&ks->status_lock, NULL);
	sbuf_init(&ks->status, BACKENDS_STATUS_MAX);
	ks->cfg = cfg;
	ks->audit = audit;
	ks->keys_fd = ks->inbox_fd = -1;
	ks->state_fd = fcntl(state_fd, F_DUPFD_CLOEXEC, 0);
	if (ks->state_fd < 0) {
		r = sigfs_seterr(err, -errno, "state directory %s: %s", cfg->state_dir,
				 strerror(errno));
		goto out;
	}
	r = sigfs_safedir_subdir(state_fd, "keys", 0700, &ks->keys_fd, err);
	if (r == 0)
		r = sigfs_safedir_subdir(state_fd, "inbox", 0711, &ks->inbox_fd, err);
	if (r < 0)
		goto out;
	if (!backend_get(ks, cfg->default_backend, err)) {
		r = -EINVAL;
		goto out;
	}
	d = fdopendir(dup(ks->keys_fd));
	if (!d) {
		r = -errno;
		goto out;
	}
	while ((de = readdir(d))) {
		struct keyent *e;
		char kerr[SIGFS_ERRLEN];

		if (de->d_name[0] == '.' || sigfs_keys_name_ok(de->d_name, NULL) < 0)
			continue;
		if (load_key(ks, de->d_name, &e, kerr) < 0) {
			log_err("%s: the key is not served", kerr);
			continue;
		}
		e->next = ks->list;
		ks->list = e;
	}
	closedir(d);
	restore_aside(ks);
out:
	if (r < 0) {
		sigfs_keys_close(ks);
		return r;
	}
	*out = ks;
	return 0;
}

void sigfs_keys_close(struct sigfs_keys *ks)
{
	struct keyent *e, *next;

	if (!ks)
		return;
	for (e = ks->list; e; e = next) {
		next = e->next;
		free_ent(e);
	}
	for (size_t i = 0; i < ks->nbackends; i++)
		ks->backends[i]->ops->close(ks->backends[i]);
	if (ks->keys_fd >= 0)
		close(ks->keys_fd);
	if (ks->inbox_fd >= 0)
		close(ks->inbox_fd);
	if (ks->state_fd >= 0)
		close(ks->state_fd);
	pthread_mutex_destroy(&ks->lock);
	pthread_mutex_destroy(&ks->status_lock);
	sbuf_free(&ks->status);
	free(ks);
}

int sigfs_keys_inbox_root(struct sigfs_keys *ks)
{
	return ks->inbox_fd;
}

int sigfs_keys_state_dir(struct sigfs_keys *ks)
{
	return ks->state_fd;
}

time_t sigfs_keys_now(struct sigfs_keys *ks)
{
	return ks->env.wall();
}

/* Remove keys/NAME and everything in it (only our own small files). */
static void remove_keydir(struct sigfs_keys *ks, const char *name)
{
	sigfs_unlink_prefixed(ks->keys_fd, name, "");
	unlinkat(ks->keys_fd, name, AT_REMOVEDIR);
}

/* The key changed: what formats rendered from it (certificates...) is stale. */
static void key_changed(struct sigfs_keys *ks, struct keyent *e)
{
	sigfs_unlink_prefixed(ks->keys_fd, e->k.name, CACHE_PREFIX);
	EVP_PKEY_free(e->pub);
	e->pub = NULL;
}

/*
 * The key store's lock is not held while the backend generates (seconds for
 * RSA-4096): keys/NAME, created with mkdir, is what reserves the name.
 */
int sigfs_keys_create(struct sigfs_keys *ks, const char *name, const char *backend, uid_t uid,
		      char *err)
{
	const struct sigfs_config *cfg = ks->cfg;
	struct sigfs_backend *b = NULL;
	struct keyent *e = NULL;
	struct sigfs_key k = { 0 };
	int r, ifd;

	r = sigfs_keys_name_ok(name, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ks->lock);
	if (find(ks, name)) {
		r = sigfs_seterr(err, -EEXIST, "key %s exists", name);
	} else {
		r = backend_open(ks, backend ? backend : cfg->default_backend, &b, err);
	}
	pthread_mutex_unlock(&ks->lock);
	if (r < 0)
		return r;
	snprintf(k.name, sizeof(k.name), "%s", name);
	snprintf(k.backend, sizeof(k.backend), "%s", b->name);
	k.alg = cfg->default_algorithm;
	k.digest = default_digest(k.alg, cfg->default_digest);
	k.digest_auto = true;
	k.format = sigfs_format_by_name(cfg->default_format);
	if (!k.format)
		return sigfs_seterr(err, -EINVAL, "the configured default format %s is unknown",
				    cfg->default_format);
	k.padding = k.alg->kind == SIGFS_KIND_RSA ? cfg->default_padding : SIGFS_PAD_NONE;
	k.digest_files = true;
	k.created = ks->env.wall();
	set_default_names(&k);
	if (mkdirat(ks->keys_fd, name, 0700) < 0)
		return sigfs_seterr(err, -errno, "key %s: cannot create its settings: %s", name,
				    errno == EEXIST ? "it exists" : strerror(errno));
	r = b->ops->generate(b, name, k.alg, err);
	if (r < 0)
		goto out_dir;
	r = write_meta(ks, &k);
	if (r < 0) {
		sigfs_seterr(err, r, "key %s: cannot write its settings", name);
		goto out_key;
	}
	if (mkdirat(ks->inbox_fd, name, cfg->inbox_mode) < 0 && errno != EEXIST) {
		r = sigfs_seterr(err, -errno, "key %s: cannot create its inbox: %s", name,
				 strerror(errno));
		goto out_key;
	}
	ifd = openat(ks->inbox_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ifd < 0 || fchown(ifd, 0, cfg->inbox_gid) < 0 || fchmod(ifd, cfg->inbox_mode) < 0) {
		r = sigfs_seterr(err, -EIO, "key %s: cannot set its inbox's owner and mode: %s",
				 name, strerror(errno));
		if (ifd >= 0)
			close(ifd);
		goto out_inbox;
	}
	close(ifd);
	pthread_mutex_lock(&ks->lock);
	r = load_key(ks, name, &e, err);
	if (r == 0) {
		e->next = ks->list;
		ks->list = e;
	}
	pthread_mutex_unlock(&ks->lock);
	if (r < 0)
		goto out_inbox;
	sigfs_audit_append(ks->audit, "keygen", name, uid, (uid_t)-1, NULL, NULL, 0, k.alg->name);
	log_info("key %s created (%s on backend %s)", name, k.alg->name, b->name);
	status_changed(ks);
	return 0;
out_inbox:
	unlinkat(ks->inbox_fd, name, AT_REMOVEDIR);
out_key:
	b->ops->remove(b, name, NULL);
out_dir:
	remove_keydir(ks, name);
	return r;
}

/* Where a key's inbox waits while its key is deleted ('.' starts no key name). */
static void aside_name(const char *name, char *out, size_t len)
{
	snprintf(out, len, DELETING_PREFIX "%s", name);
}

/* Is directory name of dirfd empty? 1, 0, or a negative errno. */
static int dir_empty(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	int r = 1;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r == 1 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			r = 0;
	closedir(d);
	return r;
}

/*
 * The inbox is moved aside first (so no client can add a file while the key
 * goes) and checked empty; the backend removes the key with the store's lock
 * released; if it cannot, the inbox comes back as it was, with the owner,
 * group and mode the admins gave it.
 */
int sigfs_keys_delete(struct sigfs_keys *ks, const char *name, uid_t uid, char *err)
{
	char aside[SIGFS_KEYNAME_MAX + 16];
	struct keyent **pp, *e;
	struct sigfs_backend *b;
	bool inbox;
	int r = 0;

	aside_name(name, aside, sizeof(aside));
	pthread_mutex_lock(&ks->lock);
	r = find_idle(ks, name, &e, err);
	if (r < 0)
		goto out;
	b = backend_get(ks, e->k.backend, err);
	if (!b) {
		r = -EIO;
		goto out;
	}
	inbox = renameat(ks->inbox_fd, name, ks->inbox_fd, aside) == 0;
	if (!inbox && errno != ENOENT) {
		r = sigfs_seterr(err, -errno, "key %s: cannot remove its inbox: %s", name,
				 strerror(errno));
		goto out;
	}
	r = inbox ? dir_empty(ks->inbox_fd, aside) : 1;
	if (r != 1) {
		renameat(ks->inbox_fd, aside, ks->inbox_fd, name);
		if (r == 0)
			r = sigfs_seterr(err, -ENOTEMPTY, "key %s: its inbox is not empty; empty "
					 "it first", name);
		else
			sigfs_seterr(err, r, "key %s: cannot read its inbox: %s", name,
				     strerror(-r));
		goto out;
	}
	e->busy = true;
	pthread_mutex_unlock(&ks->lock);
	r = b->ops->remove(b, name, err);
	if (r == -ENOENT)
		r = 0;
	pthread_mutex_lock(&ks->lock);
	e->busy = false;
	if (r < 0) {
		/* Keep the key usable: give its inbox back as it was. */
		if (inbox && renameat(ks->inbox_fd, aside, ks->inbox_fd, name) < 0)
			log_err("key %s: cannot put its inbox back from %s: %s", name, aside,
				strerror(errno));
		goto out;
	}
	if (inbox && unlinkat(ks->inbox_fd, aside, AT_REMOVEDIR) < 0)
		log_warn("key %s: cannot remove its old inbox %s: %s", name, aside, strerror(errno));
	for (pp = &ks->list; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	remove_keydir(ks, name);
	sigfs_audit_append(ks->audit, "keydel", name, uid, (uid_t)-1, NULL, NULL, 0, NULL);
	log_info("key %s deleted", name);
	free_ent(e);
	status_changed(ks);
out:
	pthread_mutex_unlock(&ks->lock);
	return r;
}

int sigfs_keys_get(struct sigfs_keys *ks, const char *name, struct sigfs_key *out)
{
	struct keyent *e;
	int r = -ENOENT;

	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	if (e) {
		*out = e->k;
		r = 0;
	}
	pthread_mutex_unlock(&ks->lock);
	return r;
}

int sigfs_keys_get_by_ino(struct sigfs_keys *ks, uint64_t ino, struct sigfs_key *out)
{
	int r = -ENOENT;

	pthread_mutex_lock(&ks->lock);
	for (struct keyent *e = ks->list; e; e = e->next) {
		if (e->k.ino == ino) {
			*out = e->k;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&ks->lock);
	return r;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(((const struct sigfs_key *)a)->name, ((const struct sigfs_key *)b)->name);
}

int sigfs_keys_list(struct sigfs_keys *ks, struct sigfs_key **out)
{
	struct sigfs_key *v;
	size_t n = 0, i = 0;

	pthread_mutex_lock(&ks->lock);
	for (struct keyent *e = ks->list; e; e = e->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&ks->lock);
		return -ENOMEM;
	}
	for (struct keyent *e = ks->list; e; e = e->next)
		v[i++] = e->k;
	pthread_mutex_unlock(&ks->lock);
	qsort(v, n, sizeof(*v), cmp_keys);
	*out = v;
	return (int)n;
}

/* --- attributes ------------------------------------------------------------ */

static int read_pubkey(struct sigfs_keys *ks, const struct sigfs_key *k, char **buf, size_t *len)
{
	struct sigfs_backend *b;
	EVP_PKEY *pk = NULL;
	BIO *bio;
	char *p;
	long n;
	int r;

	pthread_mutex_lock(&ks->lock);
	b = backend_get(ks, k->backend, NULL);
	pthread_mutex_unlock(&ks->lock);
	if (!b)
		return -EIO;
	r = b->ops->public_key(b, k->name, &pk, NULL);
	if (r < 0)
		return r;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PUBKEY(bio, pk)) {
		BIO_free(bio);
		EVP_PKEY_free(pk);
		return -EIO;
	}
	EVP_PKEY_free(pk);
	n = BIO_get_mem_data(bio, &p);
	*buf = malloc((size_t)n + 1);
	if (*buf) {
		memcpy(*buf, p, (size_t)n);
		*len = (size_t)n;
	}
	BIO_free(bio);
	return *buf ? 0 : -ENOMEM;
}

/* Read keys/NAME/file (small files of our own) into a malloc'd buffer. */
static int read_keyfile(struct sigfs_keys *ks, const char *name, const char *file, char **buf,
			size_t *len)
{
	char path[KEYPATH_MAX];
	struct sbuf b;
	char chunk[4096];
	ssize_t n;
	int fd, r;

	r = key_path(path, name, file, false);
	if (r < 0)
		return r;
	fd = openat(ks->keys_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	sbuf_init(&b, 1 << 20);
	while (r == 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		r = sbuf_put(&b, chunk, (size_t)n);
	close(fd);
	if (r == 0 && !b.d)
		r = sbuf_put(&b, "", 0) == 0 && b.d ? 0 : -ENOMEM;
	if (r < 0) {
		sbuf_free(&b);
		return r;
	}
	*buf = (char *)b.d;
	*len = b.len;
	return 0;
}

struct key_sign_ctx {
	struct sigfs_keys *ks;
	const struct sigfs_key *k;
};

static int key_sign_cb(void *arg, const struct sigfs_sign_input *in, uint8_t *sig,
		       size_t *siglen, char *err)
{
	struct key_sign_ctx *c = arg;

	return sigfs_keys_sign(c->ks, c->k, in, sig, siglen, err);
}

/* The public key of entry name (a new reference), loading it on first use. */
static int pubkey_of(struct sigfs_keys *ks, const struct sigfs_key *k, EVP_PKEY **out, char *err)
{
	struct sigfs_backend *b;
	struct keyent *e;
	EVP_PKEY *pk = NULL;
	int r;

	pthread_mutex_lock(&ks->lock);
	e = find(ks, k->name);
	if (e && e->pub && EVP_PKEY_up_ref(e->pub)) {
		*out = e->pub;
		pthread_mutex_unlock(&ks->lock);
		return 0;
	}
	b = backend_get(ks, k->backend, err);
	pthread_mutex_unlock(&ks->lock);
	if (!b)
		return -EIO;
	r = b->ops->public_key(b, k->name, &pk, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ks->lock);
	e = find(ks, k->name);
	if (e && !e->pub && EVP_PKEY_up_ref(pk))
		e->pub = pk;
	pthread_mutex_unlock(&ks->lock);
	*out = pk;
	return 0;
}

static int fill_format_key(struct sigfs_keys *ks, const struct sigfs_key *k,
			   struct sigfs_format_key *fk, char *err)
{
	memset(fk, 0, sizeof(*fk));
	fk->name = k->name;
	fk->alg = k->alg;
	fk->padding = k->padding;
	fk->digest = k->digest;
	fk->created = k->created;
	fk->uid = k->uid;
	fk->ssh_namespace = k->ssh_namespace;
	return pubkey_of(ks, k, &fk->pub, err);
}

/*
 * A format's file for key k: an admin's replacement if there is one (for
 * writable files), else what the format rendered, kept in keys/NAME/cache.*
 * until the key changes (rendering may sign: a certificate's self-signature).
 */
static int read_format_attr(struct sigfs_keys *ks, const struct sigfs_key *k,
			    const struct sigfs_format_attr *fa, char **buf, size_t *len, char *err)
{
	char cache[80];
	struct key_sign_ctx sc = { ks, k };
	struct sigfs_format_key fk;
	struct sbuf out;
	int r;

	if (fa->writable && read_keyfile(ks, k->name, fa->name, buf, len) == 0)
		return 0;
	if ((size_t)snprintf(cache, sizeof(cache), CACHE_PREFIX "%s", fa->name) >= sizeof(cache))
		return sigfs_seterr(err, -ENAMETOOLONG, "%s: name too long", fa->name);
	if (read_keyfile(ks, k->name, cache, buf, len) == 0)
		return 0;
	r = fill_format_key(ks, k, &fk, err);
	if (r < 0)
		return r;
	sbuf_init(&out, 1 << 20);
	r = fa->render(&fk, key_sign_cb, &sc, &out, err);
	EVP_PKEY_free(fk.pub);
	if (r == 0 && !out.d)
		r = sigfs_seterr(err, -EIO, "%s: nothing rendered", fa->name);
	if (r < 0) {
		sbuf_free(&out);
		return r;
	}
	if (write_keyfile(ks, k->name, cache, out.d, out.len, false) < 0)
		log_warn("key %s: cannot keep %s; it is rendered again next time", k->name, fa->name);
	sigfs_audit_append(ks->audit, "certify", k->name, 0, (uid_t)-1, NULL, NULL, 0, fa->name);
	*buf = (char *)out.d;
	*len = out.len;
	return 0;
}

int sigfs_keys_format_key(struct sigfs_keys *ks, const struct sigfs_key *k,
			  const struct sigfs_format *f, struct sigfs_format_key *fk, char *err)
{
	const struct sigfs_key_attr *a;
	char *pem = NULL;
	size_t len = 0;
	X509 *x = NULL;
	BIO *bio;
	int r, n;

	r = fill_format_key(ks, k, fk, err);
	if (r < 0 || !f->needs_cert)
		return r;
	for (size_t i = A_N; (a = sigfs_key_attr_at(i)); i++) {
		if (strcmp(a->name, "cert.pem") == 0) {
			r = read_format_attr(ks, k, sigfs_format_attr_at(i - A_N), &pem, &len, err);
			break;
		}
	}
	if (r == 0 && pem) {
		bio = BIO_new_mem_buf(pem, (int)len);
		x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		n = x ? i2d_X509(x, (unsigned char **)&fk->cert) : -1;
		if (n > 0)
			fk->cert_len = (size_t)n;
		else
			r = sigfs_seterr(err, -EINVAL, "key %s: cert.pem is not a PEM X.509 "
					 "certificate; write a valid one or an empty line", k->name);
		X509_free(x);
	}
	free(pem);
	if (r < 0)
		sigfs_keys_format_key_free(fk);
	return r;
}

void sigfs_keys_format_key_free(struct sigfs_format_key *fk)
{
	EVP_PKEY_free(fk->pub);
	OPENSSL_free((void *)fk->cert);
	memset(fk, 0, sizeof(*fk));
}

static int read_last_error(struct sigfs_keys *ks, const char *name, char **buf, size_t *len)
{
	struct keyent *e;

	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	*buf = e ? strdup(e->last_error) : NULL;
	pthread_mutex_unlock(&ks->lock);
	if (!*buf)
		return e ? -ENOMEM : -ENOENT;
	*len = strlen(*buf);
	return 0;
}

int sigfs_keys_attr_read(struct sigfs_keys *ks, const char *name, size_t i, char **buf,
			 size_t *len)
{
	char tmp[256], err[SIGFS_ERRLEN];
	struct sigfs_key k;
	int n, r;

	if (sigfs_keys_get(ks, name, &k) < 0)
		return -ENOENT;
	if (i >= A_N) {
		if (!sigfs_format_attr_at(i - A_N))
			return -ENOENT;
		r = read_format_attr(ks, &k, sigfs_format_attr_at(i - A_N), buf, len, err);
		if (r < 0 && r != -ENODATA)
			log_warn("key %s: %s: %s", name, sigfs_format_attr_at(i - A_N)->name, err);
		return r;
	}
	switch (i) {
	case A_ALGORITHM: n = snprintf(tmp, sizeof(tmp), "%s\n", k.alg->name); break;
	case A_DIGEST: n = snprintf(tmp, sizeof(tmp), "%s\n", k.digest->name); break;
	case A_FORMAT: n = snprintf(tmp, sizeof(tmp), "%s\n", k.format->name); break;
	case A_PADDING: n = snprintf(tmp, sizeof(tmp), "%s\n", sigfs_padding_name(k.padding)); break;
	case A_ALLOW_SHA1: n = snprintf(tmp, sizeof(tmp), "%s\n", k.allow_sha1 ? "yes" : "no"); break;
	case A_DIGEST_FILES: n = snprintf(tmp, sizeof(tmp), "%s\n", k.digest_files ? "yes" : "no"); break;
	case A_IMPORT: n = 0; tmp[0] = '\0'; break;
	case A_PUBKEY: return read_pubkey(ks, &k, buf, len);
	case A_COUNT: n = snprintf(tmp, sizeof(tmp), "%" PRIu64 "\n", k.count); break;
	case A_BACKEND: n = snprintf(tmp, sizeof(tmp), "%s\n", k.backend); break;
	case A_CREATED: n = snprintf(tmp, sizeof(tmp), "%lld\n", (long long)k.created); break;
	case A_UID: n = snprintf(tmp, sizeof(tmp), "%s\n", k.uid); break;
	case A_NAMESPACE: n = snprintf(tmp, sizeof(tmp), "%s\n", k.ssh_namespace); break;
	case A_LAST_ERROR: return read_last_error(ks, name, buf, len);
	default: return -ENOENT;
	}
	*buf = strdup(tmp);
	*len = (size_t)n;
	return *buf ? 0 : -ENOMEM;
}

/* A value written to an attribute file, without trailing whitespace. */
static int value_str(const uint8_t *val, size_t len, char *out, size_t outlen)
{
	while (len && (val[len - 1] == '\n' || val[len - 1] == '\r' || val[len - 1] == ' ' ||
		       val[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= outlen || memchr(val, '\0', len) || memchr(val, '\n', len))
		return -EINVAL;
	memcpy(out, val, len);
	out[len] = '\0';
	return 0;
}

static int apply_algorithm(const struct sigfs_key *cur, const char *v,
			   const struct sigfs_digest *cfg_digest, struct sigfs_key *k, char *err)
{
	k->alg = sigfs_alg_by_name(v);
	if (!k->alg)
		return sigfs_seterr(err, -EINVAL, "unknown algorithm %s (ed25519, ecdsa-p256, "
				    "ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096)", v);
	if (cur->count > 0)
		return sigfs_seterr(err, -EPERM, "key %s has signed %" PRIu64 " times: its "
				    "algorithm is fixed; create a new key instead",
				    cur->name, cur->count);
	if (k->alg->kind != SIGFS_KIND_RSA)
		k->padding = SIGFS_PAD_NONE;
	else if (k->padding == SIGFS_PAD_NONE)
		k->padding = SIGFS_PAD_PSS;
	if (k->digest_auto)
		k->digest = default_digest(k->alg, cfg_digest);
	return 0;
}

static int apply_digest(const struct sigfs_key *cur, const char *v, struct sigfs_key *k, char *err)
{
	k->digest = sigfs_digest_by_name(v);
	if (!k->digest)
		return sigfs_seterr(err, -EINVAL, "unknown digest %s", v);
	k->digest_auto = false;
	if (sigfs_digest_is_weak(k->digest) && !k->allow_sha1)
		return sigfs_seterr(err, -EPERM, "key %s does not allow sha1: write yes "
				    "into allow_sha1 first", cur->name);
	return 0;
}

static int apply_format(const char *v, struct sigfs_key *k, char *err)
{
	const struct sigfs_format *f;
	char list[128] = "";

	k->format = sigfs_format_by_name(v);
	if (k->format)
		return 0;
	for (size_t j = 0; (f = sigfs_format_at(j)); j++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 j ? ", " : "", f->name);
	return sigfs_seterr(err, -EINVAL, "unknown or unsupported format %s "
			    "(this version offers: %s)", v, list);
}

static int apply_padding(const struct sigfs_key *cur, const char *v, struct sigfs_key *k,
			 char *err)
{
	if (cur->alg->kind != SIGFS_KIND_RSA)
		return sigfs_seterr(err, -EINVAL, "padding applies to RSA keys only; "
				    "key %s is %s", cur->name, cur->alg->name);
	if (sigfs_padding_parse(v, &k->padding) < 0)
		return sigfs_seterr(err, -EINVAL, "padding is pss or pkcs1, not %s", v);
	return 0;
}

/* allow_sha1 and digest_files: yes or no. */
static int apply_bool(const struct sigfs_key *cur, size_t i, const char *v, struct sigfs_key *k,
		      char *err)
{
	bool b;

	if (sigfs_parse_bool(v, &b) < 0)
		return sigfs_seterr(err, -EINVAL, "%s is yes or no, not %s", attrs[i].name, v);
	if (i == A_DIGEST_FILES) {
		k->digest_files = b;
		return 0;
	}
	if (!b && sigfs_digest_is_weak(cur->digest))
		return sigfs_seterr(err, -EINVAL, "key %s uses sha1: change its digest first",
				    cur->name);
	k->allow_sha1 = b;
	return 0;
}

static int apply_uid(const char *v, struct sigfs_key *k, char *err)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return sigfs_seterr(err, -EINVAL, "uid is one line of text, like "
					    "\"Release Signing <release@example.org>\"");
	snprintf(k->uid, sizeof(k->uid), "%s", v);
	return 0;
}

static int apply_namespace(const char *v, struct sigfs_key *k, char *err)
{
	if (strlen(v) >= sizeof(k->ssh_namespace) ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._-")
	    != strlen(v))
		return sigfs_seterr(err, -EINVAL, "namespace has 1 to %zu letters, digits "
				    "or @._- (ssh-keygen -Y ... -n NAMESPACE)",
				    sizeof(k->ssh_namespace) - 1);
	snprintf(k->ssh_namespace, sizeof(k->ssh_namespace), "%s", v);
	return 0;
}

/*
 * Apply value v of attribute i to k (in memory only): the one place that
 * validates settings. cfg_digest is the configured default digest.
 */
static int apply(const struct sigfs_key *cur, size_t i, const char *v,
		 const struct sigfs_digest *cfg_digest, struct sigfs_key *k, char *err)
{
	int r;

	*k = *cur;
	switch (i) {
	case A_ALGORITHM: r = apply_algorithm(cur, v, cfg_digest, k, err); break;
	case A_DIGEST: r = apply_digest(cur, v, k, err); break;
	case A_FORMAT: r = apply_format(v, k, err); break;
	case A_PADDING: r = apply_padding(cur, v, k, err); break;
	case A_ALLOW_SHA1: case A_DIGEST_FILES: r = apply_bool(cur, i, v, k, err); break;
	case A_UID: r = apply_uid(v, k, err); break;
	case A_NAMESPACE: r = apply_namespace(v, k, err); break;
	default: return sigfs_seterr(err, -EPERM, "%s is read-only", attrs[i].name);
	}
	if (r == 0)
		r = k->format->check(k->alg, k->digest, err);
	if (r == 0 && k->format->check_padding)
		r = k->format->check_padding(k->alg, k->padding, err);
	return r;
}

int sigfs_keys_attr_check(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, char *err)
{
	struct sigfs_key cur, k;
	char v[128];

	/* Multi-line values (PEM) are judged whole, at close. */
	if (i == A_IMPORT || i >= A_N)
		return 0;
	if (sigfs_keys_get(ks, name, &cur) < 0)
		return sigfs_seterr(err, -ENOENT, "no key %s", name);
	if (value_str(val, len, v, sizeof(v)) < 0)
		return sigfs_seterr(err, -EINVAL, "%s takes one word on one line", attrs[i].name);
	return apply(&cur, i, v, ks->cfg->default_digest, &k, err);
}

/*
 * Put the key in pem on key cur's backend b in place of cur (the store's
 * lock not held, the key busy); *alg is the imported key's algorithm.
 */
static int import_on_backend(struct sigfs_backend *b, const struct sigfs_key *cur,
			     const uint8_t *pem, size_t len, const struct sigfs_alg **alg, char *err)
{
	char stage[SIGFS_KEYNAME_MAX + 16];
	int r;

	/* Try the new key under a staging id ('~' is not a key name character): refused, the old key stays. */
	snprintf(stage, sizeof(stage), "%s~import", cur->name);
	b->ops->remove(b, stage, NULL);
	r = b->ops->import_pem(b, stage, pem, len, alg, err);
	b->ops->remove(b, stage, NULL);
	if (r < 0)
		return r;
	r = b->ops->remove(b, cur->name, err);
	if (r < 0 && r != -ENOENT)
		return r;
	r = b->ops->import_pem(b, cur->name, pem, len, alg, err);
	if (r < 0) {
		log_err("key %s: import failed, generating a fresh %s key in its place",
			cur->name, cur->alg->name);
		b->ops->generate(b, cur->name, cur->alg, NULL);
	}
	return r;
}

/* Make a new key of alg k->alg in place of cur on backend b (lock not held, the key busy). */
static int regenerate_on_backend(struct sigfs_backend *b, const struct sigfs_key *cur,
				 const struct sigfs_key *k, char *err)
{
	int r = b->ops->remove(b, cur->name, err);

	if (r < 0 && r != -ENOENT)
		return r;
	r = b->ops->generate(b, cur->name, k->alg, err);
	if (r < 0)
		b->ops->generate(b, cur->name, cur->alg, NULL);
	return r;
}

/*
 * Run op (import or regenerate) on e's backend with the store's lock
 * released: a backend that retries for seconds (network HSMs) holds up
 * nothing but this key. Lock held on entry and return.
 */
static int on_backend(struct sigfs_keys *ks, struct keyent *e, const uint8_t *pem, size_t len,
		      struct sigfs_key *k, char *err)
{
	struct sigfs_backend *b = backend_get(ks, e->k.backend, err);
	struct sigfs_key cur = e->k;
	const struct sigfs_alg *alg = NULL;
	int r;

	if (!b)
		return -EIO;
	if (pem && !b->ops->import_pem)
		return sigfs_seterr(err, -EOPNOTSUPP, "backend %s cannot import keys", b->name);
	e->busy = true;
	pthread_mutex_unlock(&ks->lock);
	if (pem)
		r = import_on_backend(b, &cur, pem, len, &alg, err);
	else
		r = regenerate_on_backend(b, &cur, k, err);
	pthread_mutex_lock(&ks->lock);
	e->busy = false;
	if (r == 0 && pem) {
		k->alg = alg;
		if (alg->kind != SIGFS_KIND_RSA)
			k->padding = SIGFS_PAD_NONE;
		else if (k->padding == SIGFS_PAD_NONE)
			k->padding = ks->cfg->default_padding;
		if (k->digest_auto)
			k->digest = default_digest(alg, ks->cfg->default_digest);
	}
	return r;
}

/*
 * An admin's replacement for a writable format file. The only one is
 * cert.pem: it must be an X.509 certificate for this key's public key. An
 * empty write removes the replacement (back to the rendered file).
 */
static int write_format_attr(struct sigfs_keys *ks, const char *name,
			     const struct sigfs_format_attr *fa, const uint8_t *val, size_t len,
			     char *err)
{
	struct keyent *e;
	struct sigfs_key k;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	BIO *bio;
	size_t n = len;
	int r = 0;

	if (!fa->writable)
		return sigfs_seterr(err, -EPERM, "%s is read-only", fa->name);
	if (sigfs_keys_get(ks, name, &k) < 0)
		return sigfs_seterr(err, -ENOENT, "no key %s", name);
	while (n && (val[n - 1] == '\n' || val[n - 1] == '\r' || val[n - 1] == ' '))
		n--;
	if (n > 0) {
		bio = BIO_new_mem_buf(val, (int)len);
		x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		ERR_clear_error();
		if (!x)
			return sigfs_seterr(err, -EINVAL, "%s takes a PEM X.509 certificate "
					    "(or an empty line to go back to the self-signed one)",
					    fa->name);
		r = pubkey_of(ks, &k, &pub, err);
		if (r == 0 && EVP_PKEY_eq(X509_get0_pubkey(x), pub) != 1)
			r = sigfs_seterr(err, -EINVAL, "the certificate is for another key, not "
					 "key %s", name);
		EVP_PKEY_free(pub);
		X509_free(x);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	if (!e) {
		r = sigfs_seterr(err, -ENOENT, "no key %s", name);
	} else {
		char path[KEYPATH_MAX];

		r = key_path(path, name, fa->name, false);
		if (r == 0 && n == 0 && unlinkat(ks->keys_fd, path, 0) < 0 && errno != ENOENT)
			r = -errno;
		else if (r == 0 && n > 0)
			r = write_keyfile(ks, name, fa->name, val, len, false);
		if (r < 0)
			sigfs_seterr(err, r, "key %s: cannot keep %s: %s", name, fa->name,
				     strerror(-r));
		else
			key_changed(ks, e);
	}
	pthread_mutex_unlock(&ks->lock);
	return r;
}

int sigfs_keys_attr_write(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, uid_t uid, char *err)
{
	struct keyent *e = NULL;
	struct sigfs_key k;
	bool rerender;
	char v[128];
	int r;

	if (i >= A_N) {
		if (!sigfs_format_attr_at(i - A_N))
			return -ENOENT;
		return write_format_attr(ks, name, sigfs_format_attr_at(i - A_N), val, len, err);
	}
	pthread_mutex_lock(&ks->lock);
	r = find_idle(ks, name, &e, err);
	if (r < 0)
		goto out;
	if (i == A_IMPORT) {
		k = e->k;
		if (e->k.count > 0)
			r = sigfs_seterr(err, -EPERM, "key %s has signed %" PRIu64 " times: it "
					 "cannot be replaced; create a new key to import into",
					 name, e->k.count);
		else
			r = on_backend(ks, e, val, len, &k, err);
		if (r < 0)
			goto out;
	} else {
		if (value_str(val, len, v, sizeof(v)) < 0) {
			r = sigfs_seterr(err, -EINVAL, "%s takes one word on one line",
					 attrs[i].name);
			goto out;
		}
		r = apply(&e->k, i, v, ks->cfg->default_digest, &k, err);
		if (r < 0)
			goto out;
		/* A key that becomes RSA gets the configured rsa_padding, as a new RSA key does. */
		if (e->k.padding == SIGFS_PAD_NONE && k.padding != SIGFS_PAD_NONE)
			k.padding = ks->cfg->default_padding;
		if (k.alg != e->k.alg) {
			r = on_backend(ks, e, NULL, 0, &k, err);
			if (r < 0)
				goto out;
			sigfs_audit_append(ks->audit, "keygen", name, uid, (uid_t)-1, NULL, NULL, 0,
					   k.alg->name);
			log_info("key %s regenerated as %s", name, k.alg->name);
		}
	}
	r = write_meta(ks, &k);
	if (r < 0) {
		sigfs_seterr(err, r, "key %s: cannot write its settings", name);
		goto out;
	}
	/*
	 * Rendered files depend on the key and its uid only (format.h). Other
	 * settings keep them: an X.509 trust anchor must stay the bytes users
	 * pinned, and ECDSA self-signatures differ on every render.
	 */
	rerender = i == A_IMPORT || k.alg != e->k.alg || strcmp(k.uid, e->k.uid) != 0;
	k.count = e->k.count;       /* it may have signed meanwhile */
	e->k = k;
	if (rerender)
		key_changed(ks, e);
	if (i == A_IMPORT) {
		sigfs_audit_append(ks->audit, "import", name, uid, (uid_t)-1, NULL, NULL, 0,
				   k.alg->name);
		log_info("key %s: imported a %s key", name, k.alg->name);
	}
out:
	pthread_mutex_unlock(&ks->lock);
	return r;
}

void sigfs_keys_set_last_error(struct sigfs_keys *ks, const char *name, uid_t uid,
			       const char *what, const char *why)
{
	struct keyent *e;
	struct tm tm;
	time_t now = ks->env.wall();
	char when[32];

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	if (e)
		snprintf(e->last_error, sizeof(e->last_error), "%s uid %u: %s: %s\n", when,
			 (unsigned)uid, what, why);
	pthread_mutex_unlock(&ks->lock);
}

int sigfs_keys_sign(struct sigfs_keys *ks, const struct sigfs_key *k,
		    const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen, char *err)
{
	struct sigfs_backend *b;

	pthread_mutex_lock(&ks->lock);
	b = backend_get(ks, k->backend, err);
	pthread_mutex_unlock(&ks->lock);
	if (!b)
		return -EIO;
	return b->ops->sign(b, k->name, in, sig, siglen, err);
}

void sigfs_keys_count(struct sigfs_keys *ks, const char *name)
{
	struct keyent *e;

	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	if (e) {
		e->k.count++;
		write_count(e);
	}
	pthread_mutex_unlock(&ks->lock);
}
