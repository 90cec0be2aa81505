/* Server: a listening socket per device, all of them watched by one
 * acceptor thread (epoll, no timeout); a session thread while a client is
 * connected. Blocked threads cost no CPU, so an idle device makes no
 * wakeups, and an idle device costs no thread of the server's.
 *
 * Devices given on the command line live as long as the server. SR-IOV
 * VFs come and go with their PF's VF Enable (the host's sriov_numvfs, or a
 * host config write), not with the PF's client: they are listed under
 * their PF (srv->lock) and reference-counted so that the control plane
 * never touches a VF being removed.
 *
 * Locks: srv->lock (device lists, refs) is never held while taking a
 * device's locks; a PF's trans_lock and memory_lock may be held when VFs
 * are created (lib/core/core.h has the whole lock table). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "ctl.h"
#include "metrics.h"
#include "models.h"
#include "server.h"
#include "vfpm/client.h"

#define CTL_MAX_CONNS 32      /* control connections served at once */
#define CTL_SEND_SECONDS 2    /* a control reply not taken by then drops the client */
#define REFUSE_WAIT_MS 1000   /* a refused client's first message is awaited this long */
#define REFUSE_MAX_THREADS 16 /* refusals waiting at once; more are refused at once */
#define NEXT_MAX 8            /* clients queued behind a session that is ending */
#define SESSION_IDLE_MS_DEFAULT 1000   /* a quiet client's session gives its thread back */

/* What an acceptor event is about: a device's listening socket, or the
 * connection of its idle session. */
struct acc_tag {
	enum { ACC_LISTEN, ACC_IDLE } kind;
	struct server_dev *sd;
};

struct server_dev {
	struct vfpm_server *srv;
	struct vfpm_device *dev;
	char *path;
	int lfd;
	bool bound;          /* we created path: we remove it */
	bool watched;        /* lfd is in the acceptor's epoll set (srv->acc_mu) */
	/* SR-IOV (srv->lock) */
	struct server_dev *pf;
	struct server_dev **vfs;   /* a PF's VFs, nvfs of them */
	unsigned nvfs;
	unsigned refs;             /* control-plane users of a VF */
	mutex_t mu;  /* client_fd, session_active */
	int client_fd;
	/* clients waiting, in order, for the session before them to end
	 * (each came after its predecessor hung up) */
	int next_fds[NEXT_MAX];
	unsigned nnext;
	bool unserving;      /* no new session: next_fds are closed, not served */
	bool session_active;
	bool session_joinable;
	pthread_t session_thread;
	/* The session outlives its thread: idle (its client sent nothing
	 * for session_idle_ms), it has none, and its connection is in the
	 * acceptor's set until a message, EOF or unserve wakes it. */
	struct core_session sess;
	bool sess_live;      /* sess is initialised (its client is client_fd) */
	bool idle;           /* no thread: client_fd is in the acceptor's set */
	struct acc_tag listen_tag, idle_tag;
};

struct vfpm_server {
	struct server_opts o;
	struct server_dev **devs;   /* grown by server_add_device, before start */
	unsigned ndevs, devs_cap;
	int stop_fd;         /* eventfd: readable once stopping */
	/* VF clients get no grace period once set; read by a PF session
	 * removing its VFs while main stops the server, so atomic */
	atomic_bool stopping;
	struct rpm_wq *wq;   /* runs every device's idle suspends */
	struct ev_hub *hub;  /* PM event subscribers (events.h) */
	struct metrics_file *metrics;   /* --metrics-file writer, or NULL */
	bool started;        /* server_start done: a device added now is served at once */
	/* The acceptor: one thread accepting for every device. It handles
	 * each batch of epoll events under acc_mu and then bumps acc_seq, so
	 * a device taken out of the set (acc_unwatch) is not touched once the
	 * batch in progress is over. */
	int ep_fd;           /* epoll: every device's lfd, stop_fd, acc_wake_fd */
	int acc_wake_fd;     /* eventfd: makes the acceptor finish a batch */
	pthread_t acc_thread;
	bool acc_started;
	mutex_t acc_mu;      /* acc_running, acc_seq, refusing, sd->watched */
	pthread_cond_t acc_cv;
	bool acc_running;
	uint64_t acc_seq;
	unsigned refusing;   /* refusal threads still running */
	/* A descriptor kept in reserve: out of descriptors, the acceptor
	 * frees it to take the waiting connection and close it, instead of
	 * being woken by the same pending connection without end (acc_mu). */
	int spare_fd;
	bool out_of_fds;     /* logged once per episode (acc_mu) */
	mutex_t lock;   /* VF lists and refs */
	pthread_cond_t refs_cv;
	char *ctl_path;
	int ctl_fd;
	bool ctl_bound;
	pthread_t ctl_thread;
	bool ctl_started;
	/* control connections, each served by its own thread (ctl_mu) */
	mutex_t ctl_mu;
	struct ctl_conn {
		pthread_t thread;
		int fd;
		bool used, done;
		struct vfpm_server *srv;
	} ctl_conns[CTL_MAX_CONNS];
};

static const struct sriov_host server_sriov_host;

int server_create(const struct server_opts *o, struct vfpm_server **out)
{
	/* Once, before any thread: the files vfpmd creates are its own
	 * (sockets bind owner-only, listen_path then sets their mode). */
	mode_t um = umask(077);
	umask(um | 077);
	/* A demo VF holds five descriptors (its socket, two eventfds, an
	 * ioeventfd, its BAR memfd), so 256 VFs of one PF need about 1300,
	 * more than the usual soft limit of 1024: raise the soft limit to
	 * the hard one, as servers holding many descriptors do (no select()). */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) {
			/* keep the old limit: many VFs may then fail with EMFILE */
		}
	}
	struct vfpm_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->o = *o;
	srv->ctl_fd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->ctl_mu, NULL);
	pthread_mutex_init(&srv->acc_mu, NULL);
	pthread_cond_init(&srv->refs_cv, NULL);
	pthread_cond_init(&srv->acc_cv, NULL);
	srv->stop_fd = eventfd(0, EFD_CLOEXEC);
	srv->acc_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	srv->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int rc = 0;
	if (srv->stop_fd < 0 || srv->acc_wake_fd < 0 || srv->ep_fd < 0) {
		rc = -errno;
	} else {
		/* data.ptr NULL: stop; the wake eventfd: itself */
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		if (epoll_ctl(srv->ep_fd, EPOLL_CTL_ADD, srv->stop_fd, &ev) < 0)
			rc = -errno;
		ev.data.ptr = &srv->acc_wake_fd;
		if (!rc && epoll_ctl(srv->ep_fd, EPOLL_CTL_ADD, srv->acc_wake_fd, &ev) < 0)
			rc = -errno;
	}
	if (rc) {
		if (srv->stop_fd >= 0)
			close(srv->stop_fd);
		if (srv->acc_wake_fd >= 0)
			close(srv->acc_wake_fd);
		if (srv->ep_fd >= 0)
			close(srv->ep_fd);
		free(srv);
		return rc;
	}
	rc = rpm_wq_create(&srv->wq);
	if (!rc) {
		rc = ev_hub_create(&srv->hub);
		if (rc)
			rpm_wq_destroy(srv->wq);
	}
	if (rc) {
		close(srv->stop_fd);
		close(srv->acc_wake_fd);
		close(srv->ep_fd);
		free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

const char *server_device_socket(const struct vfpm_server *srv, unsigned i)
{
	return i < srv->ndevs ? srv->devs[i]->path : NULL;
}

const char *server_device_name(const struct vfpm_server *srv, unsigned i)
{
	return i < srv->ndevs ? srv->devs[i]->dev->name : NULL;
}

/* The directory vfpmd picks by itself (/run/vfpm, $XDG_RUNTIME_DIR/vfpm,
 * /tmp/vfpm-UID) must be ours alone: it is created 0700 when missing, and
 * one that is a symlink, belongs to another user or is writable by others
 * is refused (another user could plant a control socket there, or make us
 * unlink a file of theirs at shutdown). A directory named by $VFPM_SOCKET
 * is the user's choice and not checked. */
static int check_private_dir(const char *d)
{
	struct stat st;
	if (lstat(d, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (mkdir(d, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (lstat(d, &st) < 0)
			return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		fprintf(stderr,
			"vfpmd: %s is not a private directory of this user (a symlink, another "
			"owner, or writable by others): refusing to use it\n",
			d);
		return -EPERM;
	}
	return 0;
}

static int default_dir(char *buf, size_t len)
{
	char p[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
	int rc = vfpm_default_socket_path(p, sizeof(p));
	if (rc)
		return rc;
	char *d = dirname(p);
	if (snprintf(buf, len, "%s", d) >= (int)len)
		return -ENAMETOOLONG;
	const char *env = getenv("VFPM_SOCKET");
	return env && *env ? 0 : check_private_dir(buf);
}

static int serve_added(struct vfpm_server *srv, struct server_dev *sd);

/* What a resource error means for a server of many devices: which limit
 * (named, with its value) it ran into, written to buf; "" for other
 * errors. */
static const char *limit_hint(int rc, char *buf, size_t len)
{
	struct rlimit rl;
	if (rc == -EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		snprintf(buf, len,
			 " (the descriptor limit RLIMIT_NOFILE, %llu here: a demo device holds 3, "
			 "vfpmd raises the soft limit to the hard one; raise the hard one, "
			 "ulimit -Hn or LimitNOFILE=)",
			 (unsigned long long)rl.rlim_cur);
		return buf;
	}
	if (rc == -ENFILE)
		return " (the system-wide descriptor limit, fs.file-max)";
	if (rc == -EAGAIN && getrlimit(RLIMIT_NPROC, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			snprintf(buf, len,
				 " (a thread limit: kernel.threads-max or the cgroup's pids.max; "
				 "a demo device has 1 thread, 2 with a client)");
		else
			snprintf(buf, len,
				 " (a thread limit: RLIMIT_NPROC, %llu here, kernel.threads-max or "
				 "the cgroup's pids.max; a demo device has 1 thread, 2 with a client)",
				 (unsigned long long)rl.rlim_cur);
		return buf;
	}
	if (rc == -ENOMEM)
		return " (out of memory, or the thread stacks' address space: vm.max_map_count)";
	return "";
}

int server_add_device(struct vfpm_server *srv, const char *spec, const char **socket)
{
	if (srv->ndevs == srv->devs_cap) {
		unsigned nc = srv->devs_cap ? 2 * srv->devs_cap : 16;
		struct server_dev **n = nc > srv->devs_cap ? realloc(srv->devs, nc * sizeof(*n)) : NULL;
		if (!n) {
			fprintf(stderr, "vfpmd: --device '%s': out of memory for the device table\n",
				spec);
			return -ENOMEM;
		}
		srv->devs = n;
		srv->devs_cap = nc;
	}
	char model_name[64];
	const char *comma = strchr(spec, ',');
	size_t mlen = comma ? (size_t)(comma - spec) : strlen(spec);
	if (!mlen || mlen >= sizeof(model_name)) {
		fprintf(stderr, "vfpmd: --device '%s': expected MODEL[,key=value...]\n", spec);
		return -EINVAL;
	}
	memcpy(model_name, spec, mlen);
	model_name[mlen] = '\0';
	const struct vfpm_model *model = srv->o.find_model
						 ? srv->o.find_model(srv->o.find_ctx, model_name)
						 : vfpm_model_find(model_name);
	if (!model) {
		fprintf(stderr, "vfpmd: unknown device model '%s' (see vfpmd --list-models)\n",
			model_name);
		return -ENOENT;
	}
	struct vfpm_opts opts;
	int rc = opts_parse(comma ? comma + 1 : "", &opts);
	if (rc) {
		fprintf(stderr, "vfpmd: --device '%s': %s\n", spec,
			rc == -EEXIST ? "an option is given twice" : "expected key=value pairs");
		return rc;
	}
	/* the server-wide poll_us, unless the spec names its own */
	if (!rc && srv->o.poll_us && !vfpm_opts_get(&opts, "poll_us")) {
		char v[16];
		snprintf(v, sizeof(v), "%d", srv->o.poll_us > 0 ? srv->o.poll_us : 0);
		struct vfpm_kv *kv = realloc(opts.kv, (opts.n + 1) * sizeof(*kv));
		if (kv) {
			opts.kv = kv;
			kv[opts.n].key = strdup("poll_us");
			kv[opts.n].val = strdup(v);
			if (kv[opts.n].key && kv[opts.n].val) {
				opts.n++;
			} else {
				free(kv[opts.n].key);
				free(kv[opts.n].val);
				rc = -ENOMEM;
			}
		} else {
			rc = -ENOMEM;
		}
		if (rc) {
			opts_free(&opts);
			return rc;
		}
	}
	/* name= and socket= belong to the server, not the model */
	char *name = NULL, *path = NULL;
	for (size_t i = 0; i < opts.n;) {
		char **dst = !strcmp(opts.kv[i].key, "name")     ? &name
			     : !strcmp(opts.kv[i].key, "socket") ? &path
								 : NULL;
		if (!dst) {
			i++;
			continue;
		}
		*dst = opts.kv[i].val;
		free(opts.kv[i].key);
		opts.kv[i] = opts.kv[--opts.n];
	}
	char buf[256];
	if (!name) {
		unsigned same = 0;
		for (unsigned i = 0; i < srv->ndevs; i++)
			same += srv->devs[i]->dev->model == model;
		if (same)
			snprintf(buf, sizeof(buf), "%s%u", model->name, same);
		else
			snprintf(buf, sizeof(buf), "%s", model->name);
		name = strdup(buf);
	}
	if (!path && socket && *socket) {
		path = strdup(*socket);
		*socket = NULL;   /* used up: later devices get their default */
	}
	rc = 0;
	if (!name || (name[0] == '\0') || strchr(name, '/')) {
		fprintf(stderr, "vfpmd: --device '%s': invalid name\n", spec);
		rc = -EINVAL;
	}
	if (!rc && !path) {
		char dir[200];
		rc = default_dir(dir, sizeof(dir));
		if (!rc && snprintf(buf, sizeof(buf), "%s/%s.sock", dir, name) >= (int)sizeof(buf))
			rc = -ENAMETOOLONG;
		if (!rc && !(path = strdup(buf)))
			rc = -ENOMEM;
	}
	for (unsigned i = 0; !rc && i < srv->ndevs; i++) {
		if (!strcmp(srv->devs[i]->dev->name, name)) {
			fprintf(stderr, "vfpmd: two devices are named '%s'\n", name);
			rc = -EEXIST;
		} else if (!strcmp(srv->devs[i]->path, path)) {
			fprintf(stderr, "vfpmd: two devices use socket %s\n", path);
			rc = -EEXIST;
		}
	}
	struct server_dev *sd = NULL;
	if (!rc) {
		sd = calloc(1, sizeof(*sd));
		rc = sd ? device_create(model, name, &opts, srv->wq, srv->o.verbosity, &sd->dev)
			: -ENOMEM;
		if (rc && sd) {
			char hint[200];
			fprintf(stderr, "vfpmd: cannot create device '%s' (%s): %s%s\n", name, spec,
				strerror(-rc), limit_hint(rc, hint, sizeof(hint)));
		}
	}
	if (rc) {
		free(sd);
		free(name);
		free(path);
		opts_free(&opts);
		return rc;
	}
	free(name);
	sd->srv = srv;
	sd->path = path;
	sd->lfd = -1;
	sd->client_fd = -1;
	sd->listen_tag = (struct acc_tag){ ACC_LISTEN, sd };
	sd->idle_tag = (struct acc_tag){ ACC_IDLE, sd };
	pthread_mutex_init(&sd->mu, NULL);
	sd->dev->host = &server_sriov_host;
	sd->dev->host_ctx = sd;
	events_attach(sd->dev, srv->hub);
	mutex_lock(&srv->lock);   /* the control plane lists devs */
	srv->devs[srv->ndevs++] = sd;
	mutex_unlock(&srv->lock);
	if (srv->started)
		return serve_added(srv, sd);
	return 0;
}

/* Replaces a stale socket file (nobody listening) but never a live socket
 * or a file that is not a socket. */
static int clear_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	return unlink(path) < 0 ? -errno : 0;
}

static int ensure_dir(const char *path)
{
	char *dup = strdup(path);
	if (!dup)
		return -ENOMEM;
	char *d = dirname(dup);
	struct stat st;
	int rc = 0;
	if (stat(d, &st) < 0) {
		/* only the last component is created, private to us */
		rc = mkdir(d, 0700) < 0 && errno != EEXIST ? -errno : 0;
	} else if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
	}
	free(dup);
	return rc;
}

/* Binds and listens at path with permission bits mode (and group gid
 * unless (gid_t)-1). The process umask (at least 077, set once at start)
 * makes the socket owner-only at bind; chmod then gives it its mode, so
 * it is never more open than asked and the umask is never changed while
 * other threads create sockets. */
static int listen_path(const char *path, mode_t mode, gid_t gid, int *out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int rc = ensure_dir(path);
	if (!rc)
		rc = clear_stale(path);
	if (rc)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	if (rc == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		rc = -1;
	if (rc == 0 && chmod(path, mode) < 0)
		rc = -1;
	if (rc < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

static int listen_on(struct server_dev *sd)
{
	int rc = listen_path(sd->path, sd->srv->o.socket_mode, (gid_t)-1, &sd->lfd);
	if (rc)
		return rc;
	sd->bound = true;
	/* the acceptor must never block in accept(): a connection gone
	 * before it is taken gives EAGAIN, not a stalled acceptor */
	int fl = fcntl(sd->lfd, F_GETFL);
	if (fl < 0 || fcntl(sd->lfd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* --- control plane --- */

/* srv->lock held: a reference keeps a VF from being freed */
static void sd_ref(struct server_dev *sd)
{
	sd->refs++;
}

static void ctl_put(void *ctx, void *handle)
{
	struct vfpm_server *srv = ctx;
	struct server_dev *sd = handle;
	mutex_lock(&srv->lock);
	if (!--sd->refs)
		pthread_cond_broadcast(&srv->refs_cv);
	mutex_unlock(&srv->lock);
}

static void fill_entry(struct ctl_entry *e, struct server_dev *sd)
{
	e->dev = sd->dev;
	e->socket = sd->path;
	e->pf = sd->pf ? sd->pf->dev->name : NULL;
	e->nvfs = sd->nvfs;
	e->handle = sd;
}

static struct ctl_entry *ctl_snapshot(void *ctx, unsigned *count)
{
	struct vfpm_server *srv = ctx;
	mutex_lock(&srv->lock);
	unsigned n = srv->ndevs;
	for (unsigned i = 0; i < srv->ndevs; i++)
		n += srv->devs[i]->nvfs;
	struct ctl_entry *e = calloc(n ? n : 1, sizeof(*e));
	unsigned k = 0;
	for (unsigned i = 0; e && i < srv->ndevs; i++) {
		struct server_dev *pf = srv->devs[i];
		sd_ref(pf);
		fill_entry(&e[k++], pf);
		for (unsigned j = 0; j < pf->nvfs; j++) {
			sd_ref(pf->vfs[j]);
			fill_entry(&e[k++], pf->vfs[j]);
		}
	}
	mutex_unlock(&srv->lock);
	*count = k;
	return e;
}

static struct vfpm_device *ctl_get(void *ctx, const char *name, void **handle)
{
	struct vfpm_server *srv = ctx;
	struct server_dev *found = NULL;
	mutex_lock(&srv->lock);
	for (unsigned i = 0; !found && i < srv->ndevs; i++) {
		struct server_dev *pf = srv->devs[i];
		if (!strcmp(pf->dev->name, name))
			found = pf;
		for (unsigned j = 0; !found && j < pf->nvfs; j++)
			if (!strcmp(pf->vfs[j]->dev->name, name))
				found = pf->vfs[j];
	}
	if (found)
		sd_ref(found);
	mutex_unlock(&srv->lock);
	*handle = found;
	return found ? found->dev : NULL;
}

static struct ev_hub *ctl_hub(void *ctx)
{
	return ((struct vfpm_server *)ctx)->hub;
}

static const struct ctl_ops server_ctl_ops = {
	.snapshot = ctl_snapshot,
	.get = ctl_get,
	.put = ctl_put,
	.hub = ctl_hub,
};

char *server_ctl_request(struct vfpm_server *srv, const char *line, bool may_mutate)
{
	char *follow = NULL;
	char *out = ctl_handle_line(&server_ctl_ops, srv, line, may_mutate, &follow);
	if (follow) {   /* a subscription needs a connection: none here */
		free(follow);
		free(out);
		out = strdup("{\"ok\":false,\"errno\":95,\"error\":\"subscribe needs a control connection\"}");
	}
	return out;
}

/* Whether the peer on a control connection may change settings and config
 * space: root, the server's own user, or (with --ctl-group) a member of
 * that group. Others may read the status and config space. */
static bool peer_may_mutate(const struct vfpm_server *srv, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof(cr))
		return false;
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	if (!srv->o.has_ctl_group)
		return false;
	if (cr.gid == srv->o.ctl_group)
		return true;
	/* supplementary groups, from the user database */
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(cr.uid, &pw, buf, sizeof(buf), &res) || !res)
		return false;
	gid_t groups[256];
	int n = 256;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == srv->o.ctl_group)
			return true;
	return false;
}

static void *ctl_conn_main(void *arg)
{
	struct ctl_conn *cc = arg;
	struct vfpm_server *srv = cc->srv;
	pthread_setname_np(pthread_self(), "vfpm-ctl-conn");
	ctl_serve_conn(&server_ctl_ops, srv, cc->fd, peer_may_mutate(srv, cc->fd), srv->stop_fd,
		       srv->o.ctl_line_ms > 0 ? srv->o.ctl_line_ms : CTL_LINE_MS);
	close(cc->fd);   /* at once: the connection is over */
	mutex_lock(&srv->ctl_mu);
	cc->fd = -1;
	cc->done = true;
	mutex_unlock(&srv->ctl_mu);
	return NULL;
}

/* Joins the connections that ended (all of them with all, after stop). */
static void ctl_reap(struct vfpm_server *srv, bool all)
{
	for (unsigned i = 0; i < CTL_MAX_CONNS; i++) {
		struct ctl_conn *cc = &srv->ctl_conns[i];
		mutex_lock(&srv->ctl_mu);
		bool join = cc->used && (cc->done || all);
		mutex_unlock(&srv->ctl_mu);
		if (!join)
			continue;
		pthread_join(cc->thread, NULL);
		mutex_lock(&srv->ctl_mu);
		cc->used = cc->done = false;
		mutex_unlock(&srv->ctl_mu);
	}
}

/* A connection gets a thread of its own, so a client that is slow, silent
 * or never reads its replies costs only its connection: replies have a
 * send deadline, lines an idle deadline, and stop ends them all. */
static void ctl_accept(struct vfpm_server *srv, int fd)
{
	struct timeval tv = { CTL_SEND_SECONDS, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ctl_reap(srv, false);
	struct ctl_conn *cc = NULL;
	mutex_lock(&srv->ctl_mu);
	for (unsigned i = 0; i < CTL_MAX_CONNS && !cc; i++)
		if (!srv->ctl_conns[i].used)
			cc = &srv->ctl_conns[i];
	if (cc)
		*cc = (struct ctl_conn){ .fd = fd, .used = true, .srv = srv };
	mutex_unlock(&srv->ctl_mu);
	if (cc && pthread_create(&cc->thread, NULL, ctl_conn_main, cc) == 0)
		return;
	static const char msg[] =
		"{\"ok\":false,\"errno\":16,\"error\":\"too many control connections\"}\n";
	if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* it is refused either way */
	}
	if (cc) {
		mutex_lock(&srv->ctl_mu);
		cc->used = false;
		mutex_unlock(&srv->ctl_mu);
	}
	close(fd);
}

static void *ctl_main(void *arg)
{
	struct vfpm_server *srv = arg;
	pthread_setname_np(pthread_self(), "vfpm-ctl");
	struct pollfd p[2] = { { .fd = srv->ctl_fd, .events = POLLIN },
			       { .fd = srv->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(srv->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		ctl_accept(srv, fd);
	}
	ctl_reap(srv, true);   /* stop_fd ends every connection's wait */
	return NULL;
}

const char *server_ctl_path(const struct vfpm_server *srv)
{
	return srv->ctl_bound ? srv->ctl_path : NULL;
}

static int ctl_start(struct vfpm_server *srv)
{
	const char *p = srv->o.ctl_path;
	if (p && !strcmp(p, "none"))
		return 0;
	char buf[300];
	if (!p) {
		char dir[200];
		int rc = default_dir(dir, sizeof(dir));
		if (rc)
			return rc;
		snprintf(buf, sizeof(buf), "%s/vfpmd.ctl", dir);
		p = buf;
	}
	srv->ctl_path = strdup(p);
	if (!srv->ctl_path)
		return -ENOMEM;
	/* the control socket has its own mode: --socket-mode opens device
	 * sockets to a VMM's user, not the control of every device */
	mode_t mode = srv->o.ctl_mode ? srv->o.ctl_mode : srv->o.has_ctl_group ? 0660 : 0600;
	int rc = listen_path(srv->ctl_path, mode,
			     srv->o.has_ctl_group ? srv->o.ctl_group : (gid_t)-1, &srv->ctl_fd);
	if (rc) {
		fprintf(stderr, "vfpmd: cannot listen on control socket %s: %s%s\n", srv->ctl_path,
			rc == -EADDRINUSE ? "another server is listening there" : strerror(-rc),
			rc == -EADDRINUSE ? " (use --ctl PATH, or --ctl none)" : "");
		return rc;
	}
	srv->ctl_bound = true;
	rc = pthread_create(&srv->ctl_thread, NULL, ctl_main, srv);
	if (rc)
		return -rc;
	srv->ctl_started = true;
	core_log(srv->o.verbosity, VFPM_LOG_INFO, NULL, "control socket %s", srv->ctl_path);
	return 0;
}

/* A session thread serves its device's clients one after the other: a
 * client that connected while the previous one was hanging up (next_fds)
 * is served by the same thread once that session has ended. A session
 * whose client goes quiet gives its thread back (idle_park) and another
 * thread takes it up where it was (idle_wake). */
static bool idle_park(struct server_dev *sd);

static void *session_main(void *arg)
{
	struct server_dev *sd = arg;
	/* named, so that ps -L, top -H and tests tell it from the others */
	pthread_setname_np(pthread_self(), "vfpm-session");
	mutex_lock(&sd->mu);
	int fd = sd->client_fd;
	bool live = sd->sess_live;
	mutex_unlock(&sd->mu);
	struct core_session *s = &sd->sess;
	while (fd >= 0) {
		if (!live) {
			session_init(s, sd->dev, fd);
			if (sd->srv->o.handshake_ms)
				s->handshake_ms = sd->srv->o.handshake_ms;
			if (sd->srv->o.send_ms)
				session_set_send_timeout(s, sd->srv->o.send_ms);
			int idle = sd->srv->o.session_idle_ms;
			s->idle_ms = idle > 0 ? idle : idle < 0 ? 0 : SESSION_IDLE_MS_DEFAULT;
			mutex_lock(&sd->mu);
			sd->sess_live = true;
			mutex_unlock(&sd->mu);
			DLOG(sd->dev, VFPM_LOG_INFO, "client connected");
		}
		int rc = session_run(s);
		if (rc == SESSION_IDLE) {
			if (idle_park(sd))
				return NULL;   /* the acceptor watches it now */
			live = true;   /* not watched: this thread goes on */
			continue;
		}
		if (rc)
			DLOG(sd->dev, VFPM_LOG_WARN, "closing client connection: %s", strerror(-rc));
		else
			DLOG(sd->dev, VFPM_LOG_INFO, "client disconnected");
		session_fini(s);
		mutex_lock(&sd->mu);
		sd->sess_live = false;
		live = false;
		close(sd->client_fd);
		fd = -1;
		if (sd->unserving) {
			for (unsigned i = 0; i < sd->nnext; i++)
				close(sd->next_fds[i]);
			sd->nnext = 0;
		} else if (sd->nnext) {
			fd = sd->next_fds[0];
			memmove(sd->next_fds, sd->next_fds + 1, --sd->nnext * sizeof(int));
		}
		sd->client_fd = fd;
		sd->session_active = fd >= 0;
		mutex_unlock(&sd->mu);
	}
	return NULL;
}

/* The session's client has been quiet for session_idle_ms: its
 * connection joins the acceptor's set (one event, then it is taken out
 * again) and the thread ends. False when it could not be added: the
 * thread keeps the session. */
static bool idle_park(struct server_dev *sd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
				  .data.ptr = &sd->idle_tag };
	mutex_lock(&sd->mu);
	/* not while the device is being taken away: unserve_finish may have
	 * looked for an idle session already, and the acceptor may be gone */
	bool parked = !sd->unserving &&
		      epoll_ctl(sd->srv->ep_fd, EPOLL_CTL_ADD, sd->client_fd, &ev) == 0;
	sd->idle = parked;
	if (parked) {
		/* nobody joins it: an ended thread that is never joined keeps
		 * its stack mapped (8 MiB of address space, 2 mappings per
		 * quiet client). It touches nothing of sd after the unlock. */
		pthread_detach(pthread_self());
		sd->session_joinable = false;
	}
	mutex_unlock(&sd->mu);
	return parked;
}

/* sd->mu held: a thread for sd's session, as accept_one starts one. */
static int session_thread_start(struct server_dev *sd) REQUIRES(sd->mu)
{
	/* a thread that is over (it ended, or it left an idle session) */
	if (sd->session_joinable)
		pthread_join(sd->session_thread, NULL);
	sd->session_joinable = false;
	int rc = pthread_create(&sd->session_thread, NULL, session_main, sd);
	if (!rc)
		sd->session_joinable = true;
	return -rc;
}

/* sd->mu held: an idle session gets a thread again (its client sent
 * something or hung up, or the device is being taken away). Whoever sees
 * it idle first takes it; the others find it taken. Without a thread the
 * client is cut off and the session ended here, on the caller's, without
 * serving what the client sent: a request run on the acceptor (which
 * holds acc_mu) could take acc_mu again (an SR-IOV enable adds sockets).
 * device_close, which session_fini runs, does not. */
static void idle_wake(struct server_dev *sd) REQUIRES(sd->mu)
{
	if (!sd->idle)
		return;
	sd->idle = false;
	epoll_ctl(sd->srv->ep_fd, EPOLL_CTL_DEL, sd->client_fd, NULL);
	int rc = session_thread_start(sd);
	if (!rc)
		return;
	DLOG(sd->dev, VFPM_LOG_ERR, "no thread to go on with the session: %s: disconnecting",
	     strerror(-rc));
	shutdown(sd->client_fd, SHUT_RDWR);
	mutex_unlock(&sd->mu);
	session_fini(&sd->sess);
	mutex_lock(&sd->mu);
	sd->sess_live = false;
	close(sd->client_fd);
	sd->client_fd = -1;
	for (unsigned i = 0; i < sd->nnext; i++)
		close(sd->next_fds[i]);   /* no thread for them either */
	sd->nnext = 0;
	sd->session_active = false;
}

struct refusal {
	struct vfpm_server *srv;
	int fd;
};

/* A second client gets an error reply (EBUSY) to its first message, then
 * the connection closes; the first client is not disturbed. The first
 * message is awaited for at most REFUSE_WAIT_MS (0: not at all), or until
 * the server stops. */
static void refuse_fd(int fd, int stop_fd, int wait_ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
	struct vfu_hdr h = { .cmd = VFU_CMD_VERSION };
	if (wait_ms && poll(p, 2, wait_ms) > 0 && (p[0].revents & POLLIN)) {
		ssize_t n = recv(fd, &h, sizeof(h), MSG_DONTWAIT);
		if (n != (ssize_t)sizeof(h))
			h = (struct vfu_hdr){ .cmd = VFU_CMD_VERSION };
	}
	struct vfu_hdr r = { .msg_id = h.msg_id, .cmd = h.cmd,
			     .flags = VFU_F_TYPE_REPLY | VFU_F_ERROR, .error = EBUSY };
	wire_send(fd, &r, NULL, 0, NULL, 0);
	close(fd);
}

static void *refusal_main(void *arg)
{
	struct refusal *r = arg;
	struct vfpm_server *srv = r->srv;
	refuse_fd(r->fd, srv->stop_fd, REFUSE_WAIT_MS);
	free(r);
	mutex_lock(&srv->acc_mu);
	srv->refusing--;
	pthread_cond_broadcast(&srv->acc_cv);
	mutex_unlock(&srv->acc_mu);
	return NULL;
}

/* The acceptor hands a refusal to a short-lived thread of its own, so a
 * refused client that never sends anything holds up only itself; past
 * REFUSE_MAX_THREADS of them, or without a thread, it is refused at once
 * (the reply then answers a VERSION with message id 0). */
static void refuse(struct server_dev *sd, int fd)   /* srv->acc_mu held */
{
	struct vfpm_server *srv = sd->srv;
	DLOG(sd->dev, VFPM_LOG_WARN, "refused a second client: device already has one");
	struct refusal *r = srv->refusing < REFUSE_MAX_THREADS ? malloc(sizeof(*r)) : NULL;
	if (r) {
		*r = (struct refusal){ .srv = srv, .fd = fd };
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_t t;
		int rc = pthread_create(&t, &a, refusal_main, r);
		pthread_attr_destroy(&a);
		if (rc == 0) {
			srv->refusing++;
			return;
		}
		free(r);
	}
	refuse_fd(fd, srv->stop_fd, 0);
}

/* True once the peer of a connected stream has closed (or shut down)
 * its end: its session will see EOF and end by itself. */
static bool peer_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* One connection on sd's socket: a session for it, or a refusal. Nothing
 * here waits on a client or on a session that is still running. */
static void accept_one(struct server_dev *sd)   /* srv->acc_mu held */
{
	struct vfpm_server *srv = sd->srv;
	int fd = accept4(sd->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		/* the connection stays pending and the socket readable: take
		 * it with the reserved descriptor and close it (the client sees
		 * its connection closed), or the acceptor would spin on it */
		int err = errno;
		if (!srv->out_of_fds)
			DLOG(sd->dev, VFPM_LOG_ERR, "out of descriptors: closing new connections (%s)",
			     strerror(err));
		srv->out_of_fds = true;
		if (srv->spare_fd >= 0) {
			close(srv->spare_fd);
			int lost = accept4(sd->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (lost >= 0)
				close(lost);
			srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		}
		return;
	}
	if (fd < 0)
		return;
	srv->out_of_fds = false;
	mutex_lock(&sd->mu);
	if (sd->session_active && sd->nnext < NEXT_MAX && !sd->unserving &&
	    peer_hung_up(sd->nnext ? sd->next_fds[sd->nnext - 1] : sd->client_fd)) {
		/* The client has closed its end and its session is winding
		 * down (or the last one queued behind it has): the session
		 * thread serves this one after it, instead of refusing a
		 * client that reconnects at once (the device is free as soon
		 * as the old peer is gone). */
		sd->next_fds[sd->nnext++] = fd;
		mutex_unlock(&sd->mu);
		return;
	}
	if (sd->session_active || sd->unserving) {
		mutex_unlock(&sd->mu);
		refuse(sd, fd);
		return;
	}
	sd->client_fd = fd;
	sd->session_active = true;
	int rc = session_thread_start(sd);
	if (rc) {
		sd->session_active = false;
		sd->client_fd = -1;
		close(fd);
		DLOG(sd->dev, VFPM_LOG_ERR, "cannot start a session: %s", strerror(-rc));
	}
	mutex_unlock(&sd->mu);
}

static void *acceptor_main(void *arg)
{
	struct vfpm_server *srv = arg;
	pthread_setname_np(pthread_self(), "vfpm-accept");
	struct epoll_event evs[64];
	bool stop = false;
	while (!stop) {
		int n = epoll_wait(srv->ep_fd, evs, 64, -1);
		mutex_lock(&srv->acc_mu);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (!p) {
				stop = true;
			} else if (p == &srv->acc_wake_fd) {
				uint64_t v;
				if (read(srv->acc_wake_fd, &v, sizeof(v)) < 0) {
					/* EAGAIN: another batch took it */
				}
			} else if (!stop) {
				struct acc_tag *t = p;
				if (t->kind == ACC_LISTEN) {
					accept_one(t->sd);
				} else {
					mutex_lock(&t->sd->mu);
					idle_wake(t->sd);
					mutex_unlock(&t->sd->mu);
				}
			}
		}
		srv->acc_seq++;
		if (stop)
			srv->acc_running = false;
		pthread_cond_broadcast(&srv->acc_cv);
		mutex_unlock(&srv->acc_mu);
	}
	return NULL;
}

/* Adds sd's listening socket to the acceptor's set. */
static int acc_watch(struct server_dev *sd)
{
	struct vfpm_server *srv = sd->srv;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &sd->listen_tag };
	mutex_lock(&srv->acc_mu);
	int rc = epoll_ctl(srv->ep_fd, EPOLL_CTL_ADD, sd->lfd, &ev) < 0 ? -errno : 0;
	sd->watched = !rc;
	mutex_unlock(&srv->acc_mu);
	return rc;
}

/* srv->acc_mu held: returns once the acceptor's batch in progress (if
 * any) is over, so it touches no device it saw in it any more. */
static void acc_sync_locked(struct vfpm_server *srv) REQUIRES(srv->acc_mu)
{
	if (!srv->acc_running)
		return;
	uint64_t one = 1, seq = srv->acc_seq;
	if (write(srv->acc_wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN only near saturation: it is readable then anyway */
	}
	while (srv->acc_running && srv->acc_seq == seq)
		pthread_cond_wait(&srv->acc_cv, &srv->acc_mu);
}

/* Takes the n devices out of the acceptor's set; on return the acceptor
 * no longer touches them (a batch that saw them is over), so their
 * sockets may close and they may be freed. */
static void acc_unwatch(struct server_dev **sds, unsigned n)
{
	if (!n)
		return;
	struct vfpm_server *srv = sds[0]->srv;
	bool any = false;
	mutex_lock(&srv->acc_mu);
	for (unsigned i = 0; i < n; i++) {
		if (!sds[i]->watched)
			continue;
		epoll_ctl(srv->ep_fd, EPOLL_CTL_DEL, sds[i]->lfd, NULL);
		sds[i]->watched = false;
		any = true;
	}
	if (any)
		acc_sync_locked(srv);
	mutex_unlock(&srv->acc_mu);
}

int server_start(struct vfpm_server *srv)
{
	/* the control plane first: once a device socket accepts, the control
	 * socket does too (a script or a test that waits for a device socket
	 * may then use vfpmctl at once) */
	int crc = ctl_start(srv);
	if (crc)
		return crc;
	if (srv->o.metrics_path) {
		crc = metrics_file_start(srv->o.metrics_path, &server_ctl_ops, srv, srv->hub,
					 srv->stop_fd, srv->o.verbosity, &srv->metrics);
		if (crc) {
			fprintf(stderr, "vfpmd: metrics file %s: %s\n", srv->o.metrics_path,
				strerror(-crc));
			return crc;
		}
	}
	for (unsigned i = 0; i < srv->ndevs; i++) {
		struct server_dev *sd = srv->devs[i];
		int rc = listen_on(sd);
		if (!rc)
			rc = acc_watch(sd);
		if (rc) {
			char hint[200];
			fprintf(stderr, "vfpmd: %s: cannot listen on %s: %s%s\n", sd->dev->name,
				sd->path,
				rc == -EADDRINUSE ? "another server is listening there"
				: rc == -EEXIST	  ? "exists and is not a socket"
						  : strerror(-rc),
				limit_hint(rc, hint, sizeof(hint)));
			return rc;
		}
	}
	mutex_lock(&srv->acc_mu);
	srv->acc_running = true;
	mutex_unlock(&srv->acc_mu);
	int rc = pthread_create(&srv->acc_thread, NULL, acceptor_main, srv);
	if (rc) {
		mutex_lock(&srv->acc_mu);
		srv->acc_running = false;
		mutex_unlock(&srv->acc_mu);
		char hint[200];
		fprintf(stderr, "vfpmd: cannot start the acceptor thread: %s%s\n", strerror(rc),
			limit_hint(-rc, hint, sizeof(hint)));
		return -rc;
	}
	srv->acc_started = true;
	for (unsigned i = 0; i < srv->ndevs; i++) {
		struct server_dev *sd = srv->devs[i];
		DLOG(sd->dev, VFPM_LOG_INFO, "serving model %s on %s", sd->dev->model->name, sd->path);
	}
	srv->started = true;
	return 0;
}

static bool session_active(struct server_dev *sd)
{
	mutex_lock(&sd->mu);
	bool active = sd->session_active;
	mutex_unlock(&sd->mu);
	return active;
}

/* After the grace: closes sd's client (if any) and its socket. */
static void unserve_finish(struct server_dev *sd, int grace_ms)
{
	bool was_idle = false;
	mutex_lock(&sd->mu);
	sd->unserving = true;   /* a client waiting in next_fd is not served */
	if (sd->session_active) {
		/* ask the client to let go (REQ), then close its stream */
		irq_signal_req(sd->dev);
		shutdown(sd->client_fd, SHUT_RDWR);
		if (grace_ms)
			DLOG(sd->dev, VFPM_LOG_WARN, "client did not release the device: closed");
		/* an idle session has no thread to see the shutdown: one now
		 * (the acceptor may be gone already) */
		was_idle = sd->idle;
		idle_wake(sd);
	}
	bool join = sd->session_joinable;
	sd->session_joinable = false;
	mutex_unlock(&sd->mu);
	if (join)
		pthread_join(sd->session_thread, NULL);
	if (was_idle) {
		/* the acceptor may hold an event of that connection from
		 * before: sd is freed after this */
		mutex_lock(&sd->srv->acc_mu);
		acc_sync_locked(sd->srv);
		mutex_unlock(&sd->srv->acc_mu);
	}
	acc_unwatch(&sd, 1);   /* unserve_all did; a VF that failed half-way too */
	if (sd->lfd >= 0)
		close(sd->lfd);
	sd->lfd = -1;
	if (sd->bound)
		unlink(sd->path);
	sd->bound = false;
}

/* Stops serving the n devices together: no new clients; every connected
 * client is asked to let go (the REQ interrupt, re-sent every second as
 * vfio-pci re-sends it) for one grace of up to grace_ms shared by all, then
 * the connections still open are closed. */
static void unserve_all(struct server_dev **sds, unsigned n, int grace_ms)
{
	acc_unwatch(sds, n);
	for (unsigned i = 0; i < n; i++) {
		mutex_lock(&sds[i]->mu);
		sds[i]->unserving = true;   /* a waiting next client is not served */
		mutex_unlock(&sds[i]->mu);
	}
	for (int waited = 0;; waited += 20) {
		bool any = false;
		for (unsigned i = 0; i < n; i++) {
			if (!session_active(sds[i]))
				continue;
			any = true;
			if (waited % 1000 == 0 && waited < grace_ms)
				irq_signal_req(sds[i]->dev);
		}
		if (!any || waited >= grace_ms)
			break;
		struct timespec t = { 0, 20 * 1000000L };
		nanosleep(&t, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		unserve_finish(sds[i], grace_ms);
}

static void unserve(struct server_dev *sd, int grace_ms)
{
	unserve_all(&sd, 1, grace_ms);
}

static void free_sd(struct server_dev *sd)
{
	device_destroy(sd->dev);
	pthread_mutex_destroy(&sd->mu);
	free(sd->vfs);
	free(sd->path);
	free(sd);
}

/* --- SR-IOV VFs (the device core's sriov_host) --- */

#define VF_RELEASE_GRACE_MS 10000

/* --- devices added and removed while serving (vfpmd's SIGHUP) --- */

/* The caller (one thread: set-up and reload are not concurrent) takes sd
 * out of srv->devs under srv->lock and waits for the control plane's
 * references to go: no control request can reach it after that. */
static void take_out(struct vfpm_server *srv, struct server_dev *sd)
{
	mutex_lock(&srv->lock);
	for (unsigned i = 0; i < srv->ndevs; i++) {
		if (srv->devs[i] != sd)
			continue;
		/* keep the order: the control plane lists devices as added */
		memmove(&srv->devs[i], &srv->devs[i + 1], (srv->ndevs - i - 1) * sizeof(srv->devs[0]));
		srv->ndevs--;
		break;
	}
	while (sd->refs)
		pthread_cond_wait(&srv->refs_cv, &srv->lock);
	mutex_unlock(&srv->lock);
}

/* The metrics file lists the devices: rewrite it now, not at the next
 * PM event. */
static void metrics_kick(struct vfpm_server *srv)
{
	if (srv->metrics)
		metrics_file_kick(srv->metrics);
}

/* A device added to a started server: bind its socket, start accepting.
 * On failure it is taken out again and destroyed. */
static int serve_added(struct vfpm_server *srv, struct server_dev *sd)
{
	int rc = listen_on(sd);
	if (rc) {
		fprintf(stderr, "vfpmd: %s: cannot listen on %s: %s\n", sd->dev->name, sd->path,
			rc == -EADDRINUSE ? "another server is listening there"
			: rc == -EEXIST	  ? "exists and is not a socket"
					  : strerror(-rc));
	} else {
		rc = acc_watch(sd);
	}
	if (rc) {
		take_out(srv, sd);
		unserve(sd, 0);
		free_sd(sd);
		return rc;
	}
	DLOG(sd->dev, VFPM_LOG_INFO, "serving model %s on %s (added)", sd->dev->model->name,
	     sd->path);
	metrics_kick(srv);
	return 0;
}

int server_remove_device(struct vfpm_server *srv, const char *name)
{
	struct server_dev *sd = NULL;
	for (unsigned i = 0; i < srv->ndevs && !sd; i++)
		if (!strcmp(srv->devs[i]->dev->name, name))
			sd = srv->devs[i];
	if (!sd)
		return -ENODEV;   /* VFs come and go with their PF's VF Enable */
	take_out(srv, sd);
	DLOG(sd->dev, VFPM_LOG_INFO, "removing the device");
	/* VFs first (their clients get the VF grace), then the device's own
	 * client: REQ, then its connection is closed after the grace */
	device_sriov_disable(sd->dev);
	unserve(sd, VF_RELEASE_GRACE_MS);
	free_sd(sd);
	metrics_kick(srv);
	return 0;
}

static int vf_path(struct server_dev *pf, unsigned i, char *buf, size_t len)
{
	char *dup = strdup(pf->path);
	if (!dup)
		return -ENOMEM;
	int n = snprintf(buf, len, "%s/%s-vf%u.sock", dirname(dup), pf->dev->name, i);
	free(dup);
	return n >= (int)len ? -ENAMETOOLONG : 0;
}

static int host_create_vfs(void *ctx, struct vfpm_device *pfdev, unsigned n)
{
	struct server_dev *pf = ctx;
	struct vfpm_server *srv = pf->srv;
	struct server_dev **vfs = calloc(n, sizeof(*vfs));
	if (!vfs)
		return -ENOMEM;
	int rc = 0;
	unsigned made = 0;
	for (; made < n && !rc; made++) {
		struct server_dev *sd = calloc(1, sizeof(*sd));
		char path[300];
		if (!sd) {
			rc = -ENOMEM;
			break;
		}
		sd->srv = srv;
		sd->pf = pf;
		sd->lfd = -1;
		sd->client_fd = -1;
		sd->listen_tag = (struct acc_tag){ ACC_LISTEN, sd };
		sd->idle_tag = (struct acc_tag){ ACC_IDLE, sd };
		pthread_mutex_init(&sd->mu, NULL);
		rc = vf_path(pf, made, path, sizeof(path));
		if (!rc)
			rc = (sd->path = strdup(path)) ? 0 : -ENOMEM;
		if (!rc)
			rc = device_create_vf(pfdev, made, srv->wq, &sd->dev);
		if (!rc)
			rc = listen_on(sd);
		if (!rc)
			rc = acc_watch(sd);
		if (rc) {
			unserve(sd, 0);
			if (sd->dev)
				free_sd(sd);
			else {
				pthread_mutex_destroy(&sd->mu);
				free(sd->path);
				free(sd);
			}
			break;
		}
		vfs[made] = sd;
	}
	if (rc) {
		DLOG(pfdev, VFPM_LOG_ERR, "creating VF %u failed: %s", made, strerror(-rc));
		for (unsigned i = 0; i < made; i++) {
			if (!vfs[i])
				continue;
			unserve(vfs[i], 0);
			free_sd(vfs[i]);
		}
		free(vfs);
		return rc;
	}
	mutex_lock(&srv->lock);
	pf->vfs = vfs;
	pf->nvfs = n;
	mutex_unlock(&srv->lock);
	return 0;
}

static void host_destroy_vfs(void *ctx, struct vfpm_device *pfdev)
{
	struct server_dev *pf = ctx;
	struct vfpm_server *srv = pf->srv;
	mutex_lock(&srv->lock);
	struct server_dev **vfs = pf->vfs;
	unsigned n = pf->nvfs;
	pf->vfs = NULL;
	pf->nvfs = 0;
	/* no new control-plane user can find them now; wait for the current */
	for (unsigned i = 0; i < n; i++)
		while (vfs[i]->refs)
			pthread_cond_wait(&srv->refs_cv, &srv->lock);
	mutex_unlock(&srv->lock);
	/* one grace for all: 256 VFs whose clients ignore REQ take 10 s,
	 * not 43 minutes */
	unserve_all(vfs, n, atomic_load(&srv->stopping) ? 0 : VF_RELEASE_GRACE_MS);
	for (unsigned i = 0; i < n; i++)
		free_sd(vfs[i]);
	free(vfs);
	(void)pfdev;
}

/* The PF's sriov_lock is held: its VF list cannot change meanwhile. */
static void host_sync_vfs(void *ctx, struct vfpm_device *pfdev)
{
	struct server_dev *pf = ctx;
	mutex_lock(&pf->srv->lock);
	struct server_dev **vfs = pf->vfs;
	unsigned n = pf->nvfs;
	mutex_unlock(&pf->srv->lock);
	for (unsigned i = 0; i < n; i++)
		pm_sync_mappings(vfs[i]->dev);
	(void)pfdev;
}

static const struct sriov_host server_sriov_host = {
	.create_vfs = host_create_vfs,
	.destroy_vfs = host_destroy_vfs,
	.sync_vfs = host_sync_vfs,
};

void server_stop(struct vfpm_server *srv)
{
	uint64_t one = 1;
	if (write(srv->stop_fd, &one, sizeof(one)) < 0) {
		/* an eventfd write of 1 cannot fail here */
	}
	/* the acceptor ends at stop_fd: no device takes a new client now */
	if (srv->acc_started)
		pthread_join(srv->acc_thread, NULL);
	srv->acc_started = false;
	if (srv->ctl_started)
		pthread_join(srv->ctl_thread, NULL);
	srv->ctl_started = false;
	if (srv->ctl_fd >= 0)
		close(srv->ctl_fd);
	srv->ctl_fd = -1;
	if (srv->ctl_bound)
		unlink(srv->ctl_path);
	srv->ctl_bound = false;
	metrics_file_stop(srv->metrics);
	srv->metrics = NULL;
	atomic_store(&srv->stopping, true);
	for (unsigned i = 0; i < srv->ndevs; i++) {
		device_sriov_disable(srv->devs[i]->dev);   /* VFs first, without grace */
		unserve(srv->devs[i], 0);
	}
	/* refusals still waiting for a first message see stop_fd: they
	 * reply and close at once */
	mutex_lock(&srv->acc_mu);
	while (srv->refusing)
		pthread_cond_wait(&srv->acc_cv, &srv->acc_mu);
	mutex_unlock(&srv->acc_mu);
}

void server_destroy(struct vfpm_server *srv)
{
	if (!srv)
		return;
	for (unsigned i = 0; i < srv->ndevs; i++)
		free_sd(srv->devs[i]);
	free(srv->devs);
	rpm_wq_destroy(srv->wq);
	ev_hub_destroy(srv->hub);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->ctl_mu);
	pthread_mutex_destroy(&srv->acc_mu);
	pthread_cond_destroy(&srv->refs_cv);
	pthread_cond_destroy(&srv->acc_cv);
	free(srv->ctl_path);
	close(srv->stop_fd);
	close(srv->acc_wake_fd);
	close(srv->ep_fd);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv);
}
