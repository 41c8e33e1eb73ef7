/*
 * test_journal.c: the crash journal. What was written before a "crash"
 * (closing without any shutdown step) comes back on reopen: W and A records
 * without D, with their exact key and name bytes; torn lines are skipped;
 * ids never repeat; the file is compacted. Records carry the HMAC-SHA256 of
 * journal.h under journal.key: a record without one, with a wrong one, or
 * edited after it was written is ignored (and the log says how many); records
 * of the version before MACs are accepted only by the open that creates
 * journal.key. The journal's files are refused as symlinks or hard links.
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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/err.h"
#include "signer/journal.h"
#include "testlib.h"

static char dir[4096], path[4200], keypath[4200], logpath[4200];
static int dfd = -1;

static int setup(void **state)
{
	(void)state;
	if (t_mkdtemp(dir, sizeof(dir), "journal") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(keypath, sizeof(keypath), "%s/journal.key", dir);
	snprintf(logpath, sizeof(logpath), "%s.log", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dfd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	close(dfd);
	t_run("rm -rf '%s' '%s'", dir, logpath);
	return 0;
}

static int try_open(struct sigfs_journal **j, struct sigfs_journal_entry **v, size_t *n, char *err)
{
	return sigfs_journal_open(dfd, "journal", false, j, v, n, err);
}

static struct sigfs_journal *open_j(struct sigfs_journal_entry **v, size_t *n)
{
	struct sigfs_journal *j = NULL;
	char err[SIGFS_ERRLEN] = "";

	assert_int_equal(try_open(&j, v, n, err), 0);
	assert_non_null(j);
	return j;
}

/* Open, and keep what the journal logged (stderr) in logpath. */
static struct sigfs_journal *open_logged(struct sigfs_journal_entry **v, size_t *n)
{
	struct sigfs_journal *j = NULL;
	char err[SIGFS_ERRLEN] = "";
	int saved = dup(STDERR_FILENO);
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	assert_true(saved >= 0 && fd >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	r = try_open(&j, v, n, err);
	fflush(stderr);
	/* Back before any assertion, so that cmocka's report is seen. */
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	if (r != 0)
		fail_msg("journal open: %d %s", r, err);
	return j;
}

static bool logged(const char *what)
{
	char buf[4096];
	FILE *f = fopen(logpath, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

static void append_text(const char *text)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* text followed by " " and its MAC under the key in journal.key, as journal.h says. */
static void append_maced(const char *text)
{
	uint8_t key[64], mac[32];
	unsigned int maclen = sizeof(mac);
	char line[2048];
	FILE *f = fopen(keypath, "rb");
	size_t klen, n;

	assert_non_null(f);
	klen = fread(key, 1, sizeof(key), f);
	fclose(f);
	assert_int_equal(klen, 32);
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)text, strlen(text), mac, &maclen);
	n = (size_t)snprintf(line, sizeof(line), "%s ", text);
	for (size_t i = 0; i < maclen; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", mac[i]);
	snprintf(line + n, sizeof(line) - n, "\n");
	append_text(line);
}

static void test_empty(void **state)
{
	struct sigfs_journal_entry *v;
	size_t n = 99;
	struct sigfs_journal *j;
	struct stat st;

	(void)state;
	j = open_logged(&v, &n);
	assert_int_equal(n, 0);
	assert_true(sigfs_journal_next_id(j) >= 1);
	free(v);
	sigfs_journal_close(j);
	/* The first open makes the key: 32 bytes, the daemon's only. */
	assert_int_equal(lstat(keypath, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 32);
	assert_true(logged("journal.key, the key of its records' MACs"));
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
	assert_int_equal(sigfs_journal_append(j, 'A', c, 13, (uid_t)-1, "k2", "c.bin"), 0);
	assert_int_equal(sigfs_journal_append(j, 'W', d, 14, 1000, "k2", "d.bin"), 0);
	assert_int_equal(sigfs_journal_append(j, 'A', d, 15, 1000, "k2", "d2.bin"), 0);
	/* A crash: the file is simply left as it is. */
	sigfs_journal_close(j);

	j = open_logged(&v, &n);
	assert_false(logged("ignored"));
	assert_int_equal(n, 3);
	assert_int_equal(v[0].id, b);
	assert_int_equal(v[0].op, 'W');
	assert_int_equal(v[0].ino, 12);
	assert_string_equal(v[0].key, "release");
	assert_string_equal(v[0].name, odd);
	assert_int_equal(v[0].uid, 1000);
	assert_int_equal(v[1].id, c);
	assert_int_equal(v[1].op, 'A');
	assert_string_equal(v[1].name, "c.bin");
	assert_int_equal(v[1].uid, (uid_t)-1);
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

	(void)state;
	j = open_j(&v, &n);
	free(v);
	assert_int_equal(sigfs_journal_append(j, 'A', 7, 70, 1000, "k", "ok.bin"), 0);
	sigfs_journal_close(j);
	/* A record this test MACs with journal.key, as journal.h documents it. */
	append_maced("A 8 80 6b 6f6b32 1001");
	/* What a crash in the middle of a write() leaves, and garbage. */
	append_text("X nonsense\nA 9 90 6b 6f6b33 1000 0123\nA 9 9");
	j = open_logged(&v, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 7);
	assert_int_equal(v[0].uid, 1000);
	assert_int_equal(v[1].id, 8);
	assert_string_equal(v[1].name, "ok2");
	assert_int_equal(v[1].uid, 1001);
	assert_true(logged("skipped 3 unreadable records"));
	free(v);
	sigfs_journal_close(j);
	/* Empty lines are unreadable records too (fuzz_journal: the parser read fields it had not split). */
	append_text("\n\n");
	j = open_logged(&v, &n);
	assert_int_equal(n, 2);
	assert_true(logged("skipped 2 unreadable records"));
	free(v);
	sigfs_journal_close(j);
}

static void test_forged(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	char line[2048], mac[128];
	size_t n;
	FILE *f;

	(void)state;
	j = open_j(&v, &n);
	free(v);
	assert_int_equal(sigfs_journal_append(j, 'A', 7, 70, 1000, "k", "real.bin"), 0);
	sigfs_journal_close(j);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	/* " <mac>\n" of the real record. */
	assert_non_null(strrchr(line, ' '));
	snprintf(mac, sizeof(mac), "%s", strrchr(line, ' '));
	/* Well-formed, but no MAC. */
	append_text("A 20 200 6b 6576696c2e62696e 1001\n");
	/* A MAC of zeros. */
	append_text("A 21 210 6b 6576696c2e62696e 1001 "
		    "0000000000000000000000000000000000000000000000000000000000000000\n");
	/* The real record's MAC on another record. */
	snprintf(line, sizeof(line), "A 22 220 6b 6576696c2e62696e 1001%s", mac);
	append_text(line);
	/* The real record, its name edited ("real.bin" -> "reaL.bin"), its MAC kept. */
	snprintf(line, sizeof(line), "A 7 70 6b 7265614c2e62696e 1000%s", mac);
	append_text(line);
	/* A D without a MAC cannot end a job either. */
	append_text("D 7\n");
	j = open_logged(&v, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, 7);
	assert_string_equal(v[0].name, "real.bin");
	assert_true(logged("journal: ignored 5 records not written by this sigfsd"));
	free(v);
	sigfs_journal_close(j);
	/* They were dropped when the journal was rewritten: the next open is quiet. */
	j = open_logged(&v, &n);
	assert_int_equal(n, 1);
	assert_false(logged("ignored"));
	free(v);
	sigfs_journal_close(j);
}

static void test_upgrade(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j;
	size_t n;

	(void)state;
	/* A journal of the version before MACs, and no journal.key yet. */
	append_text("A 8 80 6b 6f6b32\n"          /* before uids, too */
		    "W 9 90 6b 6f6b33 1000\n"
		    "A 10 100 6b 6f6b34 1000\n"
		    "D 10\n");
	j = open_logged(&v, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 8);
	assert_string_equal(v[0].name, "ok2");
	assert_int_equal(v[0].uid, (uid_t)-1);
	assert_int_equal(v[1].id, 9);
	assert_int_equal(v[1].op, 'W');
	assert_int_equal(v[1].uid, 1000);
	assert_true(logged("journal: first start with journal.key: accepted 4 records of an "
			   "earlier version (no MAC)"));
	assert_true(sigfs_journal_next_id(j) > 10);
	free(v);
	sigfs_journal_close(j);
	assert_int_equal(access(keypath, F_OK), 0);
	/* They were rewritten with MACs: still there. A record without one is not, any more. */
	append_text("A 11 110 6b 6f6b35 1000\n");
	j = open_logged(&v, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 8);
	assert_int_equal(v[1].id, 9);
	assert_true(logged("journal: ignored 1 records not written by this sigfsd"));
	assert_false(logged("first start"));
	free(v);
	sigfs_journal_close(j);
}

static void test_refusals(void **state)
{
	struct sigfs_journal_entry *v;
	struct sigfs_journal *j = NULL;
	char err[SIGFS_ERRLEN], victim[4300], newpath[4300];
	struct stat st;
	size_t n;

	(void)state;
	j = open_j(&v, &n);
	free(v);
	sigfs_journal_close(j);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(newpath, sizeof(newpath), "%s.new", path);
	t_run("printf 'keep me\\n' >'%s'", victim);

	/* The journal as a symlink or a hard link: refused, the target untouched. */
	t_run("mv '%s' '%s.saved' && ln -s victim '%s'", path, path, path);
	assert_int_equal(try_open(&j, &v, &n, err), -ELOOP);
	assert_non_null(strstr(err, "journal: it is a symbolic link"));
	t_run("rm '%s' && ln '%s' '%s'", path, victim, path);
	assert_int_equal(try_open(&j, &v, &n, err), -EPERM);
	assert_non_null(strstr(err, "journal: it has 2 hard links"));
	t_run("rm '%s' && mv '%s.saved' '%s'", path, path, path);

	/* journal.key readable by others, or of the wrong size. */
	chmod(keypath, 0644);
	assert_int_equal(try_open(&j, &v, &n, err), -EPERM);
	assert_non_null(strstr(err, "journal.key: it is readable or writable by group or others"));
	chmod(keypath, 0600);
	t_run("cp -p '%s' '%s.saved' && head -c 16 '%s.saved' >'%s'", keypath, keypath, keypath,
	      keypath);
	assert_int_equal(try_open(&j, &v, &n, err), -EBADMSG);
	assert_non_null(strstr(err, "journal.key is not 32 bytes"));
	t_run("mv '%s.saved' '%s'", keypath, keypath);

	/* A journal.new planted as a link: removed, never written through. */
	t_run("ln -s victim '%s'", newpath);
	j = open_j(&v, &n);
	free(v);
	sigfs_journal_close(j);
	assert_int_equal(lstat(newpath, &st), -1);
	assert_int_equal(t_run("test \"$(cat '%s')\" = 'keep me'", victim), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_nlink, 1);
}

/*
 * Found by fuzz_journal: ids sigfsd never writes (0, and past 2^63) were
 * replayed; 0 is "give it a new id" to the engine, and the largest wrapped
 * the next id to 0. (Records of the version before MACs, read at the start
 * that creates journal.key.)
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
	j = open_logged(&v, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, keep);
	assert_string_equal(v[0].name, "kept.bin");
	/* The compacted file's records carry good MACs. */
	assert_false(logged("ignored"));
	free(v);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 150);
	sigfs_journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
