/*
 * secret.h: backends read their credentials (PINs, passwords) from files that
 * only the daemon can read. One rule for all of them: a regular file owned by
 * the daemon's user, mode 0600 or 0400, holding the secret on one line.
 */
#ifndef SIGFS_SECRET_H
#define SIGFS_SECRET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <openssl/evp.h>

/*
 * Read the secret of setting (e.g. "pin_file") at path for backend `name` of
 * `type` into buf (size bytes, NUL-terminated; *len gets its length). noun
 * names it in errors ("PIN", "password"). Wipe buf after use.
 */
int sigfs_read_secret(const char *type, const char *name, const char *setting,
		      const char *noun, const char *path, char *buf, size_t size, size_t *len,
		      char *err);

/*
 * Parse an unencrypted PEM private key (PKCS#8 or traditional) that an admin
 * imported; never prompts for a passphrase. -EINVAL if it is not one.
 */
int sigfs_read_private_pem(const uint8_t *pem, size_t len, EVP_PKEY **out);
/* The same from an open file. */
int sigfs_read_private_pem_fp(FILE *f, EVP_PKEY **out);

#endif
