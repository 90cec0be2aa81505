/* Locks with clang's thread-safety annotations (-Wthread-safety, on in
 * every clang build, warnings as errors) and checked return codes.
 *
 * mutex_t and rwlock_t are pthread's types marked as capabilities, so the
 * pthread calls that take them (init, destroy, condition waits) work as
 * before; locking and unlocking go through the wrappers below, which the
 * analysis understands. A function that needs a lock held says so with
 * REQUIRES(lock) (REQUIRES_SHARED for a read-held rwlock); one that takes
 * or drops a lock for its caller says ACQUIRE/RELEASE. core.h's table is
 * the order.
 *
 * A pthread lock call fails only on a bug (a lock not initialised, a
 * relock by its owner, an unlock by a non-owner): the wrappers assert
 * success, so a debug build stops at the bug instead of running on with a
 * lock it does not hold (NDEBUG builds skip the check).
 */
#ifndef VFPM_COMMON_LOCK_H
#define VFPM_COMMON_LOCK_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>

#if defined(__clang__)
#define TSA(x) __attribute__((x))
#else
#define TSA(x)
#endif

#define CAPABILITY(x) TSA(capability(x))
#define GUARDED_BY(x) TSA(guarded_by(x))
#define REQUIRES(...) TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) TSA(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) TSA(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS TSA(no_thread_safety_analysis)

typedef pthread_mutex_t CAPABILITY("mutex") mutex_t;
typedef pthread_rwlock_t CAPABILITY("rwlock") rwlock_t;

/* The wrappers' own bodies are what the analysis trusts. */
static inline void mutex_lock(mutex_t *m) ACQUIRE(*m) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_mutex_lock(m);
	assert(rc == 0);
	(void)rc;
}

static inline void mutex_unlock(mutex_t *m) RELEASE(*m) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_mutex_unlock(m);
	assert(rc == 0);
	(void)rc;
}

/* true: taken */
static inline _Bool mutex_trylock(mutex_t *m) TRY_ACQUIRE(1, *m) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_mutex_trylock(m);
	assert(rc == 0 || rc == EBUSY);
	return rc == 0;
}

static inline void rwlock_rdlock(rwlock_t *l) ACQUIRE_SHARED(*l) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_rwlock_rdlock(l);
	assert(rc == 0);
	(void)rc;
}

static inline void rwlock_wrlock(rwlock_t *l) ACQUIRE(*l) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_rwlock_wrlock(l);
	assert(rc == 0);
	(void)rc;
}

static inline void rwlock_unlock(rwlock_t *l) RELEASE_GENERIC(*l) NO_THREAD_SAFETY_ANALYSIS
{
	int rc = pthread_rwlock_unlock(l);
	assert(rc == 0);
	(void)rc;
}

#endif
