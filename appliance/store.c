/*
 * store.c: the appliance's key store (store.h). Keys are parsed once, at
 * start or when added, and held as EVP_PKEYs; a signer takes a reference
 * under the read lock and signs without it, so a KEYDEL or a slow KEYGEN
 * never waits for a signature, nor a signature for the disk.
 *
 * A key file is written as DIR/ID.pem.tmp (O_EXCL, 0600), fsynced, renamed
 * over DIR/ID.pem, and the directory fsynced: after a crash a key is either
 * fully there or absent. Leftover .tmp files are removed at start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "appliance/store.h"
#include "common/err.h"
#include "common/secret.h"

#define PEM_SUFFIX ".pem"
#define TMP_SUFFIX ".pem.tmp"

int store_key_info(EVP_PKEY *pk, uint8_t *type, uint16_t *bits, char *err)
{
	const struct sigfs_alg *alg;
	char group[64];
	int b;

	if (EVP_PKEY_is_a(pk, "RSA")) {
		b = EVP_PKEY_get_bits(pk);
		if (b < 1024 || b > 8192)
			return sigfs_seterr(err, -EOPNOTSUPP, "RSA-%d: RSA keys must have "
					    "1024 to 8192 bits", b);
		*type = PROTO_KEY_RSA;
		*bits = (uint16_t)b;
		return 0;
	}
	alg = sigfs_alg_of_key(pk);
	if (alg && proto_keytype_of(alg, type, bits) == 0)
		return 0;
	ERR_clear_error();
	if (EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL))
		return sigfs_seterr(err, -EOPNOTSUPP, "EC curve %s: only P-256, P-384 and "
				    "P-521 are offered", group);
	return sigfs_seterr(err, -EOPNOTSUPP, "key type %s is not offered (RSA, EC P-256/384/521 "
			    "and Ed25519 are)", EVP_PKEY_get0_type_name(pk) ?
			    EVP_PKEY_get0_type_name(pk) : "?");
}

/* Index of id, or of where it would go (*found 0). Called with the lock held. */
static size_t find(const struct store *s, const char *id, int *found)
{
	size_t lo = 0, hi = s->n;

	*found = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->keys[mid].id, id);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Hold pk (the store takes the reference) as id at index i. Called with the write lock. */
static int insert(struct store *s, size_t i, const char *id, EVP_PKEY *pk, uint8_t type,
		  uint16_t bits)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct store_key *k = realloc(s->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		s->keys = k;
		s->cap = cap;
	}
	memmove(&s->keys[i + 1], &s->keys[i], (s->n - i) * sizeof(*s->keys));
	snprintf(s->keys[i].id, sizeof(s->keys[i].id), "%s", id);
	s->keys[i].pk = pk;
	s->keys[i].type = type;
	s->keys[i].bits = bits;
	s->n++;
	return 0;
}

/* Load DIR/name (ID.pem) into the store. */
static int load_one(struct store *s, int dfd, const char *name, char *err)
{
	char id[PROTO_MAX_KEYID + 1], why[SIGFS_ERRLEN];
	size_t idlen = strlen(name) - strlen(PEM_SUFFIX);
	EVP_PKEY *pk = NULL;
	uint8_t type;
	uint16_t bits;
	FILE *f = NULL;
	int fd, found, r;

	if (!proto_keyid_ok(name, idlen))
		return sigfs_seterr(err, -EINVAL, "store %s: %s is not ID.pem with a valid key id; "
				    "move it away", s->dir, name);
	memcpy(id, name, idlen);
	id[idlen] = '\0';
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return sigfs_seterr(err, r, "store %s: cannot open %s: %s", s->dir, name,
				    strerror(-r));
	}
	r = sigfs_read_private_pem_fp(f, &pk);
	fclose(f);
	if (r < 0) {
		ERR_clear_error();
		return sigfs_seterr(err, -EINVAL, "store %s: %s is not an unencrypted PKCS#8 PEM "
				    "private key; move it away", s->dir, name);
	}
	r = store_key_info(pk, &type, &bits, why);
	if (r < 0) {
		EVP_PKEY_free(pk);
		return sigfs_seterr(err, r, "store %s: %s: %s", s->dir, name, why);
	}
	r = insert(s, find(s, id, &found), id, pk, type, bits);
	if (r < 0) {
		EVP_PKEY_free(pk);
		return sigfs_seterr(err, r, "store %s: out of memory", s->dir);
	}
	return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

int store_open(struct store *s, const char *dir, char *err)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	memset(s, 0, sizeof(*s));
	pthread_rwlock_init(&s->lock, NULL);
	if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir))
		return sigfs_seterr(err, -ENAMETOOLONG, "store %.64s...: path too long", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return sigfs_seterr(err, -errno, "store %s: cannot create it: %s", dir,
				    strerror(errno));
	if (lstat(dir, &st) < 0)
		return sigfs_seterr(err, -errno, "store %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return sigfs_seterr(err, -EPERM, "store %s: refusing it: it must be a directory "
				    "owned by uid %u with mode 0700 (it is uid %u, mode %04o)", dir,
				    (unsigned)geteuid(), (unsigned)st.st_uid,
				    (unsigned)(st.st_mode & 07777));
	d = opendir(dir);
	if (!d)
		return sigfs_seterr(err, -errno, "store %s: %s", dir, strerror(errno));
	while (r == 0 && (de = readdir(d))) {
		if (has_suffix(de->d_name, TMP_SUFFIX))
			unlinkat(dirfd(d), de->d_name, 0);
		else if (has_suffix(de->d_name, PEM_SUFFIX))
			r = load_one(s, dirfd(d), de->d_name, err);
	}
	closedir(d);
	if (r < 0)
		store_close(s);
	return r;
}

void store_close(struct store *s)
{
	for (size_t i = 0; i < s->n; i++)
		EVP_PKEY_free(s->keys[i].pk);
	free(s->keys);
	s->keys = NULL;
	s->n = s->cap = 0;
	pthread_rwlock_destroy(&s->lock);
}

int store_each(struct store *s, int (*fn)(void *arg, const struct store_key *k), void *arg)
{
	int r = 0;

	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; r == 0 && i < s->n; i++)
		r = fn(arg, &s->keys[i]);
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int store_has(struct store *s, const char *id)
{
	int found;

	pthread_rwlock_rdlock(&s->lock);
	find(s, id, &found);
	pthread_rwlock_unlock(&s->lock);
	return found;
}

int store_get(struct store *s, const char *id, EVP_PKEY **pk, uint8_t *type, uint16_t *bits)
{
	int found, r = -ENOENT;
	size_t i;

	pthread_rwlock_rdlock(&s->lock);
	i = find(s, id, &found);
	if (found && EVP_PKEY_up_ref(s->keys[i].pk) == 1) {
		*pk = s->keys[i].pk;
		*type = s->keys[i].type;
		*bits = s->keys[i].bits;
		r = 0;
	}
	pthread_rwlock_unlock(&s->lock);
	return r;
}

/* Write pk to DIR/ID.pem.tmp, fsync it and rename it to DIR/ID.pem. */
static int write_key(struct store *s, const char *id, EVP_PKEY *pk, char *err)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	BIO *mem = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long len = 0;
	int fd = -1, r = 0, dfd;

	snprintf(tmp, sizeof(tmp), "%s/%s%s", s->dir, id, TMP_SUFFIX);
	snprintf(path, sizeof(path), "%s/%s%s", s->dir, id, PEM_SUFFIX);
	if (!mem || PEM_write_bio_PKCS8PrivateKey(mem, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(mem, &pem)) <= 0) {
		ERR_clear_error();
		r = sigfs_seterr(err, -ENOMEM, "store %s: cannot encode key %s", s->dir, id);
		goto out;
	}
	errno = 0;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, pem, (size_t)len) != len || fsync(fd) < 0 || close(fd) < 0) {
		r = sigfs_seterr(err, errno ? -errno : -EIO, "store %s: cannot write %s: %s",
				 s->dir, tmp, strerror(errno ? errno : EIO));
		if (fd >= 0)
			unlink(tmp);
		goto out_mem;
	}
	if (rename(tmp, path) < 0) {
		r = sigfs_seterr(err, -errno, "store %s: cannot rename %s: %s", s->dir, tmp,
				 strerror(errno));
		unlink(tmp);
		goto out_mem;
	}
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out_mem:
	OPENSSL_cleanse(pem, (size_t)len);
out:
	BIO_free(mem);
	return r;
}

int store_add(struct store *s, const char *id, EVP_PKEY *pk, char *err)
{
	uint8_t type;
	uint16_t bits;
	size_t i;
	int found, r;

	r = store_key_info(pk, &type, &bits, err);
	if (r < 0)
		return r;
	pthread_rwlock_wrlock(&s->lock);
	i = find(s, id, &found);
	if (found) {
		r = sigfs_seterr(err, -EEXIST, "key %s exists", id);
		goto out;
	}
	r = write_key(s, id, pk, err);
	if (r < 0)
		goto out;
	if (EVP_PKEY_up_ref(pk) != 1)
		r = -ENOMEM;
	else if ((r = insert(s, i, id, pk, type, bits)) < 0)
		EVP_PKEY_free(pk);      /* the reference insert did not take */
	if (r < 0)
		sigfs_seterr(err, r, "store %s: out of memory", s->dir);
out:
	pthread_rwlock_unlock(&s->lock);
	return r;
}

int store_del(struct store *s, const char *id, char *err)
{
	char path[PATH_MAX];
	size_t i;
	int found, r = 0, dfd;
	EVP_PKEY *pk = NULL;

	pthread_rwlock_wrlock(&s->lock);
	i = find(s, id, &found);
	if (!found) {
		r = sigfs_seterr(err, -ENOENT, "no key %s", id);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s%s", s->dir, id, PEM_SUFFIX);
	if (unlink(path) < 0 && errno != ENOENT) {
		r = sigfs_seterr(err, -errno, "store %s: cannot remove %s: %s", s->dir, path,
				 strerror(errno));
		goto out;
	}
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	pk = s->keys[i].pk;
	memmove(&s->keys[i], &s->keys[i + 1], (s->n - i - 1) * sizeof(*s->keys));
	s->n--;
out:
	pthread_rwlock_unlock(&s->lock);
	EVP_PKEY_free(pk);
	return r;
}
