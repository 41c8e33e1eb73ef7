/*
 * testlib.h: fixture helpers shared by the cmocka unit tests: a temporary
 * directory under $SIGFS_TEST_TMP, the soft backend opened in it, a sign
 * callback that forwards to that backend, shell commands and file writes.
 * Every helper asserts with cmocka, so the including file must include
 * <cmocka.h> (and what it needs) first; testlib.c does the same.
 */
#ifndef SIGFS_TESTLIB_H
#define SIGFS_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

/* The soft backend opened by t_soft_open(); t_soft_sign() signs with it. */
extern struct sigfs_backend *t_be;

/* Make "$SIGFS_TEST_TMP/TAG-XXXXXX" (/tmp without it) into dir; 0, or -1. */
int t_mkdtemp(char *dir, size_t len, const char *tag);

/* A sigfs_backend_conf get() that answers every key with its default. */
const char *t_conf_default(const struct sigfs_backend_conf *c, const char *key, const char *def);

/* Open the soft backend on state_dir with default settings into t_be; 0, or -1 (said on stderr). */
int t_soft_open(const char *state_dir);

/* t_mkdtemp() then t_soft_open() on it: a group setup's work; 0, or -1. */
int t_soft_setup(char *dir, size_t len, const char *tag);

/* Close t_be and remove dir with everything in it. */
void t_soft_teardown(const char *dir);

/* A sign callback for the formats: t_be signs in with the key whose id is ctx. */
int t_soft_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		char *err);

/* Run the formatted shell command; asserts it exited normally, returns its exit status. */
int t_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write the n bytes at p to path (created or truncated), asserting every step. */
void t_write_file(const char *path, const void *p, size_t n);

#endif
