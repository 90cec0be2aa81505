#ifndef VFPMCTL_CTLPLANE_H
#define VFPMCTL_CTLPLANE_H
#include <stddef.h>
/* <default socket dir>/vfpmd.ctl, the default of vfpmd --ctl. */
int ctlplane_default_path(char *buf, size_t len);
/* Each returns a process exit status: 0 ok, 1 error, 2 bad usage. */
int ctlplane_status(const char *path, int argc, char **argv);
int ctlplane_set(const char *path, int argc, char **argv);
int ctlplane_inject_intx(const char *path, int argc, char **argv);
int ctlplane_events(const char *path, int argc, char **argv);
int ctlplane_metrics(const char *path, int argc, char **argv);
#endif
