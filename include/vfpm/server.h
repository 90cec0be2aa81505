/* vfpm embedding API: serve device models from your own program.
 *
 * A server owns devices; each device listens on its own socket and serves
 * one vfio-user client at a time on threads of the server's own (an idle
 * device costs no CPU). The caller sets the server up (models, devices),
 * starts it, and later stops it:
 *
 *	struct vfpm_server *srv;
 *	vfpm_server_new(NULL, &srv);
 *	vfpm_server_add_model(srv, &my_model);
 *	vfpm_server_add_device(srv, "my,name=my0", "/run/my0.sock");
 *	vfpm_server_run(srv);     (until vfpm_server_request_stop)
 *	vfpm_server_free(srv);
 *
 * A caller that owns its event loop calls vfpm_server_start() instead of
 * run(), polls vfpm_server_fd() with its own descriptors, and calls
 * vfpm_server_stop() when it wants to (or when the fd becomes readable).
 *
 * Every call returns 0 or a negative errno: -EINVAL for a bad argument,
 * -EPERM for a call in the wrong state (setting up a started server,
 * starting it twice). docs/embedding.md has the details.
 */
#ifndef VFPM_SERVER_API_H
#define VFPM_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "device.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vfpm_server;

struct vfpm_server_opts {
	/* sizeof(struct vfpm_server_opts) as the caller was compiled (the
	 * same rule as struct vfpm_model: smaller works, larger -E2BIG) */
	size_t size;
	/* what is logged on stderr: 0 errors (the default), 1 also
	 * warnings, 2 also info (clients coming and going), 3 also each
	 * session's set-up, 4 also every failed request (vfpmd -q, default,
	 * -v, -vv are 1, 2, 3, 4) */
	int verbosity;
	/* permission bits of device sockets; 0: 0600 */
	mode_t socket_mode;
	/* serve the control plane (JSON lines, vfpmctl) at ctl_path, or
	 * when ctl_path is NULL at <default socket dir>/vfpmd.ctl */
	bool ctl;
	const char *ctl_path;
	/* the control socket's bits; 0: 0600, or 0660 with ctl_group */
	mode_t ctl_mode;
	/* ctl_group set: its members may change settings too */
	bool has_ctl_group;
	gid_t ctl_group;
	/* VERSION deadline of a new connection and deadline of each send to
	 * a client, in ms; 0: the default (10 s); < 0: none */
	int handshake_ms;
	int send_ms;
	/* a node_exporter textfile-collector file kept up to date (rewritten
	 * atomically after each PM change, removed at stop), or NULL */
	const char *metrics_path;
	/* the time a control connection has to send each whole request
	 * line, counted from the connection or the previous reply, in ms;
	 * 0: the default (30 s). Past it the connection is closed, however
	 * slowly bytes trickle in. */
	int ctl_line_ms;
	/* the server-wide default of the device option poll_us: how long
	 * a session keeps reading without blocking after a request, in us
	 * (0..1000000); 0: the built-in default, < 0: no polling; a
	 * device's own poll_us= wins (docs/performance.md) */
	int poll_us;
	/* a connected client that sends nothing for this long (ms) gives
	 * its session thread back, and its next message or hang-up starts
	 * one again, so quiet clients cost no thread; 0: the default
	 * (1000 ms); < 0: never (each client keeps its thread) */
	int session_idle_ms;
};

/* Creates a server; o may be NULL (defaults: no control plane, errors
 * only). Process-wide effects, as for any server holding many sockets:
 * the umask gains 077 (socket files are created owner-only, then given
 * their mode) and the RLIMIT_NOFILE soft limit is raised to the hard one.
 * -EINVAL for verbosity outside 0..4. */
VFPM_EXPORT int vfpm_server_new(const struct vfpm_server_opts *o, struct vfpm_server **out);

/* Makes a model available to vfpm_server_add_device by its name. The
 * model must outlive the server. -EEXIST when a model of that name (the
 * built-in "demo" included) is already there; the model's size and
 * fields are checked as at device creation (-EINVAL, -E2BIG). */
VFPM_EXPORT int vfpm_server_add_model(struct vfpm_server *srv, const struct vfpm_model *model);

/* The i-th model the server knows (built-in ones first), or NULL past
 * the last. */
VFPM_EXPORT const struct vfpm_model *vfpm_server_model(const struct vfpm_server *srv, unsigned i);

/* Adds a device from "MODEL[,key=value...]", the grammar of vfpmd
 * --device (name=, socket=, the power keys, total_vfs=, the model's
 * keys). socket, if not NULL, is used when spec has no socket= key;
 * otherwise the socket is <default socket dir>/<name>.sock. The device
 * is created (the model's create() runs) now; it is served from start. */
VFPM_EXPORT int vfpm_server_add_device(struct vfpm_server *srv, const char *spec,
				       const char *socket);

/* Binds every device socket (and the control socket) and serves them on
 * the server's threads; returns at once. -EPERM when already started. */
VFPM_EXPORT int vfpm_server_start(struct vfpm_server *srv);

/* A descriptor that becomes readable (POLLIN) once a stop is requested
 * (vfpm_server_request_stop). Owned by the server. */
VFPM_EXPORT int vfpm_server_fd(const struct vfpm_server *srv);

/* Asks the server to stop: makes vfpm_server_fd readable and
 * vfpm_server_run return. Async-signal-safe; any thread. */
VFPM_EXPORT void vfpm_server_request_stop(struct vfpm_server *srv);

/* Starts the server if it is not started, waits for a stop request, then
 * stops serving. Returns 0, or the error of start. */
VFPM_EXPORT int vfpm_server_run(struct vfpm_server *srv);

/* Stops serving: clients see their connection close, socket files are
 * removed, devices stay (a stopped server cannot be started again:
 * -EPERM). Waits for the server's threads. Not from a model callback. */
VFPM_EXPORT int vfpm_server_stop(struct vfpm_server *srv);

/* Stops the server if needed and frees it with its devices. NULL is
 * ignored. */
VFPM_EXPORT void vfpm_server_free(struct vfpm_server *srv);

/* The socket path of the i-th device added, or NULL past the last. */
VFPM_EXPORT const char *vfpm_server_device_socket(const struct vfpm_server *srv, unsigned i);
/* The name of the i-th device (in the order added, removed ones left
 * out), or NULL past the last. */
VFPM_EXPORT const char *vfpm_server_device_name(const struct vfpm_server *srv, unsigned i);

/* Since 0.2 (LIBVFPM_0.2): devices added and removed while the server is
 * started (vfpmd's SIGHUP reload). -EPERM in any other state (before
 * start, use vfpm_server_add_device). Call them from one thread, the one
 * that starts and stops the server; never from a model callback.
 *
 * vfpm_server_serve_device adds a device as vfpm_server_add_device does
 * and serves it at once (-EADDRINUSE, -EEXIST: its socket is taken; the
 * device is then not added). vfpm_server_remove_device stops serving the
 * device named (-ENODEV: none, or a VF) and destroys it: its VFs are
 * removed, its client gets the device-request (REQ) interrupt and up to
 * 10 s to close before its connection is closed, its socket file is
 * removed. Other devices and their clients are not touched. */
VFPM_EXPORT int vfpm_server_serve_device(struct vfpm_server *srv, const char *spec,
					 const char *socket);
VFPM_EXPORT int vfpm_server_remove_device(struct vfpm_server *srv, const char *name);

/* The control socket's path while it is served, else NULL. */
VFPM_EXPORT const char *vfpm_server_ctl_path(const struct vfpm_server *srv);

#ifdef __cplusplus
}
#endif
#endif
