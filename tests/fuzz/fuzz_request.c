/*
 * fuzz_request.c: libFuzzer target for sigfs_request_parse, the parser that
 * reads NAME.sigreq from anyone who may write into an inbox. Besides memory
 * errors (ASan) and undefined behaviour (UBSan), it aborts when the parser
 * breaks its contract: a refusal without a printable one-line reason, or an
 * accepted request that is not exactly one of state / digest with a format.
 * Built and run by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/request.h"
#include "signer/sha512.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigfs_request req;
	char err[SIGFS_ERRLEN] = "";
	uint8_t out[SIGFS_MAX_DIGEST], st[SIGFS_SHA512_STATE_LEN];

	if (sigfs_request_parse(data, size, &req, err) < 0) {
		if (!err[0] || req.state || req.format)
			abort();
		for (const char *p = err; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				abort();
		return 0;
	}
	if (!req.format || !req.state == !req.digest)
		abort();
	if (req.state) {
		/* Every accepted state can be finished and written back out. */
		if (sigfs_hasher_peek(req.state, out) < 0 || sigfs_sha512_state(req.state, st) < 0)
			abort();
	}
	if (memchr(req.file_name, '/', sizeof(req.file_name)))
		abort();
	sigfs_request_free(&req);
	return 0;
}
