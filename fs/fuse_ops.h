/*
 * fuse_ops.h: the FUSE front end (low-level API). It turns filesystem events
 * into engine jobs and shows the key store as the .ctl tree. It knows paths,
 * inodes and permissions; what is hashed and how is the signer's
 * (sigfs_engine_file_hasher), so it names no digest and no crypto library.
 */
#ifndef SIGFS_FUSE_OPS_H
#define SIGFS_FUSE_OPS_H

#include <fuse_lowlevel.h>

#include "common/config.h"
#include "signer/engine.h"
#include "signer/keys.h"

/* The front end's state; the session's userdata (pass it to fuse_session_new). */
struct sigfs_fs;

extern const struct fuse_lowlevel_ops sigfs_fuse_ops;

/*
 * A front end on an open key store and a started engine (both outlive it):
 * learns the node ids of what is in the state directory and starts the
 * close() timer. 0 or -errno.
 */
int sigfs_fs_new(const struct sigfs_config *cfg, struct sigfs_keys *ks, struct sigfs_engine *eng,
		 struct sigfs_fs **out);
/*
 * After a worker restart on a kept mount: take over a write the last worker
 * left unfinished (a sigfs_take_fn for sigfs_engine_unfinished; arg is fs).
 */
void sigfs_fs_take_write(void *arg, const struct sigfs_submit *s);
/* The session fs serves, once it exists: the kernel is told through it to forget entries. */
void sigfs_fs_set_session(struct sigfs_fs *fs, struct fuse_session *se);
/*
 * Stop handing artifacts to the engine (the settle thread of settle_ms):
 * call it when the session's loop has ended, before the engine stops.
 */
void sigfs_fs_stop(struct sigfs_fs *fs);
/*
 * Free handles the kernel never released and the artifacts still waiting
 * to settle (their writes stay journaled), stop the timer, free fs. Stop the
 * engine first: its done() callbacks use fs.
 */
void sigfs_fs_free(struct sigfs_fs *fs);

#endif
