/* alg.c: the algorithm, digest and padding tables of alg.h. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/alg.h"

static const struct sigfs_alg algs[] = {
	{ "ed25519", SIGFS_KIND_ED25519, 255, NULL, 64 },
	{ "ecdsa-p256", SIGFS_KIND_EC, 256, "P-256", 72 },
	{ "ecdsa-p384", SIGFS_KIND_EC, 384, "P-384", 104 },
	{ "ecdsa-p521", SIGFS_KIND_EC, 521, "P-521", 139 },
	{ "rsa-2048", SIGFS_KIND_RSA, 2048, NULL, 256 },
	{ "rsa-3072", SIGFS_KIND_RSA, 3072, NULL, 384 },
	{ "rsa-4096", SIGFS_KIND_RSA, 4096, NULL, 512 },
};
#define N_ALGS (sizeof(algs) / sizeof(algs[0]))

static const struct sigfs_digest digests[] = {
	{ "sha1", "SHA1", 20, "-sha1" },
	{ "sha224", "SHA2-224", 28, "-sha224" },
	{ "sha256", "SHA2-256", 32, "-sha256" },
	{ "sha384", "SHA2-384", 48, "-sha384" },
	{ "sha512", "SHA2-512", 64, "-sha512" },
	{ "sha512-224", "SHA2-512/224", 28, "-sha512-224" },
	{ "sha512-256", "SHA2-512/256", 32, "-sha512-256" },
	{ "sha3-224", "SHA3-224", 28, "-sha3-224" },
	{ "sha3-256", "SHA3-256", 32, "-sha3-256" },
	{ "sha3-384", "SHA3-384", 48, "-sha3-384" },
	{ "sha3-512", "SHA3-512", 64, "-sha3-512" },
};
#define N_DIGESTS (sizeof(digests) / sizeof(digests[0]))

static EVP_MD *mds[N_DIGESTS];
static pthread_once_t mds_once = PTHREAD_ONCE_INIT;

static void fetch_mds(void)
{
	for (size_t i = 0; i < N_DIGESTS; i++)
		mds[i] = EVP_MD_fetch(NULL, digests[i].ossl, NULL);
}

const struct sigfs_alg *sigfs_alg_by_name(const char *name)
{
	for (size_t i = 0; i < N_ALGS; i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

const struct sigfs_alg *sigfs_alg_at(size_t i)
{
	return i < N_ALGS ? &algs[i] : NULL;
}

const struct sigfs_alg *sigfs_alg_of_key(EVP_PKEY *pkey)
{
	const struct sigfs_alg *a;
	char group[64];
	int nid = NID_undef;

	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL))
			return NULL;
		nid = EC_curve_nist2nid(group);
		if (nid == NID_undef)
			nid = OBJ_sn2nid(group);
	}
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		switch (a->kind) {
		case SIGFS_KIND_ED25519:
			if (EVP_PKEY_is_a(pkey, "ED25519"))
				return a;
			break;
		case SIGFS_KIND_RSA:
			if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) == a->bits)
				return a;
			break;
		case SIGFS_KIND_EC:
			if (nid != NID_undef && nid == EC_curve_nist2nid(a->group))
				return a;
			break;
		}
	}
	return NULL;
}

EVP_PKEY *sigfs_keygen(enum sigfs_key_kind kind, const char *group, int bits)
{
	switch (kind) {
	case SIGFS_KIND_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case SIGFS_KIND_EC:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
	case SIGFS_KIND_RSA:
		/* OpenSSL's default public exponent is 65537. */
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	}
	return NULL;
}

const struct sigfs_digest *sigfs_digest_by_name(const char *name)
{
	for (size_t i = 0; i < N_DIGESTS; i++)
		if (strcmp(digests[i].name, name) == 0)
			return &digests[i];
	return NULL;
}

const struct sigfs_digest *sigfs_digest_by_ossl(const char *ossl_name)
{
	for (size_t i = 0; i < N_DIGESTS; i++)
		if (EVP_MD_is_a(sigfs_digest_md(&digests[i]), ossl_name))
			return &digests[i];
	return NULL;
}

const struct sigfs_digest *sigfs_digest_at(size_t i)
{
	return i < N_DIGESTS ? &digests[i] : NULL;
}

const EVP_MD *sigfs_digest_md(const struct sigfs_digest *d)
{
	pthread_once(&mds_once, fetch_mds);
	return mds[d - digests];
}

bool sigfs_digest_is_weak(const struct sigfs_digest *d)
{
	return strcmp(d->name, "sha1") == 0;
}

int sigfs_digest_info(const struct sigfs_digest *d, const uint8_t *v, size_t len,
		      uint8_t **out, size_t *outlen)
{
	X509_SIG *sig = X509_SIG_new();
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *dig;
	int n = -1;

	*out = NULL;
	if (sig) {
		X509_SIG_getm(sig, &alg, &dig);
		if (X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(sigfs_digest_md(d))),
				    V_ASN1_NULL, NULL) &&
		    ASN1_OCTET_STRING_set(dig, v, (int)len))
			n = i2d_X509_SIG(sig, out);
	}
	X509_SIG_free(sig);
	if (n <= 0)
		return -ENOMEM;
	*outlen = (size_t)n;
	return 0;
}

static const char *const padding_names[] = { "none", "pss", "pkcs1" };

const char *sigfs_padding_name(enum sigfs_padding p)
{
	return padding_names[p];
}

int sigfs_padding_parse(const char *s, enum sigfs_padding *out)
{
	if (strcmp(s, "pss") == 0)
		*out = SIGFS_PAD_PSS;
	else if (strcmp(s, "pkcs1") == 0)
		*out = SIGFS_PAD_PKCS1;
	else
		return -EINVAL;
	return 0;
}
