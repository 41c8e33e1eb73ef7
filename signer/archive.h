/*
 * archive.h: libarchive over a format's input (signer/format.h): the
 * artifact in memory or in its file (the inbox's, decision 79), read in 64 KiB
 * pieces; skipping a member's contents reads nothing. The formats that
 * sign archives (mender: tar; swupdate's .swu images: cpio) read with it.
 */
#ifndef SIGFS_ARCHIVE_H
#define SIGFS_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "signer/format.h"

struct sigfs_archive;

/*
 * A reader of in's message with the archive format(s) support() enables
 * (archive_read_support_format_tar ...): no compression filters. 0, or a
 * negative errno with a line in err (-EBADMSG: libarchive's reason).
 * Close it with sigfs_archive_close.
 */
int sigfs_archive_open(const struct sigfs_format_input *in, int (*support)(struct archive *),
		       struct sigfs_archive **out, char *err);
/* The libarchive handle of an open reader. */
struct archive *sigfs_archive_of(struct sigfs_archive *sa);
void sigfs_archive_close(struct sigfs_archive *sa);

/* libarchive's last error on a, or "unreadable". */
const char *sigfs_archive_error(struct archive *a);

#endif
