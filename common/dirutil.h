/* dirutil.h: small file and directory chores shared by the signer and the backends. */
#ifndef SIGFS_DIRUTIL_H
#define SIGFS_DIRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Unlink every non-directory entry of directory dirfd (or of its
 * subdirectory sub, when sub is not NULL) whose name starts with prefix
 * ("" for all). Best effort: errors leave the entries in place.
 */
void sigfs_unlink_prefixed(int dirfd, const char *sub, const char *prefix);

/* Write all n bytes of p to fd (retrying short writes and EINTR): 0 or -errno. */
int sigfs_write_all(int fd, const void *p, size_t n);

/*
 * Replace dirfd/name with len bytes of data, atomically: written to the new
 * file dirfd/tmp (an old one removed first; never following a link), given
 * mode (whatever the umask), fsynced when sync, and renamed over name. 0 or
 * -errno; on failure tmp is gone and name is as it was.
 */
int sigfs_replace_file(int dirfd, const char *name, const char *tmp, const void *data, size_t len,
		       mode_t mode, bool sync);

/*
 * A directory descriptor shared by reference: a spool inbox and the jobs
 * queued for it. Each queued job once held a duplicate of the descriptor,
 * so a batch of files larger than RLIMIT_NOFILE failed to queue (EMFILE);
 * now an inbox costs one descriptor however many jobs wait for it.
 * sigfs_dirref_new takes fd (NULL: out of memory, fd closed); the last
 * sigfs_dirref_put closes it. Thread-safe.
 */
struct sigfs_dirref;
struct sigfs_dirref *sigfs_dirref_new(int fd);
struct sigfs_dirref *sigfs_dirref_get(struct sigfs_dirref *d);
void sigfs_dirref_put(struct sigfs_dirref *d);
int sigfs_dirref_fd(const struct sigfs_dirref *d);

#endif
