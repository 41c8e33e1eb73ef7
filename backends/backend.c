/*
 * backend.c: the table of backend drivers. Adding a driver is one row here
 * and one file beside this one; nothing else switches on a backend type.
 */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"

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
