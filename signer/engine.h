/*
 * engine.h: the signer. The front end (fs/, FUSE) hands it jobs: "artifact
 * NAME in the inbox of key KEY was written". Workers turn each job into an
 * output next to the artifact (NAME.sig, or NAME.err with one line saying
 * why), written aside and renamed into place. The engine knows inboxes as
 * directories and artifacts as names and bytes; nothing of FUSE.
 *
 * Names in an inbox (docs/inbox.md):
 *   .anything          ignored (temporary files of cp, rsync, editors)
 *   *.sig, *.err ...   outputs: reserved, clients cannot create them
 *   NAME.<digest>      a digest line, signed as NAME (unless the key turns it off)
 *   NAME               an artifact, signed as a file
 */
#ifndef SIGFS_ENGINE_H
#define SIGFS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/alg.h"
#include "common/config.h"
#include "common/dirutil.h"
#include "signer/audit.h"
#include "signer/hasher.h"
#include "signer/keys.h"

struct sigfs_engine;

/*
 * Outputs are written under this prefix and renamed into place; front ends
 * hide such names and clients may not create them.
 */
#define SIGFS_TMP_PREFIX ".sigfs-tmp."

/* A job handed to the engine. */
struct sigfs_submit {
	const char *key;
	const char *name;                   /* artifact name in the key's inbox */
	uint64_t ino;                       /* its inode: a replaced file is not signed */
	uint64_t id;                        /* from sigfs_engine_begin(), or 0 */
	uid_t uid;                          /* whose close/rename asks for it (audit uid=) */
	int write_err;                      /* a write to it failed (errno): NAME.err, not signed */
	/* A hash of the whole file made while it was written, or NULL; the engine takes it. */
	struct sigfs_hasher *state;
	/*
	 * Called once, from a worker: 0 (output written), -ECANCELED (the artifact
	 * was rewritten, replaced or removed before it was signed: nothing was
	 * placed for these bytes), -ENOSPC or -EDQUOT (no room in the state
	 * directory: the job stays accepted and is signed when there is room
	 * again), -ETIMEDOUT (the daemon stopped first: the job stays accepted),
	 * or another negative errno (NAME.err written).
	 */
	void (*done)(void *arg, int result);
	void *arg;
	/*
	 * A spool job (spool/, docs/spool.md): the artifact lies in dir, a
	 * directory its users write directly (the engine takes a reference to
	 * it while the job lives), not in the key store's inbox. Not journaled: the
	 * spool's start-up scan finds a file without an up-to-date output again
	 * (sigfs_engine_output_current). What is not a regular file is refused
	 * (NAME.err) without being opened; a regular file is opened with
	 * O_NOFOLLOW | O_NONBLOCK and admit() judges the opened file (NAME.err
	 * with its reason when it returns < 0). Nothing is placed when the name's
	 * inode, size, mtime or ctime differ from what was signed.
	 */
	bool spool;
	struct sigfs_dirref *dir;
	int (*admit)(const struct stat *dir, const struct stat *file, char *err);
};

/*
 * Start the engine: open the journal in the key store's state directory
 * (sigfs_keys_state_dir) and sign the artifacts it says were accepted; the
 * writes it says were unfinished wait for sigfs_engine_unfinished().
 * Each backend gets its own queue and cfg->workers threads, on first use.
 * The engine runs on its key store's environment (struct sigfs_env in
 * keys.h): its backends sign, its wall clock dates the signatures.
 */
int sigfs_engine_start(const struct sigfs_config *cfg, struct sigfs_keys *ks,
		       struct sigfs_audit *audit, struct sigfs_engine **out, char *err);
/*
 * The writes the last run left unfinished (journal 'W': their writer had not
 * finished when the daemon stopped). Call once, after start. With take NULL
 * each gets NAME.err ("write it again"), as after a crash. Otherwise take()
 * gets each (s->id: its journal id, to submit or drop later): after a restart
 * on a kept mount (fs/keeper.h) the writer may still be writing. Those not
 * handled before stop stay journaled for the next start.
 */
typedef void (*sigfs_take_fn)(void *arg, const struct sigfs_submit *s);
void sigfs_engine_unfinished(struct sigfs_engine *e, sigfs_take_fn take, void *arg);
/*
 * Stop: jobs being signed finish; queued ones stay journaled for the next
 * start (their done() gets -ETIMEDOUT).
 */
void sigfs_engine_stop(struct sigfs_engine *e);

/* Is name ignored (never signed)? */
bool sigfs_engine_ignored(const char *name);
/*
 * May a client create name in key's inbox? 0, or -EINVAL (control
 * characters), -EPERM (an output name), -ENAMETOOLONG (no room for the
 * output suffix), with the reason in err.
 */
int sigfs_engine_name_check(const char *name, char *err);

/*
 * The files that share outputs with name in key's inbox, as they are now:
 * the other inputs with the same output names (NAME, NAME.<digest>,
 * NAME.sigreq) and the outputs themselves. cb runs for each that exists; a
 * negative return stops the walk and is returned. The front end uses it to
 * decide whether a client may take these output names (docs/inbox.md).
 */
typedef int (*sigfs_sibling_fn)(void *arg, const char *name, const struct stat *st);
int sigfs_engine_siblings(struct sigfs_engine *e, const char *key, const char *name,
			  sigfs_sibling_fn cb, void *arg);
/* The same for name in a spool inbox dir of key (dir < 0: the key store's inbox). */
int sigfs_engine_siblings_at(struct sigfs_engine *e, const char *key, int dir, const char *name,
			     sigfs_sibling_fn cb, void *arg);

/*
 * Artifact name of key is being (re)written by uid: journal the write, then
 * forget its outputs (below). ino may be 0 when the file does not exist yet
 * (journal before create); report it with sigfs_engine_begun() once known.
 * *id is the journal id to pass to submit (0 for ignored names). Returns 0,
 * or the journal's error (-ENOSPC ...): then nothing was begun.
 */
int sigfs_engine_begin(struct sigfs_engine *e, const char *key, const char *name, uint64_t ino,
		       uid_t uid, uint64_t *id);
/* The file begun with ino 0 exists now, as inode ino. */
int sigfs_engine_begun(struct sigfs_engine *e, uint64_t id, const char *key, const char *name,
		       uint64_t ino, uid_t uid);
/*
 * name's outputs are void: remove them at once and make sure no job still
 * queued or running for the same output names places one.
 */
void sigfs_engine_forget(struct sigfs_engine *e, const char *key, const char *name);
/* The same for name in a spool inbox dir of key (dir < 0: the key store's inbox). */
void sigfs_engine_forget_at(struct sigfs_engine *e, const char *key, int dir, const char *name);
/*
 * A spool tells the engine which outputs its inbox of key may hold, so that
 * forgetting a name looks only for those (a look-up per suffix is the
 * costliest step of an event in a big inbox): output_seen for every name it
 * sees there (a scan, IN_CREATE, IN_MOVED_TO; not an output name: nothing),
 * outputs_unknown when it may have missed names (inotify's queue overflowed).
 */
void sigfs_engine_output_seen(struct sigfs_engine *e, const char *key, const char *name);
void sigfs_engine_outputs_unknown(struct sigfs_engine *e, const char *key);
/*
 * Has input name of key in inbox dir (< 0: the key store's inbox), whose
 * stat is st, an up-to-date output: a regular file with one of the output
 * names of name, owned by st's owner, whose mtime is st's (decision 63)?
 */
bool sigfs_engine_output_current(struct sigfs_engine *e, const char *key, int dir,
				 const char *name, const struct stat *st);
/*
 * A fresh hash (signer/hasher.h) to run over an artifact of key while it is
 * written, of the kind its format signs; NULL when the format needs none (or
 * out of memory). Front ends feed it with sigfs_hasher_update() and hand a
 * copy to submit, so they never choose a digest themselves.
 */
struct sigfs_hasher *sigfs_engine_file_hasher(struct sigfs_engine *e, const char *key);

/* The write journaled by begin will not be submitted (file renamed to an ignored name...). */
void sigfs_engine_drop(struct sigfs_engine *e, uint64_t id);

/* Journal the job (it is then accepted: survives a crash) and queue it. */
int sigfs_engine_submit(struct sigfs_engine *e, const struct sigfs_submit *s);

/* FNV-1a over key, '/' and name: the engine's tables and the spool's settle list. */
uint32_t sigfs_name_hash(const char *key, const char *name);

/* How many jobs wait for a worker now, in every lane (no lock: a moment's figure). */
size_t sigfs_engine_backlog(struct sigfs_engine *e);

/* What the engine is doing and how its backends are, as text for .ctl/status (malloc'd). */
int sigfs_engine_status(struct sigfs_engine *e, char **buf, size_t *len);

#endif
