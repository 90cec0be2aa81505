/* Runtime PM core: usage count, status machine, asynchronous idle
 * suspend with an optional autosuspend delay, power_control. The model of Linux's drivers/base/power/runtime.c, in userspace.
 *
 * Fast path: rpm_get()/rpm_put() on an ACTIVE device are one atomic
 * read-modify-write each, with no lock and no syscall.
 *
 * Ordering argument (why the fast path is safe): a getter increments
 * usage and then reads status; the suspender stores SUSPENDING and then
 * re-reads usage. Both are sequentially consistent, so at least one sees
 * the other: either the getter sees a non-ACTIVE status and takes the
 * slow path (waiting for the suspend and resuming), or the suspender sees
 * usage > 0 and backs out.
 *
 * Locks: r->lock ("PM lock") protects status transitions, settings and the
 * queue entry; callbacks run with no lock held and may sleep. Suspend and
 * resume callbacks of one device never run concurrently.
 */
#ifndef VFPM_RPM_H
#define VFPM_RPM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/lock.h"

#include "pm/clock.h"

enum rpm_status { RPM_ACTIVE = 0, RPM_SUSPENDING, RPM_SUSPENDED, RPM_RESUMING };

struct rpm;
struct rpm_wq;

struct rpm_ops {
	/* Return 0 or a negative errno (the device then stays ACTIVE). */
	int (*suspend)(void *ctx);
	/* Return 0 or a negative errno (the device then stays SUSPENDED). */
	int (*resume)(void *ctx);
	/* Optional: a suspend or resume has finished and its status and
	 * counters are updated (no lock held). */
	void (*settled)(void *ctx);
};

struct rpm {
	atomic_int usage;
	atomic_int status;          /* enum rpm_status */
	mutex_t lock;
	pthread_cond_t cv;          /* status changes */
	const struct rpm_ops *ops;
	void *ctx;
	struct rpm_wq *wq;
	bool power_on;              /* power_control=on holds a reference */
	int autosuspend_delay_ms;   /* < 0: never autosuspend (as Linux) */
	bool queued;                /* an idle check is in the work queue */
	unsigned wq_running;        /* workers running its idle check (wq's lock) */
	uint64_t due_ns;            /* when the queued check may suspend (wq's clock) */
	struct rpm *next;           /* work queue list */
	uint64_t suspends, resumes, suspend_errors, resume_errors;
	uint64_t underflows;        /* puts that found the count at 0 */
	bool dead;                  /* being destroyed: no new suspends */
};

/* The work queue that runs queued idle suspends (Linux's pm_wq). Due
 * suspends of different devices run concurrently, each on a worker thread
 * of a pool of at most RPM_WQ_MAX_WORKERS, so a suspend that blocks holds
 * up only its own device. A worker is started when entries are queued and
 * every worker is busy; one that finishes while another is free exits, so
 * an idle queue is one thread, blocked with no timeout. Past the bound,
 * due suspends wait in the queue (earliest due first) until a worker is
 * free. Due times are on the monotonic clock. */
#define RPM_WQ_MAX_WORKERS 16u
int rpm_wq_create(struct rpm_wq **out);
/* The same with a bound of max_workers (>= 1) threads: -EINVAL for 0. */
int rpm_wq_create_bounded(struct rpm_wq **out, unsigned max_workers);
/* A queue with no thread, for tests: queued idle suspends run only when
 * the caller steps the queue, and their due times are read on clock. */
int rpm_wq_create_manual(struct rpm_wq **out, const struct pm_clock *clock);
void rpm_wq_destroy(struct rpm_wq *wq);
/* Manual queue: runs, on the calling thread, every queued idle suspend
 * whose due time has come on the queue's clock (also those queued while
 * it runs, once due), earliest first. Returns how many ran, or -EINVAL
 * on a threaded queue. */
int rpm_wq_step(struct rpm_wq *wq);
/* Whether anything is queued; if so *due_ns is the earliest due time. */
bool rpm_wq_next_due(struct rpm_wq *wq, uint64_t *due_ns);
/* Worker threads alive now (0 for a manual queue). */
unsigned rpm_wq_workers(struct rpm_wq *wq);
/* The clock of wq's due times: the monotonic clock for NULL. */
const struct pm_clock *rpm_wq_clock(const struct rpm_wq *wq);

/* Initial state: ACTIVE, usage 0, power_control auto, delay 0. The
 * caller decides when to allow the first idle suspend (rpm_idle). */
void rpm_init(struct rpm *r, const struct rpm_ops *ops, void *ctx, struct rpm_wq *wq);
/* Waits for any transition in flight and removes r from the queue. */
void rpm_fini(struct rpm *r);

/* Increments usage and resumes synchronously if needed. On a resume
 * failure the reference is kept (Linux pm_runtime_get_sync) and the errno
 * returned. */
int rpm_get(struct rpm *r);
/* Same, but a failure drops the reference (pm_runtime_resume_and_get). */
int rpm_resume_and_get(struct rpm *r);
/* Increments usage without resuming, after waiting for a suspend or resume
 * in flight to finish; returns the settled status (ACTIVE or SUSPENDED),
 * which the reference then holds: no suspend starts while it is held. */
enum rpm_status rpm_get_settled(struct rpm *r);
void rpm_get_noresume(struct rpm *r);
/* Decrements usage; at 0 queues an idle suspend (after the autosuspend
 * delay, 0 by default). */
void rpm_put(struct rpm *r);
/* Decrements usage and returns whether it reached 0, without queueing the
 * idle suspend: the caller calls rpm_idle() when it is done (e.g. after
 * sending a reply, so the work-queue wakeup is off the reply's path). */
bool rpm_put_deferred(struct rpm *r);
/* Decrements usage without an idle check. */
void rpm_put_noidle(struct rpm *r);
/* Queues an idle check now (e.g. once a device is set up). */
void rpm_idle(struct rpm *r);
/* Resumes without taking a reference (host-side resume); the device may
 * suspend again afterwards if idle. */
int rpm_resume(struct rpm *r);

/* power_control: on takes a reference and resumes; auto drops it. */
int rpm_set_power_on(struct rpm *r, bool on);
void rpm_set_autosuspend_delay(struct rpm *r, int ms);


static inline enum rpm_status rpm_status(struct rpm *r)
{
	return (enum rpm_status)atomic_load(&r->status);
}

static inline int rpm_usage(struct rpm *r)
{
	return atomic_load(&r->usage);
}

const char *rpm_status_name(enum rpm_status s);

/* Counters and power_control, read together under the PM lock. */
struct rpm_stats {
	bool power_on;
	uint64_t suspends, resumes, suspend_errors, resume_errors, underflows;
};
void rpm_get_stats(struct rpm *r, struct rpm_stats *out);

#endif
