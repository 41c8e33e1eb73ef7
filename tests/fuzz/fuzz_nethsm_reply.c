/*
 * fuzz_nethsm_reply.c: libFuzzer target for the parsers of what a NetHSM
 * answers (backends/nethsm_reply.c): the sign reply, the key list, an error's
 * message and a public key in PEM. A NetHSM, or whoever holds a certificate
 * it is trusted with, may send any bytes as any of these, so every input goes
 * to each of the four (to the PEM reader when it holds a PEM header), from a
 * buffer of exactly its size.
 *
 * Besides ASan, UBSan and LeakSanitizer findings, it aborts when a parser
 * breaks its contract (backends/nethsm_reply.h): a signature that decodes to
 * other bytes than its base64 says, -ENOSPC not reporting the length needed,
 * an empty key id, a message that is not one line within its buffer, or a
 * result and an output that disagree. Built by tests/fuzz/run.sh.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "backends/backend.h"
#include "backends/nethsm_reply.h"
#include "common/alg.h"
#include "common/sbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The value of base64 character c, or -1. */
static int b64_value(char c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alphabet, c) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/*
 * A second decoder, written plainly, to hold the parser's result against:
 * the "signature" of the reply, decoded into out; its length, or -1 when it
 * is not padded base64 of the RFC 4648 alphabet.
 */
static long reference_signature(const uint8_t *data, size_t size, uint8_t *out, size_t room)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	json_t *v = json_object_get(j, "signature");
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0, pad = 0, o = 0;
	uint32_t acc = 0;
	long len = -1;

	if (!s || n == 0 || n % 4)
		goto out;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n; i++) {
		int x = i < n - pad ? b64_value(s[i]) : 0;

		if (x < 0)
			goto out;
		acc = acc << 6 | (uint32_t)x;
		if (i % 4 == 3) {
			for (int k = 2; k >= 0; k--) {
				if (o < n / 4 * 3 - pad && o < room)
					out[o] = (uint8_t)(acc >> (8 * k));
				o++;
			}
			acc = 0;
		}
	}
	len = (long)(n / 4 * 3 - pad);
out:
	json_decref(j);
	return len;
}

static void check_signature(const uint8_t *data, size_t size, const struct sbuf *rep)
{
	uint8_t sig[SIGFS_MAX_SIG], ref[SIGFS_MAX_SIG];
	long reflen = reference_signature(data, size, ref, sizeof(ref));
	size_t n = sizeof(sig), small;
	int r = nethsm_reply_signature(rep, sig, &n);

	if (r == -ENOSPC) {
		if (reflen != (long)n || n <= sizeof(sig))
			abort();
		return;
	}
	if (r < 0) {
		if (r != -EBADMSG || reflen >= 0)
			abort();
		return;
	}
	if (r != 0 || reflen != (long)n || memcmp(sig, ref, n) != 0)
		abort();
	/* One byte less room than the signature needs. */
	if (n > 0) {
		small = n - 1;
		if (nethsm_reply_signature(rep, sig, &small) != -ENOSPC || small != n)
			abort();
	}
}

static void check_key_ids(const struct sbuf *rep)
{
	char **ids = NULL;
	size_t n = 0;
	int r = nethsm_reply_key_ids(rep, &ids, &n);

	if (r < 0) {
		if ((r != -EBADMSG && r != -ENOMEM) || ids || n)
			abort();
		return;
	}
	if (!ids)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!ids[i] || !ids[i][0])
			abort();
	sigfs_backend_list_free(ids, n);
}

static void check_message(const struct sbuf *rep)
{
	static const size_t sizes[] = { 1, 8, 256 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char msg[256 + 1];
		size_t len;

		memset(msg, 'x', sizeof(msg));
		nethsm_reply_message(rep, msg, sizes[k]);
		len = strnlen(msg, sizes[k]);
		if (len == sizes[k] || msg[sizes[k]] != 'x')
			abort();
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
				abort();
	}
}

static void check_public_pem(const struct sbuf *rep)
{
	EVP_PKEY *pk = (EVP_PKEY *)rep;     /* must be overwritten, even on failure */
	int r = nethsm_reply_public_pem(rep, &pk);

	if ((r == 0) != (pk != NULL) || (r < 0 && r != -EBADMSG && r != -ENOMEM))
		abort();
	EVP_PKEY_free(pk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbuf rep;

	sbuf_view(&rep, data, size);
	check_signature(data, size, &rep);
	check_key_ids(&rep);
	check_message(&rep);
	/*
	 * OpenSSL 3.0 sets up its decoders (a millisecond under ASan) before it
	 * looks for a PEM header; without one all there is to run is that.
	 */
	if (memmem(data, size, "-----BEGIN ", 11))
		check_public_pem(&rep);
	return 0;
}
