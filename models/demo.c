/* The default device, "demo": a small DMA copy engine.
 *
 * BAR0 (4 KiB, registers, callback-backed): see docs/demo-device.md.
 * BAR2 (memory-backed, mmap-able, 64-bit prefetchable): plain RAM.
 * BAR4 (8 KiB): MSI-X table at 0x0, PBA at 0x1000 (emulated by the core).
 * A worker thread runs one copy per doorbell: guest SRC -> guest DST,
 * then raises the completion interrupt (MSI-X vector IRQ_VECTOR, or INTx
 * when MSI-X is off). The worker exists while the device is busy: one
 * watcher thread waits on the doorbells of every idle demo device and
 * starts a device's worker when its doorbell rings; the worker ends after
 * DEMO_LINGER_MS without one. So an idle device, suspended or not, costs
 * no thread.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models.h"
#include "vfpm/device.h"

#define DEMO_VENDOR 0x1b36   /* Red Hat's QEMU/virtual device vendor ID space */
#define DEMO_DEVICE 0x10f0
#define DEMO_ID 0x4d504656u  /* "VFPM" in little-endian bytes */
#define DEMO_VERSION 0x00010000u
#define DEMO_MAX_DMA (1u << 20)

enum {
	REG_ID = 0x00,
	REG_VERSION = 0x04,
	REG_SCRATCH = 0x08,
	REG_STATUS = 0x0c,
	REG_DOORBELL = 0x10,
	REG_INT_STATUS = 0x14,
	REG_INT_MASK = 0x18,
	REG_DMA_SRC_LO = 0x20,
	REG_DMA_SRC_HI = 0x24,
	REG_DMA_DST_LO = 0x28,
	REG_DMA_DST_HI = 0x2c,
	REG_DMA_LEN = 0x30,
	REG_DMA_RESULT = 0x34,
	REG_DMA_COUNT = 0x38,
	REG_IRQ_VECTOR = 0x3c,
	REG_END = 0x40,
};

#define STATUS_BUSY 0x1u
#define STATUS_DONE 0x2u
#define STATUS_ERROR 0x4u
#define INT_DMA_DONE 0x1u
#define INT_DMA_ERROR 0x2u

struct demo {
	struct vfpm_device *dev;
	pthread_mutex_t mu;      /* registers and worker state */
	pthread_cond_t cv;
	uint32_t scratch, status, int_status, int_mask, dma_len, dma_result, dma_count, vector;
	uint64_t dma_src, dma_dst;
	unsigned nvec;
	int doorbell_fd;         /* ioeventfd: written by us or by the client */
	bool busy, paused, stopping;
	bool parked;             /* suspended: no work, no wakeups (V1) */
	uint8_t *buf;            /* copy buffer, DEMO_MAX_DMA; freed in D3cold */
	bool worker_running;     /* a (detached) worker owns the doorbell (mu) */
	bool bell_watched;       /* the doorbell is in the watcher's set */
	/* V5 debug check: BAR accesses or jobs that reached the model while
	 * it was parked (must stay 0); reported by the control plane */
	atomic_ulong violations;
};

/* mu held: drive INTx from the unmasked causes (MSI/MSI-X are edges). */
static void update_intx(struct demo *d)
{
	vfpm_dev_intx(d->dev, (d->int_status & d->int_mask) != 0);
}

static void run_job(struct demo *d)
{
	pthread_mutex_lock(&d->mu);
	/* quiesced (a reset or suspend is stopping us) or suspended (memory
	 * does not decode, B25): a doorbell rung through the ioeventfd now is
	 * dropped */
	if (d->paused || d->parked) {
		pthread_mutex_unlock(&d->mu);
		return;
	}
	/* an ioeventfd write while memory decoding is off is dropped (B25).
	 * Asked under d->mu: the core calls our callbacks (which take d->mu)
	 * with none of its locks held, so the order cannot invert. */
	if (!vfpm_dev_mem_decode(d->dev) || !d->buf) {
		pthread_mutex_unlock(&d->mu);
		return;
	}
	uint64_t src = d->dma_src, dst = d->dma_dst;
	uint32_t len = d->dma_len;
	d->busy = true;
	d->status = STATUS_BUSY;
	pthread_mutex_unlock(&d->mu);

	int rc = 0;
	if (len > DEMO_MAX_DMA)
		rc = -EINVAL;
	else if (len) {
		/* straight from mapping to mapping when both are the
		 * client's files; through the buffer for message DMA */
		rc = vfpm_dev_dma_copy(d->dev, dst, src, len);
		if (rc == -EOPNOTSUPP) {
			rc = vfpm_dev_dma_read(d->dev, src, d->buf, len);
			if (!rc)
				rc = vfpm_dev_dma_write(d->dev, dst, d->buf, len);
		}
	}

	pthread_mutex_lock(&d->mu);
	d->dma_result = (uint32_t)-rc;
	d->dma_count++;
	d->status = rc ? STATUS_ERROR : STATUS_DONE;
	uint32_t cause = rc ? INT_DMA_ERROR : INT_DMA_DONE;
	d->int_status |= cause;
	bool fire = d->int_mask & cause;
	unsigned vec = d->vector;
	d->busy = false;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (fire)
		vfpm_dev_irq(d->dev, vec);   /* MSI-X/MSI edge, or INTx level */
	if (rc)
		vfpm_dev_log(d->dev, VFPM_LOG_DEBUG, "DMA job failed: %d", rc);
}

/* A worker ends after this long without a doorbell: a device that runs
 * jobs now and then keeps it (a thread start is about 30 us, a job on a
 * warm worker a few), an idle one costs no thread. */
#define DEMO_LINGER_MS 1000

static void ring(struct demo *d)
{
	uint64_t one = 1;
	if (write(d->doorbell_fd, &one, sizeof(one)) < 0) {
		/* saturated counter: the doorbell is pending anyway */
	}
}

/* --- the watcher: the doorbells of every idle demo device --- */

/* One for the process, started with the first demo device and stopped
 * with the last. Each idle device's doorbell is in its epoll set, one-shot:
 * when it rings, the watcher starts the device's worker, which then owns
 * the doorbell until it ends and arms it in the set again. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* seq moved, or stopping ended */
	int ep;              /* epoll: the doorbells, and wake (data.ptr NULL) */
	int wake;            /* eventfd: ends the watcher's wait */
	unsigned users;      /* demo devices */
	bool stopping;       /* the last device went: the watcher is ending */
	uint64_t seq;        /* batches of events handled */
	pthread_t thread;
} g_bells = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, -1, 0, false, 0, 0 };

static void *worker_main(void *arg);

/* Arms d's doorbell in the watcher's set (one event, then disarmed);
 * with arm false, disarms it (it stays in the set). */
static int bell_ctl(struct demo *d, int op, bool arm)
{
	struct epoll_event ev = { .events = (arm ? EPOLLIN : 0) | EPOLLONESHOT, .data.ptr = d };
	return epoll_ctl(g_bells.ep, op, d->doorbell_fd, &ev) < 0 ? -errno : 0;
}

/* d->mu held: the watcher takes d's doorbell again (after a worker, or
 * a suspend), or lets it be (suspended: rung, it wakes nothing; resume
 * drops what was rung and arms it). */
static void bell_handback(struct demo *d)
{
	int rc = bell_ctl(d, EPOLL_CTL_MOD, !d->parked);
	if (rc)
		vfpm_dev_log(d->dev, VFPM_LOG_ERR, "doorbell not watched any more: %s",
			     strerror(-rc));
}

/* g_bells.mu held: d's doorbell rang while it had no worker. */
static void bell_dispatch(struct demo *d)
{
	pthread_mutex_lock(&d->mu);
	if (d->stopping || d->worker_running) {
		pthread_mutex_unlock(&d->mu);
		return;
	}
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int rc = pthread_create(&t, &a, worker_main, d);
	pthread_attr_destroy(&a);
	d->worker_running = rc == 0;
	bool fire = false;
	unsigned vec = d->vector;
	if (rc) {
		/* No thread: the job fails as a job does (DMA_RESULT, the
		 * error cause and its interrupt), so a driver waiting for
		 * it hears of it; a doorbell left pending would wake us again
		 * at once. One a running job would drop is dropped. */
		uint64_t v;
		bool rung = read(d->doorbell_fd, &v, sizeof(v)) == sizeof(v);
		if (rung && !d->paused && !d->parked && vfpm_dev_mem_decode(d->dev)) {
			d->dma_result = (uint32_t)rc;
			d->dma_count++;
			d->status = STATUS_ERROR;
			d->int_status |= INT_DMA_ERROR;
			fire = d->int_mask & INT_DMA_ERROR;
		}
		bell_handback(d);
	}
	pthread_mutex_unlock(&d->mu);
	if (rc)
		vfpm_dev_log(d->dev, VFPM_LOG_ERR, "no worker thread for a doorbell: %s",
			     strerror(rc));
	if (fire)
		vfpm_dev_irq(d->dev, vec);
}

static void *bells_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "vfpm-demo-bell");
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(g_bells.ep, evs, 64, -1);
		pthread_mutex_lock(&g_bells.mu);
		bool stop = g_bells.stopping;
		for (int i = 0; i < n; i++) {
			uint64_t v;
			if (!evs[i].data.ptr) {
				if (read(g_bells.wake, &v, sizeof(v)) < 0) {
					/* another batch took it */
				}
			} else if (!stop) {
				bell_dispatch(evs[i].data.ptr);
			}
		}
		g_bells.seq++;
		pthread_cond_broadcast(&g_bells.cv);
		pthread_mutex_unlock(&g_bells.mu);
		if (stop)
			return NULL;
	}
}

/* g_bells.mu held: returns once the watcher's batch in progress is over,
 * so it touches no device it saw in it any more. */
static void bells_sync(void)
{
	uint64_t one = 1, seq = g_bells.seq;
	if (write(g_bells.wake, &one, sizeof(one)) < 0) {
		/* saturated: it is readable anyway */
	}
	while (g_bells.seq == seq)
		pthread_cond_wait(&g_bells.cv, &g_bells.mu);
}

/* Not under g_bells.mu, after stopping was set and the watcher woken:
 * waits for it to end and closes its descriptors; a device waiting to be
 * the first of a new watcher goes on. */
static void bells_end(void)
{
	pthread_join(g_bells.thread, NULL);
	pthread_mutex_lock(&g_bells.mu);
	close(g_bells.ep);
	close(g_bells.wake);
	g_bells.ep = g_bells.wake = -1;
	g_bells.stopping = false;
	pthread_cond_broadcast(&g_bells.cv);
	pthread_mutex_unlock(&g_bells.mu);
}

/* d's doorbell joins the watcher's set (the watcher starts if it is the
 * first device). */
static int bell_watch(struct demo *d)
{
	int rc = 0;
	pthread_mutex_lock(&g_bells.mu);
	while (g_bells.stopping)   /* the last device's watcher is ending */
		pthread_cond_wait(&g_bells.cv, &g_bells.mu);
	if (!g_bells.users) {
		g_bells.ep = epoll_create1(EPOLL_CLOEXEC);
		g_bells.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		if (g_bells.ep < 0 || g_bells.wake < 0 ||
		    epoll_ctl(g_bells.ep, EPOLL_CTL_ADD, g_bells.wake, &ev) < 0)
			rc = -errno;
		if (!rc)
			rc = -pthread_create(&g_bells.thread, NULL, bells_main, NULL);
		if (rc) {
			if (g_bells.ep >= 0)
				close(g_bells.ep);
			if (g_bells.wake >= 0)
				close(g_bells.wake);
			g_bells.ep = g_bells.wake = -1;
		}
	}
	bool started = !rc && !g_bells.users;
	if (!rc)
		rc = bell_ctl(d, EPOLL_CTL_ADD, true);
	bool stop = rc && started;   /* the watcher started for d alone */
	if (!rc) {
		g_bells.users++;
		d->bell_watched = true;
	} else if (stop) {
		g_bells.stopping = true;
		bells_sync();
	}
	pthread_mutex_unlock(&g_bells.mu);
	if (stop)
		bells_end();
	return rc;
}

/* d's doorbell leaves the set; on return the watcher does not touch d
 * (it ends if d was the last device). Its worker has stopped already. */
static void bell_forget(struct demo *d)
{
	if (!d->bell_watched)
		return;
	d->bell_watched = false;
	pthread_mutex_lock(&g_bells.mu);
	epoll_ctl(g_bells.ep, EPOLL_CTL_DEL, d->doorbell_fd, NULL);
	bool last = --g_bells.users == 0;
	if (last)
		g_bells.stopping = true;
	bells_sync();   /* the batch that may have seen d is over */
	pthread_mutex_unlock(&g_bells.mu);
	if (last)
		bells_end();
}

/* --- the worker --- */

/* Started by the watcher when the doorbell of an idle device rang; owns
 * the doorbell (polls it itself, so a busy device's jobs cost one wakeup
 * each, not two) until DEMO_LINGER_MS pass without one, then hands it back
 * to the watcher and ends. Detached: nobody waits for it but
 * worker_stop. */
static void *worker_main(void *arg)
{
	struct demo *d = arg;
	pthread_setname_np(pthread_self(), "vfpm-demo");
	struct pollfd p = { .fd = d->doorbell_fd, .events = POLLIN };
	for (;;) {
		int n = poll(&p, 1, DEMO_LINGER_MS);
		/* the doorbell is taken and judged under mu, as demo_resume
		 * drains it under mu: one rung while suspended is dropped by
		 * one or the other, never run after the resume */
		uint64_t v;
		pthread_mutex_lock(&d->mu);
		if (d->stopping || n == 0) {
			/* quiet for the linger: back to the watcher (a doorbell
			 * rung from now on makes it start another worker) */
			if (!d->stopping)
				bell_handback(d);
			d->worker_running = false;
			pthread_cond_broadcast(&d->cv);
			pthread_mutex_unlock(&d->mu);
			return NULL;   /* nothing of d is touched after the unlock */
		}
		bool rung = n > 0 && read(d->doorbell_fd, &v, sizeof(v)) == sizeof(v);
		bool asleep = d->parked;
		pthread_mutex_unlock(&d->mu);
		if (rung && !asleep)
			run_job(d);   /* doorbells that came together run one job */
	}
}

/* destroy: no worker starts for d any more and the one running ends. */
static void worker_stop(struct demo *d)
{
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	while (d->worker_running) {
		ring(d);   /* its poll returns */
		pthread_cond_wait(&d->cv, &d->mu);
	}
	pthread_mutex_unlock(&d->mu);
}

static uint32_t reg_read(struct demo *d, uint64_t off)
{
	switch (off) {
	case REG_ID: return DEMO_ID;
	case REG_VERSION: return DEMO_VERSION;
	case REG_SCRATCH: return d->scratch;
	case REG_STATUS: return d->status;
	case REG_INT_STATUS: return d->int_status;
	case REG_INT_MASK: return d->int_mask;
	case REG_DMA_SRC_LO: return (uint32_t)d->dma_src;
	case REG_DMA_SRC_HI: return (uint32_t)(d->dma_src >> 32);
	case REG_DMA_DST_LO: return (uint32_t)d->dma_dst;
	case REG_DMA_DST_HI: return (uint32_t)(d->dma_dst >> 32);
	case REG_DMA_LEN: return d->dma_len;
	case REG_DMA_RESULT: return d->dma_result;
	case REG_DMA_COUNT: return d->dma_count;
	case REG_IRQ_VECTOR: return d->vector;
	default: return 0;  /* reserved: reads 0 */
	}
}

static void reg_write(struct demo *d, uint64_t off, uint32_t v)
{
	switch (off) {
	case REG_SCRATCH: d->scratch = v; break;
	case REG_DOORBELL: {
		uint64_t one = 1;
		if (write(d->doorbell_fd, &one, sizeof(one)) < 0) {
			/* counter saturated: a job is already due */
		}
		break;
	}
	case REG_INT_STATUS:
		d->int_status &= ~v;   /* write 1 to clear */
		update_intx(d);
		break;
	case REG_INT_MASK:
		d->int_mask = v & (INT_DMA_DONE | INT_DMA_ERROR);
		update_intx(d);
		break;
	case REG_DMA_SRC_LO: d->dma_src = (d->dma_src & ~0xffffffffull) | v; break;
	case REG_DMA_SRC_HI: d->dma_src = (d->dma_src & 0xffffffffull) | (uint64_t)v << 32; break;
	case REG_DMA_DST_LO: d->dma_dst = (d->dma_dst & ~0xffffffffull) | v; break;
	case REG_DMA_DST_HI: d->dma_dst = (d->dma_dst & 0xffffffffull) | (uint64_t)v << 32; break;
	case REG_DMA_LEN: d->dma_len = v; break;
	case REG_IRQ_VECTOR: d->vector = v < d->nvec ? v : d->vector; break;
	default: break;  /* read-only or reserved: ignored */
	}
}

/* Registers are 32-bit; 8-byte accesses split in two, narrower ones are
 * allowed on reads (byte lanes) and refused on writes. */
static int demo_bar_rw(void *priv, unsigned bar, uint64_t off, void *buf, size_t len,
		       bool is_write)
{
	struct demo *d = priv;
	if (bar != 0)
		return -EINVAL;
	pthread_mutex_lock(&d->mu);
	if (d->parked)
		atomic_fetch_add(&d->violations, 1);   /* accessed while suspended (V5) */
	pthread_mutex_unlock(&d->mu);
	if ((len != 4 && len != 8) || (off & 3)) {
		if (is_write || len > 8)
			return -EINVAL;
		uint8_t tmp[12];
		uint64_t base = off & ~3ull;
		pthread_mutex_lock(&d->mu);
		for (uint64_t o = base, i = 0; o < off + len; o += 4, i += 4) {
			uint32_t v = o < REG_END ? reg_read(d, o) : 0;
			memcpy(tmp + i, &v, 4);
		}
		pthread_mutex_unlock(&d->mu);
		memcpy(buf, tmp + (off - base), len);
		return 0;
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v;
		if (is_write) {
			memcpy(&v, (uint8_t *)buf + i, 4);
			reg_write(d, off + i, v);
		} else {
			v = reg_read(d, off + i);
			memcpy((uint8_t *)buf + i, &v, 4);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void demo_quiesce(void *priv)
{
	struct demo *d = priv;
	pthread_mutex_lock(&d->mu);
	d->paused = true;   /* no new job starts */
	while (d->busy)
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
}

/* V1: suspended, doorbells run no job (a worker still lingering ends
 * DEMO_LINGER_MS after the last one); in D3cold the copy buffer is
 * returned to the system too. The core quiesced us first. */
static int demo_suspend(void *priv, enum vfpm_dstate target)
{
	struct demo *d = priv;
	pthread_mutex_lock(&d->mu);
	d->parked = true;
	if (target == VFPM_D3COLD) {
		free(d->buf);
		d->buf = NULL;
	}
	if (!d->worker_running)
		bell_handback(d);   /* disarmed: a doorbell now wakes nothing */
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int demo_resume(void *priv)
{
	struct demo *d = priv;
	uint64_t n;
	pthread_mutex_lock(&d->mu);
	if (!d->buf)
		d->buf = malloc(DEMO_MAX_DMA);   /* NULL: jobs fail until memory returns */
	/* doorbells rung through the ioeventfd while suspended were dropped */
	while (read(d->doorbell_fd, &n, sizeof(n)) == sizeof(n))
		;
	d->parked = false;
	d->paused = false;
	if (!d->worker_running)
		bell_handback(d);   /* armed again (a worker does it as it ends) */
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void demo_reset(void *priv)
{
	struct demo *d = priv;
	uint64_t n;
	pthread_mutex_lock(&d->mu);
	while (read(d->doorbell_fd, &n, sizeof(n)) == sizeof(n))
		;   /* drop doorbells rung before the reset */
	d->scratch = d->status = d->int_status = d->int_mask = 0;
	d->dma_len = d->dma_result = d->dma_count = d->vector = 0;
	d->dma_src = d->dma_dst = 0;
	d->paused = false;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	vfpm_dev_intx(d->dev, false);
}

static void demo_command_changed(void *priv, uint16_t cmd)
{
	struct demo *d = priv;
	/* INTx level follows DisINTx through the core; nothing to do except
	 * re-evaluating the line. */
	pthread_mutex_lock(&d->mu);
	update_intx(d);
	pthread_mutex_unlock(&d->mu);
	(void)cmd;
}

static void demo_destroy(void *priv)
{
	struct demo *d = priv;
	worker_stop(d);   /* first: a worker arms the doorbell as it ends */
	bell_forget(d);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d->buf);
	free(d);
}

static uint64_t demo_violations(void *priv)
{
	struct demo *d = priv;
	return atomic_load(&d->violations);
}

static const struct vfpm_model_ops demo_ops = {
	.size = sizeof(struct vfpm_model_ops),
	.bar_rw = demo_bar_rw,
	.reset = demo_reset,
	.quiesce = demo_quiesce,
	.suspend = demo_suspend,
	.resume = demo_resume,
	.command_changed = demo_command_changed,
	.destroy = demo_destroy,
	.violations = demo_violations,
};

static const char *const demo_keys[] = { "nosoftrst", "msix_vectors", "msi_vectors", "bar2_size",
					 "d1",	      "d2",	       NULL };

static int demo_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		       const struct vfpm_model_ops **ops)
{
	bool nosoftrst, d1, d2;
	uint64_t nvec, msi, bar2;
	int rc;
	if ((rc = vfpm_opts_bool(opts, "nosoftrst", true, &nosoftrst)) && rc != -ENOENT)
		return rc;
	if ((rc = vfpm_opts_bool(opts, "d1", false, &d1)) && rc != -ENOENT)
		return rc;
	if ((rc = vfpm_opts_bool(opts, "d2", false, &d2)) && rc != -ENOENT)
		return rc;
	if ((rc = vfpm_opts_u64(opts, "msix_vectors", 4, 1, 64, &nvec)) && rc != -ENOENT)
		return rc;
	if ((rc = vfpm_opts_u64(opts, "msi_vectors", 0, 0, 32, &msi)) && rc != -ENOENT)
		return rc;
	if (msi & (msi - 1))
		return -EINVAL;   /* MSI offers 1, 2, 4, 8, 16 or 32 vectors */
	if ((rc = vfpm_opts_u64(opts, "bar2_size", 1u << 20, 4096, 1ull << 30, &bar2)) &&
	    rc != -ENOENT)
		return rc;
	if (bar2 & (bar2 - 1))
		return -EINVAL;
	/* a VF is the same engine with a smaller RAM BAR: 256 of them stay
	 * cheap (and the memory is only touched when used) */
	if (vfpm_dev_is_vf(dev))
		bar2 = 64 * 1024;   /* as demo_vf_bars says */

	struct demo *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->dev = dev;
	d->nvec = (unsigned)nvec;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);

	const struct vfpm_pci_ids ids = { .vendor = DEMO_VENDOR, .device = DEMO_DEVICE,
					  .subsys_vendor = DEMO_VENDOR, .subsys_id = 0x0001,
					  .class_code = 0x088000, /* system peripheral, other */
					  .revision = 1 };
	vfpm_dev_set_ids(dev, &ids);
	vfpm_dev_set_intx(dev, true);
	if ((rc = vfpm_dev_add_bar(dev, 0, 4096, 0)) ||
	    (rc = vfpm_dev_add_bar(dev, 2, bar2, VFPM_BAR_64 | VFPM_BAR_PREFETCH | VFPM_BAR_MEMFD)) ||
	    (rc = vfpm_dev_add_bar(dev, 4, 8192, 0)) ||
	    (rc = vfpm_dev_add_pm_cap(dev, d1, d2, nosoftrst)) ||
	    (msi && (rc = vfpm_dev_add_msi_cap(dev, (unsigned)msi))) ||
	    (rc = vfpm_dev_add_msix_cap(dev, d->nvec, 4, 0x0, 0x1000)) ||
	    (rc = vfpm_dev_add_pcie_cap(dev)))
		goto fail;
	/* Device Serial Number: exercises the extended capability list. */
	const uint8_t dsn[8] = { 0x01, 0x00, 0x00, 0x00, 0x4d, 0x50, 0x46, 0x56 };
	if ((rc = vfpm_dev_add_ext_cap(dev, PCI_EXT_CAP_ID_DSN, 1, dsn, sizeof(dsn))) < 0)
		goto fail;
	rc = vfpm_dev_add_ioeventfd(dev, 0, REG_DOORBELL, 4);
	if (rc < 0)
		goto fail;
	d->doorbell_fd = rc;
	d->buf = malloc(DEMO_MAX_DMA);
	if (!d->buf) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = bell_watch(d)))
		goto fail;
	*priv = d;
	*ops = &demo_ops;
	return 0;
fail:
	demo_destroy(d);
	return rc;
}

/* What demo_create declares for a VF: BAR0 registers, the 64 KiB RAM BAR2,
 * BAR4 holding MSI-X (the capability of a PF is built from this). */
static const struct vfpm_vf_bar demo_vf_bars[6] = {
	[0] = { 4096, 0 },
	[2] = { 64 * 1024, VFPM_BAR_64 | VFPM_BAR_PREFETCH | VFPM_BAR_MEMFD },
	[4] = { 8192, 0 },
};

const struct vfpm_model vfpm_model_demo = {
	.size = sizeof(struct vfpm_model),
	.name = "demo",
	.summary = "DMA copy engine with MSI-X, INTx, PM and PCIe capabilities",
	.keys = demo_keys,
	.create = demo_create,
	.vf_bars = demo_vf_bars,
};
