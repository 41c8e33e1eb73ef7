/*
 * fhtool: file handles for the NFS-export e2e test (what an NFS server does).
 *
 *   fhtool save PATH HANDLEFILE     name_to_handle_at(PATH) -> HANDLEFILE
 *   fhtool open MOUNT HANDLEFILE    open_by_handle_at(MOUNT, handle): a file's
 *                                   bytes, or a directory's names (one per
 *                                   line, sorted by the caller), to stdout
 *
 * On failure prints "fhtool: <ERRNO NAME>: <message>" to stderr and exits 1
 * (2 for usage errors). Needs CAP_DAC_READ_SEARCH (root).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what)
{
	int e = errno;

	fprintf(stderr, "fhtool: %s: %s: %s\n", strerrorname_np(e) ? strerrorname_np(e) : "?",
		what, strerror(e));
	return 1;
}

static int save(const char *path, const char *out)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	int mount_id;
	FILE *f;

	if (!fh)
		return fail("malloc");
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) < 0)
		return fail("name_to_handle_at");
	f = fopen(out, "wb");
	if (!f || fwrite(fh, sizeof(*fh) + fh->handle_bytes, 1, f) != 1 || fclose(f) != 0)
		return fail(out);
	free(fh);
	return 0;
}

static int open_handle(const char *mnt, const char *in)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	char buf[65536];
	struct stat st;
	ssize_t n;
	int mfd, fd;
	FILE *f;

	if (!fh)
		return fail("malloc");
	f = fopen(in, "rb");
	if (!f || fread(fh, sizeof(*fh), 1, f) != 1 || fh->handle_bytes > MAX_HANDLE_SZ ||
	    fread(fh->f_handle, 1, fh->handle_bytes, f) != fh->handle_bytes)
		return fail(in);
	fclose(f);
	mfd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (mfd < 0)
		return fail(mnt);
	fd = open_by_handle_at(mfd, fh, O_RDONLY);
	if (fd < 0)
		return fail("open_by_handle_at");
	if (fstat(fd, &st) < 0)
		return fail("fstat");
	if (S_ISDIR(st.st_mode)) {
		DIR *d = fdopendir(fd);
		struct dirent *de;

		if (!d)
			return fail("fdopendir");
		errno = 0;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				printf("%s\n", de->d_name);
		if (errno)
			return fail("readdir");
		closedir(d);
	} else {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
				return fail("stdout");
		if (n < 0)
			return fail("read");
		close(fd);
	}
	close(mfd);
	free(fh);
	return fflush(stdout) == 0 ? 0 : fail("stdout");
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "save") == 0)
		return save(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "open") == 0)
		return open_handle(argv[2], argv[3]);
	fprintf(stderr, "usage: fhtool save PATH HANDLEFILE | fhtool open MOUNT HANDLEFILE\n");
	return 2;
}
