/*
 * fuzz_journal.c: libFuzzer target for the crash journal's recovery
 * (signer/journal.c): each input is a journal as a crash may have left it,
 * opened with sigfs_journal_open(), which replays it, hands back the pending
 * entries and rewrites the file with only those.
 *
 * Each input is read at the start that creates journal.key (the one after an
 * upgrade from a version without MACs): journal.key is removed before each
 * input, so records without a MAC are read as they are and every field
 * parser is reached. The rewrite then carries MACs, and the second open,
 * with the key now there, must accept all of them.
 *
 * Besides ASan, UBSan and LeakSanitizer findings, it aborts when recovery
 * breaks journal.h's contract: pending entries out of id order or repeated,
 * an op other than W or A, a key or name that is not a string within its
 * field, a next id that is 0 or not past every pending one, or a rewritten
 * file that does not open again to exactly the same pending entries.
 *
 * The journal lives in a directory of its own under TMPDIR, else /dev/shm,
 * else /tmp: the rewrite fsyncs, which on a tmpfs costs nothing. Built by
 * tests/fuzz/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "signer/journal.h"

static char dir[PATH_MAX], path[PATH_MAX + 16], tmp_path[PATH_MAX + 32], key_path[PATH_MAX + 32];
static int dirfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void cleanup(void)
{
	unlink(path);
	unlink(tmp_path);
	unlink(key_path);
	if (dirfd >= 0)
		close(dirfd);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;

	(void)argc;
	(void)argv;
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz-journal.XXXXXX", tmp);
	if (!mkdtemp(dir))
		die("fuzz_journal: mkdtemp");
	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(tmp_path, sizeof(tmp_path), "%s.new", path);
	snprintf(key_path, sizeof(key_path), "%s.key", path);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		die("fuzz_journal: opening its directory");
	atexit(cleanup);
	/* "skipped N unreadable records" is expected of most inputs. */
	sigfs_log_init(false, SIGFS_LOG_ERR);
	return 0;
}

static struct sigfs_journal *open_journal(struct sigfs_journal_entry **v, size_t *n)
{
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_journal *j = NULL;

	/* Only I/O on our own directory can fail, never the content. */
	if (sigfs_journal_open(dirfd, "journal", false, &j, v, n, err) < 0) {
		fprintf(stderr, "fuzz_journal: %s\n", err);
		abort();
	}
	return j;
}

static void check_pending(struct sigfs_journal *j, const struct sigfs_journal_entry *v, size_t n)
{
	uint64_t next;

	for (size_t i = 0; i < n; i++) {
		if ((v[i].op != 'W' && v[i].op != 'A') || (i > 0 && v[i].id <= v[i - 1].id) ||
		    !memchr(v[i].key, '\0', sizeof(v[i].key)) ||
		    !memchr(v[i].name, '\0', sizeof(v[i].name)))
			abort();
	}
	next = sigfs_journal_next_id(j);
	if (next == 0 || (n > 0 && next <= v[n - 1].id))
		abort();
}

static bool same(const struct sigfs_journal_entry *a, const struct sigfs_journal_entry *b)
{
	return a->op == b->op && a->id == b->id && a->ino == b->ino && a->uid == b->uid &&
	       strcmp(a->key, b->key) == 0 && strcmp(a->name, b->name) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigfs_journal_entry *v, *w;
	struct sigfs_journal *j;
	size_t n, m;
	int fd;

	if (unlink(key_path) < 0 && errno != ENOENT)
		die("fuzz_journal: removing journal.key");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) < 0)
		die("fuzz_journal: writing the journal");

	j = open_journal(&v, &n);
	check_pending(j, v, n);
	sigfs_journal_close(j);
	if (access(tmp_path, F_OK) == 0)
		abort();

	/* The rewritten file opens to the same entries. */
	j = open_journal(&w, &m);
	if (m != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!same(&v[i], &w[i]))
			abort();
	sigfs_journal_close(j);
	free(v);
	free(w);
	return 0;
}
