/*
 * testenv.h: what the key store and the engine run on in a unit test
 * (struct sigfs_env, signer/keys.h): an in-memory backend, a wall clock and
 * a monotonic clock the test sets, and a store opened on them in a temporary
 * state directory. No mount, no key on disk.
 *
 * The in-memory backend answers every backend type. Its signatures are
 * predictable: in digest mode "MEM" followed by the digest value, in message
 * mode (Ed25519) a real Ed25519 signature. t_mem lets a test make it fail,
 * hold a signature until released, and count its list calls.
 */
#ifndef SIGFS_TESTENV_H
#define SIGFS_TESTENV_H

#include <stdbool.h>
#include <time.h>

#include "common/config.h"
#include "signer/audit.h"
#include "signer/keys.h"

/* What a test sets and reads of the in-memory backend. */
struct t_mem {
	int sign_err;               /* nonzero: sign fails with it, saying T_MEM_DOWN */
	bool hold;                  /* sign waits (t_mem_wait_held) until t_mem_release() */
	bool held;                  /* a sign is waiting */
	unsigned lists;             /* list calls */
	unsigned generated;         /* generate calls that made a key */
};
#define T_MEM_DOWN "mem backend: down for the test"
extern struct t_mem t_mem;

/* Keys the in-memory backend holds now. */
size_t t_mem_count(void);
/* Wait until a sign is held; release it. */
void t_mem_wait_held(void);
void t_mem_release(void);
/* Forget every key and reset t_mem. */
void t_mem_reset(void);

/* The clocks of t_env: t_wall_now seconds since 1970, t_mono_ms milliseconds. */
extern time_t t_wall_now;
extern long long t_mono_ms;
extern const struct sigfs_env t_env;

/* A key store on t_env in a fresh state directory (workers = 1, default backend soft). */
struct t_store {
	char dir[256];
	struct sigfs_config cfg;
	int state_fd;
	struct sigfs_audit *audit;
	struct sigfs_keys *ks;
};
void t_store_open(struct t_store *s, const char *tag);
/* Close the store only (the state directory stays, to open it again). */
void t_store_close_keys(struct t_store *s);
/* Close everything and remove the state directory. */
void t_store_close(struct t_store *s);

/* The content of file path into buf (NUL-terminated); its length, or -1 if it does not exist. */
long t_read_file(const char *path, char *buf, size_t cap);

#endif
