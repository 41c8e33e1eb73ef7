/*
 * format_swu.h: whole SWUpdate images (signer/format_swu.c). The swupdate
 * format's for_input, and the cpio header it adds (for the unit tests).
 */
#ifndef SIGFS_FORMAT_SWU_H
#define SIGFS_FORMAT_SWU_H

#include <stddef.h>
#include <stdint.h>

#include "signer/format.h"

/* The format of a swupdate key's input name: the whole-image one for NAME.swu, else NULL. */
const struct sigfs_format *sigfs_swu_for_input(const char *name);

#define SIGFS_SWU_HDR_MAX 160

/*
 * The cpio header and name of member sw-description.sig holding the len
 * bytes at data, in the format of magic ("070701" newc, "070702" crc: its
 * check field is the bytes' sum), mode 0100644, nlink 1, inode 0; padded
 * with NULs to a multiple of 4 (*hlen bytes in all).
 */
void sigfs_swu_header(const char magic[7], uint32_t uid, uint32_t gid, uint32_t mtime,
		      const uint8_t *data, size_t len, char hdr[SIGFS_SWU_HDR_MAX], size_t *hlen);

#endif
