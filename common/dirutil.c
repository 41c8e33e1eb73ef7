/* dirutil.c: see dirutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
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
