/* A test client that behaves like the real peers rather than like vfpm's
 * own client library (which shares the server's assumptions):
 *
 *  - QEMU's vfio-user-pci: it emulates the guest-visible MSI-X table and
 *    PBA itself and never reads or writes the server's; it enables MSI-X
 *    in config space and hands every vector's eventfd over in one SET_IRQS
 *    (NORESIZE); it masks a vector by swapping the vector's eventfd for
 *    one of its own (and keeps the pending bit in its emulated PBA), or by
 *    SET_IRQS MASK/UNMASK; it resets by FLR (a DEVCTL read-modify-write);
 *    guest config accesses reach the server in naturally aligned 1, 2 or
 *    4-byte pieces; it unmaps IOVA ranges it never mapped.
 *  - libvfio-user's sample client: it announces max_data_xfer_size 1024
 *    and still sends larger region accesses.
 *
 * Every helper returns 0 or a negative errno; a helper asked to touch the
 * MSI-X table or PBA returns -EPERM without sending anything.
 */
#ifndef VFPM_TEST_PEER_H
#define VFPM_TEST_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "vfpm/client.h"

#define PEER_MAX_VEC 64
#define PEER_XFER_SIZE 1024   /* what libvfio-user's sample client announces */

struct peer {
	struct vfpm_client *c;
	unsigned pm_cap, msix_cap, pcie_cap;
	unsigned msix_nvec, msix_bar;
	uint64_t msix_table_off, msix_pba_off;
	int guest_fd[PEER_MAX_VEC];    /* what the guest's interrupt is (KVM's irqfd) */
	int pend_fd[PEER_MAX_VEC];     /* the VMM's own fd while a vector is masked */
	bool masked[PEER_MAX_VEC];
	uint64_t pba;                  /* the VMM's emulated PBA (vectors 0..63) */
};

/* Connects like the peers: VERSION with max_data_xfer_size 1024, then
 * discovers the capabilities through 1/2/4-byte config reads. */
int peer_connect(struct peer *p, const char *sock);
void peer_close(struct peer *p);

/* Config space in the aligned pieces guest accesses arrive in (an access
 * of len 1, 2 or 4 at off; an unaligned one is split as a CPU splits it). */
int peer_cfg_read(struct peer *p, unsigned off, unsigned len, uint32_t *val);
int peer_cfg_write(struct peer *p, unsigned off, unsigned len, uint32_t val);
/* A whole-config-space dump as lspci's full hex dump makes it: 4096 bytes read
 * in 4-byte pieces. */
int peer_cfg_dump(struct peer *p, uint8_t out[4096]);

/* BAR access; -EPERM for any byte of the MSI-X table or PBA. */
int peer_bar_read(struct peer *p, unsigned bar, uint64_t off, unsigned len, uint32_t *val);
int peer_bar_write(struct peer *p, unsigned bar, uint64_t off, unsigned len, uint32_t val);

/* MSI-X Enable in config space, then one SET_IRQS with an eventfd for each
 * of the nvec vectors (the guest's fds are made here). */
int peer_msix_enable(struct peer *p);
/* QEMU's vector release and use: the vector's eventfd becomes the VMM's
 * own (an interrupt there sets the emulated PBA bit), and back; on unmask a
 * pending vector is delivered to the guest once, by the VMM. */
int peer_msix_mask_by_swap(struct peer *p, unsigned v);
int peer_msix_unmask_by_swap(struct peer *p, unsigned v);
/* Interrupts the guest has received on vector v (reads and clears). */
uint64_t peer_guest_irqs(struct peer *p, unsigned v);
/* Waits up to ms for an interrupt on vector v; returns the count (0: none). */
uint64_t peer_wait_guest_irq(struct peer *p, unsigned v, int ms);

/* Linux's pcie_flr(): DEVCTL |= Initiate FLR as a 2-byte read-modify-write. */
int peer_flr(struct peer *p);

/* What QEMU does on a guest IOMMU domain change: unmaps [0, 2^bits) as
 * naturally aligned power-of-two chunks of at most 2^chunk_bits bytes,
 * mapped or not. Returns 0 or the first error. */
int peer_unmap_space(struct peer *p, unsigned bits, unsigned chunk_bits);

#endif
