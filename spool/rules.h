/*
 * rules.h: the spool's own rules (docs/spool.md), apart from inotify so unit
 * tests reach them: which events hand a name to the engine, and who may have
 * a file signed in an inbox the daemon does not guard (the daemon runs as
 * root in a directory users write).
 */
#ifndef SIGFS_SPOOL_RULES_H
#define SIGFS_SPOOL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/*
 * May uid, whose groups (primary and supplementary) are groups[0..n), create
 * files in a directory with stat dir? Root and the directory's owner may; a
 * member of its group if it is group-writable; anybody else if it is
 * writable by others (the classes of Unix permissions: a member of the group
 * is judged by the group bits only).
 */
bool spool_may_write(const struct stat *dir, uid_t uid, const gid_t *groups, size_t n);

/*
 * May the file with stat file, in inbox dir, be signed? 0, or -EPERM with
 * the reason in err: a hard link (st_nlink != 1), or an owner who may not
 * write into the inbox (groups: the owner's, as for spool_may_write).
 */
int spool_file_check(const struct stat *dir, const struct stat *file, const gid_t *groups,
		     size_t n, char *err);

/*
 * The sticky rule of the mount (docs/inbox.md, "Shared inboxes"): in a
 * sticky inbox, a file of uid may take the output names it shares with
 * other files (NAME, NAME.<digest>, NAME.sigreq and the outputs) only if uid
 * owns every one of them that exists, unless uid is root or owns the inbox.
 * True when that check applies.
 */
bool spool_owner_only(uid_t uid, const struct stat *inbox);

/* What an event on a name in an inbox asks for. */
enum spool_action {
	SPOOL_NONE,        /* nothing: an ignored or output name, or a file still being written */
	SPOOL_SUBMIT,      /* the file is complete (or to be refused): hand it to the engine */
};

/*
 * Can an event mask on name lead to anything? Not for a directory, an
 * ignored name (a dotfile: the daemon's temporary outputs among them) or an
 * output name (the daemon's own renames): those need no stat.
 */
bool spool_event_wanted(uint32_t mask, const char *name);

/*
 * The action for an inotify event mask on name, whose stat (lstat, not
 * following a link) is st, or NULL if it is gone. A close of a writable
 * descriptor and a rename into the inbox submit; a creation submits only
 * what will be refused (not a regular file, or a hard link), since a new
 * regular file is not complete until its writer closes it.
 */
enum spool_action spool_event_action(uint32_t mask, const char *name, const struct stat *st);

/* The most events spool_mark_followed takes at once: what one 64 KiB read of inotify brings. */
#define SPOOL_FOLLOW_MAX 4096

struct inotify_event;

/*
 * For each of the n events of one read (evs, in the order read, n at most
 * SPOOL_FOLLOW_MAX), set followed[i] when it is the creation of a file that a
 * later event of the same read brings complete (IN_CLOSE_WRITE or
 * IN_MOVED_TO, same watch, same name). That event looks at the name as it is
 * then and does all the creation would have done (refuse what is not a
 * regular file of one name), so the creation needs no look of its own: a
 * file written at once costs one fstatat, not two. slots: room for
 * 2 * SPOOL_FOLLOW_MAX entries (an open-addressed table of the completing
 * events, walked from the last event back). O(n).
 */
void spool_mark_followed(const struct inotify_event *const *evs, size_t n, bool *followed,
			 uint16_t *slots);

/*
 * settle_ms: how many ms file st must still stay unmodified before it is
 * signed, now (CLOCK_REALTIME) being the time; 0 when it has been quiet for
 * settle_ms. The ctime tells: every write, truncate and attribute change
 * moves it, and unlike the mtime no user can set it. A ctime in the future
 * (a clock stepped back) counts as just now.
 */
unsigned spool_settle_left(const struct stat *st, const struct timespec *now, unsigned settle_ms);

/* How far a file's ctime may lag the clock: the kernel stamps with a coarse clock (a jiffy). */
#define SPOOL_CTIME_SLACK_MS 100

/*
 * May an event for file st still be on its way, the inbox having been
 * watched since `since` (CLOCK_REALTIME)? A rename into the inbox and a
 * write move the ctime, so a file whose ctime is older than since (less
 * SPOOL_CTIME_SLACK_MS) was complete before the watch, and no event of
 * it comes. A scan that finds a file the events may still bring lets the
 * event sign it (decision 75): signing it in the scan too signs it twice.
 */
bool spool_event_may_follow(const struct stat *st, const struct timespec *since);

/*
 * The engine's admit() for spool jobs: spool_file_check with the owner's
 * groups looked up (getpwuid_r, getgrouplist).
 */
int spool_admit(const struct stat *dir, const struct stat *file, char *err);

#endif
