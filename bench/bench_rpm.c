/* Microbenchmark of the runtime-PM fast path: rpm_get()/rpm_put() pairs on
 * an ACTIVE device whose usage count is held at 1, so no pair ever
 * reaches 0 and no transition is attempted.
 *
 * For 1 and 2 threads: 5 runs of PAIRS pairs per thread, median ns per
 * pair (wall time of a run / pairs per thread: what each caller pays).
 * Context switches of each measuring thread (getrusage RUSAGE_THREAD) are
 * printed before/after: a blocking syscall or a contended mutex would show
 * as voluntary switches; involuntary ones are preemption by the scheduler.
 *
 * Last line, machine-readable:
 *   rpm: ns_per_pair_1t=X ns_per_pair_2t=Y
 *
 * RPM_BENCH_PAIRS overrides PAIRS (default 10000000). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pm/rpm.h"

#define RUNS 5
#define MAX_THREADS 2

static atomic_long suspends, resumes;

static int b_suspend(void *ctx)
{
	atomic_fetch_add(&suspends, 1);
	return 0;
}

static int b_resume(void *ctx)
{
	atomic_fetch_add(&resumes, 1);
	return 0;
}

static const struct rpm_ops bench_ops = { .suspend = b_suspend, .resume = b_resume };

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

struct worker {
	struct rpm *r;
	long pairs;
	pthread_barrier_t *start;
	uint64_t ns;
	long nvcsw, nivcsw;   /* deltas over the timed loop */
	int errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rusage a, b;
	pthread_barrier_wait(w->start);
	getrusage(RUSAGE_THREAD, &a);
	uint64_t t0 = now_ns();
	for (long i = 0; i < w->pairs; i++) {
		w->errors |= rpm_get(w->r);
		rpm_put(w->r);
	}
	w->ns = now_ns() - t0;
	getrusage(RUSAGE_THREAD, &b);
	w->nvcsw = b.ru_nvcsw - a.ru_nvcsw;
	w->nivcsw = b.ru_nivcsw - a.ru_nivcsw;
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Returns the median ns per pair; adds context switches to vol and invol. */
static double measure(struct rpm *r, int nthreads, long pairs, long *vol, long *invol)
{
	double per[RUNS];
	for (int run = 0; run < RUNS; run++) {
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, (unsigned)nthreads);
		struct worker w[MAX_THREADS];
		pthread_t t[MAX_THREADS];
		for (int i = 0; i < nthreads; i++) {
			w[i] = (struct worker){ .r = r, .pairs = pairs, .start = &start };
			if (pthread_create(&t[i], NULL, worker_main, &w[i])) {
				perror("pthread_create");
				exit(1);
			}
		}
		uint64_t worst = 0;
		for (int i = 0; i < nthreads; i++) {
			pthread_join(t[i], NULL);
			if (w[i].errors) {
				fprintf(stderr, "bench_rpm: rpm_get failed\n");
				exit(1);
			}
			if (w[i].ns > worst)
				worst = w[i].ns;
			*vol += w[i].nvcsw;
			*invol += w[i].nivcsw;
		}
		pthread_barrier_destroy(&start);
		per[run] = (double)worst / (double)pairs;
		printf("  %dt run %d: %.2f ns/pair\n", nthreads, run + 1, per[run]);
	}
	qsort(per, RUNS, sizeof(per[0]), cmp_double);
	return per[RUNS / 2];
}

int main(void)
{
	const char *s = getenv("RPM_BENCH_PAIRS");
	long pairs = s ? strtol(s, NULL, 10) : 0;
	if (pairs <= 0)
		pairs = 10000000;

	struct rpm_wq *wq;
	if (rpm_wq_create(&wq)) {
		fprintf(stderr, "bench_rpm: rpm_wq_create failed\n");
		return 1;
	}
	struct rpm r;
	rpm_init(&r, &bench_ops, NULL, wq);
	if (rpm_get(&r)) {   /* hold usage at 1: every pair stays on the fast path */
		fprintf(stderr, "bench_rpm: rpm_get failed\n");
		return 1;
	}

	/* warm-up */
	for (long i = 0; i < pairs / 10; i++) {
		rpm_get(&r);
		rpm_put(&r);
	}

	printf("bench_rpm: %ld pairs per thread, %d runs, median\n", pairs, RUNS);
	long vol1 = 0, invol1 = 0, vol2 = 0, invol2 = 0;
	double ns1 = measure(&r, 1, pairs, &vol1, &invol1);
	double ns2 = measure(&r, 2, pairs, &vol2, &invol2);

	printf("context switches in the timed loops (all runs, all threads): "
	       "1t voluntary=%ld involuntary=%ld; 2t voluntary=%ld involuntary=%ld\n",
	       vol1, invol1, vol2, invol2);
	printf("callbacks during the benchmark: suspend=%ld resume=%ld; final usage=%d status=%s\n",
	       atomic_load(&suspends), atomic_load(&resumes), rpm_usage(&r),
	       rpm_status_name(rpm_status(&r)));
	printf("2t aggregate throughput: %.2f ns/pair\n", ns2 / 2);
	printf("rpm: ns_per_pair_1t=%.2f ns_per_pair_2t=%.2f\n", ns1, ns2);

	/* Timings are reported, never asserted; leaving the fast path is a
	 * bug. Voluntary switches are only warned about: something outside
	 * (a tracer, a cgroup freeze) can cause them too. */
	int bad = atomic_load(&suspends) || atomic_load(&resumes) || rpm_usage(&r) != 1;
	if (vol1 || vol2)
		fprintf(stderr, "bench_rpm: warning: voluntary context switches in the "
				"timed loops (a blocking call, or a tracer?)\n");
	rpm_put_noidle(&r);
	rpm_fini(&r);
	rpm_wq_destroy(wq);
	if (bad)
		fprintf(stderr, "bench_rpm: the fast path ran a transition (see above)\n");
	return bad ? 1 : 0;
}
