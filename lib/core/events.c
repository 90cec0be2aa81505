/* PM events: each device keeps its last EV_RING_SIZE events; the server's
 * hub pushes every new one to its subscribers (a control connection that
 * follows, the metrics file writer).
 *
 * A subscriber has a queue of its own, so a slow one never holds back the
 * device or the other subscribers: an event that finds the queue full is
 * counted as lost for that subscriber alone, who learns the count with its
 * next take. Subscribers are woken through an eventfd, so nothing runs
 * while nothing happens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

struct ev_sub {
	struct ev_hub *hub;
	struct ev_sub *next;          /* hub->mu */
	int efd;
	char only[EV_NAME_MAX];       /* "" for every device */
	/* hub->mu */
	struct dev_event_rec *q;      /* EV_SUB_QUEUE */
	size_t head, n;
};

struct ev_hub {
	mutex_t mu;
	struct ev_sub *subs;
};

static const char *const type_names[EV_TYPES] = {
	[EV_POWER] = "power",
	[EV_GUEST_D3HOT] = "guest_d3hot",
	[EV_GUEST_D0] = "guest_d0",
	[EV_LOW_POWER_ENTRY] = "low_power_entry",
	[EV_LOW_POWER_EXIT] = "low_power_exit",
	[EV_WAKEUP] = "wakeup",
	[EV_RESET] = "reset",
	[EV_CLIENT_CONNECT] = "client_connect",
	[EV_CLIENT_DISCONNECT] = "client_disconnect",
	[EV_SRIOV_ENABLE] = "sriov_enable",
	[EV_SRIOV_DISABLE] = "sriov_disable",
};

const char *dev_event_type_name(unsigned type)
{
	return type < EV_TYPES ? type_names[type] : "unknown";
}

bool dev_event_has_states(unsigned type)
{
	return type == EV_POWER || type == EV_GUEST_D3HOT || type == EV_GUEST_D0;
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void events_init(struct vfpm_device *dev, struct vfpm_device *pf)
{
	struct dev_events *ev = &dev->events;
	pthread_mutex_init(&ev->mu, NULL);
	ev->ring = NULL;
	ev->next_seq = 1;
	ev->dropped = 0;
	ev->hub = pf ? __atomic_load_n(&pf->events.hub, __ATOMIC_ACQUIRE) : NULL;
}

void events_fini(struct vfpm_device *dev)
{
	free(dev->events.ring);
	dev->events.ring = NULL;
	pthread_mutex_destroy(&dev->events.mu);
}

void events_attach(struct vfpm_device *dev, struct ev_hub *hub)
{
	__atomic_store_n(&dev->events.hub, hub, __ATOMIC_RELEASE);
}

/* hub->mu held */
static void sub_push(struct ev_sub *s, const struct dev_event *e, const char *name)
{
	if (s->only[0] && strcmp(s->only, name))
		return;
	if (s->n == EV_SUB_QUEUE) {
		s->q[(s->head + s->n - 1) % EV_SUB_QUEUE].lost_after++;
	} else {
		struct dev_event_rec *r = &s->q[(s->head + s->n) % EV_SUB_QUEUE];
		r->ev = *e;
		snprintf(r->device, sizeof(r->device), "%s", name);
		r->lost_after = 0;
		s->n++;
	}
	uint64_t one = 1;
	if (write(s->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is far from empty, the reader wakes anyway */
	}
}

void dev_event(struct vfpm_device *dev, enum dev_event_type type, int from, int to,
	       const char *cause)
{
	struct dev_events *ev = &dev->events;
	struct dev_event e = { .type = (uint8_t)type, .from = (int16_t)from, .to = (int16_t)to };
	e.mono_ns = clock_ns(CLOCK_MONOTONIC);
	e.wall_ns = clock_ns(CLOCK_REALTIME);
	if (cause)
		snprintf(e.cause, sizeof(e.cause), "%s", cause);
	mutex_lock(&ev->mu);
	e.seq = ev->next_seq++;
	if (!ev->ring)
		ev->ring = calloc(EV_RING_SIZE, sizeof(*ev->ring));
	if (ev->ring) {
		/* seq grows without gaps: the slot is seq modulo the ring */
		if (e.seq > EV_RING_SIZE)
			ev->dropped++;
		ev->ring[(e.seq - 1) % EV_RING_SIZE] = e;
	} else {
		ev->dropped++;
	}
	/* under ev->mu: subscribers see one device's events in ring order */
	struct ev_hub *hub = __atomic_load_n(&ev->hub, __ATOMIC_ACQUIRE);
	if (hub) {
		mutex_lock(&hub->mu);
		for (struct ev_sub *s = hub->subs; s; s = s->next)
			sub_push(s, &e, dev->name);
		mutex_unlock(&hub->mu);
	}
	mutex_unlock(&ev->mu);
}

void events_poke(struct vfpm_device *dev)
{
	struct ev_hub *hub = __atomic_load_n(&dev->events.hub, __ATOMIC_ACQUIRE);
	if (!hub)
		return;
	uint64_t one = 1;
	mutex_lock(&hub->mu);
	for (struct ev_sub *s = hub->subs; s; s = s->next) {
		if (s->only[0] && strcmp(s->only, dev->name))
			continue;
		if (write(s->efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is far from empty, the reader wakes anyway */
		}
	}
	mutex_unlock(&hub->mu);
}

int events_read(struct vfpm_device *dev, struct dev_event **out, uint64_t *dropped)
{
	struct dev_events *ev = &dev->events;
	mutex_lock(&ev->mu);
	uint64_t total = ev->next_seq - 1;
	size_t n = ev->ring ? (size_t)(total < EV_RING_SIZE ? total : EV_RING_SIZE) : 0;
	struct dev_event *a = malloc((n ? n : 1) * sizeof(*a));
	if (!a) {
		mutex_unlock(&ev->mu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = total - n + 1 + i;
		a[i] = ev->ring[(seq - 1) % EV_RING_SIZE];
	}
	*dropped = ev->dropped;
	mutex_unlock(&ev->mu);
	*out = a;
	return (int)n;
}

int ev_hub_create(struct ev_hub **out)
{
	struct ev_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return -ENOMEM;
	pthread_mutex_init(&hub->mu, NULL);
	*out = hub;
	return 0;
}

void ev_hub_destroy(struct ev_hub *hub)
{
	if (!hub)
		return;
	pthread_mutex_destroy(&hub->mu);
	free(hub);
}

int ev_sub_create(struct ev_hub *hub, const char *only, struct ev_sub **out)
{
	if (only && strlen(only) >= EV_NAME_MAX)
		return -ENAMETOOLONG;
	struct ev_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->q = malloc(EV_SUB_QUEUE * sizeof(*s->q));
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!s->q || s->efd < 0) {
		int rc = s->q ? -errno : -ENOMEM;
		if (s->efd >= 0)
			close(s->efd);
		free(s->q);
		free(s);
		return rc;
	}
	if (only)
		strcpy(s->only, only);
	s->hub = hub;
	mutex_lock(&hub->mu);
	s->next = hub->subs;
	hub->subs = s;
	mutex_unlock(&hub->mu);
	*out = s;
	return 0;
}

void ev_sub_destroy(struct ev_sub *s)
{
	if (!s)
		return;
	struct ev_hub *hub = s->hub;
	mutex_lock(&hub->mu);
	for (struct ev_sub **p = &hub->subs; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	mutex_unlock(&hub->mu);
	close(s->efd);
	free(s->q);
	free(s);
}

int ev_sub_fd(const struct ev_sub *s)
{
	return s->efd;
}

size_t ev_sub_take(struct ev_sub *s, struct dev_event_rec *out, size_t max)
{
	mutex_lock(&s->hub->mu);
	size_t k = 0;
	for (; k < max && s->n; k++) {
		out[k] = s->q[s->head];
		s->head = (s->head + 1) % EV_SUB_QUEUE;
		s->n--;
	}
	if (!s->n) {
		uint64_t v;
		if (read(s->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing was signalled */
		}
	}
	mutex_unlock(&s->hub->mu);
	return k;
}
