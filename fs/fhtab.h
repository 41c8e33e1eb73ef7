/*
 * fhtab.h: the front end's open file and directory handles, by the id the
 * kernel keeps in fi->fh. fi->fh is an id, never a pointer (docs/decisions.md,
 * 64): a daemon restarted on a kept FUSE connection receives the handles of
 * the process before it, and must look them up, never dereference them.
 *
 * An id is (tag << 32) | counter: the tag is random and nonzero per table (one
 * table per daemon process), the counter only goes up, so ids are not reused
 * within a process and ids another process issued are not found, unless they
 * were adopted (fs_fhtab_adopt) under that very id. An id that is in use is
 * never issued again. The table has its own lock, taken alone (no other lock
 * is taken under it); it holds pointers and never frees what they point to.
 */
#ifndef SIGFS_FHTAB_H
#define SIGFS_FHTAB_H

#include <stddef.h>
#include <stdint.h>

/* What an id stands for: a directory handle is never taken for a file's. */
enum fs_fh_kind { FS_FH_FILE, FS_FH_DIR };

struct fs_fhtab;

/* An empty table with a new random tag; 0 or -ENOMEM. */
int fs_fhtab_new(struct fs_fhtab **out);
/* Free the table (NULL is fine); what its entries point to is the caller's. */
void fs_fhtab_free(struct fs_fhtab *t);
/* The table's current tag: the top 32 bits of the ids it issues. */
uint32_t fs_fhtab_tag(struct fs_fhtab *t);
/* Register p under a new id of this table, stored in *id; 0 or -ENOMEM. */
int fs_fhtab_add(struct fs_fhtab *t, enum fs_fh_kind kind, void *p, uint64_t *id);
/* What id stands for, or NULL when id is unknown or of another kind. */
void *fs_fhtab_get(struct fs_fhtab *t, uint64_t id, enum fs_fh_kind kind);
/*
 * Register p under id, which this process did not issue. *out is p, or the
 * entry that another thread registered under id first (then p is the caller's
 * to free). -EBADF if id stands for the other kind, -ENOMEM.
 */
int fs_fhtab_adopt(struct fs_fhtab *t, uint64_t id, enum fs_fh_kind kind, void *p, void **out);
/* Forget id if it stands for p; 0 or -ENOENT. */
int fs_fhtab_del(struct fs_fhtab *t, uint64_t id, const void *p);
/* Remove any one entry and return it (its kind in *kind), NULL when empty. */
void *fs_fhtab_pop(struct fs_fhtab *t, enum fs_fh_kind *kind);
/* How many ids are registered. */
size_t fs_fhtab_count(struct fs_fhtab *t);

#endif
