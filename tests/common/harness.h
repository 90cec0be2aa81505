/* Test harness: runs a real vfpmd on temporary sockets. */
#ifndef VFPM_TEST_HARNESS_H
#define VFPM_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
/* A new directory /tmp/vfpm-NAME-<unique> in buf (mkdtemp): 0 or -errno. */
int harness_tmpdir(char *buf, size_t len, const char *name);
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
/* The same with the VERSION's JSON given (a peer's capabilities, e.g.
 * libvfio-user's client's 1 KiB max_data_xfer_size). */
int raw_connect_negotiated_caps(const char *path, const char *json);
/* Number of open descriptors of this process (leak checks). */
int count_open_fds(void);

/* The fixture of a suite that shares one vfpmd (cmocka group setup and
 * teardown): SIGPIPE ignored, vfpmd started with specs and watched by the
 * watchdog. Stop: unwatched, stopped; -1 (with a message) unless it
 * exited cleanly. */
int harness_group_start(struct vfpmd_proc *p, const char *const *specs);
int harness_group_stop(struct vfpmd_proc *p);
/* Descriptor leak check around one test: mark at setup; check at
 * teardown returns 0, or -1 after printing both counts. */
void harness_fds_mark(void);
int harness_fds_check(void);
/* 0 if p's vfpmd is still running, else -1 with a message. */
int harness_check_alive(const struct vfpmd_proc *p);

/* Entries of /proc/PID/WHAT ("fd": open descriptors, "task": threads) of
 * another process, e.g. vfpmd (leak checks); -1 if it cannot be read. */
int proc_count(pid_t pid, const char *what);
/* Whether p's vfpmd has written a line containing needle to its log. */
bool vfpmd_log_has(const struct vfpmd_proc *p, const char *needle);
/* p's vfpmd's log on stderr (for a failure that needs the server's side). */
void vfpmd_log_dump(const struct vfpmd_proc *p);
/* Threads of pid whose name (/proc/PID/task/TID/comm) is comm, or all of
 * them with comm NULL; with tid, the id of one of those counted. -1 if
 * they cannot be read. */
int proc_threads_named(pid_t pid, const char *comm, pid_t *tid);
/* Open descriptors of pid whose link target contains target (e.g.
 * "[eventfd]", "socket:"); -1 if they cannot be read. */
int proc_count_fds_to(pid_t pid, const char *target);

/* A per-test deadline, so that a wait that hangs fails the run instead of
 * blocking it: after seconds, "NAME: watchdog expired (a wait hung)" is
 * written to stderr, every watched process is killed and the test process
 * exits with 124. Arming again restarts the deadline; disarming cancels it
 * (the watched processes stay watched until unwatched). */
void harness_watchdog_arm(const char *name, unsigned seconds);
void harness_watchdog_disarm(void);
/* Processes the watchdog kills (at most 8; a ninth is not watched). */
void harness_watch(pid_t pid);
void harness_unwatch(pid_t pid);
void harness_unwatch_all(void);

/* Reads len (1, 2 or 4) bytes of config space at off into *val: 0 or -errno. */
typedef int (*cfg_read_fn)(void *ctx, unsigned off, unsigned len, uint32_t *val);
/* Walks the standard capability list through rd; the offset of the
 * capability id, or 0 if absent (or on a read error, or a list that
 * loops or points below 0x40). */
unsigned cfg_find_cap(cfg_read_fn rd, void *ctx, uint8_t id);

#endif
