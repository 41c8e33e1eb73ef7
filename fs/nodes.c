/* nodes.c: the node id map of nodes.h, a chained hash table under one mutex. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs/nodes.h"

#define NBUCKETS 65536

struct ent {
	struct fs_node n;
	struct ent *next;
};

static struct ent *buckets[NBUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct ent **slot(uint64_t id)
{
	struct ent **pp = &buckets[(id ^ (id >> 16)) % NBUCKETS];

	while (*pp && (*pp)->n.id != id)
		pp = &(*pp)->next;
	return pp;
}

int fs_nodes_put(uint64_t id, uint64_t parent, enum fs_kind kind, const char *key,
		 const char *name)
{
	struct ent **pp, *e;

	if (strlen(key) >= sizeof(e->n.key) || strlen(name) >= sizeof(e->n.name))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&lock);
	pp = slot(id);
	e = *pp;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&lock);
			return -ENOMEM;
		}
		*pp = e;
	}
	e->n.id = id;
	e->n.parent = parent;
	e->n.kind = kind;
	strcpy(e->n.key, key);
	strcpy(e->n.name, name);
	pthread_mutex_unlock(&lock);
	return 0;
}

int fs_nodes_get(uint64_t id, struct fs_node *out)
{
	struct ent *e;
	int r = -ENOENT;

	pthread_mutex_lock(&lock);
	e = *slot(id);
	if (e) {
		*out = e->n;
		r = 0;
	}
	pthread_mutex_unlock(&lock);
	return r;
}

void fs_nodes_del(uint64_t id)
{
	struct ent **pp, *e;

	pthread_mutex_lock(&lock);
	pp = slot(id);
	e = *pp;
	if (e) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&lock);
}
