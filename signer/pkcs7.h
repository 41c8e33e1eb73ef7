/*
 * pkcs7.h: a detached PKCS#7 / CMS SignedData (RFC 5652) over a digest the
 * engine made, signed by the key's backend: the "cms" format's NAME.p7s and
 * the signature a kernel module carries ("kmod").
 */
#ifndef SIGFS_PKCS7_H
#define SIGFS_PKCS7_H

#include <stdbool.h>

#include "signer/format.h"

struct sigfs_pkcs7_opts {
	/*
	 * Signed attributes contentType, signingTime (now) and messageDigest,
	 * the signature over their DER SET; without them (the kernel refuses
	 * module signatures that have any) the signature is over the digest.
	 */
	bool attrs;
	bool cert;        /* the signer's certificate in the SignedData */
	time_t now;
	const char *what; /* the format's name, for errors */
	/*
	 * Embedded content instead of detached id-data: the DER of one value
	 * (content, content_len bytes, its tag included) of type content_oid,
	 * which the contentType attribute names too (Authenticode's
	 * SpcIndirectDataContent). The digest given is then the content's.
	 */
	const char *content_oid;
	const uint8_t *content;
	size_t content_len;
};

/*
 * The DER of a detached SignedData, version 1, id-data, one SignerInfo
 * identified by issuer and serial of k's certificate (k->cert, DER), over
 * the artifact's digest dv (d), appended to out. Errors name o->what.
 */
int sigfs_pkcs7_sign(const struct sigfs_format_key *k, const struct sigfs_digest *d,
		     const uint8_t *dv, const struct sigfs_pkcs7_opts *o, sigfs_sign_fn sign,
		     void *sign_ctx, struct sbuf *out, char *err);

#endif
