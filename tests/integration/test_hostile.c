/* A client that takes memory away under the server: it shrinks the BAR
 * memfd it was given, or the file behind its own DMA mapping. The server
 * must answer with an error for that access and keep serving; before the
 * SIGBUS guard (lib/core/guard.c) it died with every device it served. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "vfpm/client.h"

static struct vfpmd_proc proc;

static int setup(void **state)
{
	const char *specs[] = { "demo,name=dev,pm_delays=none", NULL };
	return vfpmd_start(&proc, specs, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	assert_int_equal(vfpmd_stop(&proc), 0);   /* still alive, exits cleanly */
	return 0;
}

static void enable(struct vfpm_client *c)
{
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, 2), 0);
}

static void bar_memfd_shrunk_by_client(void **state)
{
	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(proc.sock[0], NULL, &c), 0);
	enable(c);
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(c, 2, &ri), 0);
	assert_true(ri.fd >= 0);
	assert_int_equal(ftruncate(ri.fd, 0), 0);   /* hostile */
	uint32_t v = 0;
	assert_int_equal(vfpm_client_region_read(c, 2, 0x100, &v, 4), -EFAULT);
	assert_int_equal(vfpm_client_region_write(c, 2, 0x100, &v, 4), -EFAULT);
	/* the server lives on: other regions answer */
	assert_int_equal(vfpm_client_region_read(c, 0, 0, &v, 4), 0);
	assert_int_equal(v, 0x4d504656u);
	close(ri.fd);
	vfpm_client_close(c);
	/* a new session gets a BAR2 that works again: the reset re-extends it */
	assert_int_equal(vfpm_client_connect(proc.sock[0], NULL, &c), 0);
	enable(c);
	v = 0x11223344;
	int rc = -1;
	for (int i = 0; i < 100 && rc; i++) {   /* the old session winds down first */
		rc = vfpm_client_region_write(c, 2, 0x100, &v, 4);
		if (rc) {
			struct timespec t = { 0, 10000000 };
			nanosleep(&t, NULL);
		}
	}
	assert_int_equal(rc, 0);
	vfpm_client_close(c);
}

static void dma_file_shrunk_by_client(void **state)
{
	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(proc.sock[0], NULL, &c), 0);
	enable(c);
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 1 << 20), 0);
	void *host = NULL;
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, 0x100000, 1 << 20,
					     VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, &host),
			 0);
	/* the client library keeps its own mapping: drop it before shrinking */
	assert_int_equal(ftruncate(mfd, 0), 0);   /* hostile */
	uint32_t regs[][2] = { { 0x20, 0x100000 }, { 0x24, 0 }, { 0x28, 0x180000 },
			       { 0x2c, 0 },	   { 0x30, 4096 } };
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		assert_int_equal(vfpm_client_region_write(c, 0, regs[i][0], &regs[i][1], 4), 0);
	uint32_t one = 1;
	assert_int_equal(vfpm_client_region_write(c, 0, 0x10, &one, 4), 0);   /* doorbell */
	uint32_t count = 0, result = 0;
	for (int i = 0; i < 500 && !count; i++) {
		assert_int_equal(vfpm_client_region_read(c, 0, 0x38, &count, 4), 0);
		if (!count) {
			struct timespec t = { 0, 10000000 };
			nanosleep(&t, NULL);
		}
	}
	assert_int_equal(count, 1);
	assert_int_equal(vfpm_client_region_read(c, 0, 0x34, &result, 4), 0);
	assert_int_equal(result, EFAULT);   /* the job failed; the server did not */
	vfpm_client_close(c);
	close(mfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bar_memfd_shrunk_by_client),
		cmocka_unit_test(dma_file_shrunk_by_client),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
