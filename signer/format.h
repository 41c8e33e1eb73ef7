/*
 * format.h: output formats. Each format is one row: it gets what was hashed
 * (a hash state over the artifact, a finished digest, or for pure signatures
 * the artifact itself), the public parts of the key, and a "sign these
 * bytes" callback, and encodes the output. A format never knows which
 * backend answered the callback.
 */
#ifndef SIGFS_FORMAT_H
#define SIGFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/sbuf.h"
#include "signer/hasher.h"

/* Ask the key's backend to sign; see backend.h for the input and output bytes. */
typedef int (*sigfs_sign_fn)(void *ctx, const struct sigfs_sign_input *in,
			     uint8_t *sig, size_t *siglen, char *err);

/* What a format may know of a key: public parts and settings, never the private key. */
struct sigfs_format_key {
	const char *name;                    /* key name */
	const struct sigfs_alg *alg;
	enum sigfs_padding padding;
	const struct sigfs_digest *digest;   /* the key's digest setting */
	EVP_PKEY *pub;                       /* public key */
	time_t created;                      /* creation time (part of OpenPGP fingerprints) */
	const char *uid;                     /* OpenPGP user ID (.ctl/keys/KEY/uid) */
	const char *ssh_namespace;           /* sshsig namespace (.ctl/keys/KEY/namespace) */
	const uint8_t *cert;                 /* X.509 certificate, DER (.ctl/keys/KEY/cert.pem) */
	size_t cert_len;                     /* 0 when there is none yet */
};

struct sigfs_format_input {
	const struct sigfs_format_key *key;
	/*
	 * What is signed, exactly one of:
	 *  - state: a hash state over the whole artifact, of the kind file_md()
	 *    asked for (or the SHA-512 state of a Signstar request); never
	 *    finish it: use sigfs_hasher_peek() or sigfs_hasher_dup();
	 *  - digest and digest_value: a finished digest of the artifact (digest
	 *    lines, requests that carry a digest);
	 *  - message: the artifact itself (mapped), when needs_message() says so.
	 *    For a format that streams (produce_stream), the artifact may be
	 *    a file instead: message is NULL, message_file true and message_fd
	 *    the artifact itself, read-only (read it with sigfs_format_read,
	 *    which takes either; it may change meanwhile: the engine then
	 *    places nothing, decision 79).
	 */
	const struct sigfs_hasher *state;
	const struct sigfs_digest *digest;
	const uint8_t *digest_value;
	const uint8_t *message;
	bool message_file;
	int message_fd;
	size_t message_len;
	const char *name;                    /* artifact name (for comments that name it) */
	time_t now;
};

/*
 * Where a streaming format writes its output, in order: write() returns 0 or
 * -errno. copy (optional) appends n bytes of file fd at off inside the
 * kernel (copy_file_range), setting *done to the bytes appended: 0,
 * -EBADMSG when fd ends first, -EXDEV (or -EINVAL, -ENOSYS, -EOPNOTSUPP)
 * when the kernel cannot (sigfs_format_copy then copies the rest through
 * memory), or -errno. sigfs_format_copy uses it for a message that is a file.
 */
struct sigfs_sink {
	int (*write)(void *ctx, const void *p, size_t n);
	void *ctx;
	int (*copy)(void *ctx, int fd, uint64_t off, uint64_t n, uint64_t *done);
};

/* A sink that writes to the file *fd, whose copy is copy_file_range. */
struct sigfs_sink sigfs_sink_fd(int *fd);

/*
 * n bytes of the message at off into buf (message or message_fd, whichever
 * the input has): 0, -EBADMSG past its end, or -errno.
 */
int sigfs_format_read(const struct sigfs_format_input *in, void *buf, size_t n, uint64_t off);
/* Copy the message's bytes [off, off + n) to out, in pieces. */
int sigfs_format_copy(const struct sigfs_format_input *in, uint64_t off, uint64_t n,
		      const struct sigfs_sink *out);

/* A read-only file a format adds to .ctl/keys/KEY/ (pubkey.ssh, cert.pgp ...). */
struct sigfs_format_attr {
	const char *name;
	/*
	 * Render it for key k; may sign (self-signatures). It may depend on the
	 * key, its name, creation time and uid only: the key store keeps the
	 * result until the key is regenerated or imported or its uid changes
	 * (not on digest, format or padding changes). -ENODATA with a reason
	 * when it does not apply to this key (pubkey.minisign of RSA).
	 */
	int (*render)(const struct sigfs_format_key *k, sigfs_sign_fn sign, void *sign_ctx,
		      struct sbuf *out, char *err);
	/* An admin may replace it by writing the file (cert.pem). */
	bool writable;
};

struct sigfs_format {
	const char *name;                    /* "raw" */
	const char *suffix;                  /* ".sig" */
	/* Can this format sign with alg and digest? 0, or -EINVAL with a reason in err. */
	int (*check)(const struct sigfs_alg *alg, const struct sigfs_digest *d, char *err);
	/*
	 * Optional: can it sign with an RSA key of padding pad? 0, or -EINVAL
	 * with a reason (kmod: Linux verifies PKCS#1 v1.5 only). NULL: any.
	 */
	int (*check_padding)(const struct sigfs_alg *alg, enum sigfs_padding pad, char *err);
	/* The hash it needs over the artifact; NULL member: the key's digest. */
	const EVP_MD *(*file_md)(const struct sigfs_alg *alg, const struct sigfs_digest *d);
	/* Does this format need the whole message (not just a hash) for alg? */
	bool (*needs_message)(const struct sigfs_alg *alg);
	/*
	 * Encode the output into out. A format that streams (produce_stream)
	 * may leave it NULL: sigfs_format_produce runs produce_stream into out.
	 */
	int (*produce)(const struct sigfs_format_input *in, sigfs_sign_fn sign, void *sign_ctx,
		       struct sbuf *out, char *err);
	const struct sigfs_format_attr *attrs;   /* files it adds to .ctl/keys/KEY/ */
	size_t nattrs;
	bool needs_cert;                         /* produce() needs key->cert (cert.pem) */
	/*
	 * The output is the artifact itself, signed (NAME.signed): produce()
	 * gets the message and the hash state, never a digest or a request,
	 * and the output may be as large as the artifact plus a signature.
	 */
	bool whole_artifact;
	/*
	 * Optional, for whole-artifact formats whose artifacts can be large
	 * (Mender artifacts, .swu images): produce the output into out as it
	 * goes, reading the message in pieces (sigfs_format_read), so neither
	 * the artifact nor the output is ever held in memory. Used instead of
	 * produce() for files.
	 */
	int (*produce_stream)(const struct sigfs_format_input *in, sigfs_sign_fn sign,
			      void *sign_ctx, const struct sigfs_sink *out, char *err);
	/*
	 * Optional: the format an input named name (its base: NAME of
	 * NAME.sha256) is made with instead, or NULL for this one. A swupdate
	 * key signs sw-description into sw-description.sig, but a whole image
	 * NAME.swu into NAME.swu.signed (signer/format_swu.c).
	 */
	const struct sigfs_format *(*for_input)(const char *name);
};

/* f's output for in into out: its produce(), or its produce_stream() writing into out. */
int sigfs_format_produce(const struct sigfs_format *f, const struct sigfs_format_input *in,
			 sigfs_sign_fn sign, void *sign_ctx, struct sbuf *out, char *err);
const struct sigfs_format *sigfs_format_by_name(const char *name);
/* The format f makes input name (its base name) with: f, or what f->for_input says. */
const struct sigfs_format *sigfs_format_for(const struct sigfs_format *f, const char *name);
const struct sigfs_format *sigfs_format_at(size_t i);
/* The longest output suffix of all formats and ".err" (for name length limits). */
size_t sigfs_format_max_suffix(void);
/* The hash format f needs over an artifact signed with alg and digest d. */
const EVP_MD *sigfs_format_file_md(const struct sigfs_format *f, const struct sigfs_alg *alg,
				   const struct sigfs_digest *d);
/* Attribute files of all formats, in table order: i-th one, NULL past the end. */
const struct sigfs_format_attr *sigfs_format_attr_at(size_t i);

#endif
