/*
 * pubdir.c: the keys' public side in the spool (pubdir.h, docs/spool.md).
 *
 * DIR/.keys/KEY/ holds what a user needs to check that an output in DIR/KEY/
 * is sigfs's: `sigfs wait` verifies with it (client/verify.c), so a file
 * planted in an inbox users write is not taken for a signature. DIR is
 * root's and writable by nobody else (spool.c, open_root), and so are
 * .keys/ and everything in it: made here, never a link (O_NOFOLLOW), files
 * written aside and renamed into place, only when their content changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirutil.h"
#include "common/log.h"
#include "spool/pubdir.h"

#define PUB_DIR ".keys"

/*
 * The key's attribute files a verifier needs (signer/keys.c), besides its
 * format's files. created: an OpenPGP signature names its key by a
 * fingerprint over the key's creation time, and openpgp-armor has no
 * cert.pgp of its own to read it from.
 */
static const char *const public_attrs[] = {
	"algorithm", "digest", "format", "padding", "namespace", "uid", "created", "pubkey.pem",
};
#define N_PUBLIC (sizeof(public_attrs) / sizeof(public_attrs[0]))

/* openat(dirfd, name) as a directory, made (0755, the daemon's) if missing. */
static int open_dir(int dirfd, const char *name)
{
	int fd;

	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A directory left by someone else, or made under another umask, is set right. */
	if (fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0755) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Does dirfd/name hold exactly buf? */
static bool same_content(int dirfd, const char *name, const char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	char *have = malloc(len + 1);
	bool same = false;
	struct stat st;

	if (fd >= 0 && have && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (size_t)st.st_size == len && (st.st_mode & 07777) == 0444)
		same = read(fd, have, len + 1) == (ssize_t)len && memcmp(have, buf, len) == 0;
	free(have);
	if (fd >= 0)
		close(fd);
	return same;
}

/* Place buf as dirfd/name (mode 0444) by rename, unless it is there already. */
static int put_file(int dirfd, const char *name, const char *buf, size_t len)
{
	char tmp[64];

	if (same_content(dirfd, name, buf, len))
		return 0;
	snprintf(tmp, sizeof(tmp), ".tmp.%s", name);
	return sigfs_replace_file(dirfd, name, tmp, buf, len, 0444, true);
}

/* The name of the i-th file that may be published (NULL past the end). */
static const char *public_at(size_t i)
{
	const struct sigfs_format_attr *fa;

	if (i < N_PUBLIC)
		return public_attrs[i];
	fa = sigfs_format_attr_at(i - N_PUBLIC);
	return fa ? fa->name : NULL;
}

/* Is the i-th file one of k's? Its format's own files only: nothing rendered for nothing. */
static bool published(const struct sigfs_key *k, size_t i)
{
	const char *name = public_at(i);

	if (i < N_PUBLIC)
		return true;
	/* A format that signs with the certificate without rendering it (kmod). */
	if (k->format->needs_cert && strcmp(name, "cert.pem") == 0)
		return true;
	for (size_t j = 0; j < k->format->nattrs; j++)
		if (strcmp(k->format->attrs[j].name, name) == 0)
			return true;
	return false;
}

/* Write .keys/KEY/NAME (the i-th file), or remove it when k does not have it. */
static int publish_one(int kfd, struct sigfs_keys *ks, const struct sigfs_key *k, size_t i)
{
	const char *name = public_at(i);
	int a = sigfs_key_attr_find(name), r;
	char *buf = NULL;
	size_t len = 0;

	if (!published(k, i) || a < 0 || sigfs_keys_attr_read(ks, k->name, (size_t)a, &buf, &len) < 0 ||
	    len == 0) {
		free(buf);
		return unlinkat(kfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	}
	r = put_file(kfd, name, buf, len);
	free(buf);
	return r;
}

int spool_publish(int root, struct sigfs_keys *ks, const struct sigfs_key *k)
{
	const char *key = k->name;
	int pub = open_dir(root, PUB_DIR), kfd, r = 0;

	if (pub < 0)
		return pub;
	kfd = open_dir(pub, key);
	close(pub);
	if (kfd < 0)
		return kfd;
	for (size_t i = 0; public_at(i) && r == 0; i++)
		r = publish_one(kfd, ks, k, i);
	close(kfd);
	if (r < 0)
		log_err("spool: key %s: cannot publish its public key in %s/%s: %s", key, PUB_DIR,
			key, strerror(-r));
	return r;
}
