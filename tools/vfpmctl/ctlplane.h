#ifndef VFPMCTL_CTLPLANE_H
#define VFPMCTL_CTLPLANE_H
#include <stddef.h>
struct json_object;
/* <default socket dir>/vfpmd.ctl, the default of vfpmd --ctl. */
int ctlplane_default_path(char *buf, size_t len);
/* Each returns a process exit status: 0 ok, 1 error, 2 bad usage. */
int ctlplane_status(const char *path, int argc, char **argv);
int ctlplane_set(const char *path, int argc, char **argv);
int ctlplane_inject_intx(const char *path, int argc, char **argv);
int ctlplane_events(const char *path, int argc, char **argv);
int ctlplane_metrics(const char *path, int argc, char **argv);
/* timeline.c: the power timeline as an SVG or PNG (cairo). */
int ctlplane_timeline(const char *path, int argc, char **argv);
/* One request, its one-line reply parsed (0 or a negative errno). */
int ctlplane_request(const char *path, struct json_object *req, struct json_object **out);
/* 0 for {"ok":true}; else prints "vfpmctl: WHAT: error" and returns -errno. */
int ctlplane_check_reply(struct json_object *rep, const char *what);
#endif
