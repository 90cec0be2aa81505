#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_dispatch into tests/fuzz/corpus/.

Input layout (fuzz_dispatch.c): a u32 control word, then vfio-user messages
(16-byte header + payload). Control bit 0 starts the session as if VERSION
had been done, bit 1 additionally with write_multiple; bits 2+2i..3+2i give
the descriptors attached to message i (0 none, 1 eventfd, 2 memfd, 3 four
eventfds).

Usage: tests/fuzz/make_corpus.py [OUTDIR]
"""
import os
import struct
import sys

# commands (lib/wire/proto.h)
VERSION, DMA_MAP, DMA_UNMAP, DEVICE_GET_INFO, GET_REGION_INFO = 1, 2, 3, 4, 5
GET_REGION_IO_FDS, GET_IRQ_INFO, SET_IRQS, REGION_READ, REGION_WRITE = 6, 7, 8, 9, 10
DMA_READ, DMA_WRITE, DEVICE_RESET, REGION_WRITE_MULTI, DEVICE_FEATURE = 11, 12, 13, 15, 16
MIG_DATA_READ = 17

F_REPLY, F_NO_REPLY = 0x1, 0x10
BAR0, BAR2, BAR4, ROM, CONFIG = 0, 2, 4, 6, 7
FD_NONE, FD_EVENTFD, FD_MEMFD, FD_EVENTFD4 = 0, 1, 2, 3

# linux/vfio.h
IRQ_DATA_NONE, IRQ_DATA_BOOL, IRQ_DATA_EVENTFD = 1 << 0, 1 << 1, 1 << 2
IRQ_MASK, IRQ_UNMASK, IRQ_TRIGGER = 1 << 3, 1 << 4, 1 << 5
FEAT_GET, FEAT_SET, FEAT_PROBE = 1 << 16, 1 << 17, 1 << 18
LP_ENTRY, LP_ENTRY_WAKEUP, LP_EXIT = 3, 4, 5

# demo device (models/demo.c) and its config space layout
REG_ID, REG_SCRATCH, REG_STATUS, REG_DOORBELL = 0x00, 0x08, 0x0C, 0x10
REG_INT_MASK = 0x18
REG_DMA_SRC_LO, REG_DMA_DST_LO, REG_DMA_LEN = 0x20, 0x28, 0x30
PCI_COMMAND = 0x04
CMD_MEM, CMD_MASTER, CMD_INTX_DISABLE = 0x2, 0x4, 0x400
PM_CAP = 0x40        # first capability: PM (PMCSR at +4)
MSIX_CAP = 0x48      # then MSI-X (message control at +2)


class Input:
    def __init__(self, post_version=False, write_multiple=False):
        self.control = (1 if post_version else 0) | (2 if write_multiple else 0)
        self.msgs = []
        self.next_id = 1

    def msg(self, cmd, payload=b"", fds=FD_NONE, flags=0, size=None, msg_id=None):
        i = len(self.msgs)
        if fds:
            assert i < 15, "descriptors only for the first 15 messages"
            self.control |= fds << (2 + 2 * i)
        if msg_id is None:
            msg_id = self.next_id
            self.next_id += 1
        hsize = 16 + len(payload) if size is None else size
        self.msgs.append(struct.pack("<HHIII", msg_id, cmd, hsize, flags, 0) + payload)
        return self

    def version(self, json='{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}',
                major=0, minor=2):
        body = struct.pack("<HH", major, minor)
        if json is not None:
            body += json.encode() + b"\0"
        return self.msg(VERSION, body)

    def region_read(self, region, off, count):
        return self.msg(REGION_READ, struct.pack("<QII", off, region, count))

    def region_write(self, region, off, data):
        return self.msg(REGION_WRITE, struct.pack("<QII", off, region, len(data)) + data)

    def cfg_write16(self, off, v):
        return self.region_write(CONFIG, off, struct.pack("<H", v))

    def bar0_write(self, off, v):
        return self.region_write(BAR0, off, struct.pack("<I", v))

    def enable_mem(self, master=False):
        return self.cfg_write16(PCI_COMMAND, CMD_MEM | (CMD_MASTER if master else 0))

    def set_irqs(self, flags, index, start, count, data=b"", fds=FD_NONE):
        return self.msg(SET_IRQS, struct.pack("<IIIII", 20 + len(data), flags, index, start,
                                              count) + data, fds=fds)

    def dma_map(self, iova, size, offset=0, prot=3, fds=FD_MEMFD):
        return self.msg(DMA_MAP, struct.pack("<IIQQQ", 32, prot, offset, iova, size), fds=fds)

    def dma_unmap(self, iova, size, flags=0):
        return self.msg(DMA_UNMAP, struct.pack("<IIQQ", 24, flags, iova, size))

    def feature(self, flags, data=b"", fds=FD_NONE):
        return self.msg(DEVICE_FEATURE, struct.pack("<II", 8 + len(data), flags) + data, fds=fds)

    def bytes(self):
        return struct.pack("<I", self.control) + b"".join(self.msgs)


def seeds():
    s = {}
    s["version"] = Input().version()
    s["version_nojson"] = Input().version(json=None)
    s["version_badmajor"] = Input().version(major=1).region_read(CONFIG, 0, 4)
    s["no_version"] = Input().msg(DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
    s["device_info"] = (Input().version()
                        .msg(DEVICE_GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
                        .msg(GET_IRQ_INFO, struct.pack("<IIII", 16, 0, 2, 0)))
    inp = Input().version()
    for idx in range(9):
        inp.msg(GET_REGION_INFO, struct.pack("<IIIIQQ", 32, 0, idx, 0, 0, 0))
    inp.msg(GET_REGION_INFO, struct.pack("<IIIIQQ", 80, 0, BAR2, 0, 0, 0))
    inp.msg(GET_REGION_IO_FDS, struct.pack("<IIII", 16, 0, BAR0, 0))
    inp.msg(GET_REGION_IO_FDS, struct.pack("<IIII", 56, 0, BAR0, 0))
    s["region_info"] = inp
    s["config_rw"] = (Input().version()
                      .region_read(CONFIG, 0, 64).region_read(CONFIG, 0x40, 64)
                      .region_read(CONFIG, 0x100, 16)
                      .enable_mem().cfg_write16(PCI_COMMAND, CMD_MEM | CMD_INTX_DISABLE)
                      .region_write(CONFIG, 0x10, struct.pack("<I", 0xffffffff))
                      .region_read(CONFIG, 0x10, 4).region_read(ROM, 0, 4))
    s["bar0_rw"] = (Input().version().region_read(BAR0, REG_SCRATCH, 4)   # MEM off: EIO
                    .enable_mem()
                    .region_read(BAR0, REG_ID, 4).bar0_write(REG_SCRATCH, 0x12345678)
                    .region_read(BAR0, REG_SCRATCH, 4).region_read(BAR0, 1, 2)
                    .region_read(BAR0, 0, 64).region_read(BAR2, 0, 256)
                    .region_write(BAR2, 0x1000, b"\xaa" * 32).region_read(BAR4, 0, 64))
    s["post_version"] = (Input(post_version=True).enable_mem()
                         .region_read(BAR0, REG_SCRATCH, 4).msg(DEVICE_RESET)
                         .msg(DEVICE_RESET, flags=F_NO_REPLY))
    s["irqs"] = (Input().version()
                 .set_irqs(IRQ_DATA_EVENTFD | IRQ_TRIGGER, 0, 0, 1, fds=FD_EVENTFD)
                 .set_irqs(IRQ_DATA_BOOL | IRQ_UNMASK, 0, 0, 1, b"\x01")
                 .set_irqs(IRQ_DATA_NONE | IRQ_MASK, 0, 0, 1)
                 .cfg_write16(MSIX_CAP + 2, 0x8000)
                 .set_irqs(IRQ_DATA_EVENTFD | IRQ_TRIGGER, 2, 0, 4, fds=FD_EVENTFD4)
                 .set_irqs(IRQ_DATA_NONE | IRQ_TRIGGER, 2, 1, 1)
                 .set_irqs(IRQ_DATA_BOOL | IRQ_TRIGGER, 2, 0, 2, b"\x01\x01")
                 .set_irqs(IRQ_DATA_EVENTFD | IRQ_TRIGGER, 4, 0, 1, fds=FD_EVENTFD)
                 .set_irqs(IRQ_DATA_EVENTFD | IRQ_TRIGGER, 2, 0, 0))
    s["dma_map"] = (Input().version()
                    .dma_map(0x100000, 0x100000)
                    .dma_map(0x400000, 0x10000, fds=FD_NONE)      # message-based
                    .dma_map(0x100000, 0x1000)                   # overlap: EEXIST
                    .dma_unmap(0x100000, 0x100000)
                    .dma_unmap(0, 0, flags=2))
    s["dma_copy"] = (Input().version()
                     .dma_map(0x100000, 0x100000)
                     .enable_mem(master=True)
                     .bar0_write(REG_DMA_SRC_LO, 0x100000)
                     .bar0_write(REG_DMA_DST_LO, 0x180000)
                     .bar0_write(REG_DMA_LEN, 0x1000)
                     .bar0_write(REG_INT_MASK, 3)
                     .bar0_write(REG_DOORBELL, 1)
                     .region_read(BAR0, REG_STATUS, 4))
    s["dma_msg"] = (Input().version()
                    .dma_map(0x400000, 0x10000, fds=FD_NONE)
                    .enable_mem(master=True)
                    .bar0_write(REG_DMA_SRC_LO, 0x400000)
                    .bar0_write(REG_DMA_DST_LO, 0x408000)
                    .bar0_write(REG_DMA_LEN, 0x100)
                    .bar0_write(REG_DOORBELL, 1)
                    .msg(DMA_READ, struct.pack("<QQ", 0x400000, 0x100) + b"\0" * 0x100,
                         flags=F_REPLY, msg_id=0))
    s["feature"] = (Input().version()
                    .feature(FEAT_PROBE | FEAT_SET | LP_ENTRY)
                    .feature(FEAT_SET | LP_ENTRY)
                    .region_read(CONFIG, 0, 4)
                    .feature(FEAT_SET | LP_EXIT)
                    .feature(FEAT_SET | LP_ENTRY_WAKEUP, struct.pack("<iI", 0, 0), fds=FD_EVENTFD)
                    .feature(FEAT_SET | LP_EXIT)
                    .feature(FEAT_GET | 1))
    s["pm_d3hot"] = (Input().version().enable_mem()
                     .cfg_write16(PM_CAP + 4, 3)
                     .region_read(BAR0, REG_SCRATCH, 4)
                     .cfg_write16(PM_CAP + 4, 0)
                     .region_read(CONFIG, PCI_COMMAND, 2))
    multi = struct.pack("<Q", 3)
    for off, region, data in ((PCI_COMMAND, CONFIG, b"\x02\x00"), (REG_SCRATCH, BAR0, b"\x01\x02\x03\x04"),
                              (0x10, BAR2, b"\x55" * 8)):
        multi += struct.pack("<QII", off, region, len(data)) + data.ljust(8, b"\0")
    s["write_multi"] = (Input().version(
        json='{"capabilities":{"max_msg_fds":8,"write_multiple":true}}')
        .msg(REGION_WRITE_MULTI, multi).region_read(BAR0, REG_SCRATCH, 4))
    s["write_multi_preset"] = Input(post_version=True, write_multiple=True).msg(REGION_WRITE_MULTI,
                                                                                multi)
    s["malformed"] = (Input().version()
                      .msg(REGION_READ, struct.pack("<QII", 0, CONFIG, 4), size=8)
                      .msg(REGION_READ, struct.pack("<QII", 0, CONFIG, 4), size=0xffffffff)
                      .msg(99).msg(MIG_DATA_READ, struct.pack("<II", 8, 0))
                      .msg(DMA_WRITE, struct.pack("<QQ", 0, 0), flags=F_REPLY))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, inp in sorted(seeds().items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(inp.bytes())
    print(f"wrote {len(seeds())} seeds to {out}")


if __name__ == "__main__":
    main()
