/* Control plane protocol (JSON lines); the server provides the device
 * directory through ctl_ops. */
#ifndef VFPM_CTL_H
#define VFPM_CTL_H

#include <stdbool.h>

struct vfpm_device;
struct json_object;

/* One served device as the control plane sees it; handle is a reference
 * that keeps it alive until put. */
struct ctl_entry {
	struct vfpm_device *dev;
	const char *socket;
	const char *pf;     /* a VF's PF name, or NULL */
	unsigned nvfs;      /* a PF's VFs */
	void *handle;
};

struct ctl_ops {
	/* Every served device (VFs after their PF), each with a reference;
	 * malloc'ed array, NULL on allocation failure. */
	struct ctl_entry *(*snapshot)(void *ctx, unsigned *count);
	/* The device named name with a reference, or NULL. */
	struct vfpm_device *(*get)(void *ctx, const char *name, void **handle);
	void (*put)(void *ctx, void *handle);
	/* The event hub devices report to (NULL: no events pushed). */
	struct ev_hub *(*hub)(void *ctx);
};

/* The reply line (no newline) to one request line (no newline; it ends at
 * its first NUL, as a line read from a connection does), malloc'ed; NULL
 * when out of memory, or for a subscribe: then *follow is set (a malloc'ed
 * device name, "" for all) and the connection is the caller's to serve as
 * a follower. What ctl_serve_conn sends for each line. */
char *ctl_handle_line(const struct ctl_ops *ops, void *ctx, const char *line, bool may_mutate,
		      char **follow);

/* Sends text and a newline, bounded as a whole by fd's send timeout. */
bool ctl_send_line(int fd, const char *text);

/* A device's power management as `status` shows it (status.c). */
struct json_object *ctl_pm_status_json(struct vfpm_device *dev);

/* Serves one connection until EOF, a line too long, a whole line not in
 * within line_ms of the connection or the previous reply (however slowly
 * its bytes trickle in), a reply the peer does not take (fd should have a
 * send timeout), or stop_fd becoming readable. may_mutate: the peer may
 * change things (set, config-write, inject-intx); otherwise those get
 * EPERM and only status and config-read are served. */

void ctl_serve_conn(const struct ctl_ops *ops, void *ctx, int fd, bool may_mutate, int stop_fd,
		    int line_ms);
/* The default time a connection has for each whole request line. */
#define CTL_LINE_MS 30000

/* PM events (ctl_events.c): the events held ({"cmd":"events"}), and a
 * connection that follows them ({"cmd":"subscribe"}) until EOF, a send
 * that fails, or stop_fd. only: one device's, or NULL. */
struct dev_event;
struct json_object *ctl_events(const struct ctl_ops *ops, void *ctx, const char *only);
void ctl_follow(const struct ctl_ops *ops, void *ctx, int fd, int stop_fd, const char *only);
struct json_object *ctl_event_json(const struct dev_event *e, const char *device);

#endif
