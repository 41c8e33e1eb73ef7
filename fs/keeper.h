/*
 * keeper.h: the mount outlives the daemon serving it (docs/nfs.md#restarts).
 *
 * sigfsd runs as two processes. The keeper mounts the file system, holds the
 * /dev/fuse descriptor of the mount and starts the worker, the daemon proper,
 * which serves the mount through a clone of that descriptor. When the worker
 * ends without being asked to stop (a crash, kill -9, SIGTERM to the worker,
 * SIGHUP to the keeper for an upgrade), the keeper starts a new one on the
 * same connection: the mount, its device number and its node ids stay, so
 * NFS clients' file handles and open files keep working. Only the requests
 * the dead worker had read fail (ECONNABORTED); those still queued in the
 * kernel are served by the next worker.
 *
 * The kernel negotiates the connection once (FUSE_INIT, at mount). The first
 * worker keeps that request in a memfd the keeper holds; each later worker
 * replays it into its own session so that libfuse takes the same settings,
 * and its answer, which the kernel no longer waits for, is dropped.
 */
#ifndef SIGFS_KEEPER_H
#define SIGFS_KEEPER_H

#include <stdbool.h>

#include <fuse_lowlevel.h>

/* What the keeper hands a worker: the mount's /dev/fuse, the INIT memfd, the ready pipe. */
struct keeper_fds {
	int fuse, init, ready;
};

/* The worker's option that carries them, as "FUSE,INIT,READY". */
#define KEEPER_FDS_OPTION "keeper-fds"

/* Parse "N,N,N" into k. 0, or -EINVAL. */
int keeper_parse_fds(const char *s, struct keeper_fds *k);

/*
 * The keeper: mount mnt with args, start workers (this program, argv, with
 * --keeper-fds added) until asked to stop or the mount is gone, then unmount.
 * report_fd (>= 0 when detached): where to report the first worker ready.
 * Returns the exit code.
 */
int keeper_run(int argc, char **argv, struct fuse_args *args, const char *mnt, int report_fd);

/*
 * In the worker: attach session se to the keeper's mount (a clone of its
 * descriptor) and negotiate, the first time from the kernel's INIT, later by
 * replaying it. 0 on a new mount, 1 when a worker served it before (its
 * open files and unfinished writes may go on), or -1 with err set.
 */
int keeper_attach(struct fuse_session *se, const struct keeper_fds *k, char *err);

/* A detached keeper or worker that serves stops using the terminal it was started from. */
void keeper_leave_terminal(void);

/* In the worker: tell the keeper it serves. */
void keeper_ready(const struct keeper_fds *k);

#endif
