/* vfio-user wire format: message layouts and constants.
 *
 * Layouts follow the vfio-user specification (QEMU docs/interop/vfio-user.rst)
 * and are host-endian and packed. Every struct is size-checked so that a
 * change to a layout breaks the build instead of the protocol.
 */
#ifndef VFPM_WIRE_PROTO_H
#define VFPM_WIRE_PROTO_H

#include <assert.h>
#include <stdint.h>

#define VFU_PACKED __attribute__((packed))

enum vfu_cmd {
	VFU_CMD_VERSION = 1,
	VFU_CMD_DMA_MAP = 2,
	VFU_CMD_DMA_UNMAP = 3,
	VFU_CMD_DEVICE_GET_INFO = 4,
	VFU_CMD_GET_REGION_INFO = 5,
	VFU_CMD_GET_REGION_IO_FDS = 6,
	VFU_CMD_GET_IRQ_INFO = 7,
	VFU_CMD_SET_IRQS = 8,
	VFU_CMD_REGION_READ = 9,
	VFU_CMD_REGION_WRITE = 10,
	VFU_CMD_DMA_READ = 11,
	VFU_CMD_DMA_WRITE = 12,
	VFU_CMD_DEVICE_RESET = 13,
	/* 14 was DIRTY_PAGES, removed from the protocol */
	VFU_CMD_REGION_WRITE_MULTI = 15,
	VFU_CMD_DEVICE_FEATURE = 16,
	VFU_CMD_MIG_DATA_READ = 17,
	VFU_CMD_MIG_DATA_WRITE = 18,
	VFU_CMD_MAX = 18,
};

#define VFU_F_TYPE_MASK 0xfu
#define VFU_F_TYPE_COMMAND 0x0u
#define VFU_F_TYPE_REPLY 0x1u
#define VFU_F_NO_REPLY 0x10u
#define VFU_F_ERROR 0x20u

/* Protocol version spoken: 0.x as QEMU and libvfio-user do. */
#define VFU_VERSION_MAJOR 0
#define VFU_VERSION_MINOR 2

/* Defaults when a peer does not state a capability. */
#define VFU_DEFAULT_MAX_FDS 1
#define VFU_DEFAULT_MAX_DATA_XFER (1u << 20)
#define VFU_DEFAULT_MAX_DMA_MAPS 65535
#define VFU_DEFAULT_PGSIZES 4096ull

/* Limits this implementation enforces on what it receives. */
#define VFPM_MAX_MSG_FDS 16          /* fds per message we accept (advertised) */
#define VFPM_MAX_DATA_XFER (1u << 20)
#define VFPM_MAX_MSG_SIZE (VFPM_MAX_DATA_XFER + 4096u)
#define VFPM_MAX_VERSION_JSON 4096
#define VFPM_MAX_DMA_MAPS 1024
#define VFPM_MAX_WRITE_MULTI 1024    /* entries per REGION_WRITE_MULTI */

struct vfu_hdr {
	uint16_t msg_id;
	uint16_t cmd;
	uint32_t size;   /* whole message, header included */
	uint32_t flags;
	uint32_t error;
} VFU_PACKED;
static_assert(sizeof(struct vfu_hdr) == 16, "vfu_hdr");

struct vfu_version {
	uint16_t major;
	uint16_t minor;
	/* optional NUL-terminated JSON follows */
} VFU_PACKED;
static_assert(sizeof(struct vfu_version) == 4, "vfu_version");

#define VFU_DMA_FLAG_READ 0x1u
#define VFU_DMA_FLAG_WRITE 0x2u

struct vfu_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset;
	uint64_t addr;
	uint64_t size;
} VFU_PACKED;
static_assert(sizeof(struct vfu_dma_map) == 32, "vfu_dma_map");

#define VFU_DMA_UNMAP_FLAG_ALL 0x2u

struct vfu_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t addr;
	uint64_t size;
} VFU_PACKED;
static_assert(sizeof(struct vfu_dma_unmap) == 24, "vfu_dma_unmap");

struct vfu_device_info {
	uint32_t argsz;
	uint32_t flags;   /* VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI */
	uint32_t num_regions;
	uint32_t num_irqs;
} VFU_PACKED;
static_assert(sizeof(struct vfu_device_info) == 16, "vfu_device_info");

struct vfu_region_info {
	uint32_t argsz;
	uint32_t flags;   /* VFIO_REGION_INFO_FLAG_* */
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
} VFU_PACKED;
static_assert(sizeof(struct vfu_region_info) == 32, "vfu_region_info");

struct vfu_cap_header {
	uint16_t id;
	uint16_t version;
	uint32_t next;    /* from the start of vfu_region_info; 0 ends */
} VFU_PACKED;
static_assert(sizeof(struct vfu_cap_header) == 8, "vfu_cap_header");

struct vfu_sparse_area {
	uint64_t offset;
	uint64_t size;
} VFU_PACKED;

struct vfu_cap_sparse_mmap {
	struct vfu_cap_header hdr;  /* id 1, version 1 */
	uint32_t nr_areas;
	uint32_t reserved;
	struct vfu_sparse_area areas[];
} VFU_PACKED;
static_assert(sizeof(struct vfu_cap_sparse_mmap) == 16, "vfu_cap_sparse_mmap");

struct vfu_region_io_fds {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} VFU_PACKED;
static_assert(sizeof(struct vfu_region_io_fds) == 16, "vfu_region_io_fds");

#define VFU_IO_FD_TYPE_IOEVENTFD 0
#define VFU_IOEVENTFD_FLAG_DATAMATCH 0x1u

struct vfu_ioeventfd {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;
	uint32_t reserved;
	uint64_t datamatch;
} VFU_PACKED;
static_assert(sizeof(struct vfu_ioeventfd) == 40, "vfu_ioeventfd");

struct vfu_irq_info {
	uint32_t argsz;
	uint32_t flags;   /* VFIO_IRQ_INFO_* */
	uint32_t index;
	uint32_t count;
} VFU_PACKED;
static_assert(sizeof(struct vfu_irq_info) == 16, "vfu_irq_info");

struct vfu_irq_set {
	uint32_t argsz;
	uint32_t flags;   /* VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_* */
	uint32_t index;
	uint32_t start;
	uint32_t count;
	/* BOOL data (count bytes) follows for DATA_BOOL */
} VFU_PACKED;
static_assert(sizeof(struct vfu_irq_set) == 20, "vfu_irq_set");

struct vfu_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	/* data follows for WRITE requests and READ replies */
} VFU_PACKED;
static_assert(sizeof(struct vfu_region_access) == 16, "vfu_region_access");

#define VFU_WRITE_MULTI_DATA 8
struct vfu_write_multi_entry {
	uint64_t offset;
	uint32_t region;
	uint32_t count;   /* <= 8 */
	uint8_t data[VFU_WRITE_MULTI_DATA];
} VFU_PACKED;
static_assert(sizeof(struct vfu_write_multi_entry) == 24, "vfu_write_multi_entry");

struct vfu_write_multi {
	uint64_t wr_cnt;
	/* entries follow */
} VFU_PACKED;
static_assert(sizeof(struct vfu_write_multi) == 8, "vfu_write_multi");

struct vfu_dma_access {
	uint64_t addr;
	uint64_t count;
	/* data follows for DMA_WRITE requests and DMA_READ replies */
} VFU_PACKED;
static_assert(sizeof(struct vfu_dma_access) == 16, "vfu_dma_access");

struct vfu_device_feature {
	uint32_t argsz;
	uint32_t flags;   /* VFIO_DEVICE_FEATURE_* */
	/* data follows */
} VFU_PACKED;
static_assert(sizeof(struct vfu_device_feature) == 8, "vfu_device_feature");

struct vfu_mig_data {
	uint32_t argsz;
	uint32_t size;
} VFU_PACKED;
static_assert(sizeof(struct vfu_mig_data) == 8, "vfu_mig_data");

/* Region indices of a vfio PCI device (same numbering as linux/vfio.h). */
enum {
	VFU_PCI_BAR0 = 0,
	VFU_PCI_ROM = 6,
	VFU_PCI_CONFIG = 7,
	VFU_PCI_VGA = 8,
	VFU_PCI_NUM_REGIONS = 9,
};

/* IRQ indices. */
enum {
	VFU_IRQ_INTX = 0,
	VFU_IRQ_MSI = 1,
	VFU_IRQ_MSIX = 2,
	VFU_IRQ_ERR = 3,
	VFU_IRQ_REQ = 4,
	VFU_IRQ_NUM = 5,
};

static inline const char *vfu_cmd_name(unsigned cmd)
{
	static const char *const names[] = {
		[VFU_CMD_VERSION] = "VERSION",
		[VFU_CMD_DMA_MAP] = "DMA_MAP",
		[VFU_CMD_DMA_UNMAP] = "DMA_UNMAP",
		[VFU_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
		[VFU_CMD_GET_REGION_INFO] = "GET_REGION_INFO",
		[VFU_CMD_GET_REGION_IO_FDS] = "GET_REGION_IO_FDS",
		[VFU_CMD_GET_IRQ_INFO] = "GET_IRQ_INFO",
		[VFU_CMD_SET_IRQS] = "SET_IRQS",
		[VFU_CMD_REGION_READ] = "REGION_READ",
		[VFU_CMD_REGION_WRITE] = "REGION_WRITE",
		[VFU_CMD_DMA_READ] = "DMA_READ",
		[VFU_CMD_DMA_WRITE] = "DMA_WRITE",
		[VFU_CMD_DEVICE_RESET] = "DEVICE_RESET",
		[VFU_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
		[VFU_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
		[VFU_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
		[VFU_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
	};
	if (cmd < sizeof(names) / sizeof(names[0]) && names[cmd])
		return names[cmd];
	return "UNKNOWN";
}

#endif
