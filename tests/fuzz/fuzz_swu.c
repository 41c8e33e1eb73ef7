/*
 * fuzz_swu.c: libFuzzer target for a swupdate key's whole-image path
 * (signer/format_swu.c: libarchive over the cpio archive, the layout
 * checks): each input is a file NAME.swu copied into a swupdate key's inbox.
 * The key is an ECDSA P-256 key made at start with a self-signed
 * certificate; the signature comes from a stand-in callback (fixed bytes):
 * the backends are not what is fuzzed here.
 *
 * Besides ASan and UBSan findings, it aborts when the format breaks its
 * contract: a refusal comes with one printable line and no output; an
 * accepted image comes out as the input with one cpio member,
 * sw-description.sig, inserted at a 4-byte boundary after the first member
 * (the rest byte for byte); and the streamed path (the image in a file, as
 * the engine gives a large one) gives the same result as the one in memory.
 * Built by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "signer/format_swu.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *cert;
static int cert_len;
static EVP_PKEY *pub;

/* A P-256 key and its self-signed certificate, once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	(void)argc;
	(void)argv;
	if (!key || !x || !n ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 7) || !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, n) || !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_set_pubkey(x, key) ||
	    !X509_sign(x, key, EVP_sha256()) || (cert_len = i2d_X509(x, &cert)) <= 0)
		abort();
	pub = key;
	X509_NAME_free(n);
	X509_free(x);
	return 0;
}

static int fake_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	(void)ctx;
	(void)err;
	if (!in->digest || *siglen < 72)
		abort();
	memset(sig, 0x30, 72);
	*siglen = 72;
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
	const struct sigfs_format *f = sigfs_swu_for_input("fw.swu");
	const struct sigfs_format_key k = { .name = "fw", .alg = sigfs_alg_by_name("ecdsa-p256"),
					    .digest = sigfs_digest_by_name("sha256"), .pub = pub,
					    .cert = cert, .cert_len = (size_t)cert_len };
	struct sigfs_format_input in = { .key = &k, .message = data, .message_len = size,
					 .message_fd = -1, .name = "fw.swu", .now = 1750000000 };
	char err[SIGFS_ERRLEN] = "", err2[SIGFS_ERRLEN] = "";
	struct sbuf out, streamed;
	const struct sigfs_sink sink = { sink_sbuf, &streamed, NULL };
	int r, r2, fd;

	if (!f)
		abort();
	if (size == 0)
		return 0;
	sbuf_init(&out, size + 65536);
	r = sigfs_format_produce(f, &in, fake_sign, NULL, &out, err);
	if (r < 0) {
		check_err(r, err, &out);
	} else {
		/*
		 * The input up to a 4-byte boundary p, the new member there (magic,
		 * fields, its name 110 bytes in), then the rest of the input. The
		 * first difference lies inside the new header: p is at most 130
		 * bytes before it.
		 */
		size_t diff = 0, added = out.len - size, p;
		bool found = false;

		if (out.len <= size || added % 4)
			abort();
		while (diff < size && out.d[diff] == data[diff])
			diff++;
		for (p = diff & ~(size_t)3; !found; p -= 4) {
			found = p + 129 <= out.len && memcmp(out.d + p, "07070", 5) == 0 &&
				memcmp(out.d + p + 110, "sw-description.sig", 19) == 0 &&
				memcmp(out.d + p + added, data + p, size - p) == 0;
			if (found || p < 4 || diff - p > 130)
				break;
		}
		if (!found || p == 0 || memcmp(out.d, data, p) != 0)
			abort();
	}

	/* The same image from a file: the same result. */
	fd = memfd_create("fuzz-swu", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	in.message = NULL;
	in.message_file = true;
	in.message_fd = fd;
	sbuf_init(&streamed, size + 65536);
	r2 = f->produce_stream(&in, fake_sign, NULL, &sink, err2);
	if (r2 != r || (r == 0 && (streamed.len != out.len || memcmp(streamed.d, out.d, out.len))) ||
	    (r < 0 && strcmp(err, err2) != 0))
		abort();
	close(fd);
	sbuf_free(&streamed);
	sbuf_free(&out);
	return 0;
}
