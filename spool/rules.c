/*
 * rules.c: the spool's rules (rules.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/err.h"
#include "signer/engine.h"
#include "spool/rules.h"

#define GROUPS_MAX 256

bool spool_may_write(const struct stat *dir, uid_t uid, const gid_t *groups, size_t n)
{
	if (uid == 0 || uid == dir->st_uid)
		return true;
	for (size_t i = 0; i < n; i++)
		if (groups[i] == dir->st_gid)
			return (dir->st_mode & S_IWGRP) != 0;
	return (dir->st_mode & S_IWOTH) != 0;
}

bool spool_owner_only(uid_t uid, const struct stat *inbox)
{
	return uid != 0 && (inbox->st_mode & S_ISVTX) && uid != inbox->st_uid;
}

int spool_file_check(const struct stat *dir, const struct stat *file, const gid_t *groups,
		     size_t n, char *err)
{
	if (file->st_nlink != 1)
		return sigfs_seterr(err, -EPERM, "hard links are refused (the file has %lu names): "
				    "copy the file into the inbox", (unsigned long)file->st_nlink);
	if (!spool_may_write(dir, file->st_uid, groups, n))
		return sigfs_seterr(err, -EPERM, "the file belongs to uid %lu, who may not write "
				    "into this inbox: refused", (unsigned long)file->st_uid);
	return 0;
}

bool spool_event_wanted(uint32_t mask, const char *name)
{
	char err[SIGFS_ERRLEN];

	return !(mask & IN_ISDIR) && !sigfs_engine_ignored(name) &&
	       sigfs_engine_name_check(name, err) == 0;
}

enum spool_action spool_event_action(uint32_t mask, const char *name, const struct stat *st)
{
	if (!st || !spool_event_wanted(mask, name))
		return SPOOL_NONE;
	if (mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
		return SPOOL_SUBMIT;
	if ((mask & IN_CREATE) && (!S_ISREG(st->st_mode) || st->st_nlink != 1))
		return SPOOL_SUBMIT;
	return SPOOL_NONE;
}

unsigned spool_settle_left(const struct stat *st, const struct timespec *now, unsigned settle_ms)
{
	int64_t quiet_ms = ((int64_t)now->tv_sec - st->st_ctim.tv_sec) * 1000 +
			   (now->tv_nsec - st->st_ctim.tv_nsec) / 1000000;

	if (quiet_ms < 0)
		quiet_ms = 0;
	return quiet_ms >= settle_ms ? 0 : (unsigned)(settle_ms - quiet_ms);
}

bool spool_event_may_follow(const struct stat *st, const struct timespec *since)
{
	int64_t age_ms = ((int64_t)since->tv_sec - st->st_ctim.tv_sec) * 1000 +
			 (since->tv_nsec - st->st_ctim.tv_nsec) / 1000000;

	return age_ms < SPOOL_CTIME_SLACK_MS;
}

/* The groups of uid into groups (at most *n); *n becomes their number (0: no such user). */
static void groups_of(uid_t uid, gid_t *groups, int *n)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res) {
		*n = 0;
		return;
	}
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, n) < 0) {
		/* More groups than fit: the first GROUPS_MAX were written. */
		*n = GROUPS_MAX;
	}
}

int spool_admit(const struct stat *dir, const struct stat *file, char *err)
{
	gid_t groups[GROUPS_MAX];
	int n = GROUPS_MAX;

	/* Who needs no look-up: root, the inbox's owner, a hard link. */
	if (file->st_nlink != 1 || file->st_uid == 0 || file->st_uid == dir->st_uid)
		return spool_file_check(dir, file, NULL, 0, err);
	groups_of(file->st_uid, groups, &n);
	return spool_file_check(dir, file, groups, (size_t)n, err);
}

void spool_mark_followed(const struct inotify_event *const *evs, size_t n, bool *followed,
			 uint16_t *slots)
{
	size_t cap = 16;

	if (n > SPOOL_FOLLOW_MAX)
		n = SPOOL_FOLLOW_MAX;
	while (cap < 2 * n)
		cap *= 2;
	memset(slots, 0, cap * sizeof(*slots));
	for (size_t i = n; i-- > 0;) {
		const struct inotify_event *ev = evs[i];
		bool completes = ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO);
		size_t h;

		followed[i] = false;
		if (!ev->len || (ev->mask & IN_ISDIR) || !(completes || (ev->mask & IN_CREATE)))
			continue;
		for (h = (sigfs_name_hash("", ev->name) + (uint32_t)ev->wd) & (cap - 1); slots[h];
		     h = (h + 1) & (cap - 1)) {
			const struct inotify_event *o = evs[slots[h] - 1];

			if (o->wd == ev->wd && strcmp(o->name, ev->name) == 0)
				break;
		}
		if (completes && !slots[h])
			slots[h] = (uint16_t)(i + 1);
		else if (!completes)
			followed[i] = slots[h] != 0;
	}
}
