/* Runtime PM core. See rpm.h for the model and the ordering argument. */
#include "rpm.h"

#include <errno.h>
#include <stdlib.h>

/* A worker thread's place: joined once it has exited (ZOMBIE), by the next
 * spawn that needs the place or by rpm_wq_destroy. */
struct wq_slot {
	struct rpm_wq *wq;
	pthread_t thread;
	enum { SLOT_FREE, SLOT_LIVE, SLOT_ZOMBIE } state;
};

struct rpm_wq {
	mutex_t mu;     /* everything below */
	pthread_cond_t cv;      /* the leader's: the list changed (CLOCK_MONOTONIC) */
	pthread_cond_t done_cv; /* an entry's run finished, or a worker exited */
	struct rpm *head;
	bool stop;
	bool manual;            /* no thread: rpm_wq_step runs the work */
	bool leader;            /* a free worker is watching the list */
	unsigned nworkers;      /* slots LIVE */
	unsigned max_workers;
	struct wq_slot *slots;  /* max_workers */
	const struct pm_clock *clock;
};

const char *rpm_status_name(enum rpm_status s)
{
	static const char *const n[] = { "active", "suspending", "suspended", "resuming" };
	return (unsigned)s < 4 ? n[s] : "unknown";
}

static void try_suspend(struct rpm *r);

/* wq->mu held. The link to the earliest-due entry, or NULL if empty. */
static struct rpm **wq_earliest(struct rpm_wq *wq) REQUIRES(wq->mu)
{
	struct rpm **pp, **best = NULL;
	for (pp = &wq->head; *pp; pp = &(*pp)->next)
		if (!best || (*pp)->due_ns < (*best)->due_ns)
			best = pp;
	return best;
}

/* wq->mu held; dropped while the suspend is attempted. */
static void wq_run(struct rpm_wq *wq, struct rpm **link) REQUIRES(wq->mu)
{
	struct rpm *r = *link;
	*link = r->next;
	r->next = NULL;
	r->queued = false;
	r->wq_running++;
	mutex_unlock(&wq->mu);
	try_suspend(r);
	mutex_lock(&wq->mu);
	r->wq_running--;
	pthread_cond_broadcast(&wq->done_cv);
}

/* wq->mu held, as the leader: sleeps until an entry is due (with no
 * timeout while the list is empty) and returns its link, or NULL once the
 * queue stops. */
static struct rpm **wq_wait_due(struct rpm_wq *wq) REQUIRES(wq->mu)
{
	while (!wq->stop) {
		struct rpm **best = wq_earliest(wq);
		if (!best) {
			pthread_cond_wait(&wq->cv, &wq->mu);   /* nothing queued: sleep */
			continue;
		}
		if ((*best)->due_ns > pm_clock_now(wq->clock)) {
			/* the monotonic clock's nanoseconds: the cv's clock */
			uint64_t due_ns = (*best)->due_ns;
			struct timespec due = { (time_t)(due_ns / 1000000000u),
						(long)(due_ns % 1000000000u) };
			pthread_cond_timedwait(&wq->cv, &wq->mu, &due);
			continue;
		}
		return best;
	}
	return NULL;
}

static void *wq_worker(void *arg);

/* wq->mu held: joins the workers that have ended (each marked itself a
 * zombie and dropped wq->mu: only its return is left, so the join is
 * short). An ended thread that is not joined keeps its stack mapped: after
 * a burst of suspends up to max_workers - 1 of them did, 8 MiB each. */
static void wq_reap(struct rpm_wq *wq) REQUIRES(wq->mu)
{
	for (unsigned i = 0; i < wq->max_workers; i++) {
		if (wq->slots[i].state != SLOT_ZOMBIE)
			continue;
		pthread_join(wq->slots[i].thread, NULL);
		wq->slots[i].state = SLOT_FREE;
	}
}

/* wq->mu held. One more worker, which becomes the leader, unless the bound
 * is reached or the thread cannot be made: then queued entries wait for a
 * busy worker to finish. */
static int wq_spawn(struct rpm_wq *wq) REQUIRES(wq->mu)
{
	if (wq->stop || wq->nworkers >= wq->max_workers)
		return -EAGAIN;
	struct wq_slot *sl = NULL;
	for (unsigned i = 0; i < wq->max_workers && !sl; i++)
		if (wq->slots[i].state != SLOT_LIVE)
			sl = &wq->slots[i];
	if (sl->state == SLOT_ZOMBIE) {
		/* it has marked itself and dropped wq->mu: only its return is left */
		pthread_join(sl->thread, NULL);
		sl->state = SLOT_FREE;
	}
	int rc = pthread_create(&sl->thread, NULL, wq_worker, sl);
	if (rc)
		return -rc;
	sl->state = SLOT_LIVE;
	wq->nworkers++;
	return 0;
}

/* The free worker is the leader: it waits on the list, with the earliest
 * due time as its timeout (none while the list is empty). When it takes a
 * due entry it stops leading; if more entries are queued, it starts a new
 * leader first (wq_queue does the same for an entry queued while no worker
 * is free). So a suspend that blocks holds up only its own worker, while
 * the others' suspends run on other workers, up to max_workers at once. A
 * worker that finishes while another leads has nothing to do and exits:
 * an idle queue is one thread, blocked with no timeout. */
static void *wq_worker(void *arg)
{
	struct wq_slot *sl = arg;
	struct rpm_wq *wq = sl->wq;
	/* its own name: a worker started from a session thread would
	 * otherwise carry that thread's (ps -L, top -H, tests) */
	pthread_setname_np(pthread_self(), "vfpm-pm-wq");
	mutex_lock(&wq->mu);
	while (!wq->stop && !wq->leader) {
		wq_reap(wq);   /* the workers that ended while we ran */
		wq->leader = true;
		struct rpm **due = wq_wait_due(wq);
		wq->leader = false;
		if (!due)
			break;
		/* others are queued (the head is another entry, or follows it):
		 * they get a leader of their own */
		if (due != &wq->head || (*due)->next)
			wq_spawn(wq);
		wq_run(wq, due);
	}
	wq_reap(wq);   /* those before us; the last to end is reaped by the
			* leader's next turn, a spawn or the destroy */
	sl->state = SLOT_ZOMBIE;
	wq->nworkers--;
	pthread_cond_broadcast(&wq->done_cv);
	mutex_unlock(&wq->mu);
	return NULL;
}

static struct rpm_wq *wq_alloc(const struct pm_clock *clock, bool manual, unsigned max_workers)
{
	struct rpm_wq *wq = calloc(1, sizeof(*wq));
	if (!wq)
		return NULL;
	if (max_workers) {
		wq->slots = calloc(max_workers, sizeof(*wq->slots));
		if (!wq->slots) {
			free(wq);
			return NULL;
		}
		for (unsigned i = 0; i < max_workers; i++)
			wq->slots[i].wq = wq;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&wq->mu, NULL);
	pthread_cond_init(&wq->cv, &ca);
	pthread_cond_init(&wq->done_cv, NULL);
	pthread_condattr_destroy(&ca);
	wq->clock = clock;
	wq->manual = manual;
	wq->max_workers = max_workers;
	return wq;
}

static void wq_free(struct rpm_wq *wq)
{
	pthread_mutex_destroy(&wq->mu);
	pthread_cond_destroy(&wq->cv);
	pthread_cond_destroy(&wq->done_cv);
	free(wq->slots);
	free(wq);
}

int rpm_wq_create_bounded(struct rpm_wq **out, unsigned max_workers)
{
	if (!max_workers)
		return -EINVAL;
	struct rpm_wq *wq = wq_alloc(&pm_clock_monotonic, false, max_workers);
	if (!wq)
		return -ENOMEM;
	/* the first worker now, so that a queue that cannot run fails here */
	mutex_lock(&wq->mu);
	int rc = wq_spawn(wq);
	mutex_unlock(&wq->mu);
	if (rc) {
		wq_free(wq);
		return rc;
	}
	*out = wq;
	return 0;
}

int rpm_wq_create(struct rpm_wq **out)
{
	return rpm_wq_create_bounded(out, RPM_WQ_MAX_WORKERS);
}

int rpm_wq_create_manual(struct rpm_wq **out, const struct pm_clock *clock)
{
	if (!clock)
		return -EINVAL;
	struct rpm_wq *wq = wq_alloc(clock, true, 0);
	if (!wq)
		return -ENOMEM;
	*out = wq;
	return 0;
}

void rpm_wq_destroy(struct rpm_wq *wq)
{
	if (!wq)
		return;
	if (!wq->manual) {
		/* no worker starts once stop is set; each one left exits */
		mutex_lock(&wq->mu);
		wq->stop = true;
		pthread_cond_broadcast(&wq->cv);
		while (wq->nworkers)
			pthread_cond_wait(&wq->done_cv, &wq->mu);
		mutex_unlock(&wq->mu);
		for (unsigned i = 0; i < wq->max_workers; i++)
			if (wq->slots[i].state == SLOT_ZOMBIE)
				pthread_join(wq->slots[i].thread, NULL);
	}
	wq_free(wq);
}

int rpm_wq_step(struct rpm_wq *wq)
{
	if (!wq->manual)
		return -EINVAL;
	int ran = 0;
	mutex_lock(&wq->mu);
	for (;;) {
		struct rpm **best = wq_earliest(wq);
		if (!best || (*best)->due_ns > pm_clock_now(wq->clock))
			break;
		wq_run(wq, best);
		ran++;
	}
	mutex_unlock(&wq->mu);
	return ran;
}

bool rpm_wq_next_due(struct rpm_wq *wq, uint64_t *due_ns)
{
	mutex_lock(&wq->mu);
	struct rpm **best = wq_earliest(wq);
	if (best)
		*due_ns = (*best)->due_ns;
	mutex_unlock(&wq->mu);
	return best != NULL;
}

unsigned rpm_wq_workers(struct rpm_wq *wq)
{
	mutex_lock(&wq->mu);
	unsigned n = wq->nworkers;
	mutex_unlock(&wq->mu);
	return n;
}

const struct pm_clock *rpm_wq_clock(const struct rpm_wq *wq)
{
	return wq ? wq->clock : &pm_clock_monotonic;
}

static void wq_queue(struct rpm *r, int delay_ms)
{
	struct rpm_wq *wq = r->wq;
	if (!wq || delay_ms < 0)
		return;
	mutex_lock(&wq->mu);
	if (!r->dead) {
		/* a new idle restarts the delay */
		r->due_ns = pm_clock_now(wq->clock) + (uint64_t)delay_ms * 1000000u;
		if (!r->queued) {
			r->queued = true;
			r->next = wq->head;
			wq->head = r;
		}
		/* every worker busy (one may be stuck in a suspend): one more */
		if (!wq->leader && !wq->manual)
			wq_spawn(wq);
	}
	mutex_unlock(&wq->mu);
	/* signalled after unlocking: the woken thread does not run straight
	 * into the lock we still hold (two extra context switches) */
	pthread_cond_signal(&wq->cv);
}

void rpm_init(struct rpm *r, const struct rpm_ops *ops, void *ctx, struct rpm_wq *wq)
{
	atomic_init(&r->usage, 0);
	atomic_init(&r->status, RPM_ACTIVE);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->ops = ops;
	r->ctx = ctx;
	r->wq = wq;
	r->power_on = false;
	r->autosuspend_delay_ms = 0;
	r->queued = false;
	r->wq_running = 0;
	r->next = NULL;
	r->suspends = r->resumes = r->suspend_errors = r->resume_errors = r->underflows = 0;
	r->dead = false;
}

void rpm_fini(struct rpm *r)
{
	struct rpm_wq *wq = r->wq;
	/* dead is read under wq->mu (wq_queue) and under r->lock
	 * (try_suspend): write it holding both. */
	if (!wq) {
		mutex_lock(&r->lock);
		r->dead = true;
		mutex_unlock(&r->lock);
	} else {
		mutex_lock(&wq->mu);
		mutex_lock(&r->lock);
		r->dead = true;
		mutex_unlock(&r->lock);
		for (struct rpm **pp = &wq->head; *pp; pp = &(*pp)->next) {
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		}
		r->queued = false;
		while (r->wq_running)
			pthread_cond_wait(&wq->done_cv, &wq->mu);
		mutex_unlock(&wq->mu);
	}
	mutex_lock(&r->lock);
	while (rpm_status(r) == RPM_SUSPENDING || rpm_status(r) == RPM_RESUMING)
		pthread_cond_wait(&r->cv, &r->lock);
	mutex_unlock(&r->lock);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cv);
}

static void try_suspend(struct rpm *r)
{
	mutex_lock(&r->lock);
	if (r->dead || rpm_status(r) != RPM_ACTIVE || atomic_load(&r->usage) > 0) {
		mutex_unlock(&r->lock);
		return;
	}
	atomic_store(&r->status, RPM_SUSPENDING);
	if (atomic_load(&r->usage) > 0) {
		/* a getter came in between: it saw ACTIVE, so it keeps it */
		atomic_store(&r->status, RPM_ACTIVE);
		pthread_cond_broadcast(&r->cv);
		mutex_unlock(&r->lock);
		return;
	}
	mutex_unlock(&r->lock);

	int rc = r->ops->suspend ? r->ops->suspend(r->ctx) : 0;

	mutex_lock(&r->lock);
	if (rc) {
		atomic_store(&r->status, RPM_ACTIVE);
		r->suspend_errors++;
	} else {
		atomic_store(&r->status, RPM_SUSPENDED);
		r->suspends++;
	}
	pthread_cond_broadcast(&r->cv);
	mutex_unlock(&r->lock);
	if (r->ops->settled)
		r->ops->settled(r->ctx);
}

/* Brings r to ACTIVE, waiting for a transition in flight. */
static int resume_slow(struct rpm *r)
{
	mutex_lock(&r->lock);
	for (;;) {
		enum rpm_status st = rpm_status(r);
		if (st == RPM_ACTIVE)
			break;
		if (st != RPM_SUSPENDED) {
			pthread_cond_wait(&r->cv, &r->lock);
			continue;
		}
		atomic_store(&r->status, RPM_RESUMING);
		mutex_unlock(&r->lock);

		int rc = r->ops->resume ? r->ops->resume(r->ctx) : 0;

		mutex_lock(&r->lock);
		if (rc) {
			atomic_store(&r->status, RPM_SUSPENDED);
			r->resume_errors++;
			pthread_cond_broadcast(&r->cv);
			mutex_unlock(&r->lock);
			if (r->ops->settled)
				r->ops->settled(r->ctx);
			return rc;
		}
		atomic_store(&r->status, RPM_ACTIVE);
		r->resumes++;
		pthread_cond_broadcast(&r->cv);
		mutex_unlock(&r->lock);
		if (r->ops->settled)
			r->ops->settled(r->ctx);
		return 0;
	}
	mutex_unlock(&r->lock);
	return 0;
}

int rpm_get(struct rpm *r)
{
	atomic_fetch_add(&r->usage, 1);
	if (atomic_load(&r->status) == RPM_ACTIVE)
		return 0;   /* fast path: no lock, no syscall */
	return resume_slow(r);
}

int rpm_resume_and_get(struct rpm *r)
{
	int rc = rpm_get(r);
	if (rc)
		rpm_put_noidle(r);
	return rc;
}

enum rpm_status rpm_get_settled(struct rpm *r)
{
	atomic_fetch_add(&r->usage, 1);
	enum rpm_status st = rpm_status(r);
	if (st == RPM_ACTIVE || st == RPM_SUSPENDED)
		return st;
	mutex_lock(&r->lock);
	for (;;) {
		st = rpm_status(r);
		if (st == RPM_ACTIVE || st == RPM_SUSPENDED)
			break;
		pthread_cond_wait(&r->cv, &r->lock);
	}
	mutex_unlock(&r->lock);
	return st;
}

void rpm_get_noresume(struct rpm *r)
{
	atomic_fetch_add(&r->usage, 1);
}

/* Returns the new count, or -1 when the count was already 0 (a bug in a
 * caller: the count never goes negative, the event is counted). */
static int dec(struct rpm *r)
{
	int old = atomic_load(&r->usage);
	do {
		if (old <= 0) {
			mutex_lock(&r->lock);
			r->underflows++;
			mutex_unlock(&r->lock);
			return -1;
		}
	} while (!atomic_compare_exchange_weak(&r->usage, &old, old - 1));
	return old - 1;
}

/* The delay is read without the PM lock on the put path: access it
 * atomically (rpm_set_autosuspend_delay may run concurrently). */
static int delay_ms(struct rpm *r)
{
	return __atomic_load_n(&r->autosuspend_delay_ms, __ATOMIC_RELAXED);
}

void rpm_put(struct rpm *r)
{
	if (dec(r) == 0)
		wq_queue(r, delay_ms(r));
}

bool rpm_put_deferred(struct rpm *r)
{
	return dec(r) == 0;
}

void rpm_put_noidle(struct rpm *r)
{
	dec(r);
}

void rpm_idle(struct rpm *r)
{
	if (atomic_load(&r->usage) == 0)
		wq_queue(r, delay_ms(r));
}

int rpm_resume(struct rpm *r)
{
	rpm_get_noresume(r);
	int rc = atomic_load(&r->status) == RPM_ACTIVE ? 0 : resume_slow(r);
	rpm_put(r);   /* idle again: may suspend after the delay */
	return rc;
}

int rpm_set_power_on(struct rpm *r, bool on)
{
	mutex_lock(&r->lock);
	bool change = r->power_on != on;
	r->power_on = on;
	/* Take on's reference with the flag, under the lock: otherwise a
	 * concurrent on->auto could put it before it was got. */
	if (change && on)
		atomic_fetch_add(&r->usage, 1);
	mutex_unlock(&r->lock);
	if (!change)
		return 0;
	if (on)   /* the reference stays even if resume fails */
		return rpm_status(r) == RPM_ACTIVE ? 0 : resume_slow(r);
	rpm_put(r);
	return 0;
}

void rpm_set_autosuspend_delay(struct rpm *r, int ms)
{
	mutex_lock(&r->lock);
	__atomic_store_n(&r->autosuspend_delay_ms, ms, __ATOMIC_RELAXED);
	mutex_unlock(&r->lock);
	rpm_idle(r);   /* a shorter delay applies at once */
}

void rpm_get_stats(struct rpm *r, struct rpm_stats *out)
{
	mutex_lock(&r->lock);
	*out = (struct rpm_stats){ .power_on = r->power_on,
				   .suspends = r->suspends,
				   .resumes = r->resumes,
				   .suspend_errors = r->suspend_errors,
				   .resume_errors = r->resume_errors,
				   .underflows = r->underflows };
	mutex_unlock(&r->lock);
}
