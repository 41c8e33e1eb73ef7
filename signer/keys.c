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
#include <openssl/pem.h>

#include "common/err.h"
#include "common/log.h"
#include "signer/keys.h"

struct keyent {
	struct sigfs_key k;
	int countfd;
	struct keyent *next;
};

#define MAX_BACKENDS 16

struct sigfs_keys {
	pthread_mutex_t lock;
	struct keyent *list;
	int keys_fd;
	int inbox_fd;
	const struct sigfs_config *cfg;
	struct sigfs_audit *audit;
	struct sigfs_backend *backends[MAX_BACKENDS];
	size_t nbackends;
};

enum { A_ALGORITHM, A_DIGEST, A_FORMAT, A_PADDING, A_ALLOW_SHA1, A_DIGEST_FILES,
       A_IMPORT, A_PUBKEY, A_COUNT, A_BACKEND, A_CREATED, A_N };

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
};

const struct sigfs_key_attr *sigfs_key_attr_at(size_t i)
{
	return i < A_N ? &attrs[i] : NULL;
}

int sigfs_key_attr_find(const char *name)
{
	for (size_t i = 0; i < A_N; i++)
		if (strcmp(attrs[i].name, name) == 0)
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

static struct sigfs_backend *backend_get(struct sigfs_keys *ks, const char *name, char *err)
{
	struct sigfs_backend_conf conf;
	const struct sigfs_backend_ops *ops;
	struct sigfs_backend *b;
	const char *type;
	int r;

	for (size_t i = 0; i < ks->nbackends; i++)
		if (strcmp(ks->backends[i]->name, name) == 0)
			return ks->backends[i];
	if (ks->nbackends == MAX_BACKENDS) {
		sigfs_seterr(err, -ENOSPC, "too many backends (at most %d)", MAX_BACKENDS);
		return NULL;
	}
	sigfs_config_backend(ks->cfg, name, &conf);
	type = conf.get(&conf, "type", strcmp(name, "soft") == 0 ? "soft" : NULL);
	if (!type) {
		sigfs_seterr(err, -ENOENT, "backend %s is not configured: add [backend %s] with a type",
			     name, name);
		return NULL;
	}
	ops = sigfs_backend_type(type);
	if (!ops) {
		sigfs_seterr(err, -EINVAL, "backend %s has unknown type %s", name, type);
		return NULL;
	}
	r = ops->open(&conf, &b, err);
	if (r < 0)
		return NULL;
	snprintf(b->name, sizeof(b->name), "%s", name);
	ks->backends[ks->nbackends++] = b;
	return b;
}

/* --- metadata files -------------------------------------------------------- */

static int write_meta(struct sigfs_keys *ks, const struct sigfs_key *k)
{
	char tmp[SIGFS_KEYNAME_MAX + 16], path[SIGFS_KEYNAME_MAX + 16], buf[1024];
	int fd, n, r = 0;

	n = snprintf(buf, sizeof(buf),
		     "algorithm=%s\ndigest=%s\nformat=%s\npadding=%s\nallow_sha1=%s\n"
		     "digest_files=%s\nbackend=%s\ncreated=%lld\n",
		     k->alg->name, k->digest->name, k->format->name, sigfs_padding_name(k->padding),
		     k->allow_sha1 ? "yes" : "no", k->digest_files ? "yes" : "no", k->backend,
		     (long long)k->created);
	snprintf(tmp, sizeof(tmp), "%s/.meta.tmp", k->name);
	snprintf(path, sizeof(path), "%s/meta", k->name);
	fd = openat(ks->keys_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n || (ks->cfg->fsync && fsync(fd) < 0))
		r = -EIO;
	close(fd);
	if (r == 0 && renameat(ks->keys_fd, tmp, ks->keys_fd, path) < 0)
		r = -errno;
	return r;
}

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off"))
		*out = false;
	else
		return false;
	return true;
}

static int read_meta(struct sigfs_keys *ks, struct sigfs_key *k, char *err)
{
	char path[SIGFS_KEYNAME_MAX + 16], buf[2048];
	char *line, *save = NULL;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/meta", k->name);
	fd = openat(ks->keys_fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sigfs_seterr(err, -errno, "key %s: cannot open its settings: %s", k->name,
				    strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return sigfs_seterr(err, -EIO, "key %s: cannot read its settings", k->name);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *v = strchr(line, '=');
		bool ok = true;

		if (!v)
			continue;
		*v++ = '\0';
		if (!strcmp(line, "algorithm"))
			ok = (k->alg = sigfs_alg_by_name(v)) != NULL;
		else if (!strcmp(line, "digest"))
			ok = (k->digest = sigfs_digest_by_name(v)) != NULL;
		else if (!strcmp(line, "format"))
			ok = (k->format = sigfs_format_by_name(v)) != NULL;
		else if (!strcmp(line, "padding"))
			ok = strcmp(v, "none") == 0 || sigfs_padding_parse(v, &k->padding) == 0;
		else if (!strcmp(line, "allow_sha1"))
			ok = parse_bool(v, &k->allow_sha1);
		else if (!strcmp(line, "digest_files"))
			ok = parse_bool(v, &k->digest_files);
		else if (!strcmp(line, "backend"))
			snprintf(k->backend, sizeof(k->backend), "%s", v);
		else if (!strcmp(line, "created"))
			k->created = (time_t)strtoll(v, NULL, 10);
		if (!ok)
			return sigfs_seterr(err, -EINVAL, "key %s: bad %s=%s in its settings",
					    k->name, line, v);
	}
	if (!k->alg || !k->digest || !k->format || !k->backend[0])
		return sigfs_seterr(err, -EINVAL, "key %s: incomplete settings file", k->name);
	return 0;
}

static int open_count(struct sigfs_keys *ks, struct keyent *e)
{
	char path[SIGFS_KEYNAME_MAX + 16], buf[32];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/count", e->k.name);
	e->countfd = openat(ks->keys_fd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->countfd < 0)
		return -errno;
	n = pread(e->countfd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	e->k.count = strtoull(buf, NULL, 10);
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

static void free_ent(struct keyent *e)
{
	if (e->countfd >= 0)
		close(e->countfd);
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

int sigfs_keys_open(const struct sigfs_config *cfg, struct sigfs_audit *audit,
		    struct sigfs_keys **out, char *err)
{
	struct sigfs_keys *ks = calloc(1, sizeof(*ks));
	struct dirent *de;
	int sfd, r = 0;
	DIR *d;

	if (!ks)
		return -ENOMEM;
	pthread_mutex_init(&ks->lock, NULL);
	ks->cfg = cfg;
	ks->audit = audit;
	ks->keys_fd = ks->inbox_fd = -1;
	sfd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		r = sigfs_seterr(err, -errno, "state directory %s: %s", cfg->state_dir,
				 strerror(errno));
		goto out;
	}
	mkdirat(sfd, "keys", 0700);
	mkdirat(sfd, "inbox", 0711);
	ks->keys_fd = openat(sfd, "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ks->inbox_fd = openat(sfd, "inbox", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(sfd);
	if (ks->keys_fd < 0 || ks->inbox_fd < 0) {
		r = sigfs_seterr(err, -EIO, "state directory %s: cannot open keys/ or inbox/",
				 cfg->state_dir);
		goto out;
	}
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
	pthread_mutex_destroy(&ks->lock);
	free(ks);
}

int sigfs_keys_inbox_root(struct sigfs_keys *ks)
{
	return ks->inbox_fd;
}

/* Remove keys/NAME and everything in it (only our own small files). */
static void remove_keydir(struct sigfs_keys *ks, const char *name)
{
	static const char *const files[] = { "meta", "count", ".meta.tmp" };
	char path[SIGFS_KEYNAME_MAX + 16];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", name, files[i]);
		unlinkat(ks->keys_fd, path, 0);
	}
	unlinkat(ks->keys_fd, name, AT_REMOVEDIR);
}

/*
 * The key store's lock is not held while the backend generates (seconds for
 * RSA-4096): keys/NAME, created with mkdir, is what reserves the name.
 */
int sigfs_keys_create(struct sigfs_keys *ks, const char *name, uid_t uid, char *err)
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
		b = backend_get(ks, cfg->default_backend, err);
		r = b ? 0 : -EIO;
	}
	pthread_mutex_unlock(&ks->lock);
	if (r < 0)
		return r;
	snprintf(k.name, sizeof(k.name), "%s", name);
	snprintf(k.backend, sizeof(k.backend), "%s", b->name);
	k.alg = cfg->default_algorithm;
	k.digest = cfg->default_digest;
	k.format = sigfs_format_by_name(cfg->default_format);
	if (!k.format)
		return sigfs_seterr(err, -EINVAL, "the configured default format %s is unknown",
				    cfg->default_format);
	k.padding = k.alg->kind == SIGFS_KIND_RSA ? cfg->default_padding : SIGFS_PAD_NONE;
	k.digest_files = true;
	k.created = time(NULL);
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
	ifd = openat(ks->inbox_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
	sigfs_audit_append(ks->audit, "keygen", name, uid, NULL, NULL, 0, k.alg->name);
	log_info("key %s created (%s on backend %s)", name, k.alg->name, b->name);
	return 0;
out_inbox:
	unlinkat(ks->inbox_fd, name, AT_REMOVEDIR);
out_key:
	b->ops->remove(b, name, NULL);
out_dir:
	remove_keydir(ks, name);
	return r;
}

int sigfs_keys_delete(struct sigfs_keys *ks, const char *name, uid_t uid, char *err)
{
	struct keyent **pp, *e;
	struct sigfs_backend *b;
	int r = 0;

	pthread_mutex_lock(&ks->lock);
	for (pp = &ks->list; *pp && strcmp((*pp)->k.name, name) != 0; pp = &(*pp)->next)
		;
	e = *pp;
	if (!e) {
		r = sigfs_seterr(err, -ENOENT, "no key %s", name);
		goto out;
	}
	if (unlinkat(ks->inbox_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		r = -errno;
		if (r == -ENOTEMPTY || r == -EEXIST)
			r = sigfs_seterr(err, -ENOTEMPTY,
					 "key %s: its inbox is not empty; empty it first", name);
		else
			sigfs_seterr(err, r, "key %s: cannot remove its inbox: %s", name,
				     strerror(-r));
		goto out;
	}
	b = backend_get(ks, e->k.backend, err);
	if (b) {
		r = b->ops->remove(b, name, err);
		if (r == -ENOENT)
			r = 0;
	} else {
		r = -EIO;
	}
	if (r < 0) {
		/* Keep the key usable: give its inbox back. */
		mkdirat(ks->inbox_fd, name, ks->cfg->inbox_mode);
		goto out;
	}
	*pp = e->next;
	remove_keydir(ks, name);
	sigfs_audit_append(ks->audit, "keydel", name, uid, NULL, NULL, 0, NULL);
	log_info("key %s deleted", name);
	free_ent(e);
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

int sigfs_keys_attr_read(struct sigfs_keys *ks, const char *name, size_t i, char **buf,
			 size_t *len)
{
	struct sigfs_key k;
	char tmp[128];
	int n;

	if (sigfs_keys_get(ks, name, &k) < 0)
		return -ENOENT;
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

/* Apply value v of attribute i to k (in memory only): the one place that validates settings. */
static int apply(const struct sigfs_key *cur, size_t i, const char *v, struct sigfs_key *k,
		 char *err)
{
	const struct sigfs_format *f = k->format;
	bool b;

	*k = *cur;
	switch (i) {
	case A_ALGORITHM:
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
		break;
	case A_DIGEST:
		k->digest = sigfs_digest_by_name(v);
		if (!k->digest)
			return sigfs_seterr(err, -EINVAL, "unknown digest %s", v);
		if (sigfs_digest_is_weak(k->digest) && !k->allow_sha1)
			return sigfs_seterr(err, -EPERM, "key %s does not allow sha1: write yes "
					    "into allow_sha1 first", cur->name);
		break;
	case A_FORMAT:
		k->format = sigfs_format_by_name(v);
		if (!k->format) {
			char list[128] = "";

			for (size_t j = 0; (f = sigfs_format_at(j)); j++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 j ? ", " : "", f->name);
			return sigfs_seterr(err, -EINVAL, "unknown or unsupported format %s "
					    "(this version offers: %s)", v, list);
		}
		break;
	case A_PADDING:
		if (cur->alg->kind != SIGFS_KIND_RSA)
			return sigfs_seterr(err, -EINVAL, "padding applies to RSA keys only; "
					    "key %s is %s", cur->name, cur->alg->name);
		if (sigfs_padding_parse(v, &k->padding) < 0)
			return sigfs_seterr(err, -EINVAL, "padding is pss or pkcs1, not %s", v);
		break;
	case A_ALLOW_SHA1:
		if (!parse_bool(v, &b))
			return sigfs_seterr(err, -EINVAL, "allow_sha1 is yes or no, not %s", v);
		if (!b && sigfs_digest_is_weak(cur->digest))
			return sigfs_seterr(err, -EINVAL, "key %s uses sha1: change its digest first",
					    cur->name);
		k->allow_sha1 = b;
		break;
	case A_DIGEST_FILES:
		if (!parse_bool(v, &b))
			return sigfs_seterr(err, -EINVAL, "digest_files is yes or no, not %s", v);
		k->digest_files = b;
		break;
	default:
		return sigfs_seterr(err, -EPERM, "%s is read-only", attrs[i].name);
	}
	return k->format->check(k->alg, k->digest, err);
}

int sigfs_keys_attr_check(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, char *err)
{
	struct sigfs_key cur, k;
	char v[128];

	if (i == A_IMPORT)
		return 0;
	if (sigfs_keys_get(ks, name, &cur) < 0)
		return sigfs_seterr(err, -ENOENT, "no key %s", name);
	if (value_str(val, len, v, sizeof(v)) < 0)
		return sigfs_seterr(err, -EINVAL, "%s takes one word on one line", attrs[i].name);
	return apply(&cur, i, v, &k, err);
}

static int import_key(struct sigfs_keys *ks, struct keyent *e, const uint8_t *pem, size_t len,
		      uid_t uid, char *err)
{
	struct sigfs_backend *b = backend_get(ks, e->k.backend, err);
	char stage[SIGFS_KEYNAME_MAX + 16];
	const struct sigfs_alg *alg;
	struct sigfs_key k = e->k;
	int r;

	if (!b)
		return -EIO;
	if (e->k.count > 0)
		return sigfs_seterr(err, -EPERM, "key %s has signed %" PRIu64 " times: it cannot "
				    "be replaced; create a new key to import into", e->k.name,
				    e->k.count);
	if (!b->ops->import_pem)
		return sigfs_seterr(err, -EOPNOTSUPP, "backend %s cannot import keys", b->name);
	/* Try the new key under a staging id ('~' is not a key name character): refused, the old key stays. */
	snprintf(stage, sizeof(stage), "%s~import", e->k.name);
	b->ops->remove(b, stage, NULL);
	r = b->ops->import_pem(b, stage, pem, len, &alg, err);
	b->ops->remove(b, stage, NULL);
	if (r < 0)
		return r;
	r = b->ops->remove(b, e->k.name, err);
	if (r < 0 && r != -ENOENT)
		return r;
	r = b->ops->import_pem(b, e->k.name, pem, len, &alg, err);
	if (r < 0) {
		log_err("key %s: import failed, generating a fresh %s key in its place",
			e->k.name, e->k.alg->name);
		b->ops->generate(b, e->k.name, e->k.alg, NULL);
		return r;
	}
	k.alg = alg;
	if (alg->kind != SIGFS_KIND_RSA)
		k.padding = SIGFS_PAD_NONE;
	else if (k.padding == SIGFS_PAD_NONE)
		k.padding = ks->cfg->default_padding;
	r = write_meta(ks, &k);
	if (r < 0)
		return sigfs_seterr(err, r, "key %s: cannot write its settings", e->k.name);
	e->k = k;
	sigfs_audit_append(ks->audit, "import", e->k.name, uid, NULL, NULL, 0, alg->name);
	log_info("key %s: imported a %s key", e->k.name, alg->name);
	return 0;
}

int sigfs_keys_attr_write(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, uid_t uid, char *err)
{
	struct sigfs_backend *b;
	struct sigfs_key k;
	struct keyent *e;
	char v[128];
	int r;

	pthread_mutex_lock(&ks->lock);
	e = find(ks, name);
	if (!e) {
		r = sigfs_seterr(err, -ENOENT, "no key %s", name);
		goto out;
	}
	if (i == A_IMPORT) {
		r = import_key(ks, e, val, len, uid, err);
		goto out;
	}
	if (value_str(val, len, v, sizeof(v)) < 0) {
		r = sigfs_seterr(err, -EINVAL, "%s takes one word on one line", attrs[i].name);
		goto out;
	}
	r = apply(&e->k, i, v, &k, err);
	if (r < 0)
		goto out;
	/* A key that becomes RSA gets the configured rsa_padding, as a new RSA key does. */
	if (e->k.padding == SIGFS_PAD_NONE && k.padding != SIGFS_PAD_NONE)
		k.padding = ks->cfg->default_padding;
	if (k.alg != e->k.alg) {
		b = backend_get(ks, k.backend, err);
		if (!b) {
			r = -EIO;
			goto out;
		}
		r = b->ops->remove(b, name, err);
		if (r < 0 && r != -ENOENT)
			goto out;
		r = b->ops->generate(b, name, k.alg, err);
		if (r < 0) {
			b->ops->generate(b, name, e->k.alg, NULL);
			goto out;
		}
		sigfs_audit_append(ks->audit, "keygen", name, uid, NULL, NULL, 0, k.alg->name);
		log_info("key %s regenerated as %s", name, k.alg->name);
	}
	r = write_meta(ks, &k);
	if (r < 0) {
		sigfs_seterr(err, r, "key %s: cannot write its settings", name);
		goto out;
	}
	e->k = k;
out:
	pthread_mutex_unlock(&ks->lock);
	return r;
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
