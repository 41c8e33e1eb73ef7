/*
 * request.h: signing requests, the JSON a client writes as NAME.sigreq.
 * Signstar's v1 format (docs/requests.md) unchanged, and
 * our own request types in the same envelope (docs/requests.md). Requests come
 * from any user who may write into an inbox: the parser reads them through
 * bounded buffers and rejects anything its "required" part does not define.
 */
#ifndef SIGFS_REQUEST_H
#define SIGFS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/alg.h"
#include "signer/format.h"
#include "signer/hasher.h"

#define SIGFS_REQUEST_MAX (64 * 1024)   /* larger .sigreq files are refused */

struct sigfs_request {
	/* What is signed, one of: */
	struct sigfs_hasher *state;             /* a hash state of the artifact (Signstar: SHA-512) */
	const struct sigfs_digest *digest;      /* or a finished digest ... */
	uint8_t digest_value[SIGFS_MAX_DIGEST]; /* ... with its value */
	const struct sigfs_format *format;      /* output format asked for; NULL: the key's */
	char file_name[256];                    /* "file-name" from "optional", or "" */
};

/*
 * Parse len bytes of JSON. 0, or a negative errno (-EINVAL malformed,
 * -EPROTONOSUPPORT unknown major version or request type) with a one-line
 * reason in err. On success release with sigfs_request_free().
 */
int sigfs_request_parse(const uint8_t *json, size_t len, struct sigfs_request *out, char *err);
void sigfs_request_free(struct sigfs_request *r);

#endif
