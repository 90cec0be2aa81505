/* timer: a device with a periodic interrupt that costs nothing suspended.
 *
 * BAR0 (4 KiB) registers, 32 bits each:
 *	0x0 ID      "TIMR", read-only
 *	0x4 CTRL    bit 0: run the timer
 *	0x8 PERIOD  period in ms, 1..10000 (default 10)
 *	0xc TICKS   interrupts raised so far, read-only
 * Each period the device raises MSI vector 0 (when the client enabled MSI).
 *
 * The timer runs in a thread of the model's own, on a timerfd. suspend()
 * disarms the timerfd, so a suspended device (runtime-suspended because no
 * client uses it, or put in D3hot by its guest) makes no wakeup at all: the
 * thread sleeps in poll() on descriptors nothing writes. resume() re-arms
 * it. The violations() check counts wakeups of the thread while suspended
 * (it must stay 0; vfpmctl status --json shows it as model_violations).
 *
 *	cc -shared -fPIC -o timer.so timer.c $(pkg-config --cflags --libs vfpm)
 *	vfpmd --model ./timer.so --device timer,period_ms=100
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vfpm/device.h>

#define TIMER_ID 0x524d4954u   /* "TIMR" */
enum { REG_ID = 0x0, REG_CTRL = 0x4, REG_PERIOD = 0x8, REG_TICKS = 0xc };

struct timer {
	struct vfpm_device *dev;
	pthread_mutex_t mu;          /* everything below */
	uint32_t ctrl, period_ms, default_period_ms, ticks;
	bool parked;                 /* quiesced or suspended: timer disarmed */
	int tfd, stop_fd;
	pthread_t thread;
	bool started;
	atomic_ulong violations;     /* thread wakeups while parked */
};

/* mu held: arms the timerfd when the timer should run, else disarms it. */
static void timer_apply(struct timer *t)
{
	struct itimerspec its = { 0 };
	if ((t->ctrl & 1) && !t->parked) {
		its.it_interval.tv_sec = t->period_ms / 1000;
		its.it_interval.tv_nsec = (long)(t->period_ms % 1000) * 1000000L;
		its.it_value = its.it_interval;
	}
	timerfd_settime(t->tfd, 0, &its, NULL);
	if (!its.it_value.tv_sec && !its.it_value.tv_nsec) {
		uint64_t stale;   /* an expiry before the disarm must not wake us */
		while (read(t->tfd, &stale, sizeof(stale)) > 0) {
		}
	}
}

static void *timer_main(void *arg)
{
	struct timer *t = arg;
	struct pollfd p[2] = { { .fd = t->tfd, .events = POLLIN },
			       { .fd = t->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		uint64_t n = 0;
		pthread_mutex_lock(&t->mu);
		if (read(t->tfd, &n, sizeof(n)) != sizeof(n))
			n = 0;
		if (t->parked)
			atomic_fetch_add(&t->violations, 1);   /* and the ticks dropped */
		else if (n) {
			t->ticks += (uint32_t)n;
			vfpm_dev_irq(t->dev, 0);   /* one interrupt for the missed ones too */
		}
		pthread_mutex_unlock(&t->mu);
	}
}

static int timer_bar_rw(void *priv, unsigned bar, uint64_t off, void *buf, size_t len,
			bool is_write)
{
	struct timer *t = priv;
	uint32_t v = 0;
	if (len != 4 || off > REG_TICKS || off % 4) {
		if (!is_write)
			memset(buf, 0, len);
		return 0;
	}
	pthread_mutex_lock(&t->mu);
	if (is_write) {
		memcpy(&v, buf, 4);
		if (off == REG_CTRL)
			t->ctrl = v & 1;
		else if (off == REG_PERIOD && v >= 1 && v <= 10000)
			t->period_ms = v;
		timer_apply(t);
	} else {
		v = off == REG_ID ? TIMER_ID : off == REG_CTRL ? t->ctrl
			: off == REG_PERIOD ? t->period_ms : t->ticks;
		memcpy(buf, &v, 4);
	}
	pthread_mutex_unlock(&t->mu);
	return 0;
}

static void timer_park(struct timer *t, bool parked)
{
	pthread_mutex_lock(&t->mu);
	t->parked = parked;
	timer_apply(t);
	pthread_mutex_unlock(&t->mu);
}

/* quiesce precedes suspend, reset and destroy: no interrupt after it. */
static void timer_quiesce(void *priv)
{
	timer_park(priv, true);
}

static int timer_suspend(void *priv, enum vfpm_dstate target)
{
	timer_park(priv, true);
	return 0;
}

static int timer_resume(void *priv)
{
	timer_park(priv, false);
	return 0;
}

static void timer_reset(void *priv)
{
	struct timer *t = priv;
	pthread_mutex_lock(&t->mu);
	t->ctrl = 0;
	t->ticks = 0;
	t->period_ms = t->default_period_ms;
	t->parked = false;
	timer_apply(t);   /* CTRL is 0: stays disarmed */
	pthread_mutex_unlock(&t->mu);
}

static uint64_t timer_violations(void *priv)
{
	return atomic_load(&((struct timer *)priv)->violations);
}

static void timer_destroy(void *priv)
{
	struct timer *t = priv;
	uint64_t one = 1;
	if (t->started && write(t->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(t->thread, NULL);
	if (t->tfd >= 0)
		close(t->tfd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static const struct vfpm_model_ops timer_ops = {
	.size = sizeof(timer_ops),
	.bar_rw = timer_bar_rw,
	.reset = timer_reset,
	.quiesce = timer_quiesce,
	.suspend = timer_suspend,
	.resume = timer_resume,
	.destroy = timer_destroy,
	.violations = timer_violations,
};

static int timer_model_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
			const struct vfpm_model_ops **ops)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10f2,
						 .class_code = 0x088000 };   /* system peripheral */
	uint64_t period;
	int rc = vfpm_opts_u64(opts, "period_ms", 10, 1, 10000, &period);
	if (rc && rc != -ENOENT)
		return rc;
	struct timer *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->dev = dev;
	t->period_ms = t->default_period_ms = (uint32_t)period;
	pthread_mutex_init(&t->mu, NULL);
	t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	t->stop_fd = eventfd(0, EFD_CLOEXEC);
	rc = t->tfd < 0 || t->stop_fd < 0 ? -errno : 0;
	if (!rc)
		rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, 0, 4096, 0);
	if (!rc)
		rc = vfpm_dev_add_pm_cap(dev, false, false, false);
	if (!rc)
		rc = vfpm_dev_add_msi_cap(dev, 1);
	if (!rc)
		rc = -pthread_create(&t->thread, NULL, timer_main, t);
	t->started = !rc;
	if (rc) {
		timer_destroy(t);
		return rc;
	}
	*priv = t;
	*ops = &timer_ops;
	return 0;
}

static const char *const timer_keys[] = { "period_ms", NULL };

static const struct vfpm_model timer_model = {
	.size = sizeof(timer_model),
	.name = "timer",
	.summary = "a periodic MSI whose timer stops while suspended",
	.keys = timer_keys,
	.create = timer_model_create,
};

const struct vfpm_model *vfpm_model_entry(void)
{
	return &timer_model;
}
