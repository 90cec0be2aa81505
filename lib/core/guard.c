/* Copies through memory a client can take away.
 *
 * A client owns the files behind its DMA mappings and receives the memfd of
 * every mmap-able BAR: it can shrink them at any time, and a copy through
 * the server's mapping then raises SIGBUS. One misbehaving client must not
 * kill the server and every other device, so such copies run under a
 * SIGBUS guard that turns the fault into -EFAULT for that copy only.
 *
 * The handler is installed once per process (signal dispositions are
 * process-wide by nature); the jump target is per thread. A SIGBUS outside a
 * guarded copy keeps its default action.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "core.h"

/* volatile, and fenced below: the compiler must not drop or move the
 * stores around memcpy, which it otherwise treats as unable to see them */
static __thread sigjmp_buf *volatile guard_target;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	(void)si;
	(void)uctx;
	sigjmp_buf *t = guard_target;
	if (t) {
		guard_target = NULL;
		siglongjmp(*t, 1);
	}
	/* not ours: the default action, as if no handler were installed */
	signal(sig, SIG_DFL);
	raise(sig);
}

static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void guard_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int core_move(void *dst, const void *src, size_t n)
{
	pthread_once(&guard_once, guard_install);
	sigjmp_buf jb;
	if (sigsetjmp(jb, 0))
		return -EFAULT;
	guard_target = &jb;
	atomic_signal_fence(memory_order_seq_cst);
	memmove(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	guard_target = NULL;
	return 0;
}

int core_copy(void *dst, const void *src, size_t n)
{
	pthread_once(&guard_once, guard_install);
	sigjmp_buf jb;
	/* No signal mask to save: SA_NODEFER keeps SIGBUS unblocked in the
	 * handler, so the jump leaves the mask as it was, and the guarded
	 * copy costs no system call. */
	if (sigsetjmp(jb, 0))
		return -EFAULT;   /* the mapping's file was shrunk under us */
	guard_target = &jb;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	guard_target = NULL;
	return 0;
}
