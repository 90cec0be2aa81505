/* Device core: one served device, its client session, request dispatch,
 * regions, interrupts and DMA. Internal to vfpm.
 *
 * Locks (outermost first):
 *   dev->req_lock  serialises a session's request handling against reset
 *                  and teardown done from other threads (server shutdown).
 *   dev->dma_lock  (rwlock) the DMA mapping table; read-held across every
 *                  copy through a mapping so an unmap waits for it.
 *   dev->lock      config space, MSI/MSI-X tables, interrupt eventfds and
 *                  INTx state. Never held across a model callback.
 *   s->send_lock   writes to the session socket.
 * Model callbacks are called with no core lock held, so a model may call
 * any vfpm_dev_* runtime function from them.
 */
#ifndef VFPM_CORE_H
#define VFPM_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"
#include "vfpm/device.h"
#include "wire/wire.h"

#define CORE_MAX_MSI 32
#define CORE_MAX_MSIX 2048
#define CORE_MAX_IOEVENTFDS 8

struct vfpm_opts {
	size_t n;
	struct vfpm_kv {
		char *key;
		char *val;
	} *kv;
};

/* Parses "key=value,key=value" (the part after MODEL,). */
int opts_parse(const char *s, struct vfpm_opts *out);
void opts_free(struct vfpm_opts *o);

struct core_bar {
	uint64_t size;
	unsigned flags;  /* VFPM_BAR_* */
	int memfd;       /* VFPM_BAR_MEMFD only */
	void *mem;       /* server's shared mapping of memfd */
};

struct core_ioeventfd {
	unsigned bar;
	uint64_t offset;
	uint32_t size;
	int fd;
};

struct dma_map_ent {
	uint64_t iova;
	uint64_t size;
	uint32_t prot;   /* VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE */
	void *host;      /* NULL: message-based (DMA_READ/DMA_WRITE) */
	size_t maplen;
};

struct core_session;

/* Message DMA through the session (server -> client commands). */
int session_dma_msg(struct core_session *s, bool write, uint64_t addr, void *buf, size_t len);

struct vfpm_device {
	char *name;
	const struct vfpm_model *model;
	const struct vfpm_model_ops *ops;
	void *priv;
	struct vfpm_opts opts;
	bool creating;          /* setup calls allowed */

	pthread_mutex_t req_lock;
	pthread_mutex_t lock;   /* see top of file */
	struct pci_cfg cfg;
	struct core_bar bars[PCI_NUM_BARS];
	bool has_intx;
	unsigned pm_cap, msi_cap, msix_cap, pcie_cap;

	/* interrupts (dev->lock) */
	int intx_fd;
	bool intx_masked;       /* by the client (or automask after a fire) */
	bool intx_level;
	unsigned msi_nvec;
	int msi_fds[CORE_MAX_MSI];
	uint32_t msi_pending;
	unsigned msix_nvec, msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	uint8_t *msix_table;    /* msix_nvec * 16 bytes */
	uint64_t *msix_pba;     /* pending bits */
	int *msix_fds;
	int err_fd, req_fd;
	uint16_t last_command;

	struct core_ioeventfd ioeventfds[CORE_MAX_IOEVENTFDS];
	unsigned nioeventfds;

	/* DMA (dma_lock) */
	pthread_rwlock_t dma_lock;
	struct dma_map_ent *maps;
	size_t nmaps;
	struct core_session *session;   /* for message DMA; dma_lock */
	atomic_bool dma_cancel;         /* quiesce: abort message DMA waits */

	int verbosity;          /* log level threshold (VFPM_LOG_*) */
	/* statistics */
	atomic_ulong requests;
};

/* Creates a device of model with options (takes ownership of *opts). */
int device_create(const struct vfpm_model *model, const char *name, struct vfpm_opts *opts,
		  struct vfpm_device **out);
void device_destroy(struct vfpm_device *dev);

/* Quiesces the model, resets it and config space, interrupts state (not
 * their eventfds). Caller holds req_lock. */
void device_reset(struct vfpm_device *dev);
/* Client went away: quiesce, drop DMA maps and eventfds, reset. */
void device_disconnect(struct vfpm_device *dev);

/* Region access (config, BARs, ROM). Returns 0 or -errno. */
int device_region_rw(struct vfpm_device *dev, uint32_t region, uint64_t off, void *buf,
		     uint32_t count, bool is_write);
/* Region size and VFIO_REGION_INFO_FLAG_* flags (size 0 for absent). */
void device_region_desc(struct vfpm_device *dev, uint32_t region, uint64_t *size,
			uint32_t *flags);
/* mmap-able areas of a memfd BAR, excluding MSI-X structures. Returns
 * the number of areas (<= max). */
unsigned device_region_areas(struct vfpm_device *dev, uint32_t region,
			     struct vfu_sparse_area *areas, unsigned max);

/* interrupts (irq.c) */
int irq_count(struct vfpm_device *dev, uint32_t index);
int irq_set(struct vfpm_device *dev, uint32_t flags, uint32_t index, uint32_t start,
	    uint32_t count, const uint8_t *data, int *fds, int nfds);
void irq_release_all(struct vfpm_device *dev);
void irq_reset_state(struct vfpm_device *dev);
int irq_msix_rw(struct vfpm_device *dev, uint64_t off, void *buf, uint32_t len, bool is_write);
bool irq_msix_overlaps(struct vfpm_device *dev, unsigned bar, uint64_t off, uint64_t len);
/* config-space hooks (installed at seal time) */
void irq_install_cfg_hooks(struct vfpm_device *dev);
void irq_signal_req(struct vfpm_device *dev);

/* DMA table (dma.c) */
int dma_map(struct vfpm_device *dev, const struct vfu_dma_map *m, int fd);
int dma_unmap(struct vfpm_device *dev, uint64_t iova, uint64_t size, bool all);
void dma_unmap_all(struct vfpm_device *dev);

/* Session: one connected client (session.c). */
struct core_session {
	struct vfpm_device *dev;
	int fd;
	bool version_done;
	struct wire_caps peer;         /* what the client can receive */
	pthread_mutex_t send_lock;
	/* outstanding server->client request (message DMA) */
	pthread_mutex_t dma_mu;
	pthread_cond_t dma_cv;
	uint16_t dma_next_id;
	bool dma_waiting;
	uint16_t dma_wait_id;
	struct wire_msg dma_reply;
	bool dma_reply_ready;
	bool closing;
};

int session_init(struct core_session *s, struct vfpm_device *dev, int fd);
/* Serves messages until EOF or an unrecoverable error; then disconnects
 * the device. Returns 0 on orderly close or a negative errno. */
int session_run(struct core_session *s);
void session_fini(struct core_session *s);
/* Handles one received message (takes ownership of m's payload and fds)
 * and sends its reply. Returns 0, or a negative errno when the session
 * must be closed. Exposed for the fuzzer. */
int session_dispatch(struct core_session *s, struct wire_msg *m);

/* logging to stderr: messages above verbosity are dropped */
void core_log(int verbosity, enum vfpm_log_level lvl, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define DLOG(dev, lvl, ...) core_log((dev)->verbosity, lvl, (dev)->name, __VA_ARGS__)

#endif
