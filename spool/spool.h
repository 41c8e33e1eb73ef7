/*
 * spool.h: spool mode (docs/spool.md). The inboxes of every key on a plain
 * directory, DIR/<key>/, watched with inotify: a file closed after writing
 * or renamed into an inbox is handed to the engine (signer/engine.h) as a
 * spool job, which signs it next to itself by the mount's naming rules.
 * Keys are the key store's; an inbox is made (cfg inbox_mode, inbox_group)
 * when its key appears and left in place, unwatched, when it goes.
 */
#ifndef SIGFS_SPOOL_H
#define SIGFS_SPOOL_H

#include "common/config.h"
#include "signer/engine.h"
#include "signer/keys.h"

struct sigfs_spool;

/*
 * Watch cfg->spool_dir (absolute; created mode 0755 if missing; it must be
 * owned by root and writable by nobody else, since inboxes are made in it),
 * scan every inbox for files without an up-to-date output and submit them,
 * and follow events from a thread of its own. 0, or a negative errno with
 * the reason in err.
 */
int sigfs_spool_start(const struct sigfs_config *cfg, struct sigfs_keys *ks,
		      struct sigfs_engine *eng, struct sigfs_spool **out, char *err);
/* Stop watching (before sigfs_engine_stop: nothing is submitted after this returns). */
void sigfs_spool_stop(struct sigfs_spool *sp);

#endif
