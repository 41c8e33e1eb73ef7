/*
 * backend.h: where keys live. One small interface; each driver (soft,
 * pkcs11, nethsm, appliance) is one row of ops in backend.c's table. A backend
 * knows key ids and bytes to sign; it never sees a path, a file name or a user.
 *
 * Private keys never leave a backend: there is no call that returns one.
 * Every call may run concurrently from several signer workers; `worker` tells
 * a driver which worker calls so it can keep per-worker sessions.
 */
#ifndef SIGFS_BACKEND_H
#define SIGFS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "common/alg.h"
#include "common/config.h"

/* What to sign. */
struct sigfs_sign_input {
	const struct sigfs_alg *alg;
	enum sigfs_padding padding;        /* RSA: PSS (salt = digest length) or PKCS1 */
	/*
	 * Digest mode: digest != NULL, data is the digest value (digest->len bytes).
	 * Message mode (pure Ed25519): digest == NULL, data is the whole message.
	 */
	const struct sigfs_digest *digest;
	const uint8_t *data;
	size_t len;
	unsigned worker;
};

struct sigfs_backend;

struct sigfs_backend_ops {
	const char *type;                   /* "soft" */
	int (*open)(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err);
	void (*close)(struct sigfs_backend *b);
	/* Create key `id` with algorithm alg. -EEXIST if it exists. */
	int (*generate)(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg, char *err);
	/* Store a private key given as PEM (PKCS#8 or traditional); report its algorithm. */
	int (*import_pem)(struct sigfs_backend *b, const char *id, const uint8_t *pem, size_t len,
			  const struct sigfs_alg **alg_out, char *err);
	/* Delete key id. -ENOENT if it does not exist. */
	int (*remove)(struct sigfs_backend *b, const char *id, char *err);
	/* The public key (caller frees with EVP_PKEY_free). */
	int (*public_key)(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err);
	/*
	 * Sign. sig has room for *siglen bytes (at least in->alg->max_sig); on
	 * success *siglen is the signature length. RSA: PKCS#1 v1.5 or PSS
	 * bytes; ECDSA: DER SEQUENCE(r, s); Ed25519: 64 bytes R || S.
	 */
	int (*sign)(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		    uint8_t *sig, size_t *siglen, char *err);
	/*
	 * The ids of the keys the backend holds, as a malloc'd array of *n
	 * malloc'd strings (free with sigfs_backend_list_free). For .ctl/status:
	 * it never retries, so an unreachable backend fails at once.
	 */
	int (*list)(struct sigfs_backend *b, char ***ids, size_t *n, char *err);
};

struct sigfs_backend {
	const struct sigfs_backend_ops *ops;
	char name[64];
	void *priv;
};

/* The driver for a type name ("soft"), NULL if unknown. */
const struct sigfs_backend_ops *sigfs_backend_type(const char *type);
void sigfs_backend_list_free(char **ids, size_t n);

/*
 * The last step of a driver's open: a backend of ops named conf->name (the
 * type when unset) around the driver's state priv, into *out. -ENOMEM with a
 * line naming the backend otherwise; priv stays the caller's to free.
 */
int sigfs_backend_new(const struct sigfs_backend_ops *ops, const struct sigfs_backend_conf *conf,
		      void *priv, struct sigfs_backend **out, char *err);
/*
 * Whether in is something a key of in->alg signs: pure Ed25519 the whole
 * message, every other kind a digest of its digest's length. -EINVAL with a
 * line saying what to give otherwise, naming the TYPE backend and, unless
 * NULL, its name.
 */
int sigfs_backend_check_input(const char *type, const char *name, const char *id,
			      const struct sigfs_sign_input *in, char *err);

/*
 * Setting key of conf (def when unset) as seconds from min to 3600, into *ms;
 * -EINVAL with a line naming the TYPE backend and the setting otherwise.
 */
int sigfs_backend_seconds(const struct sigfs_backend_conf *conf, const char *type,
			  const char *key, const char *def, double min, long *ms, char *err);
/* A monotonic clock in milliseconds, for retry windows. */
long sigfs_backend_now_ms(void);
/*
 * One backoff step of a retry window: sleep delay ms, but not past deadline
 * (sigfs_backend_now_ms() time), so the last try is at the deadline; returns
 * the next delay (doubled, at most 2 s). Retry loops start with 100 ms.
 */
long sigfs_backend_backoff(long delay, long deadline);

#endif
