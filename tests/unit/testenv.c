/*
 * testenv.c: the in-memory backend, the test clocks and the store fixture of
 * testenv.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "testenv.h"
#include "testlib.h"

#define MEM_KEYS 16

struct mem_key {
	char id[SIGFS_KEYNAME_MAX + 16];
	EVP_PKEY *pk;
};

struct t_mem t_mem;
static struct mem_key mem_keys[MEM_KEYS];
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mem_cond = PTHREAD_COND_INITIALIZER;
static struct sigfs_backend mem_backend;

time_t t_wall_now = 1700000000;
long long t_mono_ms = 1000000;

/* The key id, or NULL (mem_lock held). */
static struct mem_key *mem_find(const char *id)
{
	for (size_t i = 0; i < MEM_KEYS; i++)
		if (mem_keys[i].pk && strcmp(mem_keys[i].id, id) == 0)
			return &mem_keys[i];
	return NULL;
}

static int mem_open(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err)
{
	(void)conf;
	(void)err;
	*out = &mem_backend;
	return 0;
}

static void mem_close(struct sigfs_backend *b)
{
	(void)b;
}

static EVP_PKEY *mem_keygen(const struct sigfs_alg *alg)
{
	switch (alg->kind) {
	case SIGFS_KIND_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case SIGFS_KIND_EC:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg->group);
	case SIGFS_KIND_RSA:
		break;
	}
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)alg->bits);
}

static int mem_generate(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg,
			char *err)
{
	struct mem_key *slot = NULL;
	int r = 0;

	(void)b;
	pthread_mutex_lock(&mem_lock);
	for (size_t i = 0; i < MEM_KEYS && !slot; i++)
		if (!mem_keys[i].pk)
			slot = &mem_keys[i];
	if (mem_find(id))
		r = sigfs_seterr(err, -EEXIST, "mem: key %s exists", id);
	else if (!slot)
		r = sigfs_seterr(err, -ENOSPC, "mem: full");
	else if (!(slot->pk = mem_keygen(alg)))
		r = sigfs_seterr(err, -EIO, "mem: cannot make a %s key", alg->name);
	if (r == 0) {
		snprintf(slot->id, sizeof(slot->id), "%s", id);
		t_mem.generated++;
	}
	pthread_mutex_unlock(&mem_lock);
	return r;
}

static int mem_remove(struct sigfs_backend *b, const char *id, char *err)
{
	struct mem_key *k;

	(void)b;
	(void)err;
	pthread_mutex_lock(&mem_lock);
	k = mem_find(id);
	if (k) {
		EVP_PKEY_free(k->pk);
		memset(k, 0, sizeof(*k));
	}
	pthread_mutex_unlock(&mem_lock);
	return k ? 0 : -ENOENT;
}

static int mem_public_key(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err)
{
	struct mem_key *k;

	(void)b;
	pthread_mutex_lock(&mem_lock);
	k = mem_find(id);
	*out = k && EVP_PKEY_up_ref(k->pk) ? k->pk : NULL;
	pthread_mutex_unlock(&mem_lock);
	return *out ? 0 : sigfs_seterr(err, -ENOENT, "mem: no key %s", id);
}

/* Pure Ed25519 over the message, as the real backends sign it. */
static int mem_sign_message(EVP_PKEY *pk, const struct sigfs_sign_input *in, uint8_t *sig,
			    size_t *siglen)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, pk) == 1 &&
		 EVP_DigestSign(c, sig, siglen, in->data, in->len) == 1;

	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

static void mem_wait_turn(void)
{
	pthread_mutex_lock(&mem_lock);
	t_mem.held = t_mem.hold;
	pthread_cond_broadcast(&mem_cond);
	while (t_mem.hold)
		pthread_cond_wait(&mem_cond, &mem_lock);
	pthread_mutex_unlock(&mem_lock);
}

static int mem_sign(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		    uint8_t *sig, size_t *siglen, char *err)
{
	struct mem_key *k;
	int r = 0;

	(void)b;
	mem_wait_turn();
	pthread_mutex_lock(&mem_lock);
	k = mem_find(id);
	if (t_mem.sign_err)
		r = sigfs_seterr(err, t_mem.sign_err, T_MEM_DOWN);
	else if (!k)
		r = sigfs_seterr(err, -ENOENT, "mem: no key %s", id);
	else if (!in->digest)
		r = mem_sign_message(k->pk, in, sig, siglen);
	else if (*siglen < 3 + in->len)
		r = -ENOSPC;
	pthread_mutex_unlock(&mem_lock);
	if (r == 0 && in->digest) {
		memcpy(sig, "MEM", 3);
		memcpy(sig + 3, in->data, in->len);
		*siglen = 3 + in->len;
	}
	return r;
}

static int mem_list(struct sigfs_backend *b, char ***ids, size_t *n, char *err)
{
	(void)b;
	(void)err;
	pthread_mutex_lock(&mem_lock);
	t_mem.lists++;
	*ids = calloc(MEM_KEYS, sizeof(**ids));
	*n = 0;
	for (size_t i = 0; i < MEM_KEYS && *ids; i++)
		if (mem_keys[i].pk)
			(*ids)[(*n)++] = strdup(mem_keys[i].id);
	pthread_mutex_unlock(&mem_lock);
	return *ids ? 0 : -ENOMEM;
}

static const struct sigfs_backend_ops mem_ops = {
	.type = "mem",
	.open = mem_open,
	.close = mem_close,
	.generate = mem_generate,
	.remove = mem_remove,
	.public_key = mem_public_key,
	.sign = mem_sign,
	.list = mem_list,
};

static struct sigfs_backend mem_backend = { .ops = &mem_ops };

size_t t_mem_count(void)
{
	size_t n = 0;

	pthread_mutex_lock(&mem_lock);
	for (size_t i = 0; i < MEM_KEYS; i++)
		n += mem_keys[i].pk != NULL;
	pthread_mutex_unlock(&mem_lock);
	return n;
}

void t_mem_wait_held(void)
{
	pthread_mutex_lock(&mem_lock);
	while (!t_mem.held)
		pthread_cond_wait(&mem_cond, &mem_lock);
	pthread_mutex_unlock(&mem_lock);
}

void t_mem_release(void)
{
	pthread_mutex_lock(&mem_lock);
	t_mem.hold = false;
	t_mem.held = false;
	pthread_cond_broadcast(&mem_cond);
	pthread_mutex_unlock(&mem_lock);
}

void t_mem_reset(void)
{
	pthread_mutex_lock(&mem_lock);
	for (size_t i = 0; i < MEM_KEYS; i++)
		EVP_PKEY_free(mem_keys[i].pk);
	memset(mem_keys, 0, sizeof(mem_keys));
	memset(&t_mem, 0, sizeof(t_mem));
	pthread_mutex_unlock(&mem_lock);
}

static const struct sigfs_backend_ops *mem_type(const char *type)
{
	(void)type;
	return &mem_ops;
}

static time_t t_wall(void)
{
	return __atomic_load_n(&t_wall_now, __ATOMIC_RELAXED);
}

static void t_mono(struct timespec *ts)
{
	long long ms = __atomic_load_n(&t_mono_ms, __ATOMIC_RELAXED);

	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000;
}

const struct sigfs_env t_env = { .backend_type = mem_type, .wall = t_wall, .mono = t_mono };

void t_store_open(struct t_store *s, const char *tag)
{
	char path[512], err[SIGFS_ERRLEN] = "";
	FILE *f;

	memset(s, 0, sizeof(*s));
	t_mem_reset();
	assert_int_equal(t_mkdtemp(s->dir, sizeof(s->dir), tag), 0);
	snprintf(path, sizeof(path), "%s/sigfs.conf", s->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[sigfs]\nstate_dir = %s\nworkers = 1\n[keys]\nbackend = soft\n", s->dir);
	fclose(f);
	assert_int_equal(sigfs_config_load(path, &s->cfg, err), 0);
	s->state_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(s->state_fd >= 0);
	assert_int_equal(sigfs_audit_open(s->state_fd, "audit.log", &s->audit, err), 0);
	if (sigfs_keys_open_env(&s->cfg, s->state_fd, s->audit, &t_env, &s->ks, err) != 0)
		fail_msg("open the key store: %s", err);
}

void t_store_close_keys(struct t_store *s)
{
	sigfs_keys_close(s->ks);
	s->ks = NULL;
}

void t_store_close(struct t_store *s)
{
	t_store_close_keys(s);
	sigfs_audit_close(s->audit);
	close(s->state_fd);
	sigfs_config_free(&s->cfg);
	t_run("rm -rf '%s'", s->dir);
	t_mem_reset();
}

long t_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return (long)n;
}
