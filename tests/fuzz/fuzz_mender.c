/*
 * fuzz_mender.c: libFuzzer target for the mender format's reading of an
 * artifact (signer/format_mender.c: libarchive over the tar, the version
 * member's JSON, the layout checks): each input is a file copied into a
 * mender key's inbox. The signature comes from a stand-in callback (256
 * fixed bytes, as an RSA-2048 key gives): the backends are not what is
 * fuzzed here.
 *
 * Besides ASan and UBSan findings, it aborts when the format breaks its
 * contract: a refusal comes with one printable line and no output; an
 * accepted input gives exactly the input with one member, manifest.sig of
 * 344 bytes of base64, inserted at a block boundary (the rest byte for
 * byte); and the streamed path (the artifact in a file, as the engine
 * gives a large one) gives the same result as the one in memory. Built by
 * tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct sigfs_format sigfs_format_mender;

static int fake_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	(void)ctx;
	(void)err;
	if (!in->digest || in->len != 32 || *siglen < 256)
		abort();
	memset(sig, 0xa5, 256);
	*siglen = 256;
	return 0;
}

static int sink_sbuf(void *ctx, const void *p, size_t n)
{
	return sbuf_put(ctx, p, n);
}

static void check_err(int r, const char *err, const struct sbuf *out)
{
	bool bad = r >= 0 || !err[0] || out->len != 0;

	for (const char *p = err; *p; p++)
		bad = bad || (unsigned char)*p < 0x20;
	if (bad) {
		fprintf(stderr, "refusal %d, %zu bytes out: \"%s\"\n", r, out->len, err);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sigfs_format_key k = { .name = "fw", .alg = sigfs_alg_by_name("rsa-2048"),
					    .padding = SIGFS_PAD_PKCS1,
					    .digest = sigfs_digest_by_name("sha256") };
	struct sigfs_format_input in = { .key = &k, .message = data, .message_len = size,
					 .message_fd = -1, .name = "fw.mender" };
	char err[SIGFS_ERRLEN] = "", err2[SIGFS_ERRLEN] = "";
	struct sbuf out, streamed;
	const struct sigfs_sink sink = { sink_sbuf, &streamed, NULL };
	int r, r2, fd;

	if (size == 0)
		return 0;
	sbuf_init(&out, size + 4096);
	r = sigfs_format_produce(&sigfs_format_mender, &in, fake_sign, NULL, &out, err);
	if (r < 0) {
		check_err(r, err, &out);
	} else {
		/* Somewhere at a block boundary: a 512-byte header and 344 bytes padded to 512. */
		size_t at = 0;

		if (out.len != size + 1024)
			abort();
		while (at < size && memcmp(out.d + at, data + at, 512) == 0)
			at += 512;
		if (at % 512 || at >= size || memcmp(out.d + at, "manifest.sig", 13) != 0 ||
		    memcmp(out.d + at + 1024, data + at, size - at) != 0)
			abort();
		for (size_t i = 0; i < 344; i++)
			if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
				    out.d[at + 512 + i]))
				abort();
	}

	/* The same artifact from a file: the same result. */
	fd = memfd_create("fuzz-mender", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	in.message = NULL;
	in.message_file = true;
	in.message_fd = fd;
	sbuf_init(&streamed, size + 4096);
	r2 = sigfs_format_mender.produce_stream(&in, fake_sign, NULL, &sink, err2);
	if (r2 != r || (r == 0 && (streamed.len != out.len || memcmp(streamed.d, out.d, out.len))) ||
	    (r < 0 && strcmp(err, err2) != 0))
		abort();
	close(fd);
	sbuf_free(&streamed);
	sbuf_free(&out);
	return 0;
}
