/* The embedding API (include/vfpm/server.h) over the server of server.c.
 *
 * It adds what a library caller needs and vfpmd's main() used to do by
 * itself: models registered at run time, a checked state machine (set up,
 * started, stopped) and a stop request that can come from a signal handler
 * or an event loop. Set-up calls, start, stop and free are made by one
 * thread at a time; request_stop and fd from any. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/core.h"
#include "models.h"
#include "vfpm/server.h"

/* server.c's server, which this file wraps, has the public name in its
 * own header: seen from here it is struct server_impl. */
#define vfpm_server server_impl
#include "server.h"
#undef vfpm_server

#define EMBED_MAX_MODELS 64

enum embed_state { EMBED_SETUP, EMBED_STARTED, EMBED_STOPPED };

struct vfpm_server {
	struct server_impl *impl;
	enum embed_state state;
	int stop_req_fd;   /* eventfd: readable once a stop is requested */
	char *ctl_path;
	const struct vfpm_model *models[EMBED_MAX_MODELS];
	unsigned nmodels;  /* registered ones; the built-in ones come first */
};

static unsigned builtin_count(void)
{
	unsigned n = 0;
	for (const struct vfpm_model *const *m = vfpm_models(); *m; m++)
		n++;
	return n;
}

VFPM_EXPORT const struct vfpm_model *vfpm_server_model(const struct vfpm_server *srv, unsigned i)
{
	if (!srv)
		return NULL;
	unsigned nb = builtin_count();
	if (i < nb)
		return vfpm_models()[i];
	i -= nb;
	return i < srv->nmodels ? srv->models[i] : NULL;
}

static const struct vfpm_model *find_model(void *ctx, const char *name)
{
	const struct vfpm_server *srv = ctx;
	const struct vfpm_model *m;
	for (unsigned i = 0; (m = vfpm_server_model(srv, i)); i++)
		if (!strcmp(m->name, name))
			return m;
	return NULL;
}

VFPM_EXPORT int vfpm_server_new(const struct vfpm_server_opts *o, struct vfpm_server **out)
{
	static const struct vfpm_server_opts defaults = { .size = sizeof(defaults) };
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!o)
		o = &defaults;
	/* the struct vfpm_model rule: an older (smaller) struct is read up
	 * to its size, a newer one is refused */
	if (o->size < offsetof(struct vfpm_server_opts, send_ms) + sizeof(o->send_ms))
		return -EINVAL;
	if (o->size > sizeof(*o))
		return -E2BIG;
	if (o->verbosity < 0 || o->verbosity > CORE_VERBOSITY_MAX || o->socket_mode > 07777 ||
	    o->ctl_mode > 07777)
		return -EINVAL;
	struct vfpm_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->stop_req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->stop_req_fd < 0) {
		int rc = -errno;
		free(srv);
		return rc;
	}
	if (o->ctl && o->ctl_path && !(srv->ctl_path = strdup(o->ctl_path))) {
		vfpm_server_free(srv);
		return -ENOMEM;
	}
	struct server_opts so = {
		.verbosity = o->verbosity,
		.socket_mode = o->socket_mode ? o->socket_mode : 0600,
		.ctl_path = !o->ctl ? "none" : srv->ctl_path,
		.handshake_ms = o->handshake_ms,
		.send_ms = o->send_ms,
		.ctl_mode = o->ctl_mode,
		.has_ctl_group = o->has_ctl_group,
		.ctl_group = o->ctl_group,
		.find_model = find_model,
		.find_ctx = srv,
	};
	/* fields past the caller's size are absent */
	if (o->size >= offsetof(struct vfpm_server_opts, metrics_path) + sizeof(o->metrics_path))
		so.metrics_path = o->metrics_path;
	if (o->size >= offsetof(struct vfpm_server_opts, ctl_line_ms) + sizeof(o->ctl_line_ms)) {
		if (o->ctl_line_ms < 0) {
			vfpm_server_free(srv);
			return -EINVAL;
		}
		so.ctl_line_ms = o->ctl_line_ms;
	}
	if (o->size >= offsetof(struct vfpm_server_opts, poll_us) + sizeof(o->poll_us)) {
		if (o->poll_us > (int)CORE_POLL_US_MAX) {
			vfpm_server_free(srv);
			return -EINVAL;
		}
		so.poll_us = o->poll_us;
	}
	if (o->size >= offsetof(struct vfpm_server_opts, session_idle_ms) +
				sizeof(o->session_idle_ms)) {
		if (o->session_idle_ms > 3600000) {
			vfpm_server_free(srv);
			return -EINVAL;
		}
		so.session_idle_ms = o->session_idle_ms;
	}
	int rc = server_create(&so, &srv->impl);
	if (rc) {
		vfpm_server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

VFPM_EXPORT int vfpm_server_add_model(struct vfpm_server *srv, const struct vfpm_model *model)
{
	if (!srv)
		return -EINVAL;
	if (srv->state != EMBED_SETUP)
		return -EPERM;
	int rc = core_model_check(model);
	if (rc)
		return rc;
	if (find_model(srv, model->name))
		return -EEXIST;
	if (srv->nmodels >= EMBED_MAX_MODELS)
		return -ENOSPC;
	srv->models[srv->nmodels++] = model;
	return 0;
}

VFPM_EXPORT int vfpm_server_add_device(struct vfpm_server *srv, const char *spec,
				       const char *socket)
{
	if (!srv || !spec)
		return -EINVAL;
	if (srv->state != EMBED_SETUP)
		return -EPERM;
	return server_add_device(srv->impl, spec, &socket);
}

VFPM_EXPORT int vfpm_server_start(struct vfpm_server *srv)
{
	if (!srv)
		return -EINVAL;
	if (srv->state != EMBED_SETUP)
		return -EPERM;
	srv->state = EMBED_STARTED;
	int rc = server_start(srv->impl);
	if (rc) {
		/* undo what was bound and started */
		server_stop(srv->impl);
		srv->state = EMBED_STOPPED;
	}
	return rc;
}

VFPM_EXPORT int vfpm_server_fd(const struct vfpm_server *srv)
{
	return srv ? srv->stop_req_fd : -EINVAL;
}

VFPM_EXPORT void vfpm_server_request_stop(struct vfpm_server *srv)
{
	uint64_t one = 1;
	if (srv && write(srv->stop_req_fd, &one, sizeof(one)) < 0) {
		/* an eventfd far from saturation takes it */
	}
}

VFPM_EXPORT int vfpm_server_stop(struct vfpm_server *srv)
{
	if (!srv)
		return -EINVAL;
	if (srv->state != EMBED_STARTED)
		return -EPERM;
	server_stop(srv->impl);
	srv->state = EMBED_STOPPED;
	return 0;
}

VFPM_EXPORT int vfpm_server_run(struct vfpm_server *srv)
{
	if (!srv)
		return -EINVAL;
	if (srv->state == EMBED_SETUP) {
		int rc = vfpm_server_start(srv);
		if (rc)
			return rc;
	}
	if (srv->state != EMBED_STARTED)
		return -EPERM;
	struct pollfd p = { .fd = srv->stop_req_fd, .events = POLLIN };
	while (poll(&p, 1, -1) < 0 && errno == EINTR) {
	}
	return vfpm_server_stop(srv);
}

VFPM_EXPORT void vfpm_server_free(struct vfpm_server *srv)
{
	if (!srv)
		return;
	if (srv->state == EMBED_STARTED)
		server_stop(srv->impl);
	server_destroy(srv->impl);
	if (srv->stop_req_fd >= 0)
		close(srv->stop_req_fd);
	free(srv->ctl_path);
	free(srv);
}

VFPM_EXPORT const char *vfpm_server_device_socket(const struct vfpm_server *srv, unsigned i)
{
	return srv ? server_device_socket(srv->impl, i) : NULL;
}

VFPM_EXPORT int vfpm_server_serve_device(struct vfpm_server *srv, const char *spec,
					 const char *socket)
{
	if (!srv || !spec)
		return -EINVAL;
	if (srv->state != EMBED_STARTED)
		return -EPERM;
	return server_add_device(srv->impl, spec, &socket);
}

VFPM_EXPORT int vfpm_server_remove_device(struct vfpm_server *srv, const char *name)
{
	if (!srv || !name)
		return -EINVAL;
	if (srv->state != EMBED_STARTED)
		return -EPERM;
	return server_remove_device(srv->impl, name);
}

VFPM_EXPORT const char *vfpm_server_device_name(const struct vfpm_server *srv, unsigned i)
{
	return srv ? server_device_name(srv->impl, i) : NULL;
}

VFPM_EXPORT const char *vfpm_server_ctl_path(const struct vfpm_server *srv)
{
	return srv && srv->state == EMBED_STARTED ? server_ctl_path(srv->impl) : NULL;
}
