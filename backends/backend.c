/*
 * backend.c: the table of backend drivers. Adding a driver is one row here
 * and one file beside this one; nothing else switches on a backend type.
 * What every driver does alike is here too: its open ends with
 * sigfs_backend_new, its sign starts with sigfs_backend_check_input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/err.h"

extern const struct sigfs_backend_ops sigfs_backend_soft;
extern const struct sigfs_backend_ops sigfs_backend_pkcs11;
extern const struct sigfs_backend_ops sigfs_backend_nethsm;
extern const struct sigfs_backend_ops sigfs_backend_appliance;

static const struct sigfs_backend_ops *const types[] = {
	&sigfs_backend_soft,
	&sigfs_backend_pkcs11,
	&sigfs_backend_nethsm,
	&sigfs_backend_appliance,
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

const struct sigfs_backend_ops *sigfs_backend_type(const char *type)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (strcmp(types[i]->type, type) == 0)
			return types[i];
	return NULL;
}

void sigfs_backend_list_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int sigfs_backend_new(const struct sigfs_backend_ops *ops, const struct sigfs_backend_conf *conf,
		      void *priv, struct sigfs_backend **out, char *err)
{
	const char *name = conf->name ? conf->name : ops->type;
	struct sigfs_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return sigfs_seterr(err, -ENOMEM, "%s backend %s: out of memory", ops->type, name);
	b->ops = ops;
	b->priv = priv;
	snprintf(b->name, sizeof(b->name), "%s", name);
	*out = b;
	return 0;
}

int sigfs_backend_check_input(const char *type, const char *name, const char *id,
			      const struct sigfs_sign_input *in, char *err)
{
	const char *sep = name ? " " : "";

	if (!name)
		name = "";
	if (in->alg->kind == SIGFS_KIND_ED25519 && in->digest)
		return sigfs_seterr(err, -EINVAL, "%s backend%s%s: Ed25519 key '%s' signs the whole "
				    "file, not a digest; sign the file itself", type, sep, name, id);
	if (in->alg->kind != SIGFS_KIND_ED25519 && (!in->digest || in->len != in->digest->len))
		return sigfs_seterr(err, -EINVAL, "%s backend%s%s: %s key '%s' signs digests only; "
				    "give a digest", type, sep, name, in->alg->name, id);
	return 0;
}

int sigfs_backend_seconds(const struct sigfs_backend_conf *conf, const char *type,
			  const char *key, const char *def, double min, long *ms, char *err)
{
	const char *v = conf->get(conf, key, def);
	char *end;
	double secs = strtod(v, &end);

	if (*end || end == v || !(secs >= min && secs <= 3600))
		return sigfs_seterr(err, -EINVAL, "%s backend %s: %s %s is not a number of seconds "
				    "from %g to 3600", type, conf->name, key, v, min);
	*ms = (long)(secs * 1000);
	return 0;
}

long sigfs_backend_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long sigfs_backend_backoff(long delay, long deadline)
{
	long left = deadline - sigfs_backend_now_ms();

	if (left > 0)
		usleep((useconds_t)(left < delay ? left : delay) * 1000);
	return delay * 2 > 2000 ? 2000 : delay * 2;
}
