/* loop.c: the timing loop of the baseline tools (loop.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"

struct thread {
	const struct bench_loop *b;
	pthread_t tid;
	unsigned index;
	uint64_t done;
	int r;                        /* the failure that stopped it, 0 if none */
	char err[BENCH_ERRLEN];
};

static atomic_bool stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct thread *t = arg;
	void *state = NULL;

	while (!atomic_load(&stop)) {
		t->r = t->b->sign(t->index, &state, t->err);
		if (t->r < 0)
			break;
		t->done++;
	}
	if (t->b->done)
		t->b->done(t->index, state);
	return NULL;
}

int bench_loop_run(const struct bench_loop *b)
{
	struct thread *ts = calloc(b->threads, sizeof(*ts));
	struct timespec left = { (time_t)b->seconds,
				 (long)((b->seconds - (double)(time_t)b->seconds) * 1e9) };
	uint64_t total = 0;
	unsigned started = 0;
	int status = 0;
	double t0, secs;

	if (!ts) {
		fprintf(stderr, "%s: out of memory\n", b->prog);
		return 1;
	}
	t0 = now();
	for (; started < b->threads; started++) {
		int r;

		ts[started].b = b;
		ts[started].index = started;
		r = pthread_create(&ts[started].tid, NULL, run, &ts[started]);
		if (r) {
			fprintf(stderr, "%s: pthread_create: %s\n", b->prog, strerror(r));
			status = 1;
			break;
		}
	}
	while (status == 0 && nanosleep(&left, &left) < 0 && errno == EINTR)
		;
	atomic_store(&stop, true);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
		total += ts[i].done;
		if (ts[i].r < 0) {
			fprintf(stderr, "%s: thread %u: %s\n", b->prog, i, ts[i].err);
			status = 1;
		}
	}
	secs = now() - t0;
	printf("signatures: %llu seconds: %.3f threads: %u\n", (unsigned long long)total, secs,
	       b->threads);
	printf("signatures/s: %.1f\n", (double)total / secs);
	free(ts);
	return status;
}
