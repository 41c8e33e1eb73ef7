/*
 * wait.h: `sigfs wait [--timeout S] [-v] FILE...`, for build scripts that
 * cannot learn from close() whether a file was signed (NFS, wait_on_close =
 * no, a rename into an inbox): it polls until every FILE has its output.
 */
#ifndef SIGFS_CLIENT_WAIT_H
#define SIGFS_CLIENT_WAIT_H

#include <stdio.h>

/* Exit statuses of `sigfs wait` (docs/user-guide.md). */
#define SIGFS_WAIT_SIGNED 0     /* every FILE has its signature */
#define SIGFS_WAIT_FAILED 1     /* some FILE got NAME.err, or cannot be read */
#define SIGFS_WAIT_USAGE 2      /* a usage error */
#define SIGFS_WAIT_TIMEOUT 3    /* none failed, but some had no output in time */

void sigfs_wait_usage(FILE *to);
/* argv[0] is "wait". Returns the exit status. */
int sigfs_wait_cmd(int argc, char **argv);

#endif
