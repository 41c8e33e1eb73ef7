/* fhtab.c: the handle table of fhtab.h, a chained hash table under one mutex that grows. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fs/fhtab.h"

#define MIN_BUCKETS 64

struct ent {
	uint64_t id;
	enum fs_fh_kind kind;
	void *p;
	struct ent *next;
};

struct fs_fhtab {
	pthread_mutex_t lock;
	uint32_t tag;
	uint32_t counter;             /* the last id issued under tag */
	size_t count;
	size_t nbuckets;              /* a power of two */
	struct ent **buckets;
	size_t pop_at;                /* where fs_fhtab_pop looks first */
};

/*
 * A random nonzero tag other than old. It only has to differ from the tags
 * of other processes on the same connection, so when the kernel has no
 * random bytes yet (early boot) the clock and the pid do.
 */
static uint32_t new_tag(uint32_t old)
{
	uint32_t tag = 0;
	struct timespec ts;

	while (tag == 0 || tag == old) {
		if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) != sizeof(tag)) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			tag ^= (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16) ^ (uint32_t)ts.tv_sec;
		}
	}
	return tag;
}

int fs_fhtab_new(struct fs_fhtab **out)
{
	struct fs_fhtab *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->nbuckets = MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->tag = new_tag(0);
	*out = t;
	return 0;
}

void fs_fhtab_free(struct fs_fhtab *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		while (t->buckets[i]) {
			struct ent *e = t->buckets[i];

			t->buckets[i] = e->next;
			free(e);
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

uint32_t fs_fhtab_tag(struct fs_fhtab *t)
{
	uint32_t tag;

	pthread_mutex_lock(&t->lock);
	tag = t->tag;
	pthread_mutex_unlock(&t->lock);
	return tag;
}

/* Ids differ mostly in their low bits: mix them all into the bucket index. */
static size_t bucket(size_t nbuckets, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id & (nbuckets - 1);
}

static struct ent **slot(struct fs_fhtab *t, uint64_t id)
{
	struct ent **pp = &t->buckets[bucket(t->nbuckets, id)];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

/* Twice the buckets once there are more entries than buckets (lock held); best effort. */
static void grow(struct fs_fhtab *t)
{
	size_t n = t->nbuckets * 2;
	struct ent **b;

	if (t->count <= t->nbuckets)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;         /* longer chains, still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		while (t->buckets[i]) {
			struct ent *e = t->buckets[i];
			size_t j = bucket(n, e->id);

			t->buckets[i] = e->next;
			e->next = b[j];
			b[j] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/* Insert a new entry at *pp (lock held); 0 or -ENOMEM. */
static int insert(struct fs_fhtab *t, struct ent **pp, uint64_t id, enum fs_fh_kind kind, void *p)
{
	struct ent *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->id = id;
	e->kind = kind;
	e->p = p;
	*pp = e;
	t->count++;
	grow(t);
	return 0;
}

int fs_fhtab_add(struct fs_fhtab *t, enum fs_fh_kind kind, void *p, uint64_t *id)
{
	struct ent **pp;
	uint64_t next;
	int r;

	pthread_mutex_lock(&t->lock);
	do {
		/* After 2^32 opens a new tag keeps the new ids apart from the old. */
		if (t->counter == UINT32_MAX) {
			t->tag = new_tag(t->tag);
			t->counter = 0;
		}
		next = (uint64_t)t->tag << 32 | ++t->counter;
		pp = slot(t, next);
	} while (*pp);          /* adopted from a process that drew the same tag */
	r = insert(t, pp, next, kind, p);
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		*id = next;
	return r;
}

void *fs_fhtab_get(struct fs_fhtab *t, uint64_t id, enum fs_fh_kind kind)
{
	struct ent *e;
	void *p = NULL;

	pthread_mutex_lock(&t->lock);
	e = *slot(t, id);
	if (e && e->kind == kind)
		p = e->p;
	pthread_mutex_unlock(&t->lock);
	return p;
}

int fs_fhtab_adopt(struct fs_fhtab *t, uint64_t id, enum fs_fh_kind kind, void *p, void **out)
{
	struct ent **pp;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	pp = slot(t, id);
	if (!*pp)
		r = insert(t, pp, id, kind, p);
	else if ((*pp)->kind != kind)
		r = -EBADF;
	else
		p = (*pp)->p;
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		*out = p;
	return r;
}

int fs_fhtab_del(struct fs_fhtab *t, uint64_t id, const void *p)
{
	struct ent **pp, *e;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	pp = slot(t, id);
	e = *pp;
	if (e && e->p == p) {
		*pp = e->next;
		t->count--;
		free(e);
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void *fs_fhtab_pop(struct fs_fhtab *t, enum fs_fh_kind *kind)
{
	void *p = NULL;

	pthread_mutex_lock(&t->lock);
	/* From where the last pop ended, so that emptying the table is linear. */
	for (size_t n = 0; n < t->nbuckets && !p; n++) {
		size_t i = (t->pop_at + n) & (t->nbuckets - 1);
		struct ent *e = t->buckets[i];

		if (e) {
			t->pop_at = i;
			t->buckets[i] = e->next;
			t->count--;
			*kind = e->kind;
			p = e->p;
			free(e);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return p;
}

size_t fs_fhtab_count(struct fs_fhtab *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
