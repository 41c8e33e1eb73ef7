/*
 * test_fs_rules.c: the front end's own rules (fs/rules.h): backing paths are
 * never cut, the engine's temporary outputs stay hidden, which opens write,
 * what close() returns for each job result, the sticky-inbox rule, and how
 * mkdir splits KEY@BACKEND.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fs/rules.h"

static void test_path_joins_and_refuses_to_cut(void **state)
{
	char buf[FS_PATH_MAX], key[SIGFS_KEYNAME_MAX + 1], name[NAME_MAX + 2];

	(void)state;
	assert_int_equal(fs_path(buf, "release", "fw.bin"), 0);
	assert_string_equal(buf, "release/fw.bin");
	assert_int_equal(fs_path(buf, "release", NULL), 0);
	assert_string_equal(buf, "release");
	/* The longest key and the longest name the kernel sends fit. */
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = '\0';
	assert_int_equal(fs_path(buf, key, name), 0);
	assert_int_equal(strlen(buf), SIGFS_KEYNAME_MAX + 1 + NAME_MAX);
	/* One byte more is refused, never cut into another file's name. */
	name[NAME_MAX] = 'n';
	name[NAME_MAX + 1] = '\0';
	assert_int_equal(fs_path(buf, key, name), -ENAMETOOLONG);
}

static void test_temporary_outputs_are_hidden(void **state)
{
	(void)state;
	assert_true(fs_name_hidden(".sigfs-tmp.12.7f00"));
	assert_true(fs_name_hidden(".sigfs-tmp."));
	assert_false(fs_name_hidden(".sigfs-tmp"));
	assert_false(fs_name_hidden("fw.bin"));
	assert_false(fs_name_hidden(".fw.bin.swp"));      /* ignored by the engine, but shown */
	assert_false(fs_name_hidden("x.sigfs-tmp.1"));
}

static void test_which_opens_write(void **state)
{
	(void)state;
	assert_false(fs_flags_write(O_RDONLY));
	assert_true(fs_flags_write(O_WRONLY));
	assert_true(fs_flags_write(O_RDWR));
	assert_true(fs_flags_write(O_RDONLY | O_TRUNC));   /* it loses its content */
	assert_true(fs_flags_write(O_WRONLY | O_APPEND));
}

static void test_close_results(void **state)
{
	(void)state;
	assert_int_equal(fs_close_errno(0), 0);
	assert_int_equal(fs_close_errno(-ECANCELED), ECANCELED);
	assert_int_equal(fs_close_errno(-ENOSPC), ENOSPC);
	assert_int_equal(fs_close_errno(-EDQUOT), EDQUOT);
	assert_int_equal(fs_close_errno(-ETIMEDOUT), ETIMEDOUT);
	/* Every other failure: NAME.err says why. */
	assert_int_equal(fs_close_errno(-EIO), EIO);
	assert_int_equal(fs_close_errno(-EINVAL), EIO);
	assert_int_equal(fs_close_errno(-ENOMEM), EIO);
	assert_int_equal(fs_close_errno(-EPERM), EIO);
}

static void test_sticky_inbox_rule(void **state)
{
	struct stat sticky = { .st_mode = S_IFDIR | S_ISVTX | 0770, .st_uid = 1000 };
	struct stat shared = { .st_mode = S_IFDIR | 0770, .st_uid = 1000 };

	(void)state;
	/* A member of a sticky inbox must own what shares the outputs... */
	assert_true(fs_owner_only(1001, &sticky));
	/* ...unless they own the inbox or are root. */
	assert_false(fs_owner_only(1000, &sticky));
	assert_false(fs_owner_only(0, &sticky));
	/* Without the sticky bit every member may remove every file anyway. */
	assert_false(fs_owner_only(1001, &shared));
}

static void test_key_at_backend(void **state)
{
	char key[NAME_MAX + 1], name[NAME_MAX + 1];
	const char *backend;

	(void)state;
	fs_key_split("release", key, &backend);
	assert_string_equal(key, "release");
	assert_null(backend);
	fs_key_split("release@pkcs11", key, &backend);
	assert_string_equal(key, "release");
	assert_string_equal(backend, "pkcs11");
	fs_key_split("@soft", key, &backend);
	assert_string_equal(key, "");
	assert_string_equal(backend, "soft");
	fs_key_split("a@b@c", key, &backend);
	assert_string_equal(key, "a");
	assert_string_equal(backend, "b@c");
	/* The kernel's longest name is never cut. */
	memset(name, 'k', NAME_MAX);
	name[NAME_MAX] = '\0';
	fs_key_split(name, key, &backend);
	assert_string_equal(key, name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_joins_and_refuses_to_cut),
		cmocka_unit_test(test_temporary_outputs_are_hidden),
		cmocka_unit_test(test_which_opens_write),
		cmocka_unit_test(test_close_results),
		cmocka_unit_test(test_sticky_inbox_rule),
		cmocka_unit_test(test_key_at_backend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
