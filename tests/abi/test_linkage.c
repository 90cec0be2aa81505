/* The linkage test: a program linked with libvfpm.so alone (no internal
 * header, no static library) that calls every exported function, through a
 * server built with the embedding API and a model whose create() uses
 * every setup call. check_abi.sh fails when an exported symbol is not
 * called here. Exit 0 when every call returned what it documents. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfpm/device.h"
#include "vfpm/server.h"

static int failures;
#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "line %d: %s\n", __LINE__, #cond);           \
			failures++;                                                  \
		}                                                                    \
	} while (0)

static struct vfpm_device *g_dev;

static void l_destroy(void *priv)
{
}

static const struct vfpm_model_ops l_ops = { .size = sizeof(l_ops), .destroy = l_destroy };

static int l_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		    const struct vfpm_model_ops **ops)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10f3,
						 .class_code = 0xff0000 };
	static const unsigned char dsn[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	bool b = false;
	uint64_t u = 0;
	g_dev = dev;
	CHECK(!strcmp(vfpm_opts_get(opts, "flag"), "on"));
	CHECK(vfpm_opts_bool(opts, "flag", false, &b) == 0 && b);
	CHECK(vfpm_opts_u64(opts, "n", 0, 0, 100, &u) == 0 && u == 42);
	CHECK(!vfpm_dev_is_vf(dev));
	CHECK(vfpm_dev_set_ids(dev, &ids) == 0);
	CHECK(vfpm_dev_set_intx(dev, true) == 0);
	CHECK(vfpm_dev_add_bar(dev, 0, 4096, 0) == 0);
	CHECK(vfpm_dev_add_bar(dev, 2, 8192, VFPM_BAR_64 | VFPM_BAR_MEMFD) == 0);
	CHECK(vfpm_dev_add_pm_cap(dev, true, false, true) == 0);
	CHECK(vfpm_dev_add_msi_cap(dev, 1) == 0);
	CHECK(vfpm_dev_add_msix_cap(dev, 2, 0, 0x800, 0xc00) == 0);
	CHECK(vfpm_dev_add_pcie_cap(dev) == 0);
	CHECK(vfpm_dev_add_ext_cap(dev, 3, 1, dsn, sizeof(dsn)) == 0);
	CHECK(vfpm_dev_add_ioeventfd(dev, 0, 0x10, 4) >= 0);
	*priv = NULL;
	*ops = &l_ops;
	return 0;
}

static const char *const l_keys[] = { "flag", "n", NULL };
static const struct vfpm_model l_model = { .size = sizeof(l_model), .name = "link",
					   .keys = l_keys, .create = l_create };

int main(void)
{
	char dir[] = "/tmp/vfpm-link.XXXXXX", sock[64];
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/link.sock", dir);
	const struct vfpm_server_opts o = { .size = sizeof(o) };
	struct vfpm_server *srv = NULL;
	CHECK(vfpm_server_new(&o, &srv) == 0 && srv);
	if (!srv)
		return 1;
	CHECK(vfpm_server_add_model(srv, &l_model) == 0);
	CHECK(vfpm_server_add_model(srv, &l_model) == -EEXIST);
	const struct vfpm_model *m;
	bool found = false;
	for (unsigned i = 0; (m = vfpm_server_model(srv, i)); i++)
		found |= m == &l_model;
	CHECK(found);
	CHECK(vfpm_server_add_device(srv, "link,name=link0,flag=on,n=42,pm_delays=none", sock) == 0);
	CHECK(g_dev != NULL);
	if (!g_dev)
		return 1;

	/* runtime calls on a device with no client */
	CHECK(!strcmp(vfpm_dev_name(g_dev), "link0"));
	CHECK(vfpm_dev_bar_mem(g_dev, 2) != NULL);
	CHECK(vfpm_dev_bar_mem(g_dev, 0) == NULL);   /* not memfd-backed */
	CHECK(!vfpm_dev_mem_decode(g_dev));          /* COMMAND.MEM is clear */
	CHECK(vfpm_dev_irq(g_dev, 0) == -ENODEV);    /* no interrupt enabled */
	vfpm_dev_intx(g_dev, false);
	unsigned char buf[4] = { 0 };
	CHECK(vfpm_dev_dma_read(g_dev, 0x1000, buf, sizeof(buf)) < 0);
	CHECK(vfpm_dev_dma_write(g_dev, 0x1000, buf, sizeof(buf)) < 0);
	CHECK(vfpm_dev_dma_copy(g_dev, 0x2000, 0x1000, sizeof(buf)) < 0);
	vfpm_dev_log(g_dev, VFPM_LOG_DEBUG, "linkage test %d", 1);

	CHECK(!strcmp(vfpm_server_device_socket(srv, 0), sock));
	CHECK(vfpm_server_device_socket(srv, 1) == NULL);
	CHECK(vfpm_server_stop(srv) == -EPERM);      /* not started */
	CHECK(vfpm_server_serve_device(srv, "link,name=early", NULL) == -EPERM);
	CHECK(vfpm_server_remove_device(srv, "link0") == -EPERM);
	CHECK(vfpm_server_start(srv) == 0);
	CHECK(access(sock, F_OK) == 0);
	CHECK(vfpm_server_ctl_path(srv) == NULL);    /* no control plane asked */
	CHECK(vfpm_server_start(srv) == -EPERM);
	CHECK(vfpm_server_add_device(srv, "link,name=late", NULL) == -EPERM);
	/* 0.2: serve and remove a device while started */
	char sock2[sizeof(sock) + 8];
	snprintf(sock2, sizeof(sock2), "%s.2", sock);
	CHECK(vfpm_server_serve_device(srv, "link,name=late,flag=on,n=42,pm_delays=none", sock2) == 0);
	CHECK(access(sock2, F_OK) == 0);
	CHECK(vfpm_server_device_name(srv, 1) && !strcmp(vfpm_server_device_name(srv, 1), "late"));
	CHECK(vfpm_server_serve_device(srv, "link,name=late", NULL) == -EEXIST);
	CHECK(vfpm_server_remove_device(srv, "nosuch") == -ENODEV);
	CHECK(vfpm_server_remove_device(srv, "late") == 0);
	CHECK(access(sock2, F_OK) < 0 && errno == ENOENT);
	CHECK(vfpm_server_device_name(srv, 1) == NULL);
	CHECK(!strcmp(vfpm_server_device_name(srv, 0), "link0"));
	int fd = vfpm_server_fd(srv);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(fd >= 0 && poll(&p, 1, 0) == 0);
	vfpm_server_request_stop(srv);
	CHECK(poll(&p, 1, 0) == 1);
	CHECK(vfpm_server_run(srv) == 0);            /* the stop was asked: returns */
	CHECK(access(sock, F_OK) < 0 && errno == ENOENT);
	CHECK(vfpm_server_stop(srv) == -EPERM);      /* already stopped */
	vfpm_server_free(srv);
	rmdir(dir);
	if (failures)
		fprintf(stderr, "%d failed\n", failures);
	return failures ? 1 : 0;
}
