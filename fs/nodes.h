/*
 * nodes.h: the FUSE node ids of objects backed by the state directory
 * (inboxes and the files in them). A node id is the backing file's inode
 * number, so it is the same after a restart and can be resolved after the
 * kernel forgot it (NFS file handles). The map remembers where each id lives.
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

/* Insert or update id. */
int fs_nodes_put(uint64_t id, uint64_t parent, enum fs_kind kind, const char *key,
		 const char *name);
/* Copy node id into out; -ENOENT if unknown. */
int fs_nodes_get(uint64_t id, struct fs_node *out);
void fs_nodes_del(uint64_t id);

#endif
