/* Prometheus metrics of the served devices (metrics.c). */
#ifndef VFPM_METRICS_H
#define VFPM_METRICS_H

struct ctl_ops;
struct ev_hub;
struct json_object;
struct metrics_file;

/* The text exposition format of every device (malloc'ed; NULL: no memory). */
char *metrics_text(const struct ctl_ops *ops, void *ctx);
/* {"ok":true,"text":...} for the control plane's "metrics". */
struct json_object *ctl_metrics(const struct ctl_ops *ops, void *ctx);
/* Keeps path up to date from a thread of its own: written at start and
 * after every PM event (when the text changed), by rename of a temporary
 * file; removed by metrics_file_stop, which the caller calls once stop_fd
 * is readable. */
int metrics_file_start(const char *path, const struct ctl_ops *ops, void *ctx, struct ev_hub *hub,
		       int stop_fd, int verbosity, struct metrics_file **out);
void metrics_file_stop(struct metrics_file *m);
/* Rewrites the file soon (the device list changed without an event). */
void metrics_file_kick(struct metrics_file *m);

#endif
