/* Test harness: runs a real vfpmd on temporary sockets. */
#ifndef VFPM_TEST_HARNESS_H
#define VFPM_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vfpmd_proc {
	pid_t pid;
	char dir[256];          /* private temporary directory */
	char sock[8][300];      /* socket path of device i */
	unsigned ndev;
	char log[300];          /* vfpmd's stderr */
	char ctl[300];          /* control socket (--ctl is always passed) */
};

/* Starts VFPMD_PATH (environment, else the build's tools/vfpmd) with one
 * --device per spec (NULL-terminated list; each gets socket=<dir>/devN.sock
 * appended unless it has socket=), plus extra arguments (NULL-terminated,
 * may be NULL). Waits until every socket accepts connections (5 s max).
 * Returns 0 or a negative errno. */
int vfpmd_start(struct vfpmd_proc *p, const char *const *specs, const char *const *extra);
/* Sends SIGTERM and waits (5 s, then SIGKILL). Returns vfpmd's exit status
 * (0 on clean exit), or -1 if it had to be killed or died of a signal.
 * Removes the temporary directory. */
int vfpmd_stop(struct vfpmd_proc *p);
/* The two halves of vfpmd_stop: signal and reap (socket files stay for
 * the test to inspect), then remove the temporary directory. */
int vfpmd_terminate(struct vfpmd_proc *p);
void vfpmd_cleanup(struct vfpmd_proc *p);
/* One control-plane request (a JSON object without the newline); the reply
 * line is stored in reply (NUL-terminated). Returns 0 or -errno. */
int ctl_request(const char *ctl_path, const char *request, char *reply, size_t len);
/* Path of the vfpmd binary. */
const char *vfpmd_path(void);

/* Raw connection helpers for protocol-level tests. */
int raw_connect(const char *path);
/* Connects and negotiates VERSION with a minimal JSON; returns fd or -errno. */
int raw_connect_negotiated(const char *path);
/* Number of open descriptors of this process (leak checks). */
int count_open_fds(void);

#endif
