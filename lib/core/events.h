/* PM events: a bounded ring per device of what happened to its power
 * (transitions with their cause, low-power entry and exit, wakeups,
 * resets, sessions, SR-IOV), each with a monotonic and a wall-clock time,
 * and subscribers that get every new event pushed (docs/operating.md).
 *
 * Locks: ev->mu (per device) protects the ring; hub->mu the subscriber
 * list and every subscriber's queue. Order: ev->mu -> hub->mu; both are
 * leaves below every other lock in core.h, so dev_event() may be called
 * with any core lock held (it is, under memory_lock and trans_lock). */
#ifndef VFPM_EVENTS_H
#define VFPM_EVENTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/lock.h"

#define EV_RING_SIZE 256      /* events kept per device */
#define EV_SUB_QUEUE 1024     /* events a subscriber may fall behind */
#define EV_CAUSE_MAX 48
#define EV_NAME_MAX 108       /* a device name fits a socket path */

enum dev_event_type {
	EV_POWER,              /* from -> to, cause */
	EV_GUEST_D3HOT,        /* d3hot_promotion: the guest's D3hot, a dropped reference */
	EV_GUEST_D0,           /* ... and its end (cause) */
	EV_LOW_POWER_ENTRY,    /* cause "wakeup armed" or none */
	EV_LOW_POWER_EXIT,     /* cause */
	EV_WAKEUP,             /* the armed wakeup eventfd was signalled */
	EV_RESET,              /* cause: DEVICE_RESET, FLR, client disconnected */
	EV_CLIENT_CONNECT,     /* a session opened the device (VERSION done) */
	EV_CLIENT_DISCONNECT,  /* ... and closed it */
	EV_SRIOV_ENABLE,       /* to: number of VFs */
	EV_SRIOV_DISABLE,
	EV_TYPES
};

struct dev_event {
	uint64_t seq;          /* per device, from 1, no gaps */
	uint64_t mono_ns;      /* CLOCK_MONOTONIC */
	uint64_t wall_ns;      /* CLOCK_REALTIME, ns since the epoch */
	uint8_t type;          /* enum dev_event_type */
	int16_t from, to;      /* D-states (EV_POWER), VF count; -1: none */
	char cause[EV_CAUSE_MAX];
};

/* A subscriber's copy carries the device's name, and how many events
 * that came right after it were lost (the subscriber's queue was full). */
struct dev_event_rec {
	struct dev_event ev;
	char device[EV_NAME_MAX];
	uint64_t lost_after;
};

/* One device's ring (ev->mu). */
struct dev_events {
	mutex_t mu;
	struct dev_event *ring;   /* EV_RING_SIZE, allocated at the first event */
	uint64_t next_seq;        /* seq of the next event */
	uint64_t dropped;         /* events overwritten (or not stored: no memory) */
	struct ev_hub *hub;       /* subscribers; set once (atomic), may be NULL */
};

struct ev_hub;
struct ev_sub;
struct vfpm_device;

/* Records an event of dev and pushes it to the subscribers. cause may be
 * NULL. Any core lock may be held. */
void dev_event(struct vfpm_device *dev, enum dev_event_type type, int from, int to,
	       const char *cause);

/* Wakes dev's subscribers with no event to take: something they may
 * show changed without being an event (a runtime suspend or resume has
 * finished and its counters moved, after the power event it logged). */
void events_poke(struct vfpm_device *dev);
/* Device lifetime (device.c): a VF reports to its PF's hub from the start. */
void events_init(struct vfpm_device *dev, struct vfpm_device *pf);
void events_fini(struct vfpm_device *dev);
/* Connects a device to a hub (the server's); events before it are kept in
 * the ring only. */
void events_attach(struct vfpm_device *dev, struct ev_hub *hub);

/* Copies the events dev holds, oldest first, into a malloc'ed array.
 * Returns the count (or -ENOMEM); *dropped: events no longer held. */
int events_read(struct vfpm_device *dev, struct dev_event **out, uint64_t *dropped);

const char *dev_event_type_name(unsigned type);
/* Whether from/to are D-states for this type. */
bool dev_event_has_states(unsigned type);

/* Hub and subscribers (the server). */
int ev_hub_create(struct ev_hub **out);
void ev_hub_destroy(struct ev_hub *hub);   /* no subscriber left */
/* A subscriber gets every event from now on, of the device named only
 * (NULL: all). Its eventfd (ev_sub_fd) is readable while events wait. */
int ev_sub_create(struct ev_hub *hub, const char *only, struct ev_sub **out);
void ev_sub_destroy(struct ev_sub *sub);
int ev_sub_fd(const struct ev_sub *sub);
/* Takes up to max waiting events, in the order they happened (an event
 * that did not fit the queue is counted in the lost_after of the one
 * queued before it). Returns the count (0: nothing waits) and clears the
 * eventfd when the queue is empty. */
size_t ev_sub_take(struct ev_sub *sub, struct dev_event_rec *out, size_t max);

#endif
