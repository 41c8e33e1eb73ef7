/*
 * nethsm_reply.c: the reply parsers of nethsm_reply.h. JSON goes through
 * jansson with the reply's length (never as a C string); base64 is checked
 * strictly before OpenSSL decodes it, because EVP_DecodeBlock skips
 * whitespace and takes '=' anywhere for a zero.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "backends/backend.h"
#include "backends/nethsm_reply.h"

static json_t *load(const struct sbuf *rep)
{
	size_t n = sbuf_avail(rep);

	return n ? json_loadb((const char *)sbuf_ptr(rep), n, 0, NULL) : NULL;
}

/* Length of the data base64 text s[0..n) holds (RFC 4648 alphabet, padded), or -1. */
static long b64_decoded_len(const char *s, size_t n)
{
	struct sbuf b;
	size_t digits;

	if (n == 0 || n % 4)
		return -1;
	sbuf_view(&b, s, n);
	digits = sbuf_span(&b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	sbuf_get(&b, NULL, digits);
	/* At most two '=' of padding, and only at the end. */
	if (!sbuf_eq(&b, "") && !sbuf_eq(&b, "=") && !sbuf_eq(&b, "=="))
		return -1;
	return (long)(n / 4 * 3 - (n - digits));
}

int nethsm_reply_signature(const struct sbuf *rep, uint8_t *sig, size_t *siglen)
{
	json_t *j = load(rep), *v = json_object_get(j, "signature");
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	long len = s ? b64_decoded_len(s, n) : -1;
	uint8_t last[3];
	int r = -EBADMSG;

	if (len < 0 || n > INT_MAX)
		goto out;
	if ((size_t)len > *siglen) {
		*siglen = (size_t)len;
		r = -ENOSPC;
		goto out;
	}
	/* All quads but the last decode into sig; the last may be padded. */
	if (EVP_DecodeBlock(sig, (const unsigned char *)s, (int)n - 4) != (int)(n / 4 - 1) * 3 ||
	    EVP_DecodeBlock(last, (const unsigned char *)s + n - 4, 4) != 3)
		goto out;
	memcpy(sig + (n / 4 - 1) * 3, last, (size_t)len - (n / 4 - 1) * 3);
	*siglen = (size_t)len;
	r = 0;
out:
	json_decref(j);
	return r;
}

int nethsm_reply_key_ids(const struct sbuf *rep, char ***ids, size_t *n)
{
	json_t *j = load(rep);
	size_t count = json_array_size(j);
	char **v;
	int r = 0;

	if (!json_is_array(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	v = calloc(count ? count : 1, sizeof(*v));
	if (!v) {
		json_decref(j);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count && r == 0; i++) {
		const char *id = json_string_value(json_object_get(json_array_get(j, i), "id"));

		if (!id || !id[0])
			r = -EBADMSG;
		else if (!(v[i] = strdup(id)))
			r = -ENOMEM;
	}
	json_decref(j);
	if (r < 0) {
		sigfs_backend_list_free(v, count);
		return r;
	}
	*ids = v;
	*n = count;
	return 0;
}

void nethsm_reply_message(const struct sbuf *rep, char *msg, size_t size)
{
	json_t *j = load(rep);
	const char *m = json_string_value(json_object_get(j, "message"));

	snprintf(msg, size, "%s", m ? m : "");
	for (char *s = msg; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
	json_decref(j);
}

int nethsm_reply_public_pem(const struct sbuf *rep, EVP_PKEY **out)
{
	size_t n = sbuf_avail(rep);
	BIO *bio;

	*out = NULL;
	if (n == 0 || n > INT_MAX)
		return -EBADMSG;
	bio = BIO_new_mem_buf(sbuf_ptr(rep), (int)n);
	if (!bio)
		return -ENOMEM;
	*out = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return *out ? 0 : -EBADMSG;
}
