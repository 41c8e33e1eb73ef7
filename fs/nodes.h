/*
 * nodes.h: the FUSE node ids of objects backed by the state directory
 * (inboxes and the files in them). A node id is the backing file's inode
 * number, so it is the same after a restart and can be resolved after the
 * kernel forgot it (NFS file handles). The table remembers where each id
 * lives; it has its own lock, taken alone (no other lock is taken under it).
 */
#ifndef SIGFS_NODES_H
#define SIGFS_NODES_H

#include <stdint.h>

enum fs_kind { FS_ROOT, FS_INBOX, FS_FILE, FS_CTL, FS_KEYS, FS_STATUS, FS_KEYDIR, FS_ATTR };

struct fs_node {
	uint64_t id;
	uint64_t parent;
	enum fs_kind kind;
	int attr;               /* FS_ATTR: index into the key attribute table */
	char key[65];
	char name[256];
};

struct fs_nodes;

/* An empty table; 0 or -ENOMEM. */
int fs_nodes_new(struct fs_nodes **out);
/* Free the table and what it holds (NULL is fine). */
void fs_nodes_free(struct fs_nodes *t);
/* Insert or update id; -ENAMETOOLONG if key or name does not fit a node, -ENOMEM. */
int fs_nodes_put(struct fs_nodes *t, uint64_t id, uint64_t parent, enum fs_kind kind,
		 const char *key, const char *name);
/* Copy node id into out; -ENOENT if unknown. */
int fs_nodes_get(struct fs_nodes *t, uint64_t id, struct fs_node *out);
/* Forget id (unknown ids are fine). */
void fs_nodes_del(struct fs_nodes *t, uint64_t id);

#endif
