/*
 * verify.h: check that an output of sigfs (NAME.sig, .asc, .minisig, .p7s, .signed)
 * is a valid signature by one key over an input's current content, with
 * nothing but the key's public files: the directory an admin sees as
 * .ctl/keys/KEY/, or a spool's D/.keys/KEY/ (docs/user-guide.md "sigfs wait",
 * decision 68). `sigfs wait` uses it so that an output planted in a plain
 * directory is not taken for sigfs's.
 */
#ifndef SIGFS_CLIENT_VERIFY_H
#define SIGFS_CLIENT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "signer/format.h"

/*
 * No signature of any format is larger: a larger output is not sigfs's,
 * unless the format's output holds the artifact too (kmod's NAME.signed:
 * sigfs_vkey_output_max).
 */
#define SIGFS_VERIFY_OUTPUT_MAX (256 * 1024)

/* A key directory, loaded: its format and the public parts the format needs. */
struct sigfs_vkey;

/*
 * Load the key directory open at dirfd (name: the key's name). With strict,
 * every file must be a regular file owned by root and writable by nobody
 * else (the spool's published keys); a file that is not says so in err and
 * gives -EPERM. Reads format, algorithm, digest, pubkey.pem; padding and
 * namespace when they exist; cert.pem for cms and kmod (checked for pubkey.pem's key);
 * for openpgp(-armor) cert.pgp, else cert.asc, else created (the key's
 * creation time, which its fingerprint depends on). Other files are not read.
 */
int sigfs_vkey_load(int dirfd, const char *name, bool strict, struct sigfs_vkey **out, char *err);
void sigfs_vkey_free(struct sigfs_vkey *k);
const struct sigfs_format *sigfs_vkey_format(const struct sigfs_vkey *k);
/*
 * The format k makes the outputs named after base with: k's, or the one its
 * for_input gives (a swupdate key signs NAME.swu whole, as NAME.swu.signed).
 */
const struct sigfs_format *sigfs_vkey_format_for(const struct sigfs_vkey *k, const char *base);
/* The largest output of k's format for base, an input of size bytes. */
size_t sigfs_vkey_output_max(const struct sigfs_vkey *k, const char *base, off_t size);

/* What the output signs, as the signer saw the input. */
enum sigfs_vinput {
	SIGFS_VIN_FILE,         /* the file's bytes */
	SIGFS_VIN_DIGESTLINE,   /* a digest line NAME.<digest>: the digest it carries */
	SIGFS_VIN_REQUEST,      /* a signing request NAME.sigreq */
};

/*
 * Is out (len bytes) key k's signature over the input open at in_fd, of
 * kind kind, whose own name is name (NAME, NAME.sha256, NAME.sigreq)?
 * 0: yes. -EBADMSG: no, err says why.
 * -ENOTSUP: this output cannot be checked from this input (a request: it
 * carries a hash state, not the file); err says why. A digest line the
 * format cannot sign from its digest gets -EBADMSG: sigfs refuses it
 * (NAME.err), so a signature for it is never sigfs's.
 * Another -errno: the input could not be read.
 */
int sigfs_verify_output(const struct sigfs_vkey *k, int in_fd, enum sigfs_vinput kind,
			const char *name, const uint8_t *out, size_t len, char *err);

#endif
