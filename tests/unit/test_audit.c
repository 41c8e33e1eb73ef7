/*
 * test_audit.c: the audit log chain (signer/audit.c, docs/audit.md): lines
 * appended by the code verify, the chain is the documented one, and every
 * kind of tampering is found at the right line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "common/err.h"
#include "signer/audit.h"

#define MAX_LINES 256

static void tmp_path(char *out, size_t len, const char *name)
{
	const char *dir = getenv("SIGFS_TEST_TMP");

	snprintf(out, len, "%s/audit-%d-%s.log", dir ? dir : "/tmp", (int)getpid(), name);
	unlink(out);
}

/* sigfs_audit_open() on the directory and name of path. */
static int audit_open(const char *path, struct sigfs_audit **a, char *err)
{
	char dir[512];
	const char *slash = strrchr(path, '/');
	int dfd, r;

	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	r = sigfs_audit_open(dfd, slash + 1, a, err);
	close(dfd);
	return r;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Split a log into lines, each keeping its "\n". */
struct lines {
	char *text;
	size_t n;
	const char *start[MAX_LINES];
	size_t len[MAX_LINES];
};

static void split(struct lines *l, const char *path)
{
	size_t len, at = 0;

	l->text = slurp(path, &len);
	l->n = 0;
	while (at < len) {
		const char *nl = memchr(l->text + at, '\n', len - at);
		size_t ll = nl ? (size_t)(nl - (l->text + at)) + 1 : len - at;

		assert_true(l->n < MAX_LINES);
		l->start[l->n] = l->text + at;
		l->len[l->n++] = ll;
		at += ll;
	}
}

/* Write lines in the given order (index list, -1 ends) to path. */
static void join(const struct lines *l, const int *order, const char *path)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	for (; *order >= 0; order++)
		assert_int_equal(fwrite(l->start[*order], 1, l->len[*order], f), l->len[*order]);
	fclose(f);
}

static void make_log(const char *path, int n)
{
	struct sigfs_audit *a;
	char err[SIGFS_ERRLEN] = "";
	uint8_t digest[32];

	assert_int_equal(audit_open(path, &a, err), 0);
	for (int i = 1; i <= n; i++) {
		char name[64];

		memset(digest, i, sizeof(digest));
		snprintf(name, sizeof(name), "fw-%d.bin", i);
		if (i % 10 == 0)
			assert_int_equal(sigfs_audit_append(a, "keygen", "release", 0, (uid_t)-1, NULL, NULL, 0,
							    NULL), 0);
		else
			assert_int_equal(sigfs_audit_append(a, "sign", "release", 1000 + i, 2000 + i, "sha256",
							    digest, sizeof(digest), name), 0);
	}
	sigfs_audit_close(a);
}

static void expect_bad(const char *path, const char *where)
{
	char err[SIGFS_ERRLEN] = "";
	size_t n = 12345;

	assert_int_equal(sigfs_audit_verify(path, &n, err), -EBADMSG);
	if (strncmp(err, where, strlen(where)) != 0)
		fail_msg("err \"%s\" does not start with \"%s\"", err, where);
	assert_int_equal(n, 12345);
}

static void test_append_and_verify(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct lines l;
	struct stat st;
	size_t n = 0;

	(void)state;
	tmp_path(path, sizeof(path), "append");
	make_log(path, 100);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 100);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* The documented format, checked independently of the code. */
	split(&l, path);
	assert_int_equal(l.n, 100);
	assert_true(strncmp(l.start[0], "1 ", 2) == 0);
	assert_non_null(strstr(l.start[0], " sign key=release uid=1001 owner=2001 digest=sha256:"
			       "0101010101010101010101010101010101010101010101010101010101010101"
			       " name=fw-1.bin prev="
			       "0000000000000000000000000000000000000000000000000000000000000000\n"));
	assert_non_null(strstr(l.start[9], " keygen key=release uid=0 owner=- digest=- name=- prev="));
	for (size_t i = 1; i < l.n; i++) {
		uint8_t h[32];
		char hex[65], want[80], seq[24];

		EVP_Digest(l.start[i - 1], l.len[i - 1], h, NULL, EVP_sha256(), NULL);
		for (int j = 0; j < 32; j++)
			sprintf(hex + 2 * j, "%02x", h[j]);
		snprintf(want, sizeof(want), " prev=%s\n", hex);
		assert_int_equal(l.len[i] > strlen(want), 1);
		assert_memory_equal(l.start[i] + l.len[i] - strlen(want), want, strlen(want));
		snprintf(seq, sizeof(seq), "%zu ", i + 1);
		assert_memory_equal(l.start[i], seq, strlen(seq));
	}
	free(l.text);
	unlink(path);
}

static void test_reopen_continues_chain(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a;
	struct lines l;
	size_t n = 0;

	(void)state;
	tmp_path(path, sizeof(path), "reopen");
	make_log(path, 100);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(audit_open(path, &a, err), 0);
		assert_int_equal(sigfs_audit_append(a, "keydel", "old", 0, (uid_t)-1, NULL, NULL, 0, NULL), 0);
		sigfs_audit_close(a);
	}
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 103);
	split(&l, path);
	assert_true(strncmp(l.start[102], "103 ", 4) == 0);
	free(l.text);

	/* An empty existing log starts at seq 1 with a zero prev. */
	unlink(path);
	spit(path, "", 0);
	assert_int_equal(audit_open(path, &a, err), 0);
	assert_int_equal(sigfs_audit_append(a, "keygen", "k", 0, (uid_t)-1, NULL, NULL, 0, NULL), 0);
	sigfs_audit_close(a);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 1);
	unlink(path);
}

/* A pristine log of 100 lines to tamper with, and where the tampered copy goes. */
struct tamper {
	char path[512], bad[512];
	struct lines l;
};

static int tamper_setup(void **state)
{
	struct tamper *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	tmp_path(t->path, sizeof(t->path), "pristine");
	tmp_path(t->bad, sizeof(t->bad), "tampered");
	make_log(t->path, 100);
	split(&t->l, t->path);
	*state = t;
	return 0;
}

static int tamper_teardown(void **state)
{
	struct tamper *t = *state;

	free(t->l.text);
	unlink(t->path);
	unlink(t->bad);
	free(t);
	return 0;
}

/* The pristine lines in order (index list, -1 ends) must fail at where. */
static void expect_order_found(const struct tamper *t, const int *order, const char *where)
{
	join(&t->l, order, t->bad);
	expect_bad(t->bad, where);
}

static void test_tamper_removed_line(void **state)
{
	struct tamper *t = *state;
	int order[MAX_LINES + 2], k = 0;

	/* Removed line 50: line 50 now holds seq 51. */
	for (int i = 0; i < 100; i++)
		if (i != 49)
			order[k++] = i;
	order[k] = -1;
	expect_order_found(t, order, "line 50: ");
	/* Removed first line. */
	for (int i = 1; i <= 100; i++)
		order[i - 1] = i < 100 ? i : -1;
	expect_order_found(t, order, "line 1: ");
}

static void test_tamper_inserted_line(void **state)
{
	struct tamper *t = *state;
	int order[MAX_LINES + 2], k = 0;

	/* Line 30 twice. */
	for (int i = 0; i < 100; i++) {
		order[k++] = i;
		if (i == 29)
			order[k++] = i;
	}
	order[k] = -1;
	expect_order_found(t, order, "line 31: ");
}

static void test_tamper_reordered_lines(void **state)
{
	struct tamper *t = *state;
	int order[MAX_LINES + 2];

	/* Lines 10 and 11 swapped. */
	for (int i = 0; i < 100; i++)
		order[i] = i;
	order[9] = 10;
	order[10] = 9;
	order[100] = -1;
	expect_order_found(t, order, "line 10: ");
}

static void test_tamper_edited_byte(void **state)
{
	/* One byte changed at off from the first match of find, and the first line it fails. */
	static const struct {
		const char *find;
		int off;
		char to;
		const char *where;
	} edits[] = {
		/* A field of line 51 (uid 1051 -> 1052): line 52's prev no longer matches. */
		{ " uid=1051 ", 8, '2', "line 52: " },
		{ "name=fw-77.bin", 5, 'F', "line 78: " },
		{ "digest=sha256:4242", 14, '5', "line 67: " },
		/* Wrong seq in line 20. */
		{ "\n20 ", 2, '1', "line 20: " },
		/* The last digit of the first line's prev. */
		{ "\n", -1, '1', "line 1: " },
	};
	struct tamper *t = *state;

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		size_t len;
		char *text = slurp(t->path, &len);
		char *p = strstr(text, edits[i].find);

		assert_non_null(p);
		p[edits[i].off] = edits[i].to;
		spit(t->bad, text, len);
		expect_bad(t->bad, edits[i].where);
		free(text);
	}
}

static void test_tamper_truncated_last_line(void **state)
{
	struct tamper *t = *state;
	size_t len;
	char *text = slurp(t->path, &len);

	/* No newline, or cut in the middle. */
	spit(t->bad, text, len - 1);
	expect_bad(t->bad, "line 100: ");
	spit(t->bad, text, len - 30);
	expect_bad(t->bad, "line 100: ");
	free(text);
}

static void test_tamper_appended_garbage(void **state)
{
	struct tamper *t = *state;
	size_t len;
	char *text = slurp(t->path, &len);
	FILE *f;

	/* Garbage as a line of its own. */
	spit(t->bad, text, len);
	f = fopen(t->bad, "ab");
	assert_non_null(f);
	fputs("hello world\n", f);
	fclose(f);
	expect_bad(t->bad, "line 101: ");
	free(text);
}

/* A forged line with a correct seq and prev is still out of step with the next one. */
static void test_tamper_forged_line(void **state)
{
	struct tamper *t = *state;
	FILE *f = fopen(t->bad, "wb");
	uint8_t h[32];

	assert_non_null(f);
	for (int i = 0; i < 30; i++)
		fwrite(t->l.start[i], 1, t->l.len[i], f);
	EVP_Digest(t->l.start[29], t->l.len[29], h, NULL, EVP_sha256(), NULL);
	fprintf(f, "31 1700000000 keydel key=release uid=0 digest=- name=- prev=");
	for (int j = 0; j < 32; j++)
		fprintf(f, "%02x", h[j]);
	fprintf(f, "\n");
	for (int i = 30; i < 100; i++)
		fwrite(t->l.start[i], 1, t->l.len[i], f);
	fclose(f);
	expect_bad(t->bad, "line 32: ");
}

static void test_malformed_lines(void **state)
{
	static const char *const cases[] = {
		"\n",
		"1 1700000000 sign key=k uid=0 digest=- name=- prev=00\n",
		"1 1700000000 sign key=k uid=0 digest=- name=-\n",
		"1 1700000000 sign key=k uid=0 digest=- name=- extra prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"x 1700000000 sign key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"01 1700000000 sign key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"1 later sign key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"1 1700000000 sign kex=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"1 1700000000 sign key=k uid=0 digest=- name=- prev="
		"000000000000000000000000000000000000000000000000000000000000000G\n",
		"1 1700000000 sign key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\r\n",
		/* Found by fuzz_audit's chain check: once read as 2^64-1, then continued with 0. */
		"99999999999999999999 1700000000 sign key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n",
	};
	char path[512], err[SIGFS_ERRLEN];
	struct sigfs_audit *a;

	(void)state;
	tmp_path(path, sizeof(path), "malformed");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spit(path, cases[i], strlen(cases[i]));
		expect_bad(path, "line 1: ");
		/* Nor does the daemon continue a chain it cannot read. */
		assert_int_equal(audit_open(path, &a, err), -EBADMSG);
	}
	/* The well-formed version of the same line is fine. */
	{
		static const char good[] = "1 1700000000 sign key=k uid=0 digest=- name=- prev="
			"0000000000000000000000000000000000000000000000000000000000000000\n";

		spit(path, good, strlen(good));
	}
	assert_int_equal(sigfs_audit_verify(path, NULL, err), 0);
	unlink(path);
}

/* A log begun by a version without owner= goes on with lines that have it. */
static void test_old_lines_continue(void **state)
{
	static const char old[] = "1 1700000000 keygen key=k uid=0 digest=- name=- prev="
		"0000000000000000000000000000000000000000000000000000000000000000\n";
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a = NULL;
	struct lines l;
	size_t n = 0;

	(void)state;
	tmp_path(path, sizeof(path), "old");
	spit(path, old, strlen(old));
	assert_int_equal(audit_open(path, &a, err), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "k", 1001, 1000, NULL, NULL, 0, "f"), 0);
	sigfs_audit_close(a);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 2);
	split(&l, path);
	assert_non_null(strstr(l.start[1], "2 "));
	assert_non_null(strstr(l.start[1], " sign key=k uid=1001 owner=1000 digest=- name=f prev="));
	free(l.text);
	/* owner= in the place of another field is refused. */
	{
		static const char swapped[] = "1 1700000000 sign key=k owner=0 uid=0 digest=- "
			"name=- prev=0000000000000000000000000000000000000000000000000000000000000000\n";

		spit(path, swapped, strlen(swapped));
	}
	expect_bad(path, "line 1: ");
	unlink(path);
}

/*
 * Found by fuzz_audit's chain check: after line 2^64-1 the daemon wrote a
 * line numbered 0, which broke the log for the next start. Now the log is
 * full there, and says so.
 */
static void test_last_line_number(void **state)
{
	static const char next_to_last[] = "18446744073709551614 1700000000 sign key=k uid=0 "
		"digest=- name=- prev=0000000000000000000000000000000000000000000000000000000000000000\n";
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a = NULL;
	struct lines l;

	(void)state;
	tmp_path(path, sizeof(path), "full");
	spit(path, next_to_last, strlen(next_to_last));
	assert_int_equal(audit_open(path, &a, err), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "k", 0, 0, NULL, NULL, 0, "f"), 0);
	sigfs_audit_close(a);
	split(&l, path);
	assert_int_equal(strncmp(l.start[1], "18446744073709551615 ", 21), 0);
	free(l.text);
	assert_int_equal(audit_open(path, &a, err), -EBADMSG);
	assert_non_null(strstr(err, "the log is full"));
	unlink(path);
}

static void test_open_refuses_partial_last_line(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a = NULL;
	size_t len;
	char *text;

	(void)state;
	tmp_path(path, sizeof(path), "partial");
	make_log(path, 10);
	text = slurp(path, &len);
	spit(path, text, len - 5);
	assert_int_equal(audit_open(path, &a, err), -EBADMSG);
	assert_non_null(strstr(err, "incomplete"));
	free(text);
	unlink(path);
}

static void test_names_stay_on_one_line(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a;
	struct lines l;
	size_t n = 0;

	(void)state;
	tmp_path(path, sizeof(path), "escape");
	assert_int_equal(audit_open(path, &a, err), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "release", 1000, 1000, NULL, NULL, 0,
					    "evil\n2 0 keydel key=release uid=0 digest=- name=- prev=00"), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "my key", 1000, 1001, NULL, NULL, 0,
					    "a b\\c"), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "-", (uid_t)-1, (uid_t)-1, NULL, NULL, 0, "-"), 0);
	assert_int_equal(sigfs_audit_append(a, "sign", "", 5, 6, "sha3-512", (const uint8_t *)"\xff", 1,
					    "\xc3\xa9t\xc3\xa9.bin"), 0);
	sigfs_audit_close(a);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 4);
	split(&l, path);
	assert_int_equal(l.n, 4);
	assert_non_null(strstr(l.start[0], " name=evil\\x0a2\\x200\\x20keydel\\x20key=release"));
	assert_non_null(strstr(l.start[1], " key=my\\x20key uid=1000 owner=1001 "));
	assert_non_null(strstr(l.start[1], " name=a\\x20b\\x5cc prev="));
	assert_non_null(strstr(l.start[2], " key=\\x2d uid=- owner=- digest=- name=\\x2d prev="));
	assert_non_null(strstr(l.start[3],
			       " key=- uid=5 owner=6 digest=sha3-512:ff name=\\xc3\\xa9t\\xc3\\xa9.bin "));
	free(l.text);
	unlink(path);
}

struct writer {
	struct sigfs_audit *a;
	int id;
};

static void *writer(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < 50; i++) {
		char name[32];

		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		if (sigfs_audit_append(w->a, "sign", "k", (uid_t)w->id, (uid_t)w->id, NULL, NULL, 0, name) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_appends(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct writer w[4];
	pthread_t t[4];
	size_t n = 0;
	void *ret;

	(void)state;
	tmp_path(path, sizeof(path), "threads");
	assert_int_equal(audit_open(path, &w[0].a, err), 0);
	for (int i = 0; i < 4; i++) {
		w[i].a = w[0].a;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, writer, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	sigfs_audit_close(w[0].a);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 200);
	unlink(path);
}

static void test_one_writer_per_log(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a, *b = NULL;

	(void)state;
	tmp_path(path, sizeof(path), "lock");
	assert_int_equal(audit_open(path, &a, err), 0);
	assert_int_equal(audit_open(path, &b, err), -EBUSY);
	assert_null(b);
	assert_non_null(strstr(err, "in use"));
	sigfs_audit_close(a);
	assert_int_equal(audit_open(path, &b, err), 0);
	sigfs_audit_close(b);
	unlink(path);
}

static void test_verify_errors(void **state)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	size_t n = 99;

	(void)state;
	tmp_path(path, sizeof(path), "missing");
	assert_int_equal(sigfs_audit_verify(path, &n, err), -ENOENT);
	assert_non_null(strstr(err, path));
	spit(path, "", 0);
	assert_int_equal(sigfs_audit_verify(path, &n, err), 0);
	assert_int_equal(n, 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_verify),
		cmocka_unit_test(test_reopen_continues_chain),
		cmocka_unit_test_setup_teardown(test_tamper_removed_line, tamper_setup, tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_inserted_line, tamper_setup, tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_reordered_lines, tamper_setup,
						tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_edited_byte, tamper_setup, tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_truncated_last_line, tamper_setup,
						tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_appended_garbage, tamper_setup,
						tamper_teardown),
		cmocka_unit_test_setup_teardown(test_tamper_forged_line, tamper_setup, tamper_teardown),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_old_lines_continue),
		cmocka_unit_test(test_last_line_number),
		cmocka_unit_test(test_open_refuses_partial_last_line),
		cmocka_unit_test(test_names_stay_on_one_line),
		cmocka_unit_test(test_concurrent_appends),
		cmocka_unit_test(test_one_writer_per_log),
		cmocka_unit_test(test_verify_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
