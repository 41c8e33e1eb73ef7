/*
 * journal.h: what the signer promised, kept across crashes.
 *
 * The journal is an append-only file of one-line records:
 *   W id ino key name uid   an artifact is being written (its outputs were removed)
 *   A id ino key name uid   the artifact was accepted: its close() may succeed now
 *   D id                    the job ended (output or .err written) or was dropped
 * key and name are hex-encoded, so any byte of a name is safe; uid is the user
 * whose write, close or rename caused the record (the audit log's uid= after a
 * restart), absent in records of versions before it (read as unknown). A record is one
 * write() on an O_APPEND descriptor: a crash of the daemon cannot lose it once
 * written (with fsync = yes, neither can a power cut).
 *
 * On restart, sigfs_journal_open() gives every id whose last record is W or
 * A: A means "sign it again", W means "its writer never finished". The file
 * is compacted (rewritten with only unfinished records) at open and whenever
 * it grows past 16 MiB.
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
 * Open path and replay it: *pending (malloc'd, *npending entries, in id
 * order) receives every unfinished entry; they stay recorded until the
 * caller appends D for them. The file is rewritten to hold only those.
 */
int sigfs_journal_open(const char *path, bool fsync_records, struct sigfs_journal **out,
		       struct sigfs_journal_entry **pending, size_t *npending, char *err);
void sigfs_journal_close(struct sigfs_journal *j);

/* A new record id (never 0). */
uint64_t sigfs_journal_next_id(struct sigfs_journal *j);
/* Append W or A; uid is the user who caused it ((uid_t)-1: unknown). */
int sigfs_journal_append(struct sigfs_journal *j, char op, uint64_t id, uint64_t ino, uid_t uid,
			 const char *key, const char *name);
/* Append D for id. */
int sigfs_journal_done(struct sigfs_journal *j, uint64_t id);

#endif
