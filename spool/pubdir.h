/*
 * pubdir.h: the keys' public side in the spool directory, DIR/.keys/KEY/
 * (docs/spool.md, "Waiting, and checking a signature"): the key's
 * algorithm, digest, format, padding, namespace, uid and created (one line
 * each, as in .ctl), its pubkey.pem and its format's public files (cms:
 * cert.pem; openpgp: cert.pgp and cert.asc; sshsig: pubkey.ssh; minisign:
 * pubkey.minisign), owned by the daemon, mode 0444, in directories of mode
 * 0755. `sigfs wait` trusts them because nobody else can write there.
 */
#ifndef SIGFS_SPOOL_PUBDIR_H
#define SIGFS_SPOOL_PUBDIR_H

#include "signer/keys.h"

/*
 * Write (or bring up to date) root/.keys/KEY/ for key k (root: the spool
 * directory): the files above that k has, its format's only; others removed.
 */
int spool_publish(int root, struct sigfs_keys *ks, const struct sigfs_key *k);

#endif
