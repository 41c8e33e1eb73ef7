/*
 * fuse_ops.h: the FUSE front end (low-level API). It turns filesystem events
 * into engine jobs and shows the key store as the .ctl tree. It knows paths,
 * inodes and permissions, nothing of crypto.
 */
#ifndef SIGFS_FUSE_OPS_H
#define SIGFS_FUSE_OPS_H

#include <fuse_lowlevel.h>

#include "common/config.h"
#include "signer/engine.h"
#include "signer/keys.h"

struct sigfs_fs {
	const struct sigfs_config *cfg;
	struct sigfs_keys *ks;
	struct sigfs_engine *eng;
	struct fuse_session *se;
};

extern const struct fuse_lowlevel_ops sigfs_fuse_ops;

/* Learn the node ids of what is in the state directory; start the close() timer. */
int sigfs_fs_init(struct sigfs_fs *fs);
void sigfs_fs_fini(struct sigfs_fs *fs);

#endif
