/* secret.c: credential files and imported private keys of backends (secret.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "common/err.h"
#include "common/secret.h"

int sigfs_read_secret(const char *type, const char *name, const char *setting,
		      const char *noun, const char *path, char *buf, size_t size, size_t *len,
		      char *err)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sigfs_seterr(err, -errno, "%s backend %s: cannot open %s %s: %s",
				    type, name, setting, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = sigfs_seterr(err, -EINVAL, "%s backend %s: %s %s is not a regular file",
				 type, name, setting, path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0177)) {
		r = sigfs_seterr(err, -EPERM, "%s backend %s: refusing %s %s: it must be owned by "
				 "uid %u with mode 0600 or 0400 (it is uid %u, mode %04o); chown and "
				 "chmod 0600 it", type, name, setting, path, (unsigned)geteuid(),
				 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read(fd, buf, size - 1);
	if (n < 0) {
		r = sigfs_seterr(err, -errno, "%s backend %s: cannot read %s %s: %s",
				 type, name, setting, path, strerror(errno));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || (size_t)n == size - 1) {
		r = sigfs_seterr(err, -EINVAL, "%s backend %s: %s %s must hold the %s on one line "
				 "(1 to %zu characters)", type, name, setting, path, noun, size - 2);
		goto out;
	}
	buf[n] = '\0';
	*len = (size_t)n;
out:
	close(fd);
	return r;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int sigfs_read_private_pem(const uint8_t *pem, size_t len, EVP_PKEY **out)
{
	BIO *bio;

	if (len > INT_MAX)
		return -EFBIG;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	*out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return *out ? 0 : -EINVAL;
}

int sigfs_read_private_pem_fp(FILE *f, EVP_PKEY **out)
{
	*out = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	return *out ? 0 : -EINVAL;
}
