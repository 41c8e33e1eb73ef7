/*
 * keys.h: the key store. A key is a name, its settings (algorithm, digest,
 * format, RSA padding, ...), the backend that holds it, and its inbox. The
 * store keeps the settings in <state>/keys/NAME/ and creates, regenerates,
 * imports and deletes keys on their backend. Settings are exposed as a table
 * of attributes, which the FUSE front end shows as files in .ctl/keys/NAME/.
 */
#ifndef SIGFS_KEYS_H
#define SIGFS_KEYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/config.h"
#include "common/sbuf.h"
#include "signer/audit.h"
#include "signer/format.h"

#define SIGFS_KEYNAME_MAX 64

/* A snapshot of one key's settings; cheap to copy. */
struct sigfs_key {
	char name[SIGFS_KEYNAME_MAX + 1];
	const struct sigfs_alg *alg;
	const struct sigfs_digest *digest;      /* digest used to hash artifacts */
	bool digest_auto;                       /* never set by an admin: follows the algorithm */
	const struct sigfs_format *format;
	enum sigfs_padding padding;             /* RSA keys only */
	bool allow_sha1;                        /* sha1 may be used (digest, digest files) */
	bool digest_files;                      /* NAME.<digest> files are digest lines */
	char backend[64];
	uint64_t count;                         /* signatures made */
	time_t created;
	uint64_t ino;                           /* inode of <state>/keys/NAME: a stable id */
	char uid[128];                          /* OpenPGP user ID */
	char ssh_namespace[64];                 /* sshsig namespace */
};

/* One attribute file of .ctl/keys/NAME/. */
struct sigfs_key_attr {
	const char *name;
	mode_t mode;                            /* 0660 settable, 0440 read-only, 0220 write-only */
};

struct sigfs_keys;

/*
 * Parse the settings file <state>/keys/NAME/meta (len bytes of "name=value"
 * lines, as the store writes them, at most SIGFS_KEY_META_MAX) into k, which
 * holds only its name. Lines without '=' and unknown names are skipped; a
 * bad or over-long value, a NUL byte, or a missing algorithm, digest, format
 * or backend is -EINVAL with the reason in err. *digest_auto_seen tells
 * whether the file had digest_auto= (settings of versions before it have
 * none: the caller decides then).
 */
#define SIGFS_KEY_META_MAX 2048
int sigfs_key_meta_parse(const uint8_t *buf, size_t len, struct sigfs_key *k,
			 bool *digest_auto_seen, char *err);
/* The settings file of k as the store writes it into buf: its length, or -ENAMETOOLONG. */
int sigfs_key_meta_format(const struct sigfs_key *k, char *buf, size_t len);

/*
 * Open the store in the state directory state_fd (opened by the rule of
 * common/safedir.h; the store keeps its own copy of the descriptor) and the
 * default backend. keys/ and inbox/ are opened without following links and
 * must be the daemon's, not group/other-writable.
 */
int sigfs_keys_open(const struct sigfs_config *cfg, int state_fd, struct sigfs_audit *audit,
		    struct sigfs_keys **out, char *err);
/*
 * What the store, and the engine on it, run on. sigfs_keys_open uses the
 * real ones; a unit test opens the store with sigfs_keys_open_env to give it
 * an in-memory backend and a clock it moves. A NULL field is the real one.
 */
struct sigfs_env {
	/* The driver of a backend type name (the real one: sigfs_backend_type). */
	const struct sigfs_backend_ops *(*backend_type)(const char *type);
	/* Seconds since 1970: keys' created times, last-error lines, signatures' times. */
	time_t (*wall)(void);
	/* CLOCK_MONOTONIC: how long the backend lines of the status are reused. */
	void (*mono)(struct timespec *ts);
};
int sigfs_keys_open_env(const struct sigfs_config *cfg, int state_fd, struct sigfs_audit *audit,
			const struct sigfs_env *env, struct sigfs_keys **out, char *err);
void sigfs_keys_close(struct sigfs_keys *ks);

/* Is name a valid key name? ([A-Za-z0-9_-][A-Za-z0-9._-]{0,63}) */
int sigfs_keys_name_ok(const char *name, char *err);

/*
 * Create key name with the configured defaults on backend (NULL: the default
 * backend, [keys] backend); uid is audited.
 */
int sigfs_keys_create(struct sigfs_keys *ks, const char *name, const char *backend, uid_t uid,
		      char *err);
/* Delete key name: its inbox must be empty (-ENOTEMPTY). */
int sigfs_keys_delete(struct sigfs_keys *ks, const char *name, uid_t uid, char *err);

int sigfs_keys_get(struct sigfs_keys *ks, const char *name, struct sigfs_key *out);
int sigfs_keys_get_by_ino(struct sigfs_keys *ks, uint64_t ino, struct sigfs_key *out);
/* All keys, sorted by name; *out is malloc'd (free it). Returns the count or -errno. */
int sigfs_keys_list(struct sigfs_keys *ks, struct sigfs_key **out);

/* The attribute table. */
const struct sigfs_key_attr *sigfs_key_attr_at(size_t i);
int sigfs_key_attr_find(const char *name);
/* Current content of attribute i of key name (malloc'd; free it). */
int sigfs_keys_attr_read(struct sigfs_keys *ks, const char *name, size_t i,
			 char **buf, size_t *len);
/* Check a new value for attribute i without applying it. */
int sigfs_keys_attr_check(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, char *err);
/* Apply a new value (trailing whitespace ignored). uid is audited for imports. */
int sigfs_keys_attr_write(struct sigfs_keys *ks, const char *name, size_t i,
			  const uint8_t *val, size_t len, uid_t uid, char *err);

/*
 * The public material format f needs to sign with key k (public key, user ID,
 * namespace, and the certificate when f->needs_cert). fk points into k, which
 * must outlive it; release with sigfs_keys_format_key_free().
 */
int sigfs_keys_format_key(struct sigfs_keys *ks, const struct sigfs_key *k,
			  const struct sigfs_format *f, struct sigfs_format_key *fk, char *err);
void sigfs_keys_format_key_free(struct sigfs_format_key *fk);

/*
 * Note a refused change of key name (an attribute write, rmdir ...) for its
 * .ctl/keys/NAME/last-error file: what was refused, for whom and why.
 */
void sigfs_keys_set_last_error(struct sigfs_keys *ks, const char *name, uid_t uid,
			       const char *what, const char *why);

/* Sign with key k on its backend. */
int sigfs_keys_sign(struct sigfs_keys *ks, const struct sigfs_key *k,
		    const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen, char *err);
/* Count one more signature of key name. */
void sigfs_keys_count(struct sigfs_keys *ks, const char *name);

/* The directory holding the inboxes (<state>/inbox), as an open fd owned by the store. */
int sigfs_keys_inbox_root(struct sigfs_keys *ks);
/* The state directory, as an open fd owned by the store (the journal opens relative to it). */
int sigfs_keys_state_dir(struct sigfs_keys *ks);
/* The store's wall clock (struct sigfs_env): the time the engine puts in signatures. */
time_t sigfs_keys_now(struct sigfs_keys *ks);

/*
 * Append one line per backend to out, the built-in soft first, then each
 * [backend NAME] in file order: "backend NAME: TYPE, N keys" (as its list op
 * counts them), "backend NAME: TYPE, unreachable: WHY" when it cannot be
 * opened or listed, "backend NAME: TYPE" for a driver without a list op. A
 * backend that is down fails fast (its list op does not retry). The lines are
 * reused for a second unless a key was created or deleted meanwhile.
 */
int sigfs_keys_backends_status(struct sigfs_keys *ks, struct sbuf *out);

#endif
