/* What a benchmark reads of a process in /proc: CPU time and context
 * switches summed over its threads, thread and descriptor counts. */
#ifndef VFPM_BENCH_PROCSTAT_H
#define VFPM_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct proc_sample {
	uint64_t run_ns;       /* schedstat: time on CPU, all threads */
	uint64_t ticks;        /* utime + stime of the process */
	uint64_t vol, invol;   /* context switches, all threads */
	unsigned threads;
	unsigned fds;
};

/* Returns 0 or a negative errno. */
int sample_proc(pid_t pid, struct proc_sample *s);

#endif
