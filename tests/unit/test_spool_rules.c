/*
 * test_spool_rules.c: the spool's own rules (spool/rules.h): who may have a
 * file signed in an inbox (the classes of Unix permissions on the inbox),
 * hard links refused, which inotify events hand a name to the engine, and
 * which creations a later event of the same read makes a look at needless.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <cmocka.h>

#include "common/err.h"
#include "spool/rules.h"

static struct stat dir_stat(uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_uid = uid;
	st.st_gid = gid;
	st.st_mode = S_IFDIR | mode;
	return st;
}

static struct stat file_stat(uid_t uid, nlink_t nlink, mode_t type)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_uid = uid;
	st.st_nlink = nlink;
	st.st_mode = type | 0644;
	return st;
}

static void test_who_may_write(void **state)
{
	const gid_t signers[] = { 1000, 2000 }, others[] = { 1000, 3000 };
	struct stat d = dir_stat(0, 2000, 01770);

	(void)state;
	/* Root, and the inbox's owner whatever its mode. */
	assert_true(spool_may_write(&d, 0, NULL, 0));
	d = dir_stat(500, 2000, 0500);
	assert_true(spool_may_write(&d, 500, NULL, 0));
	/* A member of the group: the group bits. */
	d = dir_stat(0, 2000, 01770);
	assert_true(spool_may_write(&d, 1001, signers, 2));
	d = dir_stat(0, 2000, 01750);
	assert_false(spool_may_write(&d, 1001, signers, 2));
	/* A member is judged by the group bits even if others may write (Unix classes). */
	d = dir_stat(0, 2000, 01757);
	assert_false(spool_may_write(&d, 1001, signers, 2));
	/* Anybody else: the other bits. */
	assert_true(spool_may_write(&d, 1002, others, 2));
	d = dir_stat(0, 2000, 01770);
	assert_false(spool_may_write(&d, 1002, others, 2));
	assert_false(spool_may_write(&d, 1002, NULL, 0));       /* a uid without an account */
}

static void test_file_check(void **state)
{
	const gid_t signers[] = { 2000 };
	struct stat d = dir_stat(0, 2000, 01770), f;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	f = file_stat(1001, 1, S_IFREG);
	assert_int_equal(spool_file_check(&d, &f, signers, 1, err), 0);
	/* A hard link, even of the user's own file. */
	f = file_stat(1001, 2, S_IFREG);
	assert_int_equal(spool_file_check(&d, &f, signers, 1, err), -EPERM);
	assert_non_null(strstr(err, "hard links are refused"));
	/* A file whose owner may not write there (moved in by someone who may). */
	f = file_stat(1002, 1, S_IFREG);
	assert_int_equal(spool_file_check(&d, &f, NULL, 0, err), -EPERM);
	assert_non_null(strstr(err, "uid 1002"));
	/* Root's files are admitted. */
	f = file_stat(0, 1, S_IFREG);
	assert_int_equal(spool_file_check(&d, &f, NULL, 0, err), 0);
}

static void test_sticky_rule(void **state)
{
	struct stat sticky = dir_stat(500, 2000, 01770), plain = dir_stat(500, 2000, 0770);

	(void)state;
	/* In a sticky inbox a member's files may take only names the member owns... */
	assert_true(spool_owner_only(1001, &sticky));
	/* ...unless they own the inbox or are root; without the sticky bit anybody may. */
	assert_false(spool_owner_only(500, &sticky));
	assert_false(spool_owner_only(0, &sticky));
	assert_false(spool_owner_only(1001, &plain));
}

static void test_events(void **state)
{
	struct stat reg = file_stat(1001, 1, S_IFREG), linked = file_stat(1001, 2, S_IFREG);
	struct stat lnk = file_stat(1001, 1, S_IFLNK), fifo = file_stat(1001, 1, S_IFIFO);
	char longname[256];
	const struct {
		uint32_t mask;
		const char *name;
		const struct stat *st;
		enum spool_action want;
		bool wanted;            /* spool_event_wanted: worth a stat */
	} cases[] = {
		/* Complete: a close after writing, a rename in. */
		{ IN_CLOSE_WRITE, "fw.bin", &reg, SPOOL_SUBMIT, true },
		{ IN_MOVED_TO, "fw.bin", &reg, SPOOL_SUBMIT, true },
		{ IN_MOVED_TO, "fw.bin.sha256", &reg, SPOOL_SUBMIT, true },
		{ IN_MOVED_TO, "fw.bin.sigreq", &reg, SPOOL_SUBMIT, true },
		/* A new regular file is not complete yet; what will be refused is handed on at once. */
		{ IN_CREATE, "fw.bin", &reg, SPOOL_NONE, true },
		{ IN_CREATE, "fw.bin", &linked, SPOOL_SUBMIT, true },
		{ IN_CREATE, "fw.bin", &lnk, SPOOL_SUBMIT, true },
		{ IN_CREATE, "fw.bin", &fifo, SPOOL_SUBMIT, true },
		/* Gone by now, a directory, dotfiles, outputs (a planted x.sig is no input). */
		{ IN_CLOSE_WRITE, "fw.bin", NULL, SPOOL_NONE, true },
		{ IN_CREATE | IN_ISDIR, "sub", &reg, SPOOL_NONE, false },
		{ IN_CLOSE_WRITE, ".fw.bin.swp", &reg, SPOOL_NONE, false },
		{ IN_MOVED_TO, ".sigfs-tmp.1.2", &reg, SPOOL_NONE, false },
		{ IN_MOVED_TO, "fw.bin.sig", &reg, SPOOL_NONE, false },
		{ IN_CREATE, "fw.bin.sig", &lnk, SPOOL_NONE, false },
		{ IN_MOVED_TO, "fw.bin.err", &reg, SPOOL_NONE, false },
		{ IN_MOVED_TO, "fw.bin.minisig", &reg, SPOOL_NONE, false },
		/* Names no output name fits, or with control characters: not signed. */
		{ IN_MOVED_TO, "a\nb", &reg, SPOOL_NONE, false },
		{ IN_MOVED_TO, longname, &reg, SPOOL_NONE, false },
		/* Other events (a plain open, an attribute change) sign nothing. */
		{ IN_ATTRIB, "fw.bin", &reg, SPOOL_NONE, true },
		{ IN_CLOSE_NOWRITE, "fw.bin", &reg, SPOOL_NONE, true },
	};

	(void)state;
	memset(longname, 'n', 250);
	longname[250] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (spool_event_action(cases[i].mask, cases[i].name, cases[i].st) != cases[i].want ||
		    spool_event_wanted(cases[i].mask, cases[i].name) != cases[i].wanted)
			fail_msg("case %zu (%.20s, mask %#x): wrong action or wanted", i, cases[i].name,
				 cases[i].mask);
	}
}

/* settle_ms counts from the ctime (which users cannot set), in whole ms. */
static void test_settle_left(void **state)
{
	struct stat st = { .st_ctim = { .tv_sec = 1000, .tv_nsec = 500000000 } };
	struct timespec now = { .tv_sec = 1000, .tv_nsec = 500000000 };

	(void)state;
	assert_int_equal(spool_settle_left(&st, &now, 0), 0);
	assert_int_equal(spool_settle_left(&st, &now, 1000), 1000);
	now = (struct timespec){ .tv_sec = 1001, .tv_nsec = 200000000 };     /* 700 ms later */
	assert_int_equal(spool_settle_left(&st, &now, 1000), 300);
	now = (struct timespec){ .tv_sec = 1001, .tv_nsec = 500000000 };     /* exactly 1 s */
	assert_int_equal(spool_settle_left(&st, &now, 1000), 0);
	now = (struct timespec){ .tv_sec = 5000, .tv_nsec = 0 };
	assert_int_equal(spool_settle_left(&st, &now, 1000), 0);
	/* A ctime after now (the clock stepped back): as if modified just now. */
	now = (struct timespec){ .tv_sec = 900, .tv_nsec = 0 };
	assert_int_equal(spool_settle_left(&st, &now, 1000), 1000);
	/* An mtime set back with touch -d changes nothing: only the ctime counts. */
	st.st_mtim = (struct timespec){ .tv_sec = 1, .tv_nsec = 0 };
	now = (struct timespec){ .tv_sec = 1000, .tv_nsec = 600000000 };
	assert_int_equal(spool_settle_left(&st, &now, 1000), 900);
}

/*
 * A file whose ctime is before the watch (less the coarse clock's slack) has
 * no event to come; one changed since, or just before (the kernel stamps with
 * a clock up to a jiffy behind), may have.
 */
static void test_event_may_follow(void **state)
{
	struct timespec since = { .tv_sec = 2000, .tv_nsec = 50000000 };
	struct stat st = { 0 };

	(void)state;
	st.st_ctim = (struct timespec){ .tv_sec = 1000, .tv_nsec = 0 };
	assert_false(spool_event_may_follow(&st, &since));
	st.st_ctim = (struct timespec){ .tv_sec = 2001, .tv_nsec = 0 };              /* after */
	assert_true(spool_event_may_follow(&st, &since));
	st.st_ctim = since;
	assert_true(spool_event_may_follow(&st, &since));
	st.st_ctim = (struct timespec){ .tv_sec = 1999, .tv_nsec = 960000000 };      /* 90 ms before */
	assert_true(spool_event_may_follow(&st, &since));
	st.st_ctim = (struct timespec){ .tv_sec = 1999, .tv_nsec = 949000000 };      /* 101 ms before */
	assert_false(spool_event_may_follow(&st, &since));
	/* The mtime (which users set) plays no part. */
	st.st_mtim = (struct timespec){ .tv_sec = 3000, .tv_nsec = 0 };
	assert_false(spool_event_may_follow(&st, &since));
}

/* A buffer of inotify events, built as read(2) returns them, and pointers to each. */
struct evbuf {
	char buf[1 << 18] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t len, n;
	const struct inotify_event *ev[SPOOL_FOLLOW_MAX];
	bool followed[SPOOL_FOLLOW_MAX];
	uint16_t slots[2 * SPOOL_FOLLOW_MAX];
};

static void ev_add(struct evbuf *b, int wd, uint32_t mask, const char *name)
{
	struct inotify_event *ev = (struct inotify_event *)(b->buf + b->len);
	size_t len = name ? (strlen(name) + 16) / 16 * 16 : 0;

	assert_true(b->len + sizeof(*ev) + len <= sizeof(b->buf) && b->n < SPOOL_FOLLOW_MAX);
	memset(ev, 0, sizeof(*ev) + len);
	ev->wd = wd;
	ev->mask = mask;
	ev->len = (uint32_t)len;
	if (name)
		memcpy(ev->name, name, strlen(name));
	b->ev[b->n++] = ev;
	b->len += sizeof(*ev) + len;
}

static void ev_mark(struct evbuf *b)
{
	memset(b->followed, 0xff, sizeof(b->followed));  /* every entry must be written */
	spool_mark_followed(b->ev, b->n, b->followed, b->slots);
}

/*
 * A creation is followed only by a later close or rename of the same name
 * in the same watch: then the later event alone looks at the name. A
 * symlink, FIFO or hard link (a creation alone) must still be looked at,
 * whatever else the read brings.
 */
static void test_mark_followed(void **state)
{
	static struct evbuf b;

	(void)state;
	b.len = b.n = 0;
	ev_add(&b, 1, IN_CREATE, "a.bin");               /* 0: closed later: followed */
	ev_add(&b, 1, IN_CREATE, "link");                /* 1: a symlink, nothing after */
	ev_add(&b, 2, IN_CREATE, "a.bin");               /* 2: another inbox's a.bin */
	ev_add(&b, 1, IN_CLOSE_WRITE, "a.bin");          /* 3 */
	ev_add(&b, 1, IN_CREATE, "b.bin");               /* 4: renamed over later: followed */
	ev_add(&b, 1, IN_CREATE | IN_ISDIR, "d");        /* 5: a directory */
	ev_add(&b, 1, IN_MOVED_TO, "b.bin");             /* 6 */
	ev_add(&b, 1, IN_CLOSE_WRITE, "c.bin");          /* 7: closed before it is made again */
	ev_add(&b, 1, IN_CREATE, "c.bin");               /* 8: nothing after: looked at */
	ev_add(&b, 1, IN_CREATE, "a.bi");                /* 9: a prefix of a closed name */
	ev_add(&b, 1, IN_Q_OVERFLOW, NULL);              /* 10: no name */
	ev_add(&b, 1, IN_CREATE | IN_ISDIR, "d");        /* 11 */
	ev_add(&b, 1, IN_CLOSE_WRITE | IN_ISDIR, "d");   /* 12: not a file */
	ev_mark(&b);
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(b.followed[i], i == 0 || i == 4);

	/*
	 * A full read: thousands of names, so that the table's chains are long;
	 * every third file is never closed (a link): exactly those are looked at.
	 */
	b.len = b.n = 0;
	for (int i = 0; i < 1300; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d.bin", i);
		ev_add(&b, 1 + i % 2, IN_CREATE, name);
	}
	for (int i = 0; i < 1300; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d.bin", i);
		if (i % 3)
			ev_add(&b, 1 + i % 2, IN_CLOSE_WRITE, name);
	}
	ev_mark(&b);
	for (int i = 0; i < 1300; i++)
		assert_int_equal(b.followed[i], i % 3 != 0);
	for (size_t i = 1300; i < b.n; i++)
		assert_false(b.followed[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_who_may_write),
		cmocka_unit_test(test_file_check),
		cmocka_unit_test(test_sticky_rule),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_settle_left),
		cmocka_unit_test(test_event_may_follow),
		cmocka_unit_test(test_mark_followed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
