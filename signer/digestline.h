/*
 * Digest lines: the content of a file NAME.<digest> written into an inbox,
 * one line as printed by sha256sum and friends:  <hex> [ [*]NAME]
 */
#ifndef SIGFS_DIGESTLINE_H
#define SIGFS_DIGESTLINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/alg.h"

enum sigfs_dl_result {
	SIGFS_DL_OK = 0,        /* a valid digest line: value holds the digest */
	SIGFS_DL_NOT_A_LINE,    /* not meant as a digest line: sign the file as a file */
	SIGFS_DL_BAD,           /* meant as a digest line but malformed: reason in err */
};

/*
 * If name ends in ".<digest>" for a digest of the table, return that row and
 * set *base_len to the length of the name without the suffix; else NULL.
 * A name that is only the suffix (".sha256") has no base and gives NULL.
 */
const struct sigfs_digest *sigfs_dl_suffix(const char *name, size_t *base_len);

/*
 * Parse the content (len bytes) of a digest file for digest d whose artifact
 * name is base (NUL-terminated). Rules (docs/inbox.md):
 *  - empty content: BAD;
 *  - more than one line, a NUL byte, or content over 4096 bytes: NOT_A_LINE;
 *  - a single line (optionally ending in "\n" or "\r\n") whose first
 *    space-separated token is all hex digits, or has exactly 2*d->len
 *    characters, is meant as a digest line: it must be 2*d->len hex digits,
 *    optionally followed by " " then " " or "*" then a name whose last path
 *    component equals base; anything else in it is BAD;
 *  - any other single line: NOT_A_LINE.
 * On OK, value receives d->len bytes.
 */
enum sigfs_dl_result sigfs_dl_parse(const struct sigfs_digest *d, const char *base,
				    const uint8_t *content, size_t len,
				    uint8_t value[SIGFS_MAX_DIGEST], char *err);

#endif
