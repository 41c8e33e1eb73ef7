/* dirutil.c: see dirutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirutil.h"

void sigfs_unlink_prefixed(int dirfd, const char *sub, const char *prefix)
{
	int fd = sub ? openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dup(dirfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_type != DT_DIR && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

int sigfs_replace_file(int dirfd, const char *name, const char *tmp, const void *data, size_t len,
		       mode_t mode, bool sync)
{
	int fd, r;

	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = sigfs_write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

int sigfs_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

struct sigfs_dirref {
	int fd;
	unsigned refs;
};

struct sigfs_dirref *sigfs_dirref_new(int fd)
{
	struct sigfs_dirref *d = malloc(sizeof(*d));

	if (!d) {
		close(fd);
		return NULL;
	}
	d->fd = fd;
	d->refs = 1;
	return d;
}

struct sigfs_dirref *sigfs_dirref_get(struct sigfs_dirref *d)
{
	__atomic_fetch_add(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

void sigfs_dirref_put(struct sigfs_dirref *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(d->fd);
		free(d);
	}
}

int sigfs_dirref_fd(const struct sigfs_dirref *d)
{
	return d->fd;
}
