/*
 * soft.c: the local key store. Each key is one file <dir>/<id>.pem holding
 * the private key as unencrypted PKCS#8 PEM, mode 0600 in a 0700 directory
 * owned by the daemon and reached by the state directory's path-safety rule
 * (common/safedir.h); <dir> is <state_dir>/soft unless "dir" is set.
 *
 * A key is read from its file when a signature needs it and kept, parsed,
 * while signatures keep coming: parsing a PEM key costs far more than an
 * Ed25519 or ECDSA signature, and OpenSSL 3.0's decoders serialize threads.
 * A key unused for key_cache seconds ([backend NAME] key_cache, default 5;
 * 0 reads the file for every signature) is freed, which wipes it (OpenSSL
 * clears private key material when a key is freed). Removing, generating or
 * importing a key drops it from the cache at once. Workers sign concurrently
 * on the shared key, each with its own context.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "backends/backend.h"
#include "common/dirutil.h"
#include "common/err.h"
#include "common/safedir.h"
#include "common/secret.h"

/* An RSA-4096 PKCS#8 PEM is about 3.3 KiB; anything much larger is not ours. */
#define KEYFILE_MAX 16384
/* Prefix of files being written; open() removes leftovers of a crash. */
#define TMP_PREFIX ".new-"

#define KEY_CACHE_DEFAULT "5"
#define KEY_CACHE_MAX 3600

/* Ed25519 signing contexts kept per cached key: about one per worker. */
#define IDLE_CTX_MAX 8

struct cached {
	char id[NAME_MAX + 1];
	EVP_PKEY *pkey;
	struct timespec last;         /* last use, CLOCK_MONOTONIC */
	struct cached *next;
	/*
	 * Ed25519 contexts set up for pkey and idle (ctx_take, ctx_give): an
	 * EVP_DigestSignInit costs a third of the signature, and a context
	 * signs again and again (as `openssl speed` uses it). Freed with the
	 * entry, so the key leaves memory when the cache drops it.
	 */
	EVP_MD_CTX *idle[IDLE_CTX_MAX];
	unsigned nidle;
};

struct soft {
	int dirfd;
	unsigned ttl;                 /* seconds; 0: no cache */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cached *cache;
	unsigned long drops;           /* cache_drop() calls: a load older than one is stale */
	bool stop;
	bool reaper_running;
	pthread_t reaper;
};

static void *reaper_main(void *arg);

static void cached_free(struct cached *c)
{
	for (unsigned i = 0; i < c->nidle; i++)
		EVP_MD_CTX_free(c->idle[i]);
	EVP_PKEY_free(c->pkey);
	free(c);
}

extern const struct sigfs_backend_ops sigfs_backend_soft;

static unsigned tmp_counter;

/* Set err to "<what>: <OpenSSL reason>" and empty this thread's error queue. */
static int ossl_fail(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ossl_fail(char *err, int code, const char *fmt, ...)
{
	char what[SIGFS_ERRLEN], reason[160] = "no detail from OpenSSL";
	unsigned long e = ERR_peek_last_error();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	return sigfs_seterr(err, code, "%s (%s)", what, reason);
}

static struct soft *soft_of(struct sigfs_backend *b)
{
	return b->priv;
}

/* Ids are validated by the caller; this keeps a bad one from leaving the dir. */
static int key_file(const char *id, char *name, size_t len, char *err)
{
	if (!id[0] || id[0] == '.' || strchr(id, '/'))
		return sigfs_seterr(err, -EINVAL,
				    "soft backend: invalid key id '%s'; use a name without '/' that does not start with '.'",
				    id);
	if ((size_t)snprintf(name, len, "%s.pem", id) >= len)
		return sigfs_seterr(err, -ENAMETOOLONG,
				    "soft backend: key id '%s' is too long; choose a shorter name", id);
	return 0;
}

static int soft_open(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err)
{
	const char *dir = conf->get ? conf->get(conf, "dir", NULL) : NULL;
	const char *cache = conf->get ? conf->get(conf, "key_cache", KEY_CACHE_DEFAULT) :
		KEY_CACHE_DEFAULT;
	char path[PATH_MAX], *end;
	unsigned long ttl;
	struct soft *s;
	int fd, r;

	errno = 0;
	ttl = strtoul(cache, &end, 10);
	if (errno || end == cache || *end || ttl > KEY_CACHE_MAX)
		return sigfs_seterr(err, -EINVAL, "soft backend: key_cache is a number of seconds "
				    "from 0 to %d, not %s", KEY_CACHE_MAX, cache);
	if (!dir) {
		if ((size_t)snprintf(path, sizeof(path), "%s/soft", conf->state_dir) >= sizeof(path))
			return sigfs_seterr(err, -ENAMETOOLONG,
					    "soft backend: state directory path is too long");
		dir = path;
	}
	/*
	 * The state directory's rule (common/safedir.h): nobody else can swap the
	 * directory or a link on the way, and it ends up the daemon's, mode 0700,
	 * whatever the umask or an admin did.
	 */
	r = sigfs_safedir_open(dir, "soft backend key directory", &fd, err);
	if (r < 0)
		return r;
	/* Temporary key files a crash left behind hold private keys. */
	sigfs_unlink_prefixed(fd, NULL, TMP_PREFIX);

	s = calloc(1, sizeof(*s));
	r = s ? sigfs_backend_new(&sigfs_backend_soft, conf, s, out, err) :
		sigfs_seterr(err, -ENOMEM, "soft backend: out of memory");
	if (r < 0) {
		free(s);
		close(fd);
		return r;
	}
	s->dirfd = fd;
	s->ttl = ttl;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (s->ttl && pthread_create(&s->reaper, NULL, reaper_main, s) == 0)
		s->reaper_running = true;
	else
		s->ttl = 0;
	return 0;
}

static void soft_close(struct sigfs_backend *b)
{
	struct soft *s;

	if (!b)
		return;
	s = soft_of(b);
	if (s->reaper_running) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->reaper, NULL);
	}
	while (s->cache) {
		struct cached *c = s->cache;

		s->cache = c->next;
		cached_free(c);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	close(s->dirfd);
	free(s);
	free(b);
}

/* A short description of an unsupported key, for the error line. */
static void describe_key(EVP_PKEY *pkey, char *out, size_t len)
{
	char group[64];

	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL))
		snprintf(out, len, "EC key on curve %s", group);
	else
		snprintf(out, len, "%s key of %d bits", EVP_PKEY_get0_type_name(pkey),
			 EVP_PKEY_get_bits(pkey));
}

/* Read key id from its file; the PEM bytes are wiped before returning. */
static int load_key(struct soft *s, const char *id, EVP_PKEY **out, char *err)
{
	char name[NAME_MAX + 1];
	uint8_t buf[KEYFILE_MAX];
	size_t len = 0;
	ssize_t n = 0;
	int fd, r;

	r = key_file(id, name, sizeof(name), err);
	if (r)
		return r;
	fd = openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return sigfs_seterr(err, r, "soft backend: key '%s' does not exist; create or import it first", id);
		return sigfs_seterr(err, r, "soft backend: cannot open key '%s': %s; check the key directory",
				    id, strerror(-r));
	}
	/* One read normally gets the whole file; loop only for short reads. */
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r) {
		sigfs_seterr(err, r, "soft backend: cannot read key '%s': %s; check the key directory",
			     id, strerror(-r));
		goto out;
	}
	if (len == sizeof(buf)) {
		r = sigfs_seterr(err, -EFBIG, "soft backend: key file of '%s' is too large; it is not a key we wrote", id);
		goto out;
	}
	r = sigfs_read_private_pem(buf, len, out);
	if (r)
		ossl_fail(err, r, "soft backend: key file of '%s' is not a readable PEM private key; re-import the key", id);
out:
	OPENSSL_cleanse(buf, len);
	return r;
}

/* Drop id from the cache (its file changed or is gone). */
static void cache_drop(struct soft *s, const char *id)
{
	struct cached **pp, *c;

	pthread_mutex_lock(&s->lock);
	s->drops++;
	for (pp = &s->cache; (c = *pp); pp = &c->next) {
		if (strcmp(c->id, id) == 0) {
			*pp = c->next;
			cached_free(c);
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* Frees keys idle for longer than the cache time. */
static void *reaper_main(void *arg)
{
	struct soft *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec now, wake;
		struct cached **pp, *c;

		clock_gettime(CLOCK_MONOTONIC, &now);
		for (pp = &s->cache; (c = *pp);) {
			if (now.tv_sec - c->last.tv_sec >= (time_t)s->ttl) {
				*pp = c->next;
				cached_free(c);
			} else {
				pp = &c->next;
			}
		}
		clock_gettime(CLOCK_REALTIME, &wake);
		wake.tv_sec += 1;
		pthread_cond_timedwait(&s->cond, &s->lock, &wake);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* The parsed key id, from the cache or its file; the caller frees its reference. */
static int get_key(struct soft *s, const char *id, EVP_PKEY **out, char *err)
{
	unsigned long drops;
	struct cached *c;
	EVP_PKEY *pkey;
	int r;

	if (s->ttl == 0)
		return load_key(s, id, out, err);
	pthread_mutex_lock(&s->lock);
	drops = s->drops;
	for (c = s->cache; c && strcmp(c->id, id) != 0; c = c->next)
		;
	if (c) {
		clock_gettime(CLOCK_MONOTONIC, &c->last);
		EVP_PKEY_up_ref(c->pkey);
		*out = c->pkey;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	r = load_key(s, id, &pkey, err);
	if (r)
		return r;
	c = calloc(1, sizeof(*c));
	if (c && strlen(id) < sizeof(c->id)) {
		strcpy(c->id, id);
		c->pkey = pkey;
		clock_gettime(CLOCK_MONOTONIC, &c->last);
		pthread_mutex_lock(&s->lock);
		/* Keep it only if no key changed while it was read (and nobody else cached it). */
		for (struct cached *o = s->cache; o && drops == s->drops; o = o->next)
			if (strcmp(o->id, id) == 0)
				drops = s->drops + 1;
		if (drops == s->drops) {
			EVP_PKEY_up_ref(pkey);
			c->next = s->cache;
			s->cache = c;
			c = NULL;
		}
		pthread_mutex_unlock(&s->lock);
	}
	free(c);
	*out = pkey;
	return 0;
}

/* Write pkey as PKCS#8 PEM into fd; the PEM bytes are wiped before returning. */
static int write_pkcs8(int fd, EVP_PKEY *pkey, char *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem = NULL;
	int r;

	if (!bio)
		return sigfs_seterr(err, -ENOMEM, "soft backend: out of memory");
	if (!PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
		r = ossl_fail(err, -EIO, "soft backend: cannot encode the key as PKCS#8");
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	r = sigfs_write_all(fd, mem->data, mem->length);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (r)
		sigfs_seterr(err, r, "soft backend: cannot write key file: %s; check free space in the key directory",
			     strerror(-r));
	OPENSSL_cleanse(mem->data, mem->length);
out:
	BIO_free(bio);
	return r;
}

/*
 * Store pkey as key id: write a temporary file, then rename it into place
 * without replacing, so a key file is either complete or absent and an
 * existing key is never overwritten.
 */
static int store_key(struct soft *s, const char *id, EVP_PKEY *pkey, char *err)
{
	char name[NAME_MAX + 1], tmp[64];
	int fd, r;

	r = key_file(id, name, sizeof(name), err);
	if (r)
		return r;
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%d-%u.pem", (int)getpid(),
		 __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED));
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		return sigfs_seterr(err, r, "soft backend: cannot create key file for '%s': %s; check the key directory",
				    id, strerror(-r));
	}
	r = write_pkcs8(fd, pkey, err);
	close(fd);
	if (!r && renameat2(s->dirfd, tmp, s->dirfd, name, RENAME_NOREPLACE) < 0) {
		r = -errno;
		if (r == -EEXIST)
			sigfs_seterr(err, r, "soft backend: key '%s' already exists; remove it first", id);
		else
			sigfs_seterr(err, r, "soft backend: cannot store key '%s': %s", id, strerror(-r));
	}
	if (r) {
		unlinkat(s->dirfd, tmp, 0);
		return r;
	}
	fsync(s->dirfd);
	cache_drop(s, id);
	return 0;
}

static int key_exists(struct soft *s, const char *id, char *err)
{
	char name[NAME_MAX + 1];
	int r = key_file(id, name, sizeof(name), err);

	if (r)
		return r;
	if (faccessat(s->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return sigfs_seterr(err, -EEXIST, "soft backend: key '%s' already exists; remove it first", id);
	return 0;
}

static int soft_generate(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg, char *err)
{
	struct soft *s = soft_of(b);
	EVP_PKEY *pkey;
	int r;

	/* Fail before spending seconds on an RSA key that could not be stored. */
	r = key_exists(s, id, err);
	if (r)
		return r;
	pkey = sigfs_keygen(alg->kind, alg->group, alg->bits);
	if (!pkey)
		return ossl_fail(err, -EIO, "soft backend: cannot generate a %s key for '%s'", alg->name, id);
	r = store_key(s, id, pkey, err);
	EVP_PKEY_free(pkey);
	return r;
}

static int soft_import_pem(struct sigfs_backend *b, const char *id, const uint8_t *pem, size_t len,
			   const struct sigfs_alg **alg_out, char *err)
{
	const struct sigfs_alg *alg;
	EVP_PKEY *pkey;
	char what[96];
	int r;

	r = sigfs_read_private_pem(pem, len, &pkey);
	if (r)
		return ossl_fail(err, -EINVAL,
				 "soft backend: cannot read the imported key for '%s'; give an unencrypted PEM private key (PKCS#8 or traditional RSA/EC)",
				 id);
	alg = sigfs_alg_of_key(pkey);
	if (!alg) {
		describe_key(pkey, what, sizeof(what));
		EVP_PKEY_free(pkey);
		return sigfs_seterr(err, -EINVAL,
				    "soft backend: cannot import %s for '%s'; supported are Ed25519, EC P-256/P-384/P-521 and RSA 2048/3072/4096",
				    what, id);
	}
	r = store_key(soft_of(b), id, pkey, err);
	EVP_PKEY_free(pkey);
	if (!r && alg_out)
		*alg_out = alg;
	return r;
}

static int soft_remove(struct sigfs_backend *b, const char *id, char *err)
{
	char name[NAME_MAX + 1];
	int r = key_file(id, name, sizeof(name), err);

	if (r)
		return r;
	cache_drop(soft_of(b), id);
	if (unlinkat(soft_of(b)->dirfd, name, 0) < 0) {
		r = -errno;
		if (r == -ENOENT)
			return sigfs_seterr(err, r, "soft backend: key '%s' does not exist; nothing to remove", id);
		return sigfs_seterr(err, r, "soft backend: cannot remove key '%s': %s", id, strerror(-r));
	}
	fsync(soft_of(b)->dirfd);
	return 0;
}

/* A public-only copy, so that no private key leaves this file. */
static int soft_public_key(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pkey;
	int len, r;

	r = load_key(soft_of(b), id, &pkey, err);
	if (r)
		return r;
	len = i2d_PUBKEY(pkey, &der);
	EVP_PKEY_free(pkey);
	p = der;
	*out = len > 0 ? d2i_PUBKEY(NULL, &p, len) : NULL;
	OPENSSL_free(der);
	if (!*out)
		return ossl_fail(err, -EIO, "soft backend: cannot extract the public key of '%s'", id);
	return 0;
}

/* Set the RSA padding in->padding asks for; PSS salt and MGF1 follow the digest. */
static int set_rsa_padding(EVP_PKEY_CTX *ctx, const struct sigfs_sign_input *in, const EVP_MD *md,
			   const char *id, char *err)
{
	switch (in->padding) {
	case SIGFS_PAD_PSS:
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) <= 0)
			return ossl_fail(err, -EIO, "soft backend: cannot set RSA-PSS for key '%s'", id);
		return 0;
	case SIGFS_PAD_PKCS1:
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
			return ossl_fail(err, -EIO, "soft backend: cannot set RSA PKCS#1 v1.5 for key '%s'", id);
		return 0;
	case SIGFS_PAD_NONE:
		break;
	}
	return sigfs_seterr(err, -EINVAL, "soft backend: RSA key '%s' needs a padding; set it to pss or pkcs1", id);
}

static int sign_digest(EVP_PKEY *pkey, const char *id, const struct sigfs_sign_input *in,
		       uint8_t *sig, size_t *siglen, char *err)
{
	const EVP_MD *md = sigfs_digest_md(in->digest);
	EVP_PKEY_CTX *ctx;
	int r = 0;

	if (!md)
		return ossl_fail(err, -EINVAL, "soft backend: digest %s is not available in this OpenSSL", in->digest->name);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!ctx)
		return ossl_fail(err, -ENOMEM, "soft backend: cannot set up signing with key '%s'", id);
	if (EVP_PKEY_sign_init(ctx) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0) {
		r = ossl_fail(err, -EIO, "soft backend: cannot sign %s digests with key '%s'", in->digest->name, id);
		goto out;
	}
	if (in->alg->kind == SIGFS_KIND_RSA) {
		r = set_rsa_padding(ctx, in, md, id, err);
		if (r)
			goto out;
	}
	if (EVP_PKEY_sign(ctx, sig, siglen, in->data, in->len) <= 0)
		r = ossl_fail(err, -EIO, "soft backend: signing with key '%s' failed", id);
out:
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* The cache entry of id that holds pkey itself (NULL: none any more); under s->lock. */
static struct cached *entry_of(struct soft *s, const char *id, const EVP_PKEY *pkey)
{
	struct cached *c;

	for (c = s->cache; c && (c->pkey != pkey || strcmp(c->id, id) != 0); c = c->next)
		;
	return c;
}

/* An idle signing context of pkey from the cache, or NULL. */
static EVP_MD_CTX *ctx_take(struct soft *s, const char *id, const EVP_PKEY *pkey)
{
	EVP_MD_CTX *ctx = NULL;
	struct cached *c;

	if (s->ttl == 0)
		return NULL;
	pthread_mutex_lock(&s->lock);
	c = entry_of(s, id, pkey);
	if (c && c->nidle)
		ctx = c->idle[--c->nidle];
	pthread_mutex_unlock(&s->lock);
	return ctx;
}

/*
 * Back to pkey's cache entry after a good signature, or freed: the entry is
 * gone (the key changed or expired; the context's own reference kept pkey
 * alive, so no new key has its address), or it has enough.
 */
static void ctx_give(struct soft *s, const char *id, const EVP_PKEY *pkey, EVP_MD_CTX *ctx)
{
	struct cached *c;

	if (s->ttl) {
		pthread_mutex_lock(&s->lock);
		c = entry_of(s, id, pkey);
		if (c && c->nidle < IDLE_CTX_MAX) {
			c->idle[c->nidle++] = ctx;
			ctx = NULL;
		}
		pthread_mutex_unlock(&s->lock);
	}
	EVP_MD_CTX_free(ctx);
}

/* Pure Ed25519: the whole message goes in, no digest is made first. */
static int sign_message(struct soft *s, EVP_PKEY *pkey, const char *id,
			const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen, char *err)
{
	EVP_MD_CTX *mctx = ctx_take(s, id, pkey);

	if (!mctx) {
		mctx = EVP_MD_CTX_new();
		if (!mctx)
			return sigfs_seterr(err, -ENOMEM, "soft backend: out of memory");
		if (EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, pkey, NULL) <= 0) {
			EVP_MD_CTX_free(mctx);
			return ossl_fail(err, -EIO, "soft backend: signing with key '%s' failed", id);
		}
	}
	if (EVP_DigestSign(mctx, sig, siglen, in->data, in->len) <= 0) {
		EVP_MD_CTX_free(mctx);
		return ossl_fail(err, -EIO, "soft backend: signing with key '%s' failed", id);
	}
	ctx_give(s, id, pkey, mctx);
	return 0;
}

static int soft_sign(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		     uint8_t *sig, size_t *siglen, char *err)
{
	const struct sigfs_alg *alg;
	EVP_PKEY *pkey;
	int r;

	/* Inputs the key cannot sign are refused before the key file is read. */
	r = sigfs_backend_check_input("soft", NULL, id, in, err);
	if (r)
		return r;
	r = get_key(soft_of(b), id, &pkey, err);
	if (r)
		return r;
	alg = sigfs_alg_of_key(pkey);
	if (alg != in->alg) {
		r = sigfs_seterr(err, -EINVAL, "soft backend: key '%s' is %s, not %s; set the key's algorithm to match",
				 id, alg ? alg->name : "of an unsupported type", in->alg->name);
		goto out;
	}
	if (*siglen < (size_t)EVP_PKEY_get_size(pkey)) {
		r = sigfs_seterr(err, -ENOSPC, "soft backend: signature buffer of %zu bytes is too small for key '%s'",
				 *siglen, id);
		goto out;
	}
	if (in->digest)
		r = sign_digest(pkey, id, in, sig, siglen, err);
	else
		r = sign_message(soft_of(b), pkey, id, in, sig, siglen, err);
out:
	EVP_PKEY_free(pkey);
	return r;
}

/* The ids of the <id>.pem files; files being written (TMP_PREFIX) start with '.'. */
static int soft_list(struct sigfs_backend *b, char ***ids, size_t *n, char *err)
{
	size_t count = 0, cap = 16;
	struct dirent *de = NULL;
	char **v;
	int fd, r;
	DIR *d;

	/* A descriptor of its own: readdir's position must not be shared. */
	fd = openat(soft_of(b)->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return sigfs_seterr(err, r, "soft backend: cannot list the key directory: %s",
				    strerror(-r));
	}
	v = malloc(cap * sizeof(*v));
	while (v && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || len <= 4 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		if (count == cap) {
			char **nv = realloc(v, 2 * cap * sizeof(*v));

			if (!nv)
				break;
			v = nv;
			cap *= 2;
		}
		v[count] = strndup(de->d_name, len - 4);
		if (!v[count])
			break;
		count++;
	}
	r = v && !de ? 0 : -ENOMEM;
	closedir(d);
	if (r < 0) {
		sigfs_backend_list_free(v, count);
		return sigfs_seterr(err, r, "soft backend: out of memory");
	}
	*ids = v;
	*n = count;
	return 0;
}

const struct sigfs_backend_ops sigfs_backend_soft = {
	.type = "soft",
	.open = soft_open,
	.close = soft_close,
	.generate = soft_generate,
	.import_pem = soft_import_pem,
	.remove = soft_remove,
	.public_key = soft_public_key,
	.sign = soft_sign,
	.list = soft_list,
};
