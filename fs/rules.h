/*
 * rules.h: the front end's own rules about names, paths and answers, as pure
 * functions (no FUSE, no state), so unit tests pin them
 * (tests/unit/test_fs_rules.c). Which names are inputs, outputs or ignored is
 * the engine's rule (sigfs_engine_name_check, sigfs_engine_ignored in
 * signer/engine.h); the rules the front end adds on top are here, and the
 * user-facing side of them is in docs/inbox.md.
 */
#ifndef SIGFS_FS_RULES_H
#define SIGFS_FS_RULES_H

#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "signer/keys.h"

/* A backing path below the inbox root: KEY, or KEY/NAME with a name the kernel allows. */
#define FS_PATH_MAX (SIGFS_KEYNAME_MAX + 1 + NAME_MAX + 1)

/*
 * The backing path of name in dir (dir alone when name is NULL) into buf of
 * FS_PATH_MAX bytes; 0, or -ENAMETOOLONG when it does not fit (never cut).
 */
int fs_path(char *buf, const char *dir, const char *name);

/* Is name one of the engine's temporary outputs, which clients never see? */
bool fs_name_hidden(const char *name);

/* Does an open with flags modify the file (written, or truncated by O_TRUNC)? */
bool fs_flags_write(int flags);

/*
 * What close() returns for a job's result (signer/engine.h): 0 only when the
 * writer's bytes are signed; ECANCELED when someone rewrote, replaced or
 * removed the file before it was signed; ENOSPC/EDQUOT when the state
 * directory is full (the signature comes when there is room); ETIMEDOUT when
 * sigfsd stopped first (it comes after the restart); EIO when signing failed
 * (NAME.err says why). The table for users is in docs/inbox.md.
 */
int fs_close_errno(int result);

/*
 * Writing an artifact removes the outputs of its name and puts new ones in
 * their place. In a sticky inbox (mode 1770) the kernel lets a user remove
 * or replace only files they own, unless they own the inbox or are root: the
 * outputs, and the other inputs that would write them (NAME, NAME.<digest>,
 * NAME.sigreq), get the same protection (docs/inbox.md, "Shared inboxes").
 * True when uid may take those names only if it owns every one of them that
 * exists; false when it may take them all (no sticky bit: every member may
 * remove every file anyway).
 */
bool fs_owner_only(uid_t uid, const struct stat *inbox);

/*
 * mkdir .ctl/keys/KEY@BACKEND creates KEY on the named backend ('@' is no key
 * name character): copy KEY into key (NAME_MAX + 1 bytes, the kernel's limit
 * for name, so never cut) and point *backend at BACKEND, or NULL without '@'.
 */
void fs_key_split(const char *name, char *key, const char **backend);

#endif
