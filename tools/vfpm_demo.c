/* vfpm-demo: a guided run of the default device through the client
 * library: discovery, config space, BAR access, mmap, and a DMA copy
 * completed by an MSI-X interrupt. `make demo` runs it. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "vfpm/client.h"

#define DEMO_SCRATCH 0x08
#define DEMO_DOORBELL 0x10
#define DEMO_INT_STATUS 0x14
#define DEMO_INT_MASK 0x18
#define DEMO_SRC 0x20
#define DEMO_DST 0x28
#define DEMO_LEN 0x30
#define DEMO_COUNT 0x38

static int failed(const char *what, int rc)
{
	fprintf(stderr, "vfpm-demo: %s: %s\n", what, strerror(-rc));
	return 1;
}

#define TRY(what, expr)                          \
	do {                                     \
		int rc_ = (expr);                \
		if (rc_ < 0)                     \
			return failed(what, rc_); \
	} while (0)

static int cfg16(struct vfpm_client *c, unsigned off, uint16_t *v)
{
	return vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, off, v, 2);
}

static int bar0_w32(struct vfpm_client *c, unsigned off, uint32_t v)
{
	return vfpm_client_region_write(c, 0, off, &v, 4);
}

static int bar0_r32(struct vfpm_client *c, unsigned off, uint32_t *v)
{
	return vfpm_client_region_read(c, 0, off, v, 4);
}

/* --- what the control plane reports --- */

static struct json_object *ctl_status_all(const char *ctl)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", ctl);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	static const char req[] = "{\"cmd\":\"status\"}\n";
	char buf[16384];
	size_t have = 0;
	if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
		ssize_t n;
		while (have < sizeof(buf) - 1 && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
			have += (size_t)n;
			buf[have] = '\0';
			if (strchr(buf, '\n'))
				break;
		}
	}
	close(fd);
	buf[have] = '\0';
	struct json_object *o = json_tokener_parse(buf), *devs;
	if (!o || !json_object_object_get_ex(o, "devices", &devs)) {
		json_object_put(o);
		return NULL;
	}
	struct json_object *d = json_object_get(devs);
	json_object_put(o);
	return d;
}

/* The status of the first device (the demo's own). */
static struct json_object *ctl_status(const char *ctl)
{
	struct json_object *devs = ctl_status_all(ctl);
	if (!devs || !json_object_array_length(devs)) {
		json_object_put(devs);
		return NULL;
	}
	struct json_object *d = json_object_get(json_object_array_get_idx(devs, 0));
	json_object_put(devs);
	return d;
}

static const char *js(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, a, &v))
		return "?";
	if (b && !json_object_object_get_ex(v, b, &v))
		return "?";
	return json_object_get_string(v);
}

static void show(const char *ctl)
{
	if (!ctl)
		return;
	struct json_object *d = ctl_status(ctl);
	if (!d) {
		printf("      (control plane unavailable)\n");
		return;
	}
	printf("      control plane: %s, %s, usage %s, engaged %s, wakeup armed %s, "
	       "suspends %s, resumes %s, wakeups %s\n",
	       js(d, "power_state", NULL), js(d, "runtime_status", NULL), js(d, "usage_count", NULL),
	       js(d, "low_power", "engaged"), js(d, "low_power", "wakeup_armed"),
	       js(d, "counters", "suspends"), js(d, "counters", "resumes"),
	       js(d, "counters", "wakeups_signalled"));
	json_object_put(d);
}

/* Waits (2 s at most) until the control plane reports runtime status want. */
static void wait_status(const char *ctl, const char *want)
{
	for (int i = 0; ctl && i < 400; i++) {
		struct json_object *d = ctl_status(ctl);
		bool done = d && !strcmp(js(d, "runtime_status", NULL), want);
		json_object_put(d);
		if (done)
			return;
		struct timespec t = { 0, 5000000 };
		nanosleep(&t, NULL);
	}
}

static int wait_named_client(const char *ctl, const char *name, const char *want,
			     bool no_client);

static int pm_tour(struct vfpm_client *c, const char *ctl, const char *path)
{
	printf("\n[8] power management\n");
	wait_status(ctl, "suspended");
	printf("    no client: the idle device suspended by itself\n");
	show(ctl);

	TRY("connect", vfpm_client_connect(path, NULL, &c));
	printf("    a client connected: the session holds a reference, the device is in D0\n");
	show(ctl);

	int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int32_t data[2] = { 0, 0 };   /* wakeup_eventfd = descriptor index 0 */
	TRY("LOW_POWER_ENTRY_WITH_WAKEUP",
	    vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				data, sizeof(data), wake, NULL, NULL));
	wait_status(ctl, "suspended");
	printf("    LOW_POWER_ENTRY_WITH_WAKEUP: the reference is dropped, the device suspends\n");
	show(ctl);

	uint16_t vid;
	TRY("config read", cfg16(c, PCI_VENDOR_ID, &vid));
	uint64_t n = 0;
	if (read(wake, &n, sizeof(n)) != sizeof(n))
		n = 0;
	printf("    a config read (vendor %04x) woke the device: wakeup eventfd count %llu\n", vid,
	       (unsigned long long)n);
	show(ctl);
	TRY("LOW_POWER_EXIT",
	    vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL,
				0, -1, NULL, NULL));
	printf("    LOW_POWER_EXIT after the wake: returns 0 and does nothing more\n");
	show(ctl);
	close(wake);

	/* Guest-style PMCSR writes with the NoSoftRst- save/restore. */
	uint16_t cap_ptr = 0, pm = 0;
	TRY("config read", cfg16(c, PCI_CAPABILITY_LIST, &cap_ptr));
	for (unsigned off = cap_ptr & 0xff, k = 0; off && k < 48; k++) {
		uint16_t hdr;
		TRY("config read", cfg16(c, off, &hdr));
		if ((hdr & 0xff) == PCI_CAP_ID_PM)
			pm = (uint16_t)off;
		off = hdr >> 8;
	}
	if (!pm)
		return failed("PM capability", -ENODEV);
	uint16_t csr;
	TRY("config read", cfg16(c, pm + PCI_PM_CTRL, &csr));
	uint16_t cmd = PCI_COMMAND_MEMORY;
	TRY("COMMAND", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2));
	TRY("SCRATCH", bar0_w32(c, DEMO_SCRATCH, 0x5a5a5a5a));
	printf("    the device reports NoSoftRst%c; COMMAND.MEM set, SCRATCH = 0x5a5a5a5a\n",
	       csr & PCI_PM_CTRL_NO_SOFT_RESET ? '+' : '-');
	uint16_t d3 = (uint16_t)((csr & ~PCI_PM_CTRL_STATE_MASK) | 3);
	TRY("PMCSR D3hot", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, pm + PCI_PM_CTRL,
						    &d3, 2));
	TRY("config read", cfg16(c, pm + PCI_PM_CTRL, &csr));
	uint32_t v = 0;
	int rc = bar0_r32(c, DEMO_SCRATCH, &v);
	printf("    PMCSR <- D3hot: PowerState reads %u, a BAR0 read gets %s\n",
	       csr & PCI_PM_CTRL_STATE_MASK, rc ? strerror(-rc) : "data");
	show(ctl);
	uint16_t d0 = (uint16_t)(csr & ~PCI_PM_CTRL_STATE_MASK);
	TRY("PMCSR D0", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, pm + PCI_PM_CTRL,
						 &d0, 2));
	TRY("config read", cfg16(c, PCI_COMMAND, &cmd));
	TRY("SCRATCH", bar0_r32(c, DEMO_SCRATCH, &v));
	printf("    PMCSR <- D0: COMMAND restored to 0x%04x, SCRATCH now 0x%08x (%s)\n", cmd, v,
	       v ? "device state kept" : "device state reset, config restored");
	show(ctl);
	vfpm_client_close(c);
	wait_named_client(ctl, "demo", "suspended", true);
	printf("    client gone: the device is reset and suspends again\n");
	show(ctl);
	return 0;
}

/* Every device the control plane lists, one line each. */
static void show_all(const char *ctl)
{
	struct json_object *devs = ctl_status_all(ctl);
	for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		printf("      %-10s %-6s %-9s usage %s%s%s\n", js(d, "name", NULL),
		       js(d, "power_state", NULL), js(d, "runtime_status", NULL),
		       js(d, "usage_count", NULL), json_object_object_get_ex(d, "pf", NULL) ? ", VF of " : "",
		       json_object_object_get_ex(d, "pf", NULL) ? js(d, "pf", NULL) : "");
	}
	json_object_put(devs);
}

/* Waits until device name reports runtime status want (and, with
 * no_client, no client connected: the server has seen the disconnect). */
static int wait_named_client(const char *ctl, const char *name, const char *want, bool no_client)
{
	for (int i = 0; i < 400; i++) {
		struct json_object *devs = ctl_status_all(ctl);
		bool done = false;
		for (size_t k = 0; devs && k < json_object_array_length(devs); k++) {
			struct json_object *d = json_object_array_get_idx(devs, k);
			if (!strcmp(js(d, "name", NULL), name))
				done = !strcmp(js(d, "runtime_status", NULL), want) &&
				       (!no_client || !strcmp(js(d, "client_connected", NULL), "false"));
		}
		json_object_put(devs);
		if (done)
			return 0;
		struct timespec t = { 0, 5000000 };
		nanosleep(&t, NULL);
	}
	return -ETIMEDOUT;
}

static int wait_named(const char *ctl, const char *name, const char *want)
{
	return wait_named_client(ctl, name, want, false);
}

/* SR-IOV: two VFs enabled, the PF pinned in D0 while they sleep, the PF
 * free to suspend once they are gone. */
static int sriov_tour(const char *ctl, const char *pf_path, const char *pf_name)
{
	struct vfpm_client *c;
	printf("\n[9] SR-IOV (PF %s)\n", pf_name);
	TRY("connect to the PF", vfpm_client_connect(pf_path, NULL, &c));
	unsigned cap = 0;
	for (unsigned off = 0x100, n = 0; off && n < 64; n++) {
		uint32_t hdr;
		TRY("config read", vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, off, &hdr, 4));
		if (PCI_EXT_CAP_ID(hdr) == PCI_EXT_CAP_ID_SRIOV) {
			cap = off;
			break;
		}
		off = PCI_EXT_CAP_NEXT(hdr);
	}
	if (!cap)
		return failed("SR-IOV capability", -ENODEV);
	uint16_t total, two = 2, vfe = PCI_SRIOV_CTRL_VFE, off0 = 0;
	TRY("config read", vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX,
						   cap + PCI_SRIOV_TOTAL_VF, &total, 2));
	TRY("NumVFs", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX,
					       cap + PCI_SRIOV_NUM_VF, &two, 2));
	TRY("VF Enable", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX,
						  cap + PCI_SRIOV_CTRL, &vfe, 2));
	char vf1[300];
	snprintf(vf1, sizeof(vf1), "%s-vf1", pf_name);
	wait_named(ctl, vf1, "suspended");
	printf("    SR-IOV capability at 0x%x, TotalVFs %u: NumVFs <- 2, VF Enable <- 1\n", cap, total);
	printf("    two VFs appear on their own sockets and go to sleep; the PF holds D0 (B33):\n");
	show_all(ctl);

	int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int32_t data[2] = { 0, 0 };
	TRY("LOW_POWER_ENTRY_WITH_WAKEUP on the PF",
	    vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				data, sizeof(data), wake, NULL, NULL));
	struct timespec t = { 0, 200000000 };
	nanosleep(&t, NULL);
	printf("    low-power entry on the PF engages but cannot suspend it while it has VFs:\n");
	show_all(ctl);

	TRY("VF Enable <- 0", vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX,
						       cap + PCI_SRIOV_CTRL, &off0, 2));
	wait_named(ctl, pf_name, "suspended");
	uint64_t n = 0;
	if (read(wake, &n, sizeof(n)) != sizeof(n))
		n = 0;
	printf("    VF Enable <- 0: the VFs are gone and the PF, still engaged, suspends at last\n");
	show_all(ctl);
	printf("    (its wakeup eventfd has not fired: count %llu)\n", (unsigned long long)n);
	close(wake);
	vfpm_client_close(c);
	/* the PF's reset and idle after the client */
	wait_named_client(ctl, pf_name, "suspended", true);
	return 0;
}

int main(int argc, char **argv)
{
	char path[256];
	const char *ctl = NULL, *pf_path = NULL, *pf_name = NULL;
	int a = 1;
	if (argc > 2 && !strcmp(argv[1], "--ctl")) {
		ctl = argv[2];
		a = 3;
	}
	if (ctl && argc > a + 2 && !strcmp(argv[a], "--pf")) {
		pf_path = argv[a + 1];
		pf_name = argv[a + 2];
		a += 3;
	}
	if (argc > a)
		snprintf(path, sizeof(path), "%s", argv[a]);
	else if (vfpm_default_socket_path(path, sizeof(path)))
		return 1;
	if (argc > a + 1 || (argc == a + 1 && (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")))) {
		printf("Usage: vfpm-demo [--ctl CTLSOCKET [--pf PFSOCKET PFNAME]] [SOCKET]\n"
		       "Drives the demo device at SOCKET (default %s); with --ctl, also tours its\n"
		       "power management and shows what the control plane reports; with --pf, then\n"
		       "enables two VFs of the PF device PFNAME (total_vfs >= 2) and shows the PF/VF\n"
		       "power rules.\n",
		       path);
		return argc > a + 1 ? 2 : 0;
	}

	struct vfpm_client *c;
	TRY("connect", vfpm_client_connect(path, NULL, &c));
	const struct vfpm_server_caps *sc = vfpm_client_server_caps(c);
	printf("[1] connected to %s: protocol %u.%u, max_msg_fds %u, max_data_xfer_size %u\n",
	       path, sc->major, sc->minor, sc->max_msg_fds, sc->max_data_xfer_size);

	struct vfpm_device_info di;
	TRY("device info", vfpm_client_device_info(c, &di));
	printf("[2] device: %u regions, %u irq types, flags 0x%x\n", di.num_regions, di.num_irqs,
	       di.flags);
	uint16_t vid, did;
	TRY("config read", cfg16(c, PCI_VENDOR_ID, &vid));
	TRY("config read", cfg16(c, PCI_DEVICE_ID, &did));
	printf("    config space: vendor %04x device %04x\n", vid, did);

	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	TRY("enable memory and bus master",
	    vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2));
	uint32_t id;
	TRY("BAR0 read", bar0_r32(c, 0, &id));
	printf("[3] BAR0 ID register: 0x%08x (\"%.4s\")\n", id, (char *)&id);

	struct vfpm_region_info ri;
	TRY("BAR2 info", vfpm_client_region_info(c, 2, &ri));
	void *map = NULL;
	size_t maplen = 0;
	TRY("BAR2 mmap", vfpm_client_mmap_area(&ri, 0, &map, &maplen));
	strcpy(map, "hello through mmap");
	char back[32] = { 0 };
	TRY("BAR2 read", vfpm_client_region_read(c, 2, 0, back, 18));
	printf("[4] BAR2 (%zu KiB, memfd-backed): wrote via mmap, read via REGION_READ: \"%s\"\n",
	       maplen / 1024, back);
	munmap(map, maplen);
	close(ri.fd);

	/* Guest memory: a memfd the server maps. */
	const uint64_t iova = 0x100000, len = 1 << 20;
	int mfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, 2 * len) < 0)
		return failed("guest memory", -errno);
	void *host;
	TRY("DMA map", vfpm_client_dma_map(c, mfd, 0, iova, 2 * len,
					   VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, &host));
	uint8_t *g = host;
	for (uint64_t i = 0; i < 4096; i++)
		g[i] = (uint8_t)(i * 7 + 3);

	/* MSI-X on, vector 0 unmasked, its eventfd registered. */
	uint16_t cap_ptr = 0, msix = 0;
	TRY("config read", cfg16(c, PCI_CAPABILITY_LIST, &cap_ptr));
	for (unsigned off = cap_ptr & 0xff, n = 0; off && n < 48; n++) {
		uint16_t hdr;
		TRY("config read", cfg16(c, off, &hdr));
		if ((hdr & 0xff) == PCI_CAP_ID_MSIX)
			msix = (uint16_t)off;
		off = hdr >> 8;
	}
	if (!msix)
		return failed("MSI-X capability", -ENODEV);
	uint16_t mc = PCI_MSIX_FLAGS_ENABLE;
	TRY("MSI-X enable",
	    vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, msix + PCI_MSIX_FLAGS, &mc, 2));
	uint32_t unmask = 0;
	TRY("MSI-X unmask", vfpm_client_region_write(c, 4, PCI_MSIX_ENTRY_VECTOR_CTRL, &unmask, 4));
	int efd = eventfd(0, EFD_CLOEXEC);
	TRY("SET_IRQS", vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					     VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL));

	TRY("program DMA", bar0_w32(c, DEMO_INT_MASK, 1));
	TRY("program DMA", bar0_w32(c, DEMO_SRC, (uint32_t)iova));
	TRY("program DMA", bar0_w32(c, DEMO_SRC + 4, 0));
	TRY("program DMA", bar0_w32(c, DEMO_DST, (uint32_t)(iova + len)));
	TRY("program DMA", bar0_w32(c, DEMO_DST + 4, 0));
	TRY("program DMA", bar0_w32(c, DEMO_LEN, 4096));
	TRY("doorbell", bar0_w32(c, DEMO_DOORBELL, 1));
	struct pollfd p = { .fd = efd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		return failed("waiting for the MSI-X interrupt", -ETIMEDOUT);
	uint64_t cnt = 0;
	if (read(efd, &cnt, sizeof(cnt)) != sizeof(cnt))
		return failed("eventfd read", -errno);
	uint32_t jobs;
	TRY("BAR0 read", bar0_r32(c, DEMO_COUNT, &jobs));
	bool same = !memcmp(g, g + len, 4096);
	printf("[5] DMA copy of 4 KiB: MSI-X vector 0 fired (eventfd count %llu), jobs done %u, "
	       "destination %s the source\n",
	       (unsigned long long)cnt, jobs, same ? "equals" : "DIFFERS FROM");
	TRY("ack interrupt", bar0_w32(c, DEMO_INT_STATUS, 1));

	TRY("reset", vfpm_client_reset(c));
	TRY("config read", cfg16(c, PCI_COMMAND, &cmd));
	printf("[6] DEVICE_RESET: COMMAND is 0x%04x again\n", cmd);
	vfpm_client_close(c);
	close(efd);
	close(mfd);
	printf("[7] disconnected: the server resets the device and keeps serving\n");
	if (!same)
		return 1;
	if (!ctl)
		return 0;
	int rc = pm_tour(NULL, ctl, path);
	if (!rc && pf_path)
		rc = sriov_tour(ctl, pf_path, pf_name);
	return rc;
}
