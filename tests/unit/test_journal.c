/*
 * test_journal.c: the crash journal. What was written before a "crash"
 * (closing without any shutdown step) comes back on reopen: W and A records
 * without D, with their exact key and name bytes; torn lines are skipped;
 * ids never repeat; the file is compacted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "signer/journal.h"

static char dir[4096], path[4200];

static int setup(void **state)
{
	const char *base = getenv("SIGFS_TEST_TMP");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/journal.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/journal", dir);
	return 0;
}

static int teardown(void **state)
{
	char p[4300];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s.new", path);
	unlink(p);
	rmdir(dir);
	return 0;
}

static struct sigfs_journal *open_j(struct sigfs_journal_entry **v, size_t *n)
{
	struct sigfs_journal *j = NULL;
	char err[256] = "";

	assert_int_equal(sigfs_journal_open(path, false, &j, v, n, err), 0);
	assert_non_null(j);
	return j;
}

static void test_empty(void **state)
{
	struct sigfs_journal_entry *v;
	size_t n = 99;
	struct sigfs_journal *j;

	(void)state;
	j = open_j(&v, &n);
	assert_int_equal(n, 0);
	assert_true(sigfs_journal_next_id(j) >= 1);
	free(v);
	sigfs_journal_close(j);
}

static void test_replay(void **state)
{
	static const char odd[] = "fw 1.bin\twith\\odd \xff bytes";
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	uint64_t a, b, c, d;
	size_t n;

	(void)state;
	j = open_j(&v, &n);
	free(v);
	a = sigfs_journal_next_id(j);
	b = sigfs_journal_next_id(j);
	c = sigfs_journal_next_id(j);
	d = sigfs_journal_next_id(j);
	assert_true(a < b && b < c && c < d);
	/* a: written, accepted, done. b: written only. c: accepted. d: written then accepted. */
	assert_int_equal(sigfs_journal_append(j, 'W', a, 11, 1000, "release", "a.bin"), 0);
	assert_int_equal(sigfs_journal_append(j, 'A', a, 11, 1000, "release", "a.bin"), 0);
	assert_int_equal(sigfs_journal_done(j, a), 0);
	assert_int_equal(sigfs_journal_append(j, 'W', b, 12, 1000, "release", odd), 0);
	assert_int_equal(sigfs_journal_append(j, 'A', c, 13, 1000, "k2", "c.bin"), 0);
	assert_int_equal(sigfs_journal_append(j, 'W', d, 14, 1000, "k2", "d.bin"), 0);
	assert_int_equal(sigfs_journal_append(j, 'A', d, 15, 1000, "k2", "d2.bin"), 0);
	/* A crash: the file is simply left as it is. */
	sigfs_journal_close(j);

	j = open_j(&v, &n);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].id, b);
	assert_int_equal(v[0].op, 'W');
	assert_int_equal(v[0].ino, 12);
	assert_string_equal(v[0].key, "release");
	assert_string_equal(v[0].name, odd);
	assert_int_equal(v[1].id, c);
	assert_int_equal(v[1].op, 'A');
	assert_string_equal(v[1].name, "c.bin");
	assert_int_equal(v[1].uid, 1000);
	/* The last record of an id wins: d was accepted under its new name. */
	assert_int_equal(v[2].id, d);
	assert_int_equal(v[2].op, 'A');
	assert_int_equal(v[2].ino, 15);
	assert_string_equal(v[2].name, "d2.bin");
	/* New ids never reuse old ones. */
	assert_true(sigfs_journal_next_id(j) > d);
	/* Finishing them empties the journal for the next start. */
	for (size_t i = 0; i < n; i++)
		sigfs_journal_done(j, v[i].id);
	free(v);
	sigfs_journal_close(j);
	j = open_j(&v, &n);
	assert_int_equal(n, 0);
	free(v);
	sigfs_journal_close(j);
}

static void test_torn_line(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	size_t n;
	FILE *f;

	(void)state;
	j = open_j(&v, &n);
	free(v);
	assert_int_equal(sigfs_journal_append(j, 'A', 7, 70, 1000, "k", "ok.bin"), 0);
	sigfs_journal_close(j);
	/* What a crash in the middle of a write() leaves, and garbage. */
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("A 8 80 6b 6f6b32\nX nonsense\nA 9 9", f);
	fclose(f);
	j = open_j(&v, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 7);
	assert_int_equal(v[0].uid, 1000);
	assert_int_equal(v[1].id, 8);
	assert_string_equal(v[1].name, "ok2");
	/* A record of a version before uids were journaled: the uid is unknown. */
	assert_int_equal(v[1].uid, (uid_t)-1);
	free(v);
	sigfs_journal_close(j);
}

/*
 * Found by fuzz_journal: ids sigfsd never writes (0, and past 2^63) were
 * replayed; 0 is "give it a new id" to the engine, and the largest wrapped
 * the next id to 0.
 */
static void test_ids_out_of_range(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	size_t n;
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("A 0 5 6b 6130 1000\n"
	      "A 18446744073709551615 5 6b 6131 1000\n"
	      "A 9223372036854775808 5 6b 6132 1000\n"
	      "W -1 5 6b 6133 1000\n"
	      "D 18446744073709551615\n"
	      "A 3 5 6b 6f6b 1000\n", f);
	fclose(f);
	j = open_j(&v, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, 3);
	assert_string_equal(v[0].name, "ok");
	assert_int_equal(sigfs_journal_next_id(j), 4);
	free(v);
	sigfs_journal_close(j);
}

static void test_bad_names(void **state)
{
	char longname[300];
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	size_t n;

	(void)state;
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	j = open_j(&v, &n);
	free(v);
	assert_int_equal(sigfs_journal_append(j, 'A', 1, 1, 1000, "k", longname), -ENAMETOOLONG);
	sigfs_journal_close(j);
}

static void test_compaction(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	struct stat st;
	uint64_t keep;
	size_t n;

	(void)state;
	j = open_j(&v, &n);
	free(v);
	keep = sigfs_journal_next_id(j);
	assert_int_equal(sigfs_journal_append(j, 'A', keep, 5, 1000, "k", "kept.bin"), 0);
	/* 100,000 finished jobs: far past the 16 MiB compaction point. */
	for (int i = 0; i < 100000; i++) {
		uint64_t id = sigfs_journal_next_id(j);

		sigfs_journal_append(j, 'W', id, 6, 1000, "release", "some-artifact-with-a-long-name.bin");
		sigfs_journal_append(j, 'A', id, 6, 1000, "release", "some-artifact-with-a-long-name.bin");
		sigfs_journal_done(j, id);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 16 << 20);
	sigfs_journal_close(j);
	j = open_j(&v, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, keep);
	assert_string_equal(v[0].name, "kept.bin");
	free(v);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 100);
	sigfs_journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
