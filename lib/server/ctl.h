/* Control plane protocol (JSON lines); the server provides the device
 * directory through ctl_ops. */
#ifndef VFPM_CTL_H
#define VFPM_CTL_H

struct vfpm_device;
struct json_object;

struct ctl_ops {
	struct vfpm_device *(*device_at)(void *ctx, unsigned i);   /* NULL past the end */
	const char *(*socket_of)(void *ctx, unsigned i);
	struct vfpm_device *(*find)(void *ctx, const char *name);
	/* adds server-level fields (e.g. SR-IOV parent) to a device's status */
	void (*decorate)(void *ctx, unsigned i, struct json_object *o);
};

void ctl_serve_conn(const struct ctl_ops *ops, void *ctx, int fd);

#endif
