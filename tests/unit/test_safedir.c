/*
 * test_safedir.c: the path-safety rule of common/safedir.h, case by case, on
 * a temporary tree: who owns a directory on the way, group- and
 * other-writable ones, sticky ones, links on the way and at the end, a
 * missing directory, and the checks on files and subdirectories. Runs as
 * root (it chowns to a uid nobody has, OTHER); the non-root cases switch the
 * effective uid to OTHER and back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/safedir.h"
#include "testlib.h"

#define OTHER 54321u

static char base[4096];

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "test_safedir needs root (it chowns to uid %u)\n", OTHER);
		return -1;
	}
	if (t_mkdtemp(base, sizeof(base), "safedir") != 0)
		return -1;
	return chmod(base, 0755);
}

static int teardown(void **state)
{
	(void)state;
	t_run("rm -rf '%s'", base);
	return 0;
}

/* base + "/" + rel */
static const char *at(const char *rel)
{
	static char buf[4][4200];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", base, rel);
	return buf[i];
}

static void mkdir_as(const char *rel, mode_t mode, uid_t uid)
{
	assert_int_equal(mkdir(at(rel), mode), 0);
	assert_int_equal(chmod(at(rel), mode), 0);
	assert_int_equal(chown(at(rel), uid, (gid_t)-1), 0);
}

static void same_dir(int fd, const char *path)
{
	struct stat a, b;

	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(stat(path, &b), 0);
	assert_true(S_ISDIR(a.st_mode));
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_dev, b.st_dev);
}

/* The walk of path must succeed, and open the directory that path names. */
static void accepted(const char *path, const char *real)
{
	char err[SIGFS_ERRLEN] = "";
	int fd = -1;

	if (sigfs_safedir_open(path, "state directory", &fd, err) != 0)
		fail_msg("%s refused: %s", path, err);
	same_dir(fd, real);
	close(fd);
}

/* The walk of path must fail with code and a message holding want. */
static void refused(const char *path, int code, const char *want)
{
	char err[SIGFS_ERRLEN] = "";
	int fd = -1, r;

	r = sigfs_safedir_open(path, "state directory", &fd, err);
	if (r != code || !strstr(err, want))
		fail_msg("%s: got %d '%s', want %d '%s'", path, r, err, code, want);
	assert_int_equal(fd, -1);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_missing_is_created(void **state)
{
	(void)state;
	accepted(at("state"), at("state"));
	assert_int_equal(mode_of(at("state")), 0700);
	/* Only the last component is made: a missing parent is an error. */
	refused(at("nope/state"), -ENOENT, "nope does not exist");
	assert_int_equal(access(at("nope"), F_OK), -1);
}

static void test_existing_is_made_private(void **state)
{
	(void)state;
	mkdir_as("state", 0755, 0);
	accepted(at("state"), at("state"));
	assert_int_equal(mode_of(at("state")), 0700);
	/* setgid or sticky bits go too. */
	assert_int_equal(chmod(at("state"), 02770), 0);
	accepted(at("state"), at("state"));
	assert_int_equal(mode_of(at("state")), 0700);
}

static void test_owned_by_another_user(void **state)
{
	char want[256];

	(void)state;
	mkdir_as("state", 0755, OTHER);
	snprintf(want, sizeof(want), "refusing state directory %s: %s is owned by uid %u; ",
		 at("state"), at("state"), OTHER);
	refused(at("state"), -EPERM, want);
	/* Never chmod what another user owns. */
	assert_int_equal(mode_of(at("state")), 0755);
}

static void test_writable_ancestors(void **state)
{
	char want[256];

	(void)state;
	mkdir_as("a", 0775, 0);
	assert_int_equal(chown(at("a"), (uid_t)-1, 4242), 0);
	snprintf(want, sizeof(want), "refusing state directory %s: %s is writable by group 4242 "
		 "(mode 0775); make it root-owned and not group/other-writable", at("a/state"),
		 at("a"));
	refused(at("a/state"), -EPERM, want);
	assert_int_equal(access(at("a/state"), F_OK), -1);
	assert_int_equal(chmod(at("a"), 0757), 0);
	refused(at("a/state"), -EPERM, "a is writable by others (mode 0757); ");
	/* Deeper down is no better: every directory on the way counts. */
	assert_int_equal(chmod(at("a"), 0777), 0);
	mkdir_as("a/b", 0755, 0);
	refused(at("a/b/state"), -EPERM, "a is writable by group 4242 (mode 0777)");
	assert_int_equal(chmod(at("a"), 0755), 0);
	accepted(at("a/b/state"), at("a/b/state"));
}

static void test_owned_ancestor(void **state)
{
	char want[128];

	(void)state;
	mkdir_as("a", 0755, OTHER);
	snprintf(want, sizeof(want), "a is owned by uid %u; make it root-owned", OTHER);
	refused(at("a/state"), -EPERM, want);
}

static void test_sticky(void **state)
{
	char want[128];

	(void)state;
	/* Root-owned and sticky, like /tmp: a root-owned child is safe. */
	mkdir_as("tmp", 01777, 0);
	accepted(at("tmp/state"), at("tmp/state"));
	mkdir_as("tmp/sub", 0755, 0);
	accepted(at("tmp/sub/state"), at("tmp/sub/state"));
	/* A child another user made there is not (they could still rename it). */
	mkdir_as("tmp/theirs", 0755, OTHER);
	snprintf(want, sizeof(want), "theirs is owned by uid %u", OTHER);
	refused(at("tmp/theirs/state"), -EPERM, want);
	refused(at("tmp/theirs"), -EPERM, want);
	/* Sticky but owned by another user: its owner may remove anything in it. */
	mkdir_as("otmp", 01777, OTHER);
	snprintf(want, sizeof(want), "otmp is owned by uid %u", OTHER);
	refused(at("otmp/state"), -EPERM, want);
}

static void test_links(void **state)
{
	char want[256];

	(void)state;
	mkdir_as("real", 0755, 0);
	/* The state directory itself must not be a link, even to a good directory. */
	mkdir_as("real/state", 0700, 0);
	assert_int_equal(symlink(at("real/state"), at("statelink")), 0);
	snprintf(want, sizeof(want), "refusing state directory %s: %s is a symbolic link; ",
		 at("statelink"), at("statelink"));
	refused(at("statelink"), -ELOOP, want);
	/* Links on the way owned by root, relative or absolute, are followed. */
	assert_int_equal(symlink("real", at("rel")), 0);
	accepted(at("rel/state"), at("real/state"));
	assert_int_equal(symlink(at("real"), at("abs")), 0);
	accepted(at("abs/state"), at("real/state"));
	/* A link to a link, and ".." in a target. */
	mkdir_as("real/sub", 0755, 0);
	assert_int_equal(symlink("real/sub/../sub", at("dotdot")), 0);
	assert_int_equal(symlink("dotdot", at("chain")), 0);
	accepted(at("chain/state"), at("real/sub/state"));
	/* The target is walked by the same rule. */
	mkdir_as("open", 0777, 0);
	assert_int_equal(symlink("open", at("toopen")), 0);
	refused(at("toopen/state"), -EPERM, "open is writable by group 0 (mode 0777)");
	/* A link someone else owns is not followed. */
	assert_int_equal(symlink("real", at("theirs")), 0);
	assert_int_equal(lchown(at("theirs"), OTHER, (gid_t)-1), 0);
	snprintf(want, sizeof(want), "%s is a symbolic link owned by uid %u; ", at("theirs"),
		 OTHER);
	refused(at("theirs/state2"), -EPERM, want);
	assert_int_equal(access(at("real/state2"), F_OK), -1);
	/* Loops end. */
	assert_int_equal(symlink("loop2", at("loop1")), 0);
	assert_int_equal(symlink("loop1", at("loop2")), 0);
	refused(at("loop1/state"), -ELOOP, "more than 40 symbolic links");
}

static void test_odd_paths(void **state)
{
	(void)state;
	mkdir_as("a", 0755, 0);
	refused("relative/state", -EINVAL, "not an absolute path");
	refused("/", -EINVAL, "name the directory itself");
	refused(at("a/.."), -EINVAL, "name the directory itself");
	refused(at("."), -EINVAL, "name the directory itself");
	accepted(at("a/../a/./state/"), at("a/state"));
	assert_int_equal(t_run("touch '%s'", at("file")), 0);
	refused(at("file/state"), -ENOTDIR, "file: Not a directory");
	refused(at("file"), -ENOTDIR, "file: Not a directory");
}

/* Run as the daemon's user OTHER: its own directories count as trusted, root's still do. */
static void test_not_root(void **state)
{
	char want[256];

	(void)state;
	mkdir_as("home", 0755, OTHER);
	mkdir_as("rootowned", 0755, 0);
	mkdir_as("home/theirs", 0755, 4242);
	assert_int_equal(seteuid(OTHER), 0);
	accepted(at("home/state"), at("home/state"));
	/* The state directory itself must be the daemon's own. */
	snprintf(want, sizeof(want), "%s is owned by uid 0; remove it, or chown it to uid %u",
		 at("rootowned"), OTHER);
	refused(at("rootowned"), -EPERM, want);
	snprintf(want, sizeof(want), "theirs is owned by uid 4242; make it owned by root or uid %u",
		 OTHER);
	refused(at("home/theirs/state"), -EPERM, want);
	assert_int_equal(seteuid(0), 0);
}

static void test_files(void **state)
{
	char err[SIGFS_ERRLEN];
	int dfd, fd = -1;

	(void)state;
	mkdir_as("state", 0700, 0);
	dfd = open(at("state"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	/* Created, or an existing file of ours: fine. */
	assert_int_equal(sigfs_safedir_file(dfd, "log", O_RDWR | O_CREAT, 0600, &fd, err), 0);
	close(fd);
	assert_int_equal(sigfs_safedir_file(dfd, "log", O_RDONLY, 0, &fd, err), 0);
	close(fd);
	/* A missing one without O_CREAT. */
	assert_int_equal(sigfs_safedir_file(dfd, "none", O_RDONLY, 0, &fd, err), -ENOENT);
	/* A symlink, even a dangling one with O_CREAT: nothing is made at its target. */
	assert_int_equal(symlink(at("victim"), at("state/sym")), 0);
	assert_int_equal(sigfs_safedir_file(dfd, "sym", O_RDWR | O_CREAT, 0600, &fd, err), -ELOOP);
	assert_non_null(strstr(err, "state/sym: it is a symbolic link"));
	assert_int_equal(access(at("victim"), F_OK), -1);
	/* A hard link. */
	assert_int_equal(t_run("echo x >'%s' && ln '%s' '%s'", at("victim"), at("victim"),
			       at("state/hard")), 0);
	assert_int_equal(sigfs_safedir_file(dfd, "hard", O_RDWR, 0, &fd, err), -EPERM);
	assert_non_null(strstr(err, "state/hard: it has 2 hard links"));
	/* Another user's, a group-writable one, a FIFO (which must not hang), a directory. */
	assert_int_equal(t_run("cd '%s' && touch theirs gw && chown %u theirs && chmod 664 gw && "
			       "mkfifo fifo && mkdir dir", at("state"), OTHER), 0);
	assert_int_equal(sigfs_safedir_file(dfd, "theirs", O_RDWR, 0, &fd, err), -EPERM);
	assert_non_null(strstr(err, "it is owned by uid 54321"));
	assert_int_equal(sigfs_safedir_file(dfd, "gw", O_RDWR, 0, &fd, err), -EPERM);
	assert_non_null(strstr(err, "writable by group or others (mode 0664)"));
	assert_int_equal(sigfs_safedir_file(dfd, "fifo", O_RDONLY, 0, &fd, err), -EPERM);
	assert_non_null(strstr(err, "not a regular file"));
	fd = -1;
	assert_int_equal(sigfs_safedir_file(dfd, "dir", O_RDONLY, 0, &fd, err), -EPERM);
	assert_int_equal(fd, -1);
	close(dfd);
}

static void test_subdirs(void **state)
{
	char err[SIGFS_ERRLEN];
	int dfd, fd = -1;

	(void)state;
	mkdir_as("state", 0700, 0);
	dfd = open(at("state"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(sigfs_safedir_subdir(dfd, "inbox", 0711, &fd, err), 0);
	close(fd);
	assert_int_equal(mode_of(at("state/inbox")), 0711);
	assert_int_equal(sigfs_safedir_subdir(dfd, "inbox", 0711, &fd, err), 0);
	close(fd);
	mkdir_as("elsewhere", 0700, 0);
	assert_int_equal(symlink(at("elsewhere"), at("state/keys")), 0);
	assert_int_equal(sigfs_safedir_subdir(dfd, "keys", 0700, &fd, err), -ELOOP);
	assert_non_null(strstr(err, "state/keys: it is a symbolic link"));
	mkdir_as("state/gw", 0770, 0);
	assert_int_equal(sigfs_safedir_subdir(dfd, "gw", 0700, &fd, err), -EPERM);
	mkdir_as("state/theirs", 0700, OTHER);
	assert_int_equal(sigfs_safedir_subdir(dfd, "theirs", 0700, &fd, err), -EPERM);
	assert_non_null(strstr(err, "owner uid 54321"));
	close(dfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_is_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_is_made_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owned_by_another_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_ancestors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owned_ancestor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subdirs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
