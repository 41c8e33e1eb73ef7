/*
 * clients.h: the appliance's clients file (docs/appliance.md): who may
 * connect, with which 32-byte key, and what each client may do. One line per
 * client:
 *
 *   NAME HEX [ROLES]
 *
 * NAME is a key id (proto_keyid_ok), HEX the 64 hex characters of its key,
 * ROLES a comma list of `sign` (SIGN) and `manage` (KEYGEN, KEYLOAD,
 * KEYDEL). A line without ROLES is `sign` only: least privilege, so a client
 * added the old way cannot delete keys. HELLO, LISTKEYS and PUBKEY need only
 * the key. Blank lines and lines starting with '#' are ignored.
 *
 * Functions return 0 or a negative errno code, and fill err (SIGFS_ERRLEN
 * bytes) with one line naming the file and the line.
 */
#ifndef SIGFS_APPLIANCE_CLIENTS_H
#define SIGFS_APPLIANCE_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"

enum client_role {
	CLIENT_SIGN = 1,
	CLIENT_MANAGE = 2,
};

struct client {
	char name[PROTO_MAX_KEYID + 1];
	uint8_t key[PROTO_PSK_LEN];
	unsigned roles;             /* enum client_role bits */
	bool roles_given;           /* false: the line had no ROLES (sign only) */
};

/* "sign", "manage", "sign,manage" ... into role bits; -EINVAL for anything else. */
int clients_roles(const char *s, unsigned *roles);
/* Role r (one bit) in the file, "sign" or "manage"; and what it lets a client do, "manage keys". */
const char *clients_role_word(unsigned r);
const char *clients_role_what(unsigned r);

/*
 * Parse the text of a clients file (NUL-terminated, read through sbuf views
 * and wiped by the caller) into *out, *nout entries; path only names the file in err.
 */
int clients_parse(const char *path, char *text, struct client **out, size_t *nout, char *err);
/*
 * Read and parse the clients file at path: a regular file owned by us, mode
 * 0600 or 0400 (the rule of common/secret.c: it holds secrets).
 */
int clients_load(const char *path, struct client **out, size_t *nout, char *err);
/* Wipe and free what clients_parse or clients_load returned. */
void clients_free(struct client *v, size_t n);
/* The entry named name in v, or NULL. */
const struct client *clients_find(const struct client *v, size_t n, const char *name);

#endif
