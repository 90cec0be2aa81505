/* vfpm device-model API.
 *
 * A model describes a PCI function (IDs, BARs, capabilities, interrupts) in
 * its create() callback and then reacts to accesses through its ops table.
 * The core serves it over vfio-user; the model never sees the protocol.
 *
 * Threading (docs/device-api.md has the full contract): bar_rw and
 * command_changed run on the device's session thread, or the control
 * plane's for a host config write; quiesce, suspend, resume and reset run
 * on the session thread, the runtime-PM work queue's thread or the control
 * plane's. Callbacks of one device never overlap. The core holds none of
 * its locks that a runtime function takes while it calls a callback (only
 * bar_rw runs with the device's memory lock read-held, which no runtime
 * function needs), so every runtime function below may be called from
 * every callback and from the model's own threads, holding the model's own
 * locks. Exception: message DMA (vfpm_dev_dma_read/write on a mapping the
 * client gave no file for) needs the session thread to read the reply, so
 * from bar_rw and command_changed it fails with -EDEADLK.
 */
#ifndef VFPM_DEVICE_H
#define VFPM_DEVICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VFPM_EXPORT
#define VFPM_EXPORT __attribute__((visibility("default")))
#endif

/* The SDK's version (docs/device-api.md, "Versioning"): the library keeps
 * every symbol of an older version node (libvfpm.sym), and the structures a
 * model fills begin with their size, so they can grow at their end. */
#define VFPM_VERSION_MAJOR 0
#define VFPM_VERSION_MINOR 2

struct vfpm_device;

/* BAR flags */
#define VFPM_BAR_IO 0x1u        /* I/O space (else memory) */
#define VFPM_BAR_64 0x2u        /* 64-bit memory BAR (takes idx and idx+1) */
#define VFPM_BAR_PREFETCH 0x4u  /* prefetchable memory */
#define VFPM_BAR_MEMFD 0x8u     /* backed by shared memory the client may mmap */

/* Power states passed to suspend(). */
enum vfpm_dstate { VFPM_D0 = 0, VFPM_D1, VFPM_D2, VFPM_D3HOT, VFPM_D3COLD };

struct vfpm_model_ops {
	/* sizeof(struct vfpm_model_ops) as the model was compiled. A smaller
	 * table (a model built against an older header) works: the callbacks
	 * past its size are taken as NULL. A larger one (a newer header) is
	 * refused, as is size 0: the core quiesces and destroys what create()
	 * made and the device fails with -E2BIG (larger) or -EINVAL (0). */
	size_t size;
	/* Access to a callback-backed BAR (or to the non-MSI-X part of any
	 * BAR that is not memfd-backed). len is 1..VFPM_MAX_DATA_XFER; the
	 * core checked the bounds. Returns 0 or a negative errno.
	 * Thread: the session's. Runs with the device's memory lock
	 * read-held; overlaps no other callback of the device. */
	int (*bar_rw)(void *priv, unsigned bar, uint64_t off, void *buf, size_t len,
		      bool is_write);
	/* Function reset: registers back to power-on values, device work
	 * stopped. The core looks after config space: a user's reset
	 * (DEVICE_RESET, FLR) leaves it as the client wrote it, as vfio-pci
	 * saves and restores it around the reset; the reset at a client's
	 * disconnect and a loss of power return it to power-on values.
	 * Thread: the session's (DEVICE_RESET, FLR, a close, a D3hot->D0 of
	 * a NoSoftRst- device) or the runtime-PM work queue's or the control
	 * plane's (a resume from D3cold). No core lock a runtime call takes
	 * is held; overlaps no other callback. */
	void (*reset)(void *priv);
	/* Stop all device-initiated activity (DMA, interrupts) and wait for
	 * work in flight. Called before DMA mappings are removed, before a
	 * reset and before suspend(). Thread: any of reset()'s; message DMA
	 * in flight is cancelled (-ECANCELED) so waiting for it cannot hang.
	 * Overlaps no other callback. */
	void (*quiesce)(void *priv);
	/* Runtime PM: park threads and timers (and in D3cold free buffers);
	 * return 0, or a negative errno to refuse: the core then calls
	 * resume() to undo the quiesce and the device stays in D0 (a runtime
	 * suspend counts the error and retries at the next idle).
	 * Thread: the work queue's (an idle suspend) or the session's or
	 * control plane's (a PMCSR D3hot). resume(): whichever thread wakes
	 * the device. Neither overlaps another callback. */
	int (*suspend)(void *priv, enum vfpm_dstate target);
	int (*resume)(void *priv);
	/* COMMAND register changed (e.g. bus master turned off). Thread: the
	 * session's (a client config write) or the control plane's (a host
	 * one); message DMA from here fails with -EDEADLK. */
	void (*command_changed)(void *priv, uint16_t command);
	/* Frees priv. The device is quiesced and no other callback runs
	 * again. Thread: the one removing the device (shutdown, VF removal,
	 * a reload). */
	void (*destroy)(void *priv);
	/* Optional, a debug check (V5): how many times the model was asked
	 * to do device work (a BAR access, a job) while parked by suspend().
	 * The control plane reports it as "model_violations"; it must stay 0.
	 * May be called from any thread. */
	uint64_t (*violations)(void *priv);
};

/* key=value options given on the command line, after the model name. */
struct vfpm_opts;
/* The value of key, or NULL (absent, o or key NULL). */
VFPM_EXPORT const char *vfpm_opts_get(const struct vfpm_opts *o, const char *key);
/* Parses a boolean (on/off, yes/no, true/false, 1/0). Returns 0, -ENOENT
 * when absent (def is stored), -EINVAL when malformed (def is stored) or
 * key or out is NULL (nothing is stored). */
VFPM_EXPORT int vfpm_opts_bool(const struct vfpm_opts *o, const char *key, bool def, bool *out);
/* Parses an unsigned integer (decimal or 0x hex) within [min, max]: 0,
 * -ENOENT when absent, -EINVAL when malformed, -ERANGE outside [min, max]
 * (def is stored in these three); -EINVAL for key or out NULL or min > max (nothing
 * stored). */
VFPM_EXPORT int vfpm_opts_u64(const struct vfpm_opts *o, const char *key, uint64_t def,
			      uint64_t min, uint64_t max, uint64_t *out);

/* One BAR as a model declares it for its VFs (see vfpm_model.vf_bars). */
struct vfpm_vf_bar {
	uint64_t size;    /* 0: no BAR at this index (or the upper half of a 64-bit BAR) */
	unsigned flags;   /* VFPM_BAR_64, VFPM_BAR_PREFETCH, VFPM_BAR_MEMFD; never VFPM_BAR_IO */
};

struct vfpm_model {
	/* sizeof(struct vfpm_model) as the model was compiled; the same rule
	 * as vfpm_model_ops.size (-E2BIG when larger than this library's,
	 * -EINVAL when smaller than the first version's). */
	size_t size;
	const char *name;
	const char *summary;
	/* NULL-terminated list of the option keys create() understands
	 * (the core handles name= and socket= itself). */
	const char *const *keys;
	/* Describes the device with the vfpm_dev_* setup calls and returns
	 * its private state and ops. Returns 0 or a negative errno. */
	int (*create)(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		      const struct vfpm_model_ops **ops);
	/* SR-IOV: the six BARs (index 0..5) that create() declares for a VF
	 * (vfpm_dev_is_vf true, no options). The PF's SR-IOV capability is
	 * built from this table, without creating a VF; every VF created is
	 * checked against it. NULL: the model cannot be a PF (total_vfs is
	 * refused). */
	const struct vfpm_vf_bar *vf_bars;
};

/* A model in a shared object, for vfpmd --model PATH.so, defines this
 * function: it returns the model (which lives as long as the object is
 * loaded). It is the only symbol vfpmd looks up; the object links with
 * libvfpm (pkg-config --libs vfpm). */
#define VFPM_MODEL_ENTRY_SYMBOL "vfpm_model_entry"
VFPM_EXPORT const struct vfpm_model *vfpm_model_entry(void);

/* --- setup calls, only inside create() ---
 *
 * Errors (docs/device-api.md, "Errors"). Each call checks, in this order,
 * dev, the calling context, its arguments, then conflicts with what create()
 * declared before; a refused call changes nothing (config space and the
 * device stay as they were), so create() may go on or return the error.
 *
 *   dev NULL                                         every call   -EINVAL
 *   outside the device's create() (after it, from
 *   another callback or thread)                      every call   -EPERM
 *   set_ids:  ids NULL, vendor 0xffff, class_code over 24 bits    -EINVAL
 *             (may be called again: the last IDs win; BARs and
 *             capabilities declared before stay)
 *   add_bar:  idx > 5; an unknown flag; VFPM_BAR_IO with _64,
 *             _PREFETCH or _MEMFD; size not a power of two; I/O
 *             size outside 4..256; memory size below 16, or above
 *             2 GiB without VFPM_BAR_64; VFPM_BAR_MEMFD size outside
 *             4 KiB..1 TiB; VFPM_BAR_64 at idx 5                  -EINVAL
 *             idx already declared, or the upper half of a 64-bit
 *             BAR at idx - 1; VFPM_BAR_64 with idx + 1 declared   -EEXIST
 *             the memfd cannot be made (memfd_create, mmap)      their errno
 *   add_pm_cap, add_pcie_cap: a second call                      -EEXIST
 *   add_msi_cap:  nvec not 1, 2, 4, 8, 16 or 32                  -EINVAL
 *                 a second call                                  -EEXIST
 *   add_msix_cap: nvec not 1..2048; bar > 5, not declared or
 *             I/O; table_off or pba_off not 8-byte aligned; the
 *             table (nvec * 16 bytes) or the PBA ((nvec + 63) / 64
 *             * 8 bytes) not wholly inside the BAR; table and PBA
 *             overlapping; either over a declared ioeventfd      -EINVAL
 *             a second call                                      -EEXIST
 *   add_ext_cap: body NULL with len > 0; ver > 15; id 0 (the
 *             null capability) or 0x10 (SR-IOV, the core's own)   -EINVAL
 *             4 + len bytes do not fit in what is left of the
 *             extended space (0x100..0xfff)                      -ENOSPC
 *   add_ioeventfd: bar > 5 or not declared; size not 1, 2, 4, 8;
 *             [offset, offset + size) not inside the BAR, or over
 *             the MSI-X table or PBA                             -EINVAL
 *             overlapping an ioeventfd declared before           -EEXIST
 *             a 9th one (8 per device)                           -ENOSPC
 *   set_intx: no error but the first two rows.
 * The standard capabilities (PM, MSI, MSI-X, PCIe) are once each and all
 * fit together in the 192 bytes at 0x40, so -ENOSPC cannot come from
 * them. Memory failures are -ENOMEM. */
struct vfpm_pci_ids {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint32_t class_code; /* 24 bits: base, sub, prog-if */
	uint8_t revision;
};
VFPM_EXPORT int vfpm_dev_set_ids(struct vfpm_device *dev, const struct vfpm_pci_ids *ids);
VFPM_EXPORT int vfpm_dev_add_bar(struct vfpm_device *dev, unsigned idx, uint64_t size,
				 unsigned flags);
/* Enables INTx (pin INTA). */
VFPM_EXPORT int vfpm_dev_set_intx(struct vfpm_device *dev, bool present);
/* PM capability: d1/d2 support as advertised, NoSoftRst as given. */
VFPM_EXPORT int vfpm_dev_add_pm_cap(struct vfpm_device *dev, bool d1, bool d2,
				    bool no_soft_reset);
VFPM_EXPORT int vfpm_dev_add_msi_cap(struct vfpm_device *dev, unsigned nvec);
/* MSI-X: the table and PBA are emulated by the core inside BAR bar at the
 * given offsets; the model never sees accesses to them. */
VFPM_EXPORT int vfpm_dev_add_msix_cap(struct vfpm_device *dev, unsigned nvec, unsigned bar,
				      uint32_t table_off, uint32_t pba_off);
VFPM_EXPORT int vfpm_dev_add_pcie_cap(struct vfpm_device *dev);
/* Adds a read-only extended capability with the given body (after the
 * 4-byte header). */
VFPM_EXPORT int vfpm_dev_add_ext_cap(struct vfpm_device *dev, uint16_t id, uint8_t ver,
				     const void *body, size_t len);

/* Whether the device being created is an SR-IOV VF (its PF was given
 * total_vfs=N). A model may describe a VF differently (smaller BARs, no
 * SR-IOV of its own); the core sets the IDs and removes INTx. */
VFPM_EXPORT bool vfpm_dev_is_vf(const struct vfpm_device *dev);

/* Declares an ioeventfd: a client may ask (GET_REGION_IO_FDS) for an
 * eventfd that it signals instead of writing size bytes at offset of BAR
 * bar. Returns the eventfd (owned by the core, non-blocking) for the model
 * to poll as the register's write notification, or a negative errno. */
VFPM_EXPORT int vfpm_dev_add_ioeventfd(struct vfpm_device *dev, unsigned bar, uint64_t offset,
				       uint32_t size);

/* --- runtime calls, thread-safe ---
 *
 * Also valid inside create() (no client yet: nothing is enabled). With dev
 * NULL: the int calls return -EINVAL, vfpm_dev_bar_mem and vfpm_dev_name
 * NULL, vfpm_dev_mem_decode and vfpm_dev_is_vf false, vfpm_dev_intx and
 * vfpm_dev_log do nothing (vfpm_dev_log(NULL, ...) logs as the core does,
 * errors only, and a NULL fmt or an unknown level is ignored). */
/* Memory of a VFPM_BAR_MEMFD BAR as the server maps it, or NULL (bar > 5,
 * not declared, not memfd-backed, the upper half of a 64-bit BAR). Valid
 * while the device is not in D3cold (the model's suspend/resume callbacks
 * bracket that). Each client session has a new file behind the same
 * address (power-on zeros when it starts). */
VFPM_EXPORT void *vfpm_dev_bar_mem(struct vfpm_device *dev, unsigned bar);
/* Signals interrupt vector vec by whatever mechanism the client enabled:
 * MSI-X (respecting the function mask, the client's SET_IRQS masks and,
 * once the client programs it, the table's vector masks: a held-back
 * vector sets its PBA bit and fires once when released, also when its
 * eventfd arrives later), MSI, or INTx (asserts the line; the model
 * deasserts it). Returns 0; -EAGAIN when the interrupt is pending behind a
 * mask (or, MSI-X, until its eventfd arrives); -ENODEV when the device
 * declares no interrupt, or the client enabled neither MSI-X nor MSI and
 * gave no INTx eventfd, or MSI is enabled and the vector has no eventfd;
 * -EINVAL when vec is
 * not below the number of vectors the device declares (the largest of its
 * MSI-X and MSI counts, 1 for INTx alone), or, with MSI enabled, not below
 * the count the client enabled. A refused vector sets no pending bit. */
VFPM_EXPORT int vfpm_dev_irq(struct vfpm_device *dev, unsigned vec);
/* INTx line level. A rising edge signals the client's INTx eventfd unless
 * INTx is masked or DisINTx is set (then it stays pending). Ignored on a
 * device without INTx (vfpm_dev_set_intx) and on a VF. */
VFPM_EXPORT void vfpm_dev_intx(struct vfpm_device *dev, bool level);
/* Guest memory access through the client's DMA mappings. Returns 0,
 * -EINVAL for buf NULL with len > 0, -EFAULT when [iova, iova+len) wraps
 * or is not mapped (with the right permission), -EPERM when bus mastering
 * is disabled, or a transport error (docs/device-api.md, "DMA"). */
VFPM_EXPORT int vfpm_dev_dma_read(struct vfpm_device *dev, uint64_t iova, void *buf,
				  size_t len);
VFPM_EXPORT int vfpm_dev_dma_write(struct vfpm_device *dev, uint64_t iova, const void *buf,
				   size_t len);
/* A copy engine's transfer, guest memory to guest memory: len bytes from
 * src to dst, copied straight from one of the client's file-backed DMA
 * mappings to the other (one copy, no buffer of the model's). Returns 0,
 * -EPERM when bus mastering is disabled, -EFAULT when a range is not
 * mapped with the right permission or the client shrank a file under the
 * copy, and -EOPNOTSUPP when a range is not inside one file-backed
 * mapping (a message-based mapping, or one spanning two): the model then
 * copies with vfpm_dev_dma_read and vfpm_dev_dma_write through a buffer.
 * Ranges overlapping within one mapping are copied as memmove does (through
 * two mappings of one file: unspecified bytes, as on hardware).
 * Since libvfpm 0.2 (LIBVFPM_0.2). */
VFPM_EXPORT int vfpm_dev_dma_copy(struct vfpm_device *dev, uint64_t dst, uint64_t src,
				  size_t len);
VFPM_EXPORT const char *vfpm_dev_name(const struct vfpm_device *dev);
/* Whether the device decodes memory accesses now: D0-D2 and COMMAND.MEM
 * set. Work started by an ioeventfd write must be dropped when false. */
VFPM_EXPORT bool vfpm_dev_mem_decode(struct vfpm_device *dev);

enum vfpm_log_level { VFPM_LOG_ERR = 0, VFPM_LOG_WARN, VFPM_LOG_INFO, VFPM_LOG_DEBUG };
VFPM_EXPORT void vfpm_dev_log(const struct vfpm_device *dev, enum vfpm_log_level lvl,
			      const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
