/* nodes.c: the node id table of nodes.h, a chained hash table under one mutex. */
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

struct fs_nodes {
	pthread_mutex_t lock;
	struct ent *buckets[NBUCKETS];
};

int fs_nodes_new(struct fs_nodes **out)
{
	struct fs_nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void fs_nodes_free(struct fs_nodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (t->buckets[i]) {
			struct ent *e = t->buckets[i];

			t->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct ent **slot(struct fs_nodes *t, uint64_t id)
{
	struct ent **pp = &t->buckets[(id ^ (id >> 16)) % NBUCKETS];

	while (*pp && (*pp)->n.id != id)
		pp = &(*pp)->next;
	return pp;
}

int fs_nodes_put(struct fs_nodes *t, uint64_t id, uint64_t parent, enum fs_kind kind,
		 const char *key, const char *name)
{
	struct ent **pp, *e;

	if (strlen(key) >= sizeof(e->n.key) || strlen(name) >= sizeof(e->n.name))
		return -ENAMETOOLONG;
	pthread_mutex_lock(&t->lock);
	pp = slot(t, id);
	e = *pp;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			pthread_mutex_unlock(&t->lock);
			return -ENOMEM;
		}
		*pp = e;
	}
	e->n.id = id;
	e->n.parent = parent;
	e->n.kind = kind;
	strcpy(e->n.key, key);
	strcpy(e->n.name, name);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int fs_nodes_get(struct fs_nodes *t, uint64_t id, struct fs_node *out)
{
	struct ent *e;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	e = *slot(t, id);
	if (e) {
		*out = e->n;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void fs_nodes_del(struct fs_nodes *t, uint64_t id)
{
	struct ent **pp, *e;

	pthread_mutex_lock(&t->lock);
	pp = slot(t, id);
	e = *pp;
	if (e) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&t->lock);
}
