/*
 * x509.h: X.509 pieces for formats that carry a certificate (CMS): the
 * signature AlgorithmIdentifier of a key, signing DER with the key through
 * the format's sign callback, and the key's self-signed certificate. The
 * private key stays in its backend: the certificate's TBS is hashed here and
 * only the digest (or, for Ed25519, the TBS itself) goes to sign().
 */
#ifndef SIGFS_X509_H
#define SIGFS_X509_H

#include <openssl/x509.h>

#include "signer/format.h"

/*
 * The AlgorithmIdentifier of a signature by key k over digest d:
 * ecdsa-with-SHAxxx, shaxxxWithRSAEncryption, RSASSA-PSS with its parameters
 * (MGF1 with d, salt = digest length: what backends make), or id-Ed25519
 * (d unused). -EINVAL with a reason when no identifier exists (ECDSA with
 * SHA-512/224 or SHA-512/256). Caller frees *out with X509_ALGOR_free.
 */
int sigfs_x509_sigalg(const struct sigfs_format_key *k, const struct sigfs_digest *d,
		      X509_ALGOR **out, char *err);

/*
 * Sign der (len bytes) with key k: digest mode over d's hash of der, or pure
 * Ed25519 over der itself. sig has room for SIGFS_MAX_SIG bytes.
 */
int sigfs_x509_sign_der(const struct sigfs_format_key *k, const struct sigfs_digest *d,
			const uint8_t *der, size_t len, sigfs_sign_fn sign, void *sign_ctx,
			uint8_t *sig, size_t *siglen, char *err);

/*
 * A self-signed X.509 v3 certificate for k->pub: subject = issuer =
 * CN=<key name>, O=sigfs; valid from k->created for 30 years; signed with
 * SHA-256 (SHA-384 for P-384, SHA-512 for P-521); serial derived
 * from the public key and creation time (stable across renders);
 * basicConstraints CA:FALSE, keyUsage digitalSignature, subjectKeyIdentifier.
 * Caller frees *out with X509_free.
 */
int sigfs_x509_self_signed(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
			   X509 **out, char *err);

#endif
