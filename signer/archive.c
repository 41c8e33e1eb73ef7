/*
 * archive.c: libarchive over a format's input (archive.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/archive.h"

#define READ_CHUNK 65536

struct reader {
	const struct sigfs_format_input *in;
	uint64_t off;                       /* the next byte libarchive gets */
	uint8_t buf[READ_CHUNK];
};

static la_ssize_t reader_read(struct archive *a, void *arg, const void **p)
{
	struct reader *rd = arg;
	uint64_t left = rd->in->message_len - rd->off;
	size_t n = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
	int r = sigfs_format_read(rd->in, rd->buf, n, rd->off);

	if (r < 0) {
		archive_set_error(a, -r, "cannot read the artifact: %s", strerror(-r));
		return -1;
	}
	rd->off += n;
	*p = rd->buf;
	return (la_ssize_t)n;
}

/* Skip n bytes (a member's contents): nothing is read. */
static la_int64_t reader_skip(struct archive *a, void *arg, la_int64_t n)
{
	struct reader *rd = arg;
	uint64_t left = rd->in->message_len - rd->off;

	(void)a;
	if (n < 0)
		return 0;
	if ((uint64_t)n > left)
		n = (la_int64_t)left;
	rd->off += (uint64_t)n;
	return n;
}

const char *sigfs_archive_error(struct archive *a)
{
	const char *s = a ? archive_error_string(a) : NULL;

	return s ? s : "unreadable";
}

struct sigfs_archive {
	struct archive *a;
	struct reader rd;
};

struct archive *sigfs_archive_of(struct sigfs_archive *sa)
{
	return sa->a;
}

void sigfs_archive_close(struct sigfs_archive *sa)
{
	if (!sa)
		return;
	if (sa->a)
		archive_read_free(sa->a);
	free(sa);
}

int sigfs_archive_open(const struct sigfs_format_input *in, int (*support)(struct archive *),
		       struct sigfs_archive **out, char *err)
{
	struct sigfs_archive *sa = calloc(1, sizeof(*sa));
	struct archive *a;
	int r = 0;

	*out = NULL;
	if (!sa || !(sa->a = archive_read_new())) {
		free(sa);
		return sigfs_seterr(err, -ENOMEM, "out of memory");
	}
	a = sa->a;
	sa->rd.in = in;
	if (support(a) != ARCHIVE_OK || archive_read_set_read_callback(a, reader_read) != ARCHIVE_OK ||
	    archive_read_set_skip_callback(a, reader_skip) != ARCHIVE_OK ||
	    archive_read_set_callback_data(a, &sa->rd) != ARCHIVE_OK)
		r = sigfs_seterr(err, -ENOMEM, "cannot set up libarchive");
	else if (archive_read_open1(a) != ARCHIVE_OK)
		r = sigfs_seterr(err, -EBADMSG, "%s", sigfs_archive_error(a));
	if (r < 0) {
		sigfs_archive_close(sa);
		return r;
	}
	*out = sa;
	return 0;
}
