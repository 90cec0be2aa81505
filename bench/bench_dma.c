/* DMA at memory speed: the demo engine's 1 MiB copy jobs against the
 * physical limits of the same machine, measured in alternating rounds.
 *
 *  - memcpy: 1 MiB copied by this process between two halves of a memfd
 *    mapping (the kind of memory guest RAM is), the limit for a copy.
 *  - thread: the same memcpy done by another thread on request (an
 *    eventfd each way), as the engine's worker does it: the data was just
 *    written by this thread, so it crosses CPUs, and the request and its
 *    completion are a wakeup each. The limit for a copy engine in a
 *    thread of its own.
 *  - fd job: the demo engine copies 1 MiB between two addresses of a
 *    descriptor-backed DMA mapping (DMA_MAP with a memfd): from the
 *    doorbell (the ioeventfd, as a guest rings it) to the MSI-X interrupt.
 *  - msg job: the same through a mapping without a descriptor, so every
 *    byte goes as DMA_READ/DMA_WRITE messages over the socket (1 MiB read,
 *    1 MiB written per job), served by the client library.
 *  - socket: 1 MiB sends over an AF_UNIX stream socketpair to a forked
 *    reader, the socket's bandwidth (the limit for message DMA).
 *
 * Results are reported, never asserted; the copies are checked.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "vfpm/client.h"

#define MIB (1u << 20)
#define DEMO_INT_MASK 0x18
#define DEMO_SRC 0x20
#define DEMO_DST 0x28
#define DEMO_LEN 0x30
#define DEMO_RESULT 0x34
#define DEMO_DOORBELL 0x10
#define IOVA_FD 0x100000ull      /* 4 MiB, descriptor-backed */
#define IOVA_MSG 0x10000000ull   /* 4 MiB, message-based */

enum { K_MEMCPY, K_THREAD, K_FD, K_MSG, K_SOCK, NKINDS };
static uint32_t job_len = MIB;   /* bytes per copy (-l) */
static const char *const kind_names[NKINDS] = { "memcpy", "thread", "fd job", "msg job",
						 "socket" };

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define TRY(what, expr)                                                                 \
	do {                                                                            \
		int rc_ = (expr);                                                       \
		if (rc_ < 0) {                                                          \
			fprintf(stderr, "bench_dma: %s: %s\n", what, strerror(-rc_));   \
			return rc_;                                                     \
		}                                                                       \
	} while (0)

struct dev {
	struct vfpm_client *c;
	int doorbell;     /* ioeventfd */
	int irq;          /* MSI-X vector 0's eventfd */
	uint8_t *fdmem;   /* the descriptor-backed guest memory (4 MiB) */
	uint8_t *msgmem;  /* the message-based one (4 MiB) */
};

static int bar0_w32(struct vfpm_client *c, unsigned off, uint32_t v)
{
	return vfpm_client_region_write(c, 0, off, &v, 4);
}

static int setup(struct dev *d, const char *sock)
{
	int rc = vfpm_client_connect(sock, NULL, &d->c);
	for (int t = 0; rc && t < 100; t++) {   /* the harness's probe may hold the slot */
		usleep(10000);
		rc = vfpm_client_connect(sock, NULL, &d->c);
	}
	TRY("connect", rc);
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	TRY("COMMAND", vfpm_client_region_write(d->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						&cmd, 2));
	/* MSI-X: find the capability, enable it, unmask vector 0 */
	uint8_t ptr = 0;
	TRY("config", vfpm_client_region_read(d->c, VFIO_PCI_CONFIG_REGION_INDEX,
					      PCI_CAPABILITY_LIST, &ptr, 1));
	unsigned msix = 0;
	for (unsigned n = 0; ptr && n < 48; n++) {
		uint8_t hdr[2];
		TRY("config", vfpm_client_region_read(d->c, VFIO_PCI_CONFIG_REGION_INDEX, ptr, hdr, 2));
		if (hdr[0] == PCI_CAP_ID_MSIX)
			msix = ptr;
		ptr = hdr[1];
	}
	if (!msix) {
		fprintf(stderr, "bench_dma: no MSI-X capability\n");
		return -ENODEV;
	}
	uint16_t mc = PCI_MSIX_FLAGS_ENABLE;
	TRY("MSI-X", vfpm_client_region_write(d->c, VFIO_PCI_CONFIG_REGION_INDEX,
					      msix + PCI_MSIX_FLAGS, &mc, 2));
	uint32_t unmask = 0;
	TRY("MSI-X", vfpm_client_region_write(d->c, 4, PCI_MSIX_ENTRY_VECTOR_CTRL, &unmask, 4));
	d->irq = eventfd(0, EFD_CLOEXEC);
	TRY("SET_IRQS", vfpm_client_set_irqs(d->c, VFIO_IRQ_SET_DATA_EVENTFD |
						   VFIO_IRQ_SET_ACTION_TRIGGER,
					     VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &d->irq, 1, NULL));
	struct vfpm_ioeventfd io[4];
	int n = vfpm_client_region_io_fds(d->c, 0, io, 4);
	TRY("GET_REGION_IO_FDS", n);
	d->doorbell = -1;
	for (int i = 0; i < n; i++)
		if (io[i].offset == DEMO_DOORBELL)
			d->doorbell = io[i].fd;
		else
			close(io[i].fd);
	if (d->doorbell < 0) {
		fprintf(stderr, "bench_dma: no doorbell ioeventfd\n");
		return -ENODEV;
	}
	int mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, 4 * MIB) < 0)
		return -errno;
	void *host;
	TRY("DMA_MAP (memfd)", vfpm_client_dma_map(d->c, mfd, 0, IOVA_FD, 4 * MIB,
						  VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
						  &host));
	close(mfd);
	d->fdmem = host;
	TRY("DMA_MAP (messages)", vfpm_client_dma_map(d->c, -1, 0, IOVA_MSG, 4 * MIB,
						     VFIO_DMA_MAP_FLAG_READ |
							     VFIO_DMA_MAP_FLAG_WRITE,
						     &host));
	d->msgmem = host;
	TRY("INT_MASK", bar0_w32(d->c, DEMO_INT_MASK, 1));
	TRY("LEN", bar0_w32(d->c, DEMO_LEN, job_len));
	return 0;
}

static int program(struct dev *d, uint64_t src, uint64_t dst)
{
	TRY("SRC", bar0_w32(d->c, DEMO_SRC, (uint32_t)src));
	TRY("SRC", bar0_w32(d->c, DEMO_SRC + 4, (uint32_t)(src >> 32)));
	TRY("DST", bar0_w32(d->c, DEMO_DST, (uint32_t)dst));
	TRY("DST", bar0_w32(d->c, DEMO_DST + 4, (uint32_t)(dst >> 32)));
	return 0;
}

/* One job: doorbell through the ioeventfd, then the interrupt; message DMA
 * is served meanwhile. Returns ns, or a negative errno. */
static int64_t job(struct dev *d)
{
	uint64_t one = 1;
	uint64_t t0 = now_ns();
	if (write(d->doorbell, &one, sizeof(one)) != sizeof(one))
		return -errno;
	for (;;) {
		struct pollfd p[2] = { { .fd = d->irq, .events = POLLIN },
				       { .fd = vfpm_client_fd(d->c), .events = POLLIN } };
		if (poll(p, 2, 10000) <= 0)
			return -ETIMEDOUT;
		if (p[0].revents & POLLIN)
			break;
		int rc = vfpm_client_serve_pending(d->c, 0);
		if (rc < 0)
			return rc;
	}
	uint64_t t1 = now_ns();
	uint64_t cnt;
	if (read(d->irq, &cnt, sizeof(cnt)) != sizeof(cnt))
		return -errno;
	return (int64_t)(t1 - t0);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t *w = (uint32_t *)p;
	for (size_t i = 0; i < n / 4; i++)
		w[i] = (uint32_t)(i * 2654435761u + seed);
}

/* A copier thread: one memcpy of job_len bytes per request. */
struct copier {
	int req, done;    /* eventfds */
	uint8_t *src, *dst;
	pthread_t thread;
};

static void *copier_main(void *arg)
{
	struct copier *cp = arg;
	for (;;) {
		uint64_t n;
		if (read(cp->req, &n, sizeof(n)) != sizeof(n))
			continue;
		if (n > 1)
			return NULL;   /* stop */
		memcpy(cp->dst, cp->src, job_len);
		uint64_t one = 1;
		if (write(cp->done, &one, sizeof(one)) != sizeof(one))
			return NULL;
	}
}

static int64_t thread_copy(struct copier *cp)
{
	uint64_t one = 1, n;
	uint64_t t0 = now_ns();
	if (write(cp->req, &one, sizeof(one)) != sizeof(one) ||
	    read(cp->done, &n, sizeof(n)) != sizeof(n))
		return -EIO;
	return (int64_t)(now_ns() - t0);
}

/* The socket's bandwidth: a forked reader takes 1 MiB at a time. */
struct sock_pair {
	int fd;
	pid_t pid;
	uint8_t *buf;
};

static int sock_start(struct sock_pair *s)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(stdout);
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		close(sv[0]);
		uint8_t *b = malloc(MIB);
		for (;;) {
			ssize_t n = recv(sv[1], b, MIB, 0);
			if (n <= 0)
				_exit(0);
		}
	}
	close(sv[1]);
	s->fd = sv[0];
	s->buf = malloc(MIB);
	if (!s->buf)
		return -ENOMEM;
	memset(s->buf, 0x5a, MIB);
	return 0;
}

static int64_t sock_send(struct sock_pair *s)
{
	uint64_t t0 = now_ns();
	size_t off = 0;
	while (off < job_len) {
		ssize_t n = send(s->fd, s->buf + off, job_len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return (int64_t)(now_ns() - t0);
}

int main(int argc, char **argv)
{
	unsigned rounds = 10, reps = 20;
	int opt;
	while ((opt = getopt(argc, argv, "r:n:l:h")) != -1) {
		switch (opt) {
		case 'l': job_len = (uint32_t)atoi(optarg); break;
		case 'r': rounds = (unsigned)atoi(optarg); break;
		case 'n': reps = (unsigned)atoi(optarg); break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: %s [-r ROUNDS] [-n JOBS_PER_ROUND] [-l BYTES]\n"
				"  alternating rounds of memcpy, fd-backed jobs, message jobs and\n"
				"  socket sends, 1 MiB each (default 10 rounds of 20; -l: another size,\n"
				"  4096..1048576, for diagnosis)\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!rounds || !reps || rounds > 10000 || reps > 10000 || job_len < 4096 || job_len > MIB)
		return 2;
	signal(SIGPIPE, SIG_IGN);

	struct sock_pair sp = { .fd = -1, .pid = -1 };
	if (sock_start(&sp)) {
		perror("bench_dma: socketpair");
		return 1;
	}
	struct vfpmd_proc proc;
	static const char *const specs[] = { "demo,pm_delays=none", NULL };
	int rc = vfpmd_start(&proc, specs, NULL);
	if (rc) {
		fprintf(stderr, "bench_dma: cannot start %s: %s\n", vfpmd_path(), strerror(-rc));
		vfpmd_cleanup(&proc);
		return 1;
	}
	struct dev d = { 0 };
	uint64_t *samples[NKINDS];
	unsigned ns[NKINDS] = { 0 };
	for (int k = 0; k < NKINDS; k++)
		samples[k] = calloc((size_t)rounds * reps, sizeof(uint64_t));
	rc = setup(&d, proc.sock[0]);
	struct copier cp = { .req = eventfd(0, EFD_CLOEXEC), .done = eventfd(0, EFD_CLOEXEC) };
	if (!rc) {
		cp.src = d.fdmem;
		cp.dst = d.fdmem + 2 * MIB;
		rc = -pthread_create(&cp.thread, NULL, copier_main, &cp);
	}
	uint64_t src[2] = { IOVA_FD, IOVA_MSG }, dst[2] = { IOVA_FD + 2 * MIB, IOVA_MSG + 2 * MIB };
	uint8_t *mem[2] = { d.fdmem, d.msgmem };
	/* one warm-up round of each, then the measured ones */
	for (unsigned r = 0; !rc && r <= rounds; r++) {
		bool rec = r > 0;
		for (int j = 0; j < NKINDS && !rc; j++) {
			int k = (int)((r + (unsigned)j) % NKINDS);
			if (k == K_FD || k == K_MSG) {
				int m = k == K_MSG;
				rc = program(&d, src[m], dst[m]);
				for (unsigned i = 0; !rc && i < reps; i++) {
					fill(mem[m], job_len, r * 1000 + i);
					memset(mem[m] + 2 * MIB, 0, 4096);
					int64_t t = job(&d);
					if (t < 0) {
						rc = (int)t;
						fprintf(stderr, "bench_dma: %s: %s\n", kind_names[k],
							strerror(-rc));
					} else if (memcmp(mem[m], mem[m] + 2 * MIB, job_len)) {
						fprintf(stderr, "bench_dma: %s: the copy differs\n",
							kind_names[k]);
						rc = -EIO;
					} else if (rec) {
						samples[k][ns[k]++] = (uint64_t)t;
					}
				}
			} else if (k == K_THREAD) {
				for (unsigned i = 0; !rc && i < reps; i++) {
					fill(d.fdmem, job_len, r * 1000 + i);
					int64_t t = thread_copy(&cp);
					if (t < 0)
						rc = (int)t;
					else if (memcmp(d.fdmem, d.fdmem + 2 * MIB, job_len))
						rc = -EIO;
					else if (rec)
						samples[k][ns[k]++] = (uint64_t)t;
				}
			} else if (k == K_MEMCPY) {
				for (unsigned i = 0; i < reps; i++) {
					fill(d.fdmem, job_len, r * 1000 + i);
					uint64_t t0 = now_ns();
					memcpy(d.fdmem + 2 * MIB, d.fdmem, job_len);
					uint64_t t1 = now_ns();
					if (rec)
						samples[k][ns[k]++] = t1 - t0;
				}
			} else {
				for (unsigned i = 0; !rc && i < reps; i++) {
					int64_t t = sock_send(&sp);
					if (t < 0)
						rc = (int)t;
					else if (rec)
						samples[k][ns[k]++] = (uint64_t)t;
				}
			}
		}
	}
	if (cp.thread) {
		uint64_t stop = 2;
		if (write(cp.req, &stop, sizeof(stop)) == sizeof(stop))
			pthread_join(cp.thread, NULL);
	}
	if (d.c)
		vfpm_client_close(d.c);
	int st = vfpmd_stop(&proc);
	close(sp.fd);
	waitpid(sp.pid, NULL, 0);
	if (st)
		fprintf(stderr, "bench_dma: warning: vfpmd did not exit cleanly (%d)\n", st);
	if (rc)
		return 1;

	double med[NKINDS], gbs[NKINDS];
	printf("%u-byte copies: %u rounds of %u, alternating (median per kind)\n\n", job_len, rounds,
	       reps);
	printf("%-10s %12s %12s %12s\n", "", "median (us)", "p90 (us)", "GiB/s");
	for (int k = 0; k < NKINDS; k++) {
		qsort(samples[k], ns[k], sizeof(uint64_t), cmp_u64);
		med[k] = (double)samples[k][ns[k] / 2] / 1000.0;
		double p90 = (double)samples[k][(size_t)((double)(ns[k] - 1) * 0.9)] / 1000.0;
		gbs[k] = (double)job_len / 1024.0 / 1024.0 / 1024.0 / (med[k] / 1e6);
		printf("%-10s %12.1f %12.1f %12.2f\n", kind_names[k], med[k], p90, gbs[k]);
		free(samples[k]);
	}
	printf("\nfd job / memcpy (speed): %.3f; fd job / thread memcpy: %.3f\n",
	       med[K_MEMCPY] / med[K_FD], med[K_THREAD] / med[K_FD]);
	printf("msg job / socket (speed, 1 MiB job vs 1 MiB sent): %.3f; the job moves 2 MiB over "
	       "the socket: %.3f of its bandwidth\n",
	       med[K_SOCK] / med[K_MSG], 2 * med[K_SOCK] / med[K_MSG]);
	printf("dma: bytes=%u memcpy_us=%.1f thread_us=%.1f fd_job_us=%.1f msg_job_us=%.1f "
	       "socket_us=%.1f fd_ratio=%.3f fd_thread_ratio=%.3f msg_ratio=%.3f "
	       "msg_socket_use=%.3f\n",
	       job_len, med[K_MEMCPY], med[K_THREAD], med[K_FD], med[K_MSG], med[K_SOCK],
	       med[K_MEMCPY] / med[K_FD], med[K_THREAD] / med[K_FD],
	       med[K_SOCK] / med[K_MSG], 2 * med[K_SOCK] / med[K_MSG]);
	return 0;
}
