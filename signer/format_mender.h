/*
 * format_mender.h: the mender format's one piece the unit tests reach
 * (tests/unit/test_mender.c): the tar header it adds.
 */
#ifndef SIGFS_FORMAT_MENDER_H
#define SIGFS_FORMAT_MENDER_H

#include <stdint.h>

/*
 * The 512-byte ustar header of a member name of size bytes, mode 0644,
 * owner 0:0, mtime 0, in the layout of Go's archive/tar (numbers as
 * zero-padded octal ending in NUL), which mender-artifact writes.
 */
void sigfs_mender_header(const char *name, uint64_t size, uint8_t h[512]);

#endif
