/* A client that takes memory away under the server: it shrinks the BAR
 * memfd it was given, or the file behind its own DMA mapping. The server
 * must answer with an error for that access and keep serving; before the
 * SIGBUS guard (lib/core/guard.c) it died with every device it served.
 * A client that maps more guest memory than its device's dma_max allows
 * gets ENOSPC, and status accounts what it has mapped. A client that keeps
 * the BAR memfd after it disconnects reaches no later session's BAR. */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "harness.h"
#include "vfpm/client.h"

static struct vfpmd_proc proc;

static int setup(void **state)
{
	const char *specs[] = { "demo,name=dev,pm_delays=none",
				"demo,name=capped,pm_delays=none,dma_max=64K", NULL };
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

/* dma_mapped / dma_max of device name from the control plane's status */
static void dma_account(const char *name, int64_t *mapped, int64_t *max)
{
	char rep[16384];
	assert_int_equal(ctl_request(proc.ctl, "{\"cmd\":\"status\"}", rep, sizeof(rep)), 0);
	struct json_object *o = json_tokener_parse(rep), *devs, *v;
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "devices", &devs));
	*mapped = *max = -1;
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		assert_true(json_object_object_get_ex(d, "name", &v));
		if (strcmp(json_object_get_string(v), name))
			continue;
		assert_true(json_object_object_get_ex(d, "dma_mapped", &v));
		*mapped = json_object_get_int64(v);
		assert_true(json_object_object_get_ex(d, "dma_max", &v));
		*max = json_object_get_int64(v);
	}
	json_object_put(o);
	assert_true(*mapped >= 0 && *max >= 0);
}

static void dma_total_bounded_by_dma_max(void **state)
{
	const uint32_t rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	int64_t mapped, max;
	dma_account("dev", &mapped, &max);
	assert_int_equal(max, 1ll << 40);   /* the default: 1 TiB */
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 0);
	assert_int_equal(max, 64 << 10);

	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(proc.sock[1], NULL, &c), 0);
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 256 << 10), 0);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, 0x100000, 32 << 10, rw, NULL), 0);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 32 << 10, 0x200000, 32 << 10, rw, NULL), 0);
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 64 << 10);
	/* one page past the bound: refused, nothing changes */
	assert_int_equal(vfpm_client_dma_map(c, mfd, 64 << 10, 0x300000, 4096, rw, NULL), -ENOSPC);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, 0x300000, 256 << 10, rw, NULL), -ENOSPC);
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 64 << 10);
	/* a message-based window maps nothing in vfpmd: not counted */
	assert_int_equal(vfpm_client_dma_map(c, -1, 0, 0x400000, 1 << 20, rw, NULL), 0);
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 64 << 10);
	/* unmapping frees room */
	assert_int_equal(vfpm_client_dma_unmap(c, 0x100000, 32 << 10), 0);
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 32 << 10);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 64 << 10, 0x300000, 32 << 10, rw, NULL), 0);
	dma_account("capped", &mapped, &max);
	assert_int_equal(mapped, 64 << 10);
	/* the other device's account is its own */
	dma_account("dev", &mapped, &max);
	assert_int_equal(mapped, 0);

	/* nothing stays mapped for a client that is gone (the session's end
	 * unmaps everything; wait for it, bounded) */
	vfpm_client_close(c);
	close(mfd);
	for (int i = 0; i < 500; i++) {
		dma_account("capped", &mapped, &max);
		if (!mapped)
			break;
		struct timespec t = { 0, 10000000 };
		nanosleep(&t, NULL);
	}
	assert_int_equal(mapped, 0);
}

/* Client 1 keeps BAR2's memfd after it disconnects (and grows it back,
 * maps it, writes it); client 2's BAR2 must be out of its reach both ways.
 * Before each session's end gave the BAR a new file, the kept descriptor
 * was the next client's BAR memory. */
static void bar_memfd_kept_after_disconnect(void **state)
{
	struct vfpm_client *c1, *c2;
	assert_int_equal(vfpm_client_connect(proc.sock[0], NULL, &c1), 0);
	enable(c1);
	struct vfpm_region_info ri1;
	assert_int_equal(vfpm_client_region_info(c1, 2, &ri1), 0);
	assert_true(ri1.fd >= 0);
	size_t size = (size_t)ri1.size;
	assert_true(size >= 2 * 4096);
	/* the descriptor is live BAR memory during the session */
	uint32_t mine = 0x0c11e471, v = 0;
	assert_int_equal(pwrite(ri1.fd, &mine, 4, 0x40), 4);
	assert_int_equal(vfpm_client_region_read(c1, 2, 0x40, &v, 4), 0);
	assert_int_equal(v, mine);
	vfpm_client_close(c1);   /* ri1.fd kept */

	assert_int_equal(vfpm_client_connect(proc.sock[0], NULL, &c2), 0);
	enable(c2);
	uint8_t pat[4096], buf[4096];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(0xa5 ^ (i * 7));
	assert_int_equal(vfpm_client_region_write(c2, 2, 0, pat, sizeof(pat)), 0);
	assert_int_equal(vfpm_client_region_write(c2, 2, 4096, pat, sizeof(pat)), 0);
	/* client 2 starts from power-on zeros, then sees its own bytes */
	assert_int_equal(vfpm_client_region_read(c2, 2, 0x2000, buf, 64), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(vfpm_client_region_read(c2, 2, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, pat, sizeof(pat));
	struct vfpm_region_info ri2;
	assert_int_equal(vfpm_client_region_info(c2, 2, &ri2), 0);
	assert_true(ri2.fd >= 0);
	assert_int_equal(pread(ri2.fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, pat, sizeof(pat));   /* client 2's file has it */

	/* client 1's kept descriptor reads nothing of it, grown back or not */
	ssize_t n = pread(ri1.fd, buf, sizeof(buf), 0);
	assert_true(n >= 0);
	assert_true(n < (ssize_t)sizeof(buf) || memcmp(buf, pat, sizeof(pat)));
	assert_int_equal(ftruncate(ri1.fd, (off_t)size), 0);   /* hostile */
	assert_int_equal(pread(ri1.fd, buf, sizeof(buf), 4096), (ssize_t)sizeof(buf));
	assert_true(memcmp(buf, pat, sizeof(pat)) != 0);
	uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ri1.fd, 0);
	assert_true(m != MAP_FAILED);
	assert_true(memcmp(m, pat, sizeof(pat)) != 0);
	assert_true(memcmp(m + 4096, pat, sizeof(pat)) != 0);

	/* and what it writes there does not reach client 2's BAR */
	memset(m, 0xee, 2 * 4096);
	uint32_t evil = 0xdeadbeef;
	assert_int_equal(pwrite(ri1.fd, &evil, 4, 0x100), 4);
	assert_int_equal(vfpm_client_region_read(c2, 2, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, pat, sizeof(pat));
	assert_int_equal(vfpm_client_region_read(c2, 2, 4096, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, pat, sizeof(pat));
	assert_int_equal(pread(ri2.fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, pat, sizeof(pat));
	munmap(m, size);
	struct stat st1, st2;
	assert_int_equal(fstat(ri1.fd, &st1), 0);
	assert_int_equal(fstat(ri2.fd, &st2), 0);
	assert_true(st1.st_ino != st2.st_ino);         /* not the same file */
	close(ri1.fd);
	close(ri2.fd);
	vfpm_client_close(c2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bar_memfd_shrunk_by_client),
		cmocka_unit_test(dma_file_shrunk_by_client),
		cmocka_unit_test(dma_total_bounded_by_dma_max),
		cmocka_unit_test(bar_memfd_kept_after_disconnect),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
