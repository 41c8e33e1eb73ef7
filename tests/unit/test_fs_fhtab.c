/*
 * test_fs_fhtab.c: the front end's handle table (fs/fhtab.h), which turns the
 * ids the kernel holds in fi->fh into handles: what is added is found under
 * its id and kind only, ids carry the table's tag and are never reused, ids
 * of another table (another daemon process) are not found until adopted, an
 * adopted id is never issued again, many entries and threads adding,
 * adopting and deleting at once keep every id apart.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fs/fhtab.h"

/* The table never looks behind its pointers: numbers stand for handles. */
#define P(i) ((void *)(uintptr_t)(0x1000 + (i)))

static void test_add_get_del(void **state)
{
	struct fs_fhtab *t;
	uint64_t a, b;

	(void)state;
	assert_int_equal(fs_fhtab_new(&t), 0);
	assert_int_not_equal(fs_fhtab_tag(t), 0);
	assert_int_equal(fs_fhtab_add(t, FS_FH_FILE, P(1), &a), 0);
	assert_int_equal(fs_fhtab_add(t, FS_FH_DIR, P(2), &b), 0);
	assert_int_not_equal(a, b);
	/* (tag << 32) | counter, the counter never 0: an id is never 0 either. */
	assert_int_equal(a >> 32, fs_fhtab_tag(t));
	assert_int_equal(b >> 32, fs_fhtab_tag(t));
	assert_int_not_equal(a & 0xffffffffu, 0);
	assert_int_equal(fs_fhtab_count(t), 2);
	assert_ptr_equal(fs_fhtab_get(t, a, FS_FH_FILE), P(1));
	assert_ptr_equal(fs_fhtab_get(t, b, FS_FH_DIR), P(2));
	/* A file's id is no directory's, and the other way round. */
	assert_null(fs_fhtab_get(t, a, FS_FH_DIR));
	assert_null(fs_fhtab_get(t, b, FS_FH_FILE));
	/* del takes the entry out only when it holds the pointer given. */
	assert_int_equal(fs_fhtab_del(t, a, P(2)), -ENOENT);
	assert_ptr_equal(fs_fhtab_get(t, a, FS_FH_FILE), P(1));
	assert_int_equal(fs_fhtab_del(t, a, P(1)), 0);
	assert_null(fs_fhtab_get(t, a, FS_FH_FILE));
	assert_int_equal(fs_fhtab_del(t, a, P(1)), -ENOENT);
	assert_int_equal(fs_fhtab_count(t), 1);
	assert_ptr_equal(fs_fhtab_get(t, b, FS_FH_DIR), P(2));
	fs_fhtab_free(t);
	fs_fhtab_free(NULL);
}

static void test_unknown_ids(void **state)
{
	struct fs_fhtab *t;
	uint64_t id, tag;

	(void)state;
	assert_int_equal(fs_fhtab_new(&t), 0);
	tag = fs_fhtab_tag(t);
	assert_null(fs_fhtab_get(t, 0, FS_FH_FILE));
	assert_int_equal(fs_fhtab_add(t, FS_FH_FILE, P(1), &id), 0);
	/* Our tag, but not issued: the next one, an old pointer, the bare counter. */
	assert_null(fs_fhtab_get(t, id + 1, FS_FH_FILE));
	assert_null(fs_fhtab_get(t, tag << 32, FS_FH_FILE));
	assert_null(fs_fhtab_get(t, 0x00007f1234567890ULL, FS_FH_FILE));
	assert_null(fs_fhtab_get(t, id & 0xffffffffu, FS_FH_FILE));
	assert_null(fs_fhtab_get(t, UINT64_MAX, FS_FH_DIR));
	assert_int_equal(fs_fhtab_del(t, id + 1, P(1)), -ENOENT);
	assert_int_equal(fs_fhtab_count(t), 1);
	fs_fhtab_free(t);
}

/* A process that restarted on the same connection: the new table knows nothing of the old. */
static void test_other_tag(void **state)
{
	struct fs_fhtab *old, *new;
	uint64_t id, mine;
	void *got = NULL;

	(void)state;
	assert_int_equal(fs_fhtab_new(&old), 0);
	assert_int_equal(fs_fhtab_new(&new), 0);
	/* 32 random bits each: equal once in 4 billion runs. */
	assert_int_not_equal(fs_fhtab_tag(old), fs_fhtab_tag(new));
	assert_int_equal(fs_fhtab_add(old, FS_FH_FILE, P(1), &id), 0);
	assert_int_equal(fs_fhtab_add(new, FS_FH_FILE, P(7), &mine), 0);
	assert_int_not_equal(id, mine);
	assert_null(fs_fhtab_get(new, id, FS_FH_FILE));
	assert_int_equal(fs_fhtab_del(new, id, P(1)), -ENOENT);

	/* Adopted under the old id, it is found there; a second adopter gets the first's. */
	assert_int_equal(fs_fhtab_adopt(new, id, FS_FH_FILE, P(2), &got), 0);
	assert_ptr_equal(got, P(2));
	assert_ptr_equal(fs_fhtab_get(new, id, FS_FH_FILE), P(2));
	assert_int_equal(fs_fhtab_adopt(new, id, FS_FH_FILE, P(3), &got), 0);
	assert_ptr_equal(got, P(2));
	/* A file's id cannot be adopted as a directory's. */
	got = NULL;
	assert_int_equal(fs_fhtab_adopt(new, id, FS_FH_DIR, P(4), &got), -EBADF);
	assert_null(got);
	assert_int_equal(fs_fhtab_count(new), 2);
	assert_int_equal(fs_fhtab_del(new, id, P(2)), 0);
	assert_null(fs_fhtab_get(new, id, FS_FH_FILE));
	/* The old table is untouched. */
	assert_ptr_equal(fs_fhtab_get(old, id, FS_FH_FILE), P(1));
	fs_fhtab_free(old);
	fs_fhtab_free(new);
}

/* An adopted id that has the table's own tag (a process before drew it too) is not issued again. */
static void test_adopted_id_not_issued(void **state)
{
	struct fs_fhtab *t;
	uint64_t a, b;
	void *got;

	(void)state;
	assert_int_equal(fs_fhtab_new(&t), 0);
	assert_int_equal(fs_fhtab_add(t, FS_FH_FILE, P(1), &a), 0);
	assert_int_equal(fs_fhtab_adopt(t, a + 1, FS_FH_FILE, P(2), &got), 0);
	assert_int_equal(fs_fhtab_add(t, FS_FH_FILE, P(3), &b), 0);
	assert_int_equal(b, a + 2);
	assert_ptr_equal(fs_fhtab_get(t, a + 1, FS_FH_FILE), P(2));
	assert_ptr_equal(fs_fhtab_get(t, b, FS_FH_FILE), P(3));
	fs_fhtab_free(t);
}

/* A released id does not come back: a late op on it finds nothing, not someone else's file. */
static void test_ids_not_reused(void **state)
{
	struct fs_fhtab *t;
	uint64_t id, last = 0;

	(void)state;
	assert_int_equal(fs_fhtab_new(&t), 0);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(fs_fhtab_add(t, FS_FH_FILE, P(1), &id), 0);
		assert_true(id > last);
		last = id;
		assert_int_equal(fs_fhtab_del(t, id, P(1)), 0);
	}
	assert_int_equal(fs_fhtab_count(t), 0);
	fs_fhtab_free(t);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Enough entries to grow the table many times; all stay reachable through the growth. */
static void test_many_entries(void **state)
{
	enum { N = 200000 };
	uint64_t *ids = calloc(N, sizeof(*ids)), *sorted = calloc(N, sizeof(*sorted));
	enum fs_fh_kind kind;
	struct fs_fhtab *t;
	size_t popped = 0;
	void *p;

	(void)state;
	assert_non_null(ids);
	assert_non_null(sorted);
	assert_int_equal(fs_fhtab_new(&t), 0);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(fs_fhtab_add(t, i % 3 ? FS_FH_FILE : FS_FH_DIR, P(i), &ids[i]), 0);
	assert_int_equal(fs_fhtab_count(t), N);
	memcpy(sorted, ids, N * sizeof(*ids));
	qsort(sorted, N, sizeof(*sorted), cmp_u64);
	for (size_t i = 1; i < N; i++)
		assert_true(sorted[i - 1] < sorted[i]);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(fs_fhtab_get(t, ids[i], i % 3 ? FS_FH_FILE : FS_FH_DIR), P(i));
	for (size_t i = 0; i < N; i += 2)
		assert_int_equal(fs_fhtab_del(t, ids[i], P(i)), 0);
	assert_int_equal(fs_fhtab_count(t), N / 2);
	for (size_t i = 0; i < N; i++) {
		if (i % 2)
			assert_ptr_equal(fs_fhtab_get(t, ids[i], i % 3 ? FS_FH_FILE : FS_FH_DIR), P(i));
		else
			assert_null(fs_fhtab_get(t, ids[i], i % 3 ? FS_FH_FILE : FS_FH_DIR));
	}
	/* What the daemon does at its end with handles the kernel never released. */
	while ((p = fs_fhtab_pop(t, &kind))) {
		size_t i = (size_t)((uintptr_t)p - 0x1000);

		assert_true(i % 2);
		assert_int_equal(kind, i % 3 ? FS_FH_FILE : FS_FH_DIR);
		popped++;
	}
	assert_int_equal(popped, N / 2);
	assert_int_equal(fs_fhtab_count(t), 0);
	fs_fhtab_free(t);
	free(ids);
	free(sorted);
}

enum { THREADS = 8, PER_THREAD = 20000, SHARED = 2000 };

struct worker {
	struct fs_fhtab *t;
	int n;
	uint64_t ids[PER_THREAD];
	void *won[SHARED];          /* what adopting each shared id gave this thread */
	int bad;
};

/* Old ids all threads adopt at once, as parallel reads of one NFS handle after a restart do. */
static uint64_t shared_id(int i)
{
	return 0xabcd000000000000ULL | (uint64_t)i;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		void *p = P(w->n * PER_THREAD + i);

		if (fs_fhtab_add(w->t, FS_FH_FILE, p, &w->ids[i]) < 0 ||
		    fs_fhtab_get(w->t, w->ids[i], FS_FH_FILE) != p)
			w->bad++;
		/* Delete every other one at once: adds and deletes interleave across threads. */
		if (i % 2 && fs_fhtab_del(w->t, w->ids[i], p) < 0)
			w->bad++;
		if (i < SHARED && fs_fhtab_adopt(w->t, shared_id(i), FS_FH_FILE,
						 P(1000000 + w->n), &w->won[i]) < 0)
			w->bad++;
	}
	for (int i = 0; i < PER_THREAD; i += 2)
		if (fs_fhtab_del(w->t, w->ids[i], P(w->n * PER_THREAD + i)) < 0)
			w->bad++;
	return NULL;
}

static void test_threads(void **state)
{
	struct worker *w = calloc(THREADS, sizeof(*w));
	uint64_t *all = calloc(THREADS * PER_THREAD, sizeof(*all));
	pthread_t th[THREADS];
	struct fs_fhtab *t;

	(void)state;
	assert_non_null(w);
	assert_non_null(all);
	assert_int_equal(fs_fhtab_new(&t), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i].t = t;
		w[i].n = i;
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].bad, 0);
		memcpy(all + i * PER_THREAD, w[i].ids, sizeof(w[i].ids));
	}
	/* Every id issued once, across all threads. */
	qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_u64);
	for (size_t i = 1; i < THREADS * PER_THREAD; i++)
		assert_true(all[i - 1] < all[i]);
	/* Each shared id went to one adopter, and every thread was handed that one. */
	for (int i = 0; i < SHARED; i++) {
		void *p = fs_fhtab_get(t, shared_id(i), FS_FH_FILE);

		assert_non_null(p);
		for (int j = 0; j < THREADS; j++)
			assert_ptr_equal(w[j].won[i], p);
		assert_int_equal(fs_fhtab_del(t, shared_id(i), p), 0);
	}
	assert_int_equal(fs_fhtab_count(t), 0);
	fs_fhtab_free(t);
	free(w);
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_get_del),
		cmocka_unit_test(test_unknown_ids),
		cmocka_unit_test(test_other_tag),
		cmocka_unit_test(test_adopted_id_not_issued),
		cmocka_unit_test(test_ids_not_reused),
		cmocka_unit_test(test_many_entries),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
