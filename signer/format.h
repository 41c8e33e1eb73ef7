/*
 * format.h: output formats. Each format is one row: it gets what was hashed
 * (a digest, or for pure signatures the whole message) and a "sign these
 * bytes" callback, and encodes the output. A format never knows which backend
 * answered the callback.
 */
#ifndef SIGFS_FORMAT_H
#define SIGFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backends/backend.h"
#include "common/sbuf.h"
#include "signer/alg.h"

/* Ask the key's backend to sign; see backend.h for the input and output bytes. */
typedef int (*sigfs_sign_fn)(void *ctx, const struct sigfs_sign_input *in,
			     uint8_t *sig, size_t *siglen, char *err);

struct sigfs_format_input {
	const struct sigfs_alg *alg;
	enum sigfs_padding padding;
	const struct sigfs_digest *digest;   /* digest of the artifact */
	const uint8_t *digest_value;         /* digest->len bytes */
	/* The artifact itself (mapped), when the format needs the message; else NULL. */
	const uint8_t *message;
	size_t message_len;
	const char *name;                    /* artifact name, for formats that embed it */
	time_t now;
};

struct sigfs_format {
	const char *name;                    /* "raw" */
	const char *suffix;                  /* ".sig" */
	/* Can this format sign with alg and digest? 0, or -EINVAL with a reason in err. */
	int (*check)(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err);
	/* Does this format need the whole message (not just a digest) for alg? */
	bool (*needs_message)(const struct sigfs_alg *alg);
	/* Encode the output into out. */
	int (*produce)(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err);
};

const struct sigfs_format *sigfs_format_by_name(const char *name);
const struct sigfs_format *sigfs_format_at(size_t i);
/* The longest output suffix of all formats and ".err" (for name length limits). */
size_t sigfs_format_max_suffix(void);

#endif
