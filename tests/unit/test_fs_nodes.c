/*
 * test_fs_nodes.c: the front end's node table (fs/nodes.h): what is put is
 * got back, a put updates in place, a delete forgets, ids that share a bucket
 * stay apart, names that do not fit a node are refused, and tables are
 * independent objects.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fs/nodes.h"

static void test_put_get_update_del(void **state)
{
	struct fs_nodes *t;
	struct fs_node n;

	(void)state;
	assert_int_equal(fs_nodes_new(&t), 0);
	assert_int_equal(fs_nodes_get(t, 42, &n), -ENOENT);
	assert_int_equal(fs_nodes_put(t, 42, 7, FS_FILE, "release", "fw.bin"), 0);
	assert_int_equal(fs_nodes_get(t, 42, &n), 0);
	assert_int_equal(n.id, 42);
	assert_int_equal(n.parent, 7);
	assert_int_equal(n.kind, FS_FILE);
	assert_string_equal(n.key, "release");
	assert_string_equal(n.name, "fw.bin");
	/* A rename: the same id, a new place. */
	assert_int_equal(fs_nodes_put(t, 42, 8, FS_FILE, "beta", "fw2.bin"), 0);
	assert_int_equal(fs_nodes_get(t, 42, &n), 0);
	assert_int_equal(n.parent, 8);
	assert_string_equal(n.key, "beta");
	assert_string_equal(n.name, "fw2.bin");
	fs_nodes_del(t, 42);
	assert_int_equal(fs_nodes_get(t, 42, &n), -ENOENT);
	fs_nodes_del(t, 42);    /* unknown ids are fine */
	fs_nodes_free(t);
}

static void test_colliding_ids(void **state)
{
	/* Ids 65536 apart land in one bucket of the 65536. */
	const uint64_t ids[] = { 5, 5 + 65536, 5 + 2 * 65536, 5 + 3 * 65536 };
	struct fs_nodes *t;
	struct fs_node n;
	char name[16];

	(void)state;
	assert_int_equal(fs_nodes_new(&t), 0);
	for (size_t i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		assert_int_equal(fs_nodes_put(t, ids[i], 1, FS_FILE, "k", name), 0);
	}
	/* Take one out of the middle of the chain: the others stay reachable. */
	fs_nodes_del(t, ids[1]);
	assert_int_equal(fs_nodes_get(t, ids[1], &n), -ENOENT);
	for (size_t i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		snprintf(name, sizeof(name), "f%zu", i);
		assert_int_equal(fs_nodes_get(t, ids[i], &n), 0);
		assert_string_equal(n.name, name);
	}
	fs_nodes_free(t);
}

static void test_names_that_do_not_fit(void **state)
{
	char key[66], name[257];
	struct fs_nodes *t;
	struct fs_node n;

	(void)state;
	assert_int_equal(fs_nodes_new(&t), 0);
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(fs_nodes_put(t, 9, 1, FS_FILE, key, "x"), -ENAMETOOLONG);
	assert_int_equal(fs_nodes_put(t, 9, 1, FS_FILE, "k", name), -ENAMETOOLONG);
	assert_int_equal(fs_nodes_get(t, 9, &n), -ENOENT);
	/* One byte less fits. */
	key[sizeof(key) - 2] = '\0';
	name[sizeof(name) - 2] = '\0';
	assert_int_equal(fs_nodes_put(t, 9, 1, FS_FILE, key, name), 0);
	fs_nodes_free(t);
}

static void test_tables_are_independent(void **state)
{
	struct fs_nodes *a, *b;
	struct fs_node n;

	(void)state;
	assert_int_equal(fs_nodes_new(&a), 0);
	assert_int_equal(fs_nodes_new(&b), 0);
	assert_int_equal(fs_nodes_put(a, 3, 1, FS_INBOX, "release", "release"), 0);
	assert_int_equal(fs_nodes_get(b, 3, &n), -ENOENT);
	fs_nodes_free(a);
	fs_nodes_free(b);
	fs_nodes_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_update_del),
		cmocka_unit_test(test_colliding_ids),
		cmocka_unit_test(test_names_that_do_not_fit),
		cmocka_unit_test(test_tables_are_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
