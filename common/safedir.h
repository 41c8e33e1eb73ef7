/*
 * safedir.h: the one rule for the directories sigfsd keeps secrets and state
 * in (the state directory, a soft backend's key directory) and the files in
 * them. Whoever could rename, replace or write something on the way could
 * steer the daemon: plant a journal record, swap an inbox, read a key.
 *
 * A directory path is walked from / one component at a time with openat()
 * and O_NOFOLLOW. Every directory on the way must be owned by a trusted user
 * (root or the daemon's effective uid) and not writable by group or others,
 * unless it is sticky (like /tmp, 1777): there only an entry's owner may
 * remove or rename it, and the entry is checked in turn. A symbolic link on
 * the way is followed only if a trusted user owns it (it lies in a directory
 * that passed, so nobody else can replace it); its target is walked by the
 * same rule. The directory itself must not be a symbolic link; it is created
 * mode 0700 if missing, must be owned by the daemon's euid (sigfsd never
 * changes the owner or mode of what another user owns), and is set to 0700.
 *
 * Refusals return -EPERM (-ELOOP for a link where none may be, -ENOENT for
 * a missing parent) with one line in err naming the offending path and what
 * to do.
 */
#ifndef SIGFS_SAFEDIR_H
#define SIGFS_SAFEDIR_H

#include <sys/types.h>

/*
 * Walk the absolute path by the rule above and open the directory (O_RDONLY,
 * O_DIRECTORY, close-on-exec) into *fd. what names it in messages ("state
 * directory").
 */
int sigfs_safedir_open(const char *path, const char *what, int *fd, char *err);

/*
 * Open (mkdirat with mode if missing) the subdirectory name of dirfd without
 * following a link, into *fd (O_RDONLY, O_DIRECTORY). It must be owned by the
 * daemon's euid and not writable by group or others.
 */
int sigfs_safedir_subdir(int dirfd, const char *name, mode_t mode, int *fd, char *err);

/*
 * openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode) into *fd, then
 * insist on a regular file owned by the daemon's euid, not writable by group
 * or others, with one link (a hard link planted there would let sigfsd write
 * someone else's file). Errors from openat itself (-ENOENT ...) come back
 * with err set too.
 */
int sigfs_safedir_file(int dirfd, const char *name, int flags, mode_t mode, int *fd, char *err);

/* "<directory of dirfd>/name" for messages (just name if the directory is unknown). */
const char *sigfs_safedir_shown(int dirfd, const char *name, char *buf, size_t len);

#endif
