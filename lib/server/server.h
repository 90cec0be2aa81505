/* The server: devices, their listening sockets, one client session per
 * device, clean shutdown. */
#ifndef VFPM_SERVER_H
#define VFPM_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

struct vfpm_server;
struct vfpm_model;

struct server_opts {
	int verbosity;        /* VFPM_LOG_* threshold */
	mode_t socket_mode;   /* permission bits of socket files, default 0600 */
	const char *ctl_path; /* control socket; NULL: <default dir>/vfpmd.ctl;
			       * "none": no control plane */
	int handshake_ms;     /* VERSION deadline per connection; 0: the
			       * default (10 s), < 0: none */
	int send_ms;          /* deadline of each send to a client; 0: the
			       * default (10 s), < 0: none */
	mode_t ctl_mode;      /* control socket's permission bits; 0: 0600,
			       * or 0660 with ctl_group */
	bool has_ctl_group;   /* ctl_group is set: the control socket's group,
			       * whose members may change settings too */
	gid_t ctl_group;
	const char *metrics_path;   /* node_exporter textfile, or NULL */
	int ctl_line_ms;      /* a control connection's deadline for each
			       * request line; 0: the default (30 s) */
	int poll_us;          /* default of the device option poll_us; 0: the
			       * core's default, < 0: none */
	int session_idle_ms;  /* a connected client quiet this long gives its
			       * session thread back; 0: the default (1 s),
			       * < 0: never */
	/* when set, how server_add_device finds a model by name (the
	 * embedding API's models); else the built-in registry */
	const struct vfpm_model *(*find_model)(void *ctx, const char *name);
	void *find_ctx;
};

int server_create(const struct server_opts *o, struct vfpm_server **out);
/* Adds a device from "MODEL[,key=value...]". When the spec has no socket=
 * key, *socket (if socket and *socket are not NULL) is used and set to NULL;
 * otherwise the socket is <default dir>/<name>.sock.
 * Errors are reported on stderr and returned as negative errno. */
int server_add_device(struct vfpm_server *srv, const char *spec, const char **socket);
/* After server_start, server_add_device also binds the device's socket and
 * serves it at once (a failure to listen takes the device out again).
 * server_remove_device stops serving a device given by name (not a VF:
 * -ENODEV) and destroys it: its VFs go first, its client gets REQ and up
 * to 10 s to let go before the connection is closed; its socket file is
 * removed. Both are called by the thread that set the server up, never
 * concurrently with each other, server_start or server_stop. */
int server_remove_device(struct vfpm_server *srv, const char *name);
/* Binds every socket and starts serving. */
int server_start(struct vfpm_server *srv);
/* Stops serving: clients see their connection close, socket files are
 * removed. Safe to call once after server_start. */
void server_stop(struct vfpm_server *srv);
void server_destroy(struct vfpm_server *srv);
/* The control plane's reply line to one request line, exactly as a control
 * connection gets it (may_mutate: a peer allowed to change things), but
 * without a socket: for tests and fuzzing. malloc'ed; NULL when out of
 * memory. Works before server_start. */
char *server_ctl_request(struct vfpm_server *srv, const char *line, bool may_mutate);
/* The control socket path in use (NULL if none). */
const char *server_ctl_path(const struct vfpm_server *srv);
/* The socket path of device i (NULL past the last). */
const char *server_device_socket(const struct vfpm_server *srv, unsigned i);
const char *server_device_name(const struct vfpm_server *srv, unsigned i);

#endif
