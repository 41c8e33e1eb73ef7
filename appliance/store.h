/*
 * store.h: the appliance's keys. One PKCS#8 PEM per key, DIR/ID.pem (mode
 * 0600, in a 0700 directory), written atomically; all keys are parsed at
 * start and kept in memory, behind a rwlock, so signing never touches the disk.
 * Functions return 0 or a negative errno code.
 */
#ifndef SIGFS_APPLIANCE_STORE_H
#define SIGFS_APPLIANCE_STORE_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "protocol/proto.h"

struct store_key {
	char id[PROTO_MAX_KEYID + 1];
	EVP_PKEY *pk;
	uint8_t type;              /* enum proto_keytype */
	uint16_t bits;
};

struct store {
	char dir[PATH_MAX - 256];       /* room for /ID.pem.tmp in a PATH_MAX path */
	pthread_rwlock_t lock;
	struct store_key *keys;    /* sorted by id */
	size_t n, cap;
};

/* Open (creating it 0700) DIR and load every ID.pem in it; err says what failed. */
int store_open(struct store *s, const char *dir, char *err);
void store_close(struct store *s);

/* The protocol type and bits of pk; -EOPNOTSUPP (err says why) for keys we do not hold. */
int store_key_info(EVP_PKEY *pk, uint8_t *type, uint16_t *bits, char *err);

/* Call fn for every key in id order, under the read lock; stops at fn's first error. */
int store_each(struct store *s, int (*fn)(void *arg, const struct store_key *k), void *arg);
/* 1 if id is taken. */
int store_has(struct store *s, const char *id);
/* A reference to key id (EVP_PKEY_free it), its type and bits; -ENOENT if none. */
int store_get(struct store *s, const char *id, EVP_PKEY **pk, uint8_t *type, uint16_t *bits);
/* Write pk as DIR/ID.pem (tmp file, fsync, rename) and hold it; -EEXIST if id is taken. */
int store_add(struct store *s, const char *id, EVP_PKEY *pk, char *err);
/* Remove key id from disk and memory; -ENOENT if none. */
int store_del(struct store *s, const char *id, char *err);

#endif
