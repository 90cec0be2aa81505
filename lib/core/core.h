/* Device core: one served device, its client session, request dispatch,
 * regions, interrupts and DMA. Internal to vfpm.
 *
 * Every lock in vfpm, outermost first. A thread holding one may take only
 * locks below it; "cb" marks the locks a model callback may run under
 * (no runtime function a model may call takes one of those).
 *
 *  lock                  kind    protects
 *  srv->ctl_mu     (srv) mutex   the control connections' list.
 *  sd->mu          (srv) mutex   a device slot's client_fd, session_active.
 *  dev->req_lock   cb    mutex   a session's request handling against
 *                                resets and teardown from other threads
 *                                (control plane, shutdown); probe/open_ref.
 *  dev->sriov_lock cb    mutex   VF enable and disable of a PF.
 *  pm.trans_lock   cb    mutex   every change of PM state (power state,
 *                                engaged, promotion, snapshots, mappings);
 *                                held across quiesce/suspend/resume/reset,
 *                                which it keeps from overlapping.
 *  rpm.lock        (rpm) mutex   runtime-PM status and settings (rpm.h);
 *                                never held across a callback. Waiting rpm
 *                                calls (rpm_get, rpm_resume, rpm_get_settled,
 *                                rpm_set_power_on) run the resume callback,
 *                                which takes trans_lock: never call them
 *                                with trans_lock or anything below held.
 *  pm.memory_lock  cb(r) rwlock  write: PM state changes (always under
 *                                trans_lock, dropped around callbacks and
 *                                delays); read: BAR access (held across the
 *                                model's bar_rw) and the status view.
 *  dev->dma_lock         rwlock  the DMA mapping table; read-held across
 *                                every copy through a mapping.
 *  dev->lock             mutex   config space, MSI/MSI-X tables, interrupt
 *                                eventfds, INTx state. A leaf for the model:
 *                                vfpm_dev_irq/intx/mem_decode take it.
 *  dev->irq_lock         mutex   the INTx unmask thread's lifetime.
 *  srv->lock       (srv) mutex   VF lists, device references. No device
 *                                lock is ever taken under it; it is taken
 *                                under a PF's trans_lock and memory_lock
 *                                while its VFs are created.
 *  dev->chan.mu          mutex   the channel's table of server->client
 *                                requests (a leaf; never with send_lock).
 *  dev->chan.send_lock   mutex   writes to the session socket (a leaf).
 *  wq->mu          (rpm) mutex   the work queue's list (rpm.c).
 *  dev->events.mu        mutex   the device's event ring (events.h).
 *  hub->mu               mutex   event subscribers and their queues;
 *                                taken under events.mu only. Both are
 *                                leaves: dev_event() runs under any lock.
 *
 * Every lock is a mutex_t or rwlock_t of lib/common/lock.h: clang checks
 * the REQUIRES/ACQUIRE/RELEASE annotations of the functions below at every
 * clang build (-Wthread-safety, errors; tests/layers/tsa_misuse.c proves it
 * refuses misuse) and debug builds assert every lock call's return code.
 *
 * A model callback is never called with memory_lock write-held, dev->lock,
 * dma_lock, irq_lock, the channel's locks or rpm.lock held.
 */
#ifndef VFPM_CORE_H
#define VFPM_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <linux/pci_regs.h>
#include <stddef.h>
#include <stdint.h>

#include "core/channel.h"
#include "events.h"
#include "pci/pci.h"
#include "pm/rpm.h"
#include "wire/wire.h"
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
/* on/yes/true/1 and off/no/false/0, any case: 0 or -EINVAL. */
int opts_parse_bool(const char *v, bool *out);

struct core_bar {
	uint64_t size;
	unsigned flags;  /* VFPM_BAR_* */
	int memfd;       /* VFPM_BAR_MEMFD only */
	void *mem;       /* server's shared mapping of memfd */
	bool revoked;    /* memfd truncated: client mappings fault (SIGBUS) */
	bool stale;      /* a former client's file: renewed before the next open */
	void *shadow;    /* contents while revoked (NULL after D3cold) */
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
struct vfpm_device;

/* What the server does for a PF's VF Enable (sriov.c calls it, with the
 * PF's sriov_lock held). */
struct sriov_host {
	/* Creates and starts serving VFs 0..n-1 of pf; all or nothing. */
	int (*create_vfs)(void *ctx, struct vfpm_device *pf, unsigned n);
	/* Stops serving and destroys every VF of pf. */
	void (*destroy_vfs)(void *ctx, struct vfpm_device *pf);
	/* Brings every VF's BAR mappings in line with its memory decode
	 * (the PF's VF MSE changed). */
	void (*sync_vfs)(void *ctx, struct vfpm_device *pf);
};

#define VFPM_MAX_VFS 256

enum pm_promotion { PM_PROMOTE_OFF = 0, PM_PROMOTE_NOSOFTRST, PM_PROMOTE_ALWAYS };

/* PM settings (contract §2); changed under pm.memory_lock held for write. */
struct pm_settings {
	bool platform_d3cold;      /* the platform can cut power (ACPI _PR3) */
	bool d3cold_allowed;       /* default on */
	bool idle_d3;              /* default on: suspend while unused (B35) */
	bool pm_delays;            /* true: PCI delays (pci), false: none */
	int autosuspend_delay_ms;  /* default 0 */
	enum pm_promotion d3hot_promotion;
	/* energy model: the power drawn in each D-state, in milliwatts
	 * (power_d0_mw ... power_d3cold_mw; docs/operating.md, "Energy") */
	uint32_t power_mw[5];
};

/* Power management of one device (pm_state.c, pm_runtime.c); the lock
 * order is the table at the top of this file. */
struct dev_pm {
	struct rpm rpm;
	/* trans_lock: every change of the PM state below (power state,
	 * engaged, promotion, mappings, snapshots) is made under it, and the
	 * model's quiesce/suspend/resume/reset are called under it alone. */
	mutex_t trans_lock;
	/* memory_lock (rwlock): write-held for power-state changes, the
	 * engaged flag and wakeup fd, COMMAND.MEM effects and mmap
	 * revocation; read-held for BAR access. */
	rwlock_t memory_lock;
	int power_state;           /* enum vfpm_dstate */
	bool needs_pm_restore;     /* NoSoftRst- (sampled at creation) */
	bool d1, d2;               /* advertised by the PMC */
	uint8_t *pm_save;          /* NoSoftRst- snapshot across user D3hot */
	uint8_t *rt_save;          /* config saved by a runtime suspend */
	bool engaged;
	int wake_fd;               /* armed wakeup eventfd, or -1 */
	bool intx_masked_by_pm;    /* suspend masked INTx (B17) */
	bool revoked;              /* memfd BARs truncated */
	bool promoted;             /* V3: a guest D3hot dropped a reference */
	bool open_ref_lent;        /* engaged || promoted dropped the open ref */
	bool open_ref;             /* the session holds the open reference */
	bool probe_ref;            /* idle_d3=off: the probe reference is held
				    * (req_lock; open/close and idle_d3 changes) */
	bool model_parked;         /* model suspend() called, resume() due */
	struct pm_settings set;
	/* counters (memory_lock) */
	uint64_t wakeups_signalled;
	uint64_t residency_ns[5];
	struct timespec state_since;
	/* energy (memory_lock): picojoules used, and what D0 would have
	 * used, up to the last change of power_mw (at residency energy_mark_ns);
	 * the rest is counted from the residency since the mark */
	unsigned __int128 energy_pj, energy_d0_pj;
	uint64_t energy_mark_ns[5];
	/* residency and transition delays: the work queue's clock */
	const struct pm_clock *clock;
	bool client_connected;
};

/* The smallest struct vfpm_model a model may give: version 0.1's, whose
 * create() is required. */
#define CORE_MODEL_SIZE_MIN (offsetof(struct vfpm_model, create) + sizeof(void (*)(void)))
/* Checks a model's size and required fields: 0, -EINVAL (size smaller than
 * CORE_MODEL_SIZE_MIN, no name or no create), -E2BIG (built against a newer
 * header: larger than this library's struct). */
int core_model_check(const struct vfpm_model *model);

struct vfpm_device {
	char *name;
	const struct vfpm_model *model;
	/* &ops_copy: the model's table as this library knows it (fields
	 * past the model's ops->size read as NULL) */
	const struct vfpm_model_ops *ops;
	struct vfpm_model_ops ops_copy;
	void *priv;
	struct vfpm_opts opts;
	bool creating;          /* setup calls allowed */
	bool pm_ready;          /* pm_init done: pm_fini due */

	mutex_t req_lock;
	mutex_t lock;   /* see top of file */
	struct pci_cfg cfg;
	struct core_bar bars[PCI_NUM_BARS];
	bool has_intx;
	unsigned pm_cap, msi_cap, msix_cap, pcie_cap;

	/* interrupts (dev->lock) */
	int intx_fd;
	bool intx_masked;       /* by the client (or automask after a fire) */
	bool intx_level;
	bool intx_pulse;        /* injected assertion: drops once delivered */
	/* INTx unmask eventfd (SET_IRQS EVENTFD|UNMASK): a thread waits on it
	 * while one is set, as the kernel's irqfd does (irq_lock) */
	int intx_unmask_fd;
	int unmask_stop_fd;
	pthread_t unmask_thread;
	bool unmask_thread_running;
	mutex_t irq_lock;   /* the unmask thread's lifetime */
	unsigned msi_nvec;
	int msi_fds[CORE_MAX_MSI];
	uint32_t msi_pending;
	unsigned msix_nvec, msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	uint8_t *msix_table;    /* msix_nvec * 16 bytes */
	uint64_t *msix_pba;     /* pending bits */
	uint64_t *msix_irq_mask;    /* SET_IRQS MASK per vector (bits) */
	bool msix_table_written;    /* the client wrote the table since reset */
	int *msix_fds;
	int err_fd, req_fd;
	struct dev_pm pm;
	/* SR-IOV: a PF with VFs refuses every state above D0 (B34) */
	atomic_bool sriov_active;
	unsigned sriov_cap;          /* PF: offset of the SR-IOV capability */
	unsigned total_vfs;
	unsigned num_vfs;            /* VFs that exist now (sriov_lock) */
	mutex_t sriov_lock;  /* serialises VF enable and disable */
	bool is_vf;
	struct vfpm_device *pf;      /* VF: its PF */
	unsigned vf_index;
	const struct sriov_host *host;   /* creates and removes VF devices */
	void *host_ctx;

	struct core_ioeventfd ioeventfds[CORE_MAX_IOEVENTFDS];
	unsigned nioeventfds;

	/* DMA (dma_lock) */
	rwlock_t dma_lock;
	struct dma_map_ent *maps;
	size_t nmaps;
	/* the client link: sends, and message DMA's requests in flight */
	struct channel chan;

	/* the thread inside bar_rw or command_changed (set and cleared by
	 * that thread under req_lock; read by it alone to mean anything) */
	pthread_t access_cb_thread;
	atomic_bool access_cb_active;
	/* Bytes of the client's files mapped by DMA_MAP (message-based
	 * windows map nothing and do not count), and their bound, the
	 * device option dma_max (a VF takes its PF's). Written under
	 * dma_lock; atomic so that status reads it without the lock. */
	_Atomic uint64_t dma_mapped;
	uint64_t dma_max;

	int verbosity;          /* log level threshold (VFPM_LOG_*) */
	struct dev_events events;   /* PM event ring (events.c) */
	/* the device option poll_us: how long a session keeps reading
	 * without blocking after a request (0: it blocks at once) */
	uint32_t poll_us;
	/* statistics */
	atomic_ulong requests;
	/* the session's receive side (session.c; read by status):
	 * messages received, reads that found data in the poll window
	 * (without sleeping), and reads that could block in the kernel
	 * (counted when they return) */
	atomic_ulong rx_msgs;
	atomic_ulong rx_polled;
	atomic_ulong rx_blocking;
	/* reads (recvmsg calls that returned) and sends of replies (counted
	 * before they are made) */
	atomic_ulong rx_reads;
	atomic_ulong tx_sends;
	/* the poll windows' looks at the socket: recvmsg calls that found
	 * nothing and poll() calls (sched_yield calls: fewer) */
	atomic_ulong rx_poll_calls;
};

/* --- device.c: the orchestrator. Open, close, resets and the effects of a
 * config write are decided here and carried out by the leaves below (pm,
 * region, irq, dma, sriov, channel), which never call back up. --- */

/* Creates a device of model with options (takes ownership of *opts).
 * PM keys (platform_d3cold, idle_d3, ...) are taken by the core. wq runs
 * its idle suspends (NULL: the device never suspends by itself). */
int device_create(const struct vfpm_model *model, const char *name, struct vfpm_opts *opts,
		  struct rpm_wq *wq, int verbosity, struct vfpm_device **out);
void device_destroy(struct vfpm_device *dev);
/* A VF of pf (index i), created like its PF with the PF's model and PM
 * settings; IDs from the PF's SR-IOV capability, no INTx. */
int device_create_vf(struct vfpm_device *pf, unsigned index, struct rpm_wq *wq,
		     struct vfpm_device **out);

/* Quiesces the model and resets it and its interrupt state (not their
 * eventfds); logs the reset with its cause. keep_config: a user's reset
 * (DEVICE_RESET, FLR), after which config space and the MSI-X table read
 * as before; else config returns to power-on values (close). Caller holds
 * req_lock. */
void device_reset(struct vfpm_device *dev, const char *cause, bool keep_config);
/* Client went away: quiesce, drop DMA maps and eventfds, reset. */
void device_disconnect(struct vfpm_device *dev);
/* The session ends (T2, T10): low power ends silently, the device goes to
 * D0, is disconnected and reset, and may idle. Caller holds req_lock. */
void device_close(struct vfpm_device *dev);

/* Region access (config and BARs; no ROM region: EINVAL), acting on a config write's effects
 * (power state, COMMAND, FLR, SR-IOV control). Returns 0 or -errno. */
int device_region_rw(struct vfpm_device *dev, uint32_t region, uint64_t off, void *buf,
		     uint32_t count, bool is_write);
/* A host (control-plane) config access: raw, as setpci (the SR-IOV
 * capability is writable as on hardware). Returns 0 or -errno. */
int device_host_config_rw(struct vfpm_device *dev, unsigned off, void *buf, unsigned len,
			  bool is_write);
/* The same as the PCI core's pci_config_pm_runtime_get does it: waits for a
 * transition in flight, resumes from D3cold (and for a PMCSR write from any
 * suspended state), serialised with the session's requests (B16). */
int device_ctl_config_rw(struct vfpm_device *dev, unsigned off, void *buf, unsigned len,
			 bool write);
/* The host's sriov_numvfs (vfpmctl set PF sriov_numvfs=N): 0 removes the
 * VFs; -ENOENT (not a PF), -ERANGE (N > TotalVFs), -EBUSY (N -> M, both
 * non-zero), or an error creating them. No lock held. */
int device_sriov_configure(struct vfpm_device *dev, unsigned n);
/* Removes every VF (PF destroyed, server stopping). */
void device_sriov_disable(struct vfpm_device *dev);

/* --- region.c: BAR access, mapping revocation, region descriptions --- */

/* Region size and VFIO_REGION_INFO_FLAG_* flags (size 0 for absent). */
void region_desc(struct vfpm_device *dev, uint32_t region, uint64_t *size, uint32_t *flags);
/* mmap-able areas of a memfd BAR, excluding MSI-X structures. Returns
 * the number of areas (<= max). */
unsigned region_areas(struct vfpm_device *dev, uint32_t region, struct vfu_sparse_area *areas,
		      unsigned max);
/* A BAR access (bounds, memory decode, MSI-X structures, memfd memory or
 * the model's bar_rw). */
int region_bar_rw(struct vfpm_device *dev, unsigned idx, uint64_t off, void *buf,
		  uint32_t count, bool is_write);
/* A client's config write: bytes inside the SR-IOV capability are dropped
 * (read-only to the client, as vfio-pci presents it). dev->lock held. */
int region_cfg_client_write_locked(struct vfpm_device *dev, unsigned off, const void *buf,
				   unsigned len, struct pci_effects *fx) REQUIRES(dev->lock);
/* The calling thread enters / leaves the model's bar_rw or command_changed;
 * region_in_access_callback: whether it is inside one (where message DMA
 * cannot complete). */
void region_cb_enter(struct vfpm_device *dev);
void region_cb_exit(struct vfpm_device *dev);
bool region_in_access_callback(struct vfpm_device *dev);
/* memory_enabled (B24): D0-D2, not promoted, COMMAND.MEM (a VF: its PF's
 * VF MSE). memory_lock held. */
bool region_mem_enabled(struct vfpm_device *dev) REQUIRES_SHARED(dev->pm.memory_lock);
/* memory_lock held for write: mappings follow memory_enabled && !engaged;
 * every memfd BAR revoked, dropped (D3cold: contents gone) or scrubbed
 * (the client is gone: each gets a new file at power-on zeros; 0, or the
 * first errno, that BAR then emptied and marked stale). */
void region_mmap_update(struct vfpm_device *dev) REQUIRES(dev->pm.memory_lock);
void region_revoke_all(struct vfpm_device *dev) REQUIRES(dev->pm.memory_lock);
void region_drop_all(struct vfpm_device *dev) REQUIRES(dev->pm.memory_lock);
int region_scrub_all(struct vfpm_device *dev) REQUIRES(dev->pm.memory_lock);
/* A BAR still has a former client's file (region_scrub_all failed for it);
 * region_renew_stale (memory_lock held for write) retries: 0 or errno. */
bool region_any_stale(struct vfpm_device *dev);
int region_renew_stale(struct vfpm_device *dev) REQUIRES(dev->pm.memory_lock);
/* A new, empty memfd named for BAR idx: the descriptor or -errno. */
int region_bar_memfd(struct vfpm_device *dev, unsigned idx);
bool region_any_revoked(struct vfpm_device *dev);
/* A memfd BAR's bytes while access is revoked (the server's copy). */
void *region_bar_shadow(struct vfpm_device *dev, unsigned bar);
/* The copy's memory: an anonymous mapping of the BAR's size (untouched
 * pages cost nothing), or NULL; and its release (b->shadow NULL after). */
void *region_shadow_alloc(size_t size);
void region_shadow_free(struct core_bar *b);

/* --- sriov.c: the SR-IOV capability and the host's VFs (a leaf) --- */

/* PF set-up inside device_create: total_vfs > 0 adds the capability, its
 * VF BARs from the model's vf_bars table. */
int sriov_setup(struct vfpm_device *dev, unsigned total_vfs, struct rpm_wq *wq);
/* A VF just created declares the BARs its model's vf_bars table says. */
bool sriov_vf_layout_ok(const struct vfpm_device *vf);
/* The PF held in D0 under its trans_lock: creates n VFs (host: writes
 * NumVFs, VF Enable and VF MSE first) / removes them (host: clears them). */
int sriov_create_vfs(struct vfpm_device *dev, unsigned n, bool host);
void sriov_destroy_vfs(struct vfpm_device *dev, bool host);
/* VF Enable and NumVFs as the register holds them (takes dev->lock). */
void sriov_read_ctrl(struct vfpm_device *dev, bool *vfe, unsigned *num);
/* A VF's memory decode: the VF MSE bit of its PF (takes pf->lock). */
bool sriov_vf_mse(struct vfpm_device *pf);
/* The SR-IOV capability is host state that resets and config restores
 * keep: save it before, restore it after (dev->lock held; no-ops on a
 * device that is not a PF). */
struct sriov_keep {
	uint8_t bytes[PCI_EXT_CAP_SRIOV_SIZEOF];
};
void sriov_keep_save(const struct vfpm_device *dev, struct sriov_keep *k) REQUIRES(dev->lock);
void sriov_keep_restore(struct vfpm_device *dev, const struct sriov_keep *k) REQUIRES(dev->lock);

/* --- pm_state.c: the D-state machine, PMCSR, snapshots, mappings --- */

const char *pm_state_name(int state);
void pm_start(struct vfpm_device *dev);     /* virtualise the PM capability */
/* A PM state change: trans_lock, then memory_lock for write. */
void pm_trans_begin(struct vfpm_device *dev) ACQUIRE(dev->pm.trans_lock, dev->pm.memory_lock);
void pm_trans_end(struct vfpm_device *dev) RELEASE(dev->pm.trans_lock, dev->pm.memory_lock);
/* Inside pm_trans_begin/end: back to D0 (B31 before a reset, B33 before
 * VFs are created); memory_lock is dropped around the model's callbacks
 * and retaken. */
void pm_set_d0_locked(struct vfpm_device *dev, const char *cause)
	REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);
/* After a config write: act on a PMCSR PowerState write (state, or -1 for
 * none) and on COMMAND.MEM changes (mmap revocation). No lock held. */
void pm_after_config_write(struct vfpm_device *dev, int state, bool mem_changed);
/* V3: config access to a promoted, suspended device without a wake
 * (-EAGAIN: take the normal path); pm_maybe_asleep is its unlocked hint. */
bool pm_maybe_asleep(struct vfpm_device *dev);
int pm_config_asleep(struct vfpm_device *dev, unsigned off, void *buf, unsigned len, bool write);
/* BAR mappings follow memory_enabled && !engaged again / are revoked. */
void pm_sync_mappings(struct vfpm_device *dev);
void pm_revoke_mappings(struct vfpm_device *dev);

/* --- pm_runtime.c: runtime PM, low power, the request wrapper --- */

int pm_init(struct vfpm_device *dev, struct vfpm_opts *opts, struct rpm_wq *wq);
void pm_go_idle(struct vfpm_device *dev);   /* after creation: may idle-suspend */
void pm_fini(struct vfpm_device *dev);
/* The request wrapper (contract §3): a reference for a device command;
 * resumes the device. Returns 0 or -EIO. */
int pm_request_begin(struct vfpm_device *dev);
void pm_request_end(struct vfpm_device *dev);
/* The same, but the idle suspend it may cause is left to pm_idle(), which
 * the caller runs after its reply; returns whether pm_idle() is due. */
bool pm_request_end_deferred(struct vfpm_device *dev);
void pm_idle(struct vfpm_device *dev);
/* Session established (T1); the two halves of its end around the reset
 * (device_close). Caller holds req_lock. */
int pm_open(struct vfpm_device *dev);
void pm_close_begin(struct vfpm_device *dev);
void pm_close_end(struct vfpm_device *dev);
/* DEVICE_FEATURE LOW_POWER_* handlers (fd: descriptor or -1, owned on
 * success). */
int pm_feature_entry(struct vfpm_device *dev, int wake_fd);
int pm_feature_exit(struct vfpm_device *dev);
/* Control plane: a setting (-ENOENT: not a PM key; -EINVAL: bad value). */
int pm_set(struct vfpm_device *dev, const char *key, const char *val);
/* What the control plane shows of a device's PM (V2), read consistently. */
struct pm_status {
	int power_state;
	enum rpm_status runtime_status;
	int usage_count;
	bool engaged, wakeup_armed, client_connected, mmap_revoked;
	struct pm_settings set;
	uint64_t wakeups_signalled;
	uint64_t residency_ns[5];
	/* energy model: used since creation, and saved against staying in
	 * D0 for the same time, in microjoules (rounded down) */
	uint64_t energy_used_uj, energy_saved_uj;
	struct rpm_stats rpm;
};
void pm_get_status(struct vfpm_device *dev, struct pm_status *st);
/* Host-side INTx assertion (fault injection for tests). */
int pm_inject_intx(struct vfpm_device *dev);

/* interrupts (irq.c) */
int irq_count(struct vfpm_device *dev, uint32_t index);
int irq_set(struct vfpm_device *dev, uint32_t flags, uint32_t index, uint32_t start,
	    uint32_t count, const uint8_t *data, int *fds, int nfds);
void irq_release_all(struct vfpm_device *dev);
/* dev->lock held. irq_reset_state: every interrupt state back to reset
 * (MSI-X table masked and not written, INTx unmasked, nothing pending).
 * irq_reset_device_state: only the device's own state (levels, pending
 * bits); the host-side setup (MSI-X table, the client's INTx mask) stays,
 * as across a loss of power or a user's reset. */
void irq_reset_state(struct vfpm_device *dev) REQUIRES(dev->lock);
void irq_reset_device_state(struct vfpm_device *dev) REQUIRES(dev->lock);
int irq_msix_rw(struct vfpm_device *dev, uint64_t off, void *buf, uint32_t len, bool is_write);
bool irq_msix_overlaps(struct vfpm_device *dev, unsigned bar, uint64_t off, uint64_t len);
/* config-space hooks (installed at seal time) */
void irq_install_cfg_hooks(struct vfpm_device *dev);
void irq_signal_req(struct vfpm_device *dev);
/* dev->lock held: re-evaluates the INTx line (delivers if unmasked). */
int irq_intx_update_locked(struct vfpm_device *dev) REQUIRES(dev->lock);
bool core_is_eventfd(int fd);
/* dev->lock held: INTx is the interrupt in use (eventfd set, no MSI/MSI-X). */
bool irq_intx_in_use_locked(struct vfpm_device *dev) REQUIRES(dev->lock);

/* DMA table (dma.c) */
/* -ENOSPC when the table is full: VFPM_MAX_DMA_MAPS windows, or a
 * descriptor-backed window that would take dma_mapped past dma_max. */
#define CORE_DMA_MAX_DEFAULT (1ull << 40)   /* dma_max: 1 TiB */
#define CORE_DMA_MAX_LIMIT (1ull << 47)     /* 128 TiB, a whole x86-64 address space */
int dma_map(struct vfpm_device *dev, const struct vfu_dma_map *m, int fd);
int dma_unmap(struct vfpm_device *dev, uint64_t iova, uint64_t size, bool all);
void dma_unmap_all(struct vfpm_device *dev);

/* Session: one connected client (session.c). */
struct core_session {
	struct vfpm_device *dev;
	int fd;
	bool version_done;
	struct wire_caps peer;         /* what the client can receive */
	int handshake_ms;              /* VERSION deadline from connect (<= 0: none) */
	uint32_t poll_us;              /* poll window after a request (dev->poll_us) */
	/* Batched replies (session_run only; NULL tx: each reply is sent at
	 * once, as for the fuzzer): while another whole request is already
	 * buffered (defer), replies without descriptors wait in tx and go
	 * out together with one send before the session reads again. */
	uint8_t *tx;
	size_t tx_cap, tx_len;
	bool defer;
	bool idle_due;                 /* an idle check waits for the replies in tx */
	/* > 0: once VERSION is done, session_run returns SESSION_IDLE when
	 * the client has sent nothing for this long (ms), with everything
	 * it needs to go on kept here; <= 0: it blocks in its read. */
	int idle_ms;
	/* session_run's state between two calls */
	bool running;
	bool bounded;                  /* SO_RCVTIMEO holds the handshake deadline */
	bool served;                   /* a message was handled: the poll window opens */
	int64_t deadline;              /* of the handshake (CLOCK_MONOTONIC ms) */
	struct wire_reader rd;
};

/* poll_us: the default and the largest value (docs/performance.md) */
#define CORE_POLL_US_DEFAULT 50u
#define CORE_POLL_US_MAX 1000000u

#define SESSION_HANDSHAKE_MS 10000
#define SESSION_SEND_MS 10000

/* Every send to the client has a deadline (ms; <= 0: none): a client that
 * stops reading has its session torn down instead of holding the thread
 * that sends (a session thread, or a model's worker doing message DMA). */
int session_set_send_timeout(struct core_session *s, int ms);

int session_init(struct core_session *s, struct vfpm_device *dev, int fd);
/* Serves messages until EOF or an unrecoverable error; then disconnects
 * the device. Returns 0 on orderly close or a negative errno. With
 * s->idle_ms > 0 it may also return SESSION_IDLE: the client sent
 * nothing for idle_ms after VERSION, every reply is out, and the session
 * is to be called again (by any thread) once its socket is readable. */
int session_run(struct core_session *s);
#define SESSION_IDLE 1
void session_fini(struct core_session *s);
/* Handles one received message (takes ownership of m's payload and fds)
 * and sends its reply. Returns 0, or a negative errno when the session
 * must be closed. Exposed for the fuzzer. */
int session_dispatch(struct core_session *s, struct wire_msg *m);

/* memcpy that survives a client shrinking the file behind src or dst:
 * returns 0, or -EFAULT when the copy hit SIGBUS (guard.c). */
int core_copy(void *dst, const void *src, size_t n);
/* The same with memmove (overlapping ranges). */
int core_move(void *dst, const void *src, size_t n);

/* Log levels as vfpmd's verbosity counts them: errors, warnings and info
 * (power transitions, resets, low-power requests, sessions) by default;
 * -v adds the verbose level (each session's configuration: capabilities,
 * DMA maps, interrupt set-up); -vv the debug level (every failed request).
 * CORE_LOG_VERBOSE is the internal level between info and debug. */
#define CORE_LOG_VERBOSE ((enum vfpm_log_level)(VFPM_LOG_DEBUG + 1))
#define CORE_VERBOSITY_MAX 4   /* -vv: the debug level's rank */
/* logging to stderr: messages ranked above verbosity are dropped */
void core_log(int verbosity, enum vfpm_log_level lvl, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define DLOG(dev, lvl, ...) core_log((dev)->verbosity, lvl, (dev)->name, __VA_ARGS__)

#endif
