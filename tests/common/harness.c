#include "harness.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire/wire.h"

#ifndef VFPMD_BUILD_PATH
#define VFPMD_BUILD_PATH "vfpmd"
#endif

const char *vfpmd_path(void)
{
	const char *p = getenv("VFPMD_PATH");
	return p && *p ? p : VFPMD_BUILD_PATH;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int raw_connect_negotiated(const char *path)
{
	return raw_connect_negotiated_caps(path, "{\"capabilities\":{\"max_msg_fds\":8}}");
}

int raw_connect_negotiated_caps(const char *path, const char *json)
{
	size_t jl = strlen(json) + 1;
	if (jl > 512)
		return -EINVAL;
	int fd = raw_connect(path);
	if (fd < 0)
		return fd;
	uint8_t body[4 + 512];
	struct vfu_version v = { 0, 2 };
	memcpy(body, &v, 4);
	memcpy(body + 4, json, jl);
	struct vfu_hdr h = { .msg_id = 1, .cmd = VFU_CMD_VERSION };
	int rc = wire_send(fd, &h, body, 4 + jl, NULL, 0);
	struct wire_msg m;
	if (!rc)
		rc = wire_recv(fd, &m, 1 << 16, 4);
	if (!rc) {
		if (m.hdr.flags & VFU_F_ERROR)
			rc = -(int)m.hdr.error;
		wire_msg_release(&m);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the DIR's own descriptor */
}

int proc_count(pid_t pid, const char *what)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/%s", (int)pid, what);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

bool vfpmd_log_has(const struct vfpmd_proc *p, const char *needle)
{
	FILE *f = fopen(p->log, "r");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

void vfpmd_log_dump(const struct vfpmd_proc *p)
{
	FILE *f = fopen(p->log, "r");
	if (!f)
		return;
	char line[1024];
	fprintf(stderr, "--- vfpmd log %s ---\n", p->log);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fprintf(stderr, "--- end of log ---\n");
	fclose(f);
}

int proc_threads_named(pid_t pid, const char *comm, pid_t *tid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[384], name[64] = "";
		snprintf(path, sizeof(path), "%s/%.255s/comm", dir, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;   /* ended meanwhile */
		bool ok = fgets(name, sizeof(name), f) != NULL;
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (ok && (!comm || !strcmp(name, comm))) {
			n++;
			if (tid)
				*tid = (pid_t)atoi(e->d_name);
		}
	}
	closedir(d);
	return n;
}

int proc_count_fds_to(pid_t pid, const char *target)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[384], tgt[128];
		snprintf(path, sizeof(path), "%s/%.255s", dir, e->d_name);
		ssize_t k = readlink(path, tgt, sizeof(tgt) - 1);
		if (k <= 0)
			continue;   /* closed meanwhile */
		tgt[k] = '\0';
		n += strstr(tgt, target) != NULL;
	}
	closedir(d);
	return n;
}

int harness_group_start(struct vfpmd_proc *p, const char *const *specs)
{
	signal(SIGPIPE, SIG_IGN);
	int rc = vfpmd_start(p, specs, NULL);
	if (rc) {
		fprintf(stderr, "vfpmd_start: %s\n", strerror(-rc));
		return -1;
	}
	harness_watch(p->pid);
	return 0;
}

int harness_group_stop(struct vfpmd_proc *p)
{
	harness_unwatch(p->pid);
	int rc = vfpmd_stop(p);
	if (rc != 0) {
		fprintf(stderr, "vfpmd did not exit cleanly: %d\n", rc);
		return -1;
	}
	return 0;
}

static int fds_at_mark = -1;

void harness_fds_mark(void)
{
	fds_at_mark = count_open_fds();
}

int harness_fds_check(void)
{
	int now = count_open_fds();
	if (now != fds_at_mark) {
		fprintf(stderr, "descriptor leak: %d open before the test, %d after\n", fds_at_mark,
			now);
		return -1;
	}
	return 0;
}

int harness_check_alive(const struct vfpmd_proc *p)
{
	if (kill(p->pid, 0) != 0) {
		fprintf(stderr, "vfpmd died during the test\n");
		return -1;
	}
	return 0;
}

/* --- watchdog: the handler uses only write, kill and _exit --- */

#define MAX_WATCHED 8
static volatile sig_atomic_t watched[MAX_WATCHED];
static const char *volatile watchdog_name = "test";

static void watchdog_fired(int sig)
{
	static const char msg[] = ": watchdog expired (a wait hung)\n";
	const char *name = watchdog_name;
	(void)sig;
	if (write(2, name, strlen(name)) < 0 || write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	for (int i = 0; i < MAX_WATCHED; i++)
		if (watched[i] > 0)
			kill((pid_t)watched[i], SIGKILL);
	_exit(124);
}

void harness_watchdog_arm(const char *name, unsigned seconds)
{
	watchdog_name = name;
	signal(SIGALRM, watchdog_fired);
	alarm(seconds);
}

void harness_watchdog_disarm(void)
{
	alarm(0);
}

void harness_watch(pid_t pid)
{
	for (int i = 0; i < MAX_WATCHED && pid > 0; i++)
		if (watched[i] <= 0) {
			watched[i] = pid;
			return;
		}
}

void harness_unwatch(pid_t pid)
{
	for (int i = 0; i < MAX_WATCHED; i++)
		if (watched[i] == pid)
			watched[i] = 0;
}

void harness_unwatch_all(void)
{
	for (int i = 0; i < MAX_WATCHED; i++)
		watched[i] = 0;
}

unsigned cfg_find_cap(cfg_read_fn rd, void *ctx, uint8_t id)
{
	uint32_t pos = 0, hdr = 0;
	if (rd(ctx, PCI_CAPABILITY_LIST, 1, &pos))
		return 0;
	pos &= 0xfc;
	/* 48 capabilities of 4 bytes fill 0x40..0xff: more is a loop */
	for (int n = 0; pos >= 0x40 && n < 48; n++) {
		if (rd(ctx, pos, 2, &hdr))
			return 0;
		if ((hdr & 0xff) == id)
			return pos;
		pos = (hdr >> 8) & 0xfc;
	}
	return 0;
}

int harness_tmpdir(char *buf, size_t len, const char *name)
{
	if (snprintf(buf, len, "/tmp/vfpm-%s-XXXXXX", name) >= (int)len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

int vfpmd_start(struct vfpmd_proc *p, const char *const *specs, const char *const *extra)
{
	memset(p, 0, sizeof(*p));
	int trc = harness_tmpdir(p->dir, sizeof(p->dir), "test");
	if (trc)
		return trc;
	snprintf(p->log, sizeof(p->log), "%s/vfpmd.log", p->dir);
	const char *argv[64];
	char specbuf[8][512];
	int argc = 0;
	argv[argc++] = vfpmd_path();
	for (unsigned i = 0; specs && specs[i] && i < 8; i++) {
		snprintf(p->sock[i], sizeof(p->sock[i]), "%s/dev%u.sock", p->dir, i);
		const char *s = strstr(specs[i], "socket=");
		if (s) {
			const char *e = strchr(s, ',');
			size_t n = e ? (size_t)(e - s - 7) : strlen(s + 7);
			snprintf(p->sock[i], sizeof(p->sock[i]), "%.*s", (int)n, s + 7);
			snprintf(specbuf[i], sizeof(specbuf[i]), "%s", specs[i]);
		} else {
			snprintf(specbuf[i], sizeof(specbuf[i]), "%s,socket=%s", specs[i], p->sock[i]);
		}
		argv[argc++] = "--device";
		argv[argc++] = specbuf[i];
		p->ndev++;
	}
	bool has_ctl = false;
	for (unsigned i = 0; extra && extra[i] && argc < 60; i++) {
		has_ctl |= !strcmp(extra[i], "--ctl") || !strcmp(extra[i], "-c");
		argv[argc++] = extra[i];
	}
	/* every test server gets its own control socket: the default one
	 * would be shared by tests running in parallel */
	snprintf(p->ctl, sizeof(p->ctl), "%s/ctl.sock", p->dir);
	if (!has_ctl) {
		argv[argc++] = "--ctl";
		argv[argc++] = p->ctl;
	}
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	p->pid = pid;
	for (int t = 0; t < 500; t++) {
		unsigned ready = 0;
		for (unsigned i = 0; i < p->ndev; i++) {
			int fd = raw_connect(p->sock[i]);
			if (fd >= 0) {
				close(fd);
				ready++;
			}
		}
		/* vfpmd listens on its control socket before its device sockets */
		if (ready == p->ndev)
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			p->pid = 0;
			return -ECHILD;
		}
		sleep_ms(10);
	}
	vfpmd_stop(p);
	return -ETIMEDOUT;
}

int vfpmd_terminate(struct vfpmd_proc *p)
{
	int ret = -1;
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		int st = 0;
		for (int t = 0; t < 500; t++) {
			if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
				ret = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
				p->pid = 0;
				break;
			}
			sleep_ms(10);
		}
		if (p->pid > 0) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->pid = 0;
			ret = -1;
		}
	}
	return ret;
}

void vfpmd_cleanup(struct vfpmd_proc *p)
{
	if (getenv("VFPM_TEST_KEEP_LOG"))
		return;
	for (unsigned i = 0; i < p->ndev; i++)
		unlink(p->sock[i]);
	unlink(p->log);
	unlink(p->ctl);
	rmdir(p->dir);
}

int ctl_request(const char *ctl_path, const char *request, char *reply, size_t len)
{
	int fd = raw_connect(ctl_path);
	if (fd < 0)
		return fd;
	size_t n = strlen(request);
	if (write(fd, request, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
		close(fd);
		return -EIO;
	}
	size_t have = 0;
	int rc = -EPROTO;
	while (have + 1 < len) {
		ssize_t r = read(fd, reply + have, len - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		reply[have] = '\0';
		char *nl = strchr(reply, '\n');
		if (nl) {
			*nl = '\0';
			rc = 0;
			break;
		}
	}
	close(fd);
	return rc;
}

int vfpmd_stop(struct vfpmd_proc *p)
{
	int rc = vfpmd_terminate(p);
	vfpmd_cleanup(p);
	return rc;
}
