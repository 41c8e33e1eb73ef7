/* dirutil.h: small directory chores shared by the key store and the soft backend. */
#ifndef SIGFS_DIRUTIL_H
#define SIGFS_DIRUTIL_H

/*
 * Unlink every non-directory entry of directory dirfd (or of its
 * subdirectory sub, when sub is not NULL) whose name starts with prefix
 * ("" for all). Best effort: errors leave the entries in place.
 */
void sigfs_unlink_prefixed(int dirfd, const char *sub, const char *prefix);

#endif
