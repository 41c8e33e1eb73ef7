/* dirutil.h: small file and directory chores shared by the signer and the backends. */
#ifndef SIGFS_DIRUTIL_H
#define SIGFS_DIRUTIL_H

#include <stddef.h>

/*
 * Unlink every non-directory entry of directory dirfd (or of its
 * subdirectory sub, when sub is not NULL) whose name starts with prefix
 * ("" for all). Best effort: errors leave the entries in place.
 */
void sigfs_unlink_prefixed(int dirfd, const char *sub, const char *prefix);

/* Write all n bytes of p to fd (retrying short writes and EINTR): 0 or -errno. */
int sigfs_write_all(int fd, const void *p, size_t n);

#endif
