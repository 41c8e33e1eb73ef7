/*
 * Error convention shared by every layer.
 *
 * Functions return 0 on success or a negative errno-style code. Those that can
 * fail for a reason a user must read also take `char *err` (SIGFS_ERRLEN bytes,
 * may be NULL): one line, saying what failed and what to do. That line is what
 * ends up in a NAME.err file or a log line.
 */
#ifndef SIGFS_ERR_H
#define SIGFS_ERR_H

#include <stddef.h>

#define SIGFS_ERRLEN 256

/* Write a formatted one-line message into err (if not NULL); return code. */
int sigfs_seterr(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
