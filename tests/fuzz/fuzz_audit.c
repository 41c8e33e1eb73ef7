/*
 * fuzz_audit.c: libFuzzer target for reading the audit log (signer/audit.c):
 * each input is a log file, checked with sigfs_audit_verify() (what
 * `sigfsd --verify-audit` runs) and opened with sigfs_audit_open(), which
 * reads the tail of an existing log to continue its hash chain.
 *
 * Besides ASan, UBSan and LeakSanitizer findings, it aborts when the two
 * disagree or the chain cannot go on: a log that verifies must open; one
 * that opens must take an appended line and open again (unless that line
 * is the last a log can have, number 2^64-1); one that verified
 * must verify after that line too, one line longer; the line count of a
 * verified log is its number of lines; every refusal comes with one line.
 *
 * The log lives in a directory of its own under TMPDIR, else /dev/shm, else
 * /tmp. Built by tests/fuzz/run.sh.
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
#include "signer/audit.h"

static char dir[PATH_MAX], path[PATH_MAX + 16];
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
	snprintf(dir, sizeof(dir), "%s/fuzz-audit.XXXXXX", tmp);
	if (!mkdtemp(dir))
		die("fuzz_audit: mkdtemp");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		abort();
	atexit(cleanup);
	sigfs_log_init(false, SIGFS_LOG_ERR);
	return 0;
}

static void check_err(const char *err)
{
	if (!err[0] || strpbrk(err, "\r\n"))
		abort();
}

/* Open the log, append one signature, close it. False if it did not open. */
static bool open_append(void)
{
	static const uint8_t digest[32] = { 0x6b, 0x86, 0xb2, 0x73 };
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_audit *a;

	if (sigfs_audit_open(dirfd, "audit.log", &a, err) < 0) {
		check_err(err);
		return false;
	}
	if (sigfs_audit_append(a, "sign", "fw", 1000, 1000, "sha256", digest, sizeof(digest),
			       "fw 1.2.bin") < 0)
		abort();
	sigfs_audit_close(a);
	return true;
}

/* The number of the log's last line, which open_append() wrote. */
static uint64_t last_number(void)
{
	char buf[4096], *nl;
	ssize_t n;
	size_t start;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);

	if (end < 0)
		die("fuzz_audit: reading the log");
	n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ?
		  end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0 || buf[n - 1] != '\n')
		abort();
	buf[n - 1] = '\0';
	/* memrchr, not strrchr: the lines before it may hold NUL bytes. */
	nl = memrchr(buf, '\n', (size_t)n - 1);
	start = nl ? (size_t)(nl - buf) + 1 : 0;
	return strtoull(buf + start, NULL, 10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SIGFS_ERRLEN] = "";
	size_t lines = 0, newlines = 0, again = 0;
	int verified, fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) < 0)
		die("fuzz_audit: writing the log");

	verified = sigfs_audit_verify(path, &lines, err);
	if (verified < 0) {
		check_err(err);
	} else {
		for (size_t i = 0; i < size; i++)
			newlines += data[i] == '\n';
		if (lines != newlines)
			abort();
	}

	if (!open_append()) {
		if (verified == 0)
			abort();
		return 0;
	}
	/* The line just written continues the chain: the log opens again (unless full)... */
	if (!open_append() && last_number() != UINT64_MAX)
		abort();
	/* ...and a log that verified still does, with both lines. */
	if (verified == 0 && (sigfs_audit_verify(path, &again, err) < 0 || again != lines + 2))
		abort();
	return 0;
}
