/*
 * journal.h: what the signer promised, kept across crashes.
 *
 * The journal is an append-only file of one-line records, each ending in a MAC:
 *   W id ino key name uid mac   an artifact is being written (its outputs were removed)
 *   A id ino key name uid mac   the artifact was accepted: its close() may succeed now
 *   D id mac                    the job ended (output or .err written) or was dropped
 * key and name are hex-encoded, so any byte of a name is safe; uid is the user
 * whose write, close or rename caused the record (the audit log's uid= after a
 * restart), "-" if unknown. mac is 64 lowercase hex digits: the HMAC-SHA256 of
 * the line's bytes before the space that precedes it, under the 32-byte key
 * in NAME.key beside the journal (journal.key: mode 0600, made with O_EXCL at
 * the first start, wiped from memory at close). A record whose MAC is missing
 * or wrong was not written by this sigfsd and is never acted upon: it is
 * dropped at open and counted in the log, so whoever could write the journal
 * still could not make sigfsd sign a file it never accepted.
 *
 * Records of versions before MACs end at uid (W and A of versions before
 * that also have no uid, read as unknown). They are accepted only at the
 * start that creates NAME.key, which is the start after the upgrade, and
 * never after.
 *
 * A record is one write() on an O_APPEND descriptor: a crash of the daemon
 * cannot lose it once written (with fsync = yes, neither can a power cut).
 *
 * On restart, sigfs_journal_open() gives every id whose last record is W or
 * A: A means "sign it again", W means "its writer never finished". The file
 * is compacted (rewritten as NAME.new with only unfinished records, then
 * renamed over NAME) at open and whenever it grows past 16 MiB.
 */
#ifndef SIGFS_JOURNAL_H
#define SIGFS_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sigfs_journal;

struct sigfs_journal_entry {
	char op;                 /* 'W' or 'A' */
	uint64_t id;
	uint64_t ino;
	uid_t uid;               /* who caused it; (uid_t)-1 if unknown */
	char key[65];
	char name[256];
};

/*
 * Open journal name in directory dirfd (the state directory; the journal
 * keeps its own copy of the descriptor) and replay it: *pending (malloc'd,
 * *npending entries, in id order) receives every unfinished entry whose MAC
 * is good; they stay recorded until the caller appends D for them. The file
 * is rewritten to hold only those. The journal, name.key and name.new are
 * opened without following links and must be the daemon's own regular
 * files (common/safedir.h), name.key private to it.
 */
int sigfs_journal_open(int dirfd, const char *name, bool fsync_records,
		       struct sigfs_journal **out, struct sigfs_journal_entry **pending,
		       size_t *npending, char *err);
void sigfs_journal_close(struct sigfs_journal *j);

/* A new record id (never 0). */
uint64_t sigfs_journal_next_id(struct sigfs_journal *j);
/* Append W or A; uid is the user who caused it ((uid_t)-1: unknown). */
int sigfs_journal_append(struct sigfs_journal *j, char op, uint64_t id, uint64_t ino, uid_t uid,
			 const char *key, const char *name);
/* Append D for id. */
int sigfs_journal_done(struct sigfs_journal *j, uint64_t id);

#endif
