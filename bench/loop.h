/*
 * loop.h: the timing loop of the baseline tools (backend_loop, p11_sign_loop):
 * THREADS threads sign in a loop for SECONDS, then the totals are printed as
 * `signatures: N seconds: S threads: T` and `signatures/s: X`.
 */
#ifndef SIGFS_BENCH_LOOP_H
#define SIGFS_BENCH_LOOP_H

#define BENCH_ERRLEN 256

struct bench_loop {
	const char *prog;           /* for messages */
	unsigned threads;
	double seconds;
	/*
	 * One signature by thread `thread`: 0, or a negative code with one line
	 * in err (BENCH_ERRLEN bytes), which stops that thread. *state starts
	 * NULL and is the thread's own (a session, say).
	 */
	int (*sign)(unsigned thread, void **state, char *err);
	/* Optional: release a thread's *state when it stops. */
	void (*done)(unsigned thread, void *state);
};

/* Run the loop and print the totals; 0, or 1 if a thread failed (said on stderr). */
int bench_loop_run(const struct bench_loop *b);

#endif
