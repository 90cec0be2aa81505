#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into tests/fuzz/corpus/TARGET/
(TARGET: dispatch, ctl, client, pci_cfg, the fuzz_* program without its
prefix). Each target's input layout is described at the top of its .c file.

fuzz_dispatch: a u32 control word, then vfio-user messages
(16-byte header + payload). Control bit 0 starts the session as if VERSION
had been done, bit 1 additionally with write_multiple; bits 2+2i..3+2i give
the descriptors attached to message i (0 none, 1 eventfd, 2 memfd, 3 four
eventfds).

Usage: tests/fuzz/make_corpus.py [OUTDIR]   (default: tests/fuzz/corpus)
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


# --- fuzz_ctl: u8 control (bit 0: the peer may change things), then lines

def ctl(lines, may_mutate=True):
    return bytes([1 if may_mutate else 0]) + b"\n".join(l.encode() for l in lines) + b"\n"


def ctl_seeds():
    cfgr = '{"cmd":"config-read","device":"%s","offset":%d,"len":%d}'
    cfgw = '{"cmd":"config-write","device":"%s","offset":%d,"len":%d,"value":%d}'
    sets = '{"cmd":"set","device":"%s","key":"%s","value":"%s"}'
    sriov = 0x100 + 12   # the SR-IOV capability follows the 12-byte DSN (demo.c)
    s = {}
    s["status"] = ctl(['{"cmd":"status"}'])
    s["status_ro"] = ctl(['{"cmd":"status"}', cfgr % ("demo", 0, 4),
                          sets % ("demo", "idle_d3", "off")], may_mutate=False)
    s["settings"] = ctl([sets % ("demo", k, v) for k, v in (
        ("platform_d3cold", "on"), ("d3cold_allowed", "off"), ("idle_d3", "on"),
        ("d3hot_promotion", "on"), ("pm_delays", "none"), ("idle_d3", "maybe"),
        ("nosuchkey", "on"))] + ['{"cmd":"status"}'])
    s["config"] = ctl([cfgr % ("demo", 0, 4), cfgr % ("demo", 0x40, 2),
                       cfgw % ("demo", 4, 2, 6), cfgw % ("demo", 0x44, 2, 3),
                       cfgr % ("demo", 0x44, 2), cfgw % ("demo", 0x44, 2, 0),
                       cfgr % ("demo", 4096, 1), cfgr % ("demo", 4094, 4),
                       cfgr % ("demo", -1, 4), cfgr % ("demo", 0, 3)])
    s["vfs"] = ctl([cfgw % ("pf", sriov + 0x10, 2, 2), cfgw % ("pf", sriov + 8, 2, 1),
                    '{"cmd":"status"}', cfgr % ("pf-vf0", 0, 4),
                    sets % ("pf-vf1", "idle_d3", "off"),
                    '{"cmd":"inject-intx","device":"pf-vf0"}',
                    cfgw % ("pf", sriov + 8, 2, 0), cfgr % ("pf-vf0", 0, 4)])
    s["intx"] = ctl(['{"cmd":"inject-intx","device":"demo"}', cfgw % ("demo", 4, 2, 0x400),
                     '{"cmd":"inject-intx","device":"demo"}'])
    s["malformed"] = ctl(['', 'not json', '[1,2]', '{}', '{"cmd":1}', '{"cmd":"status"',
                          '{"cmd":"set"}', '{"cmd":"set","device":"nope","key":"a","value":"b"}',
                          '{"cmd":"config-read","device":"demo","offset":"0","len":4}',
                          '{"cmd":"config-write","device":"demo","offset":4,"len":2}',
                          '{"cmd":"frobnicate","device":"demo"}',
                          '{"cmd":"status","cmd":"set"}', '"\\u0000"'])
    return s


# --- fuzz_client: u8 options, then chunks (u8 how, u16 len, vfu_hdr, payload)
C_WAIT, C_REPLY, C_SIZE, C_MEMFD, C_EVENTFD, C_SOCKPAIR = 1, 2, 4, 8, 16, 32


def chunk(how, payload=b"", cmd=0, flags=F_REPLY, error=0, msg_id=0, size=None):
    hsize = 16 + len(payload) if size is None else size
    return (struct.pack("<BH", how, len(payload)) +
            struct.pack("<HHIII", msg_id, cmd, hsize, flags, error) + payload)


def reply(payload=b"", fds=0, error=0):
    """A well-formed reply to the client's next request."""
    flags = F_REPLY | (0x20 if error else 0)
    return chunk(C_WAIT | C_REPLY | C_SIZE | fds, payload, flags=flags, error=error)


def version_reply(json='{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,'
                       '"pgsizes":4096,"max_dma_maps":16}}', fds=0):
    return reply(struct.pack("<HH", 0, 2) + json.encode() + b"\0", fds=fds)


def region_info(index, size, flags=7, offset=0, caps=b"", fds=C_MEMFD, argsz=None):
    # struct vfio_region_info: argsz, flags, index, cap_offset, size, offset
    cap_off = 32 if caps else 0
    if caps:
        flags |= 8   # VFIO_REGION_INFO_FLAG_CAPS
    a = 32 + len(caps) if argsz is None else argsz
    return reply(struct.pack("<IIIIQQ", a, flags, index, cap_off, size, offset) + caps, fds=fds)


def sparse_cap(areas, nxt=0):
    # vfio_info_cap_header (id 1 = SPARSE_MMAP, version 1, next) + nr_areas
    body = struct.pack("<HHIII", 1, 1, nxt, len(areas), 0)
    for off, size in areas:
        body += struct.pack("<QQ", off, size)
    return body


def client_seeds():
    s = {}
    ok = reply
    s["version_only"] = bytes([0]) + version_reply()
    s["happy"] = (bytes([1]) + version_reply(
                      '{"capabilities":{"max_msg_fds":8,"write_multiple":true}}') +
                  ok(struct.pack("<IIII", 16, 3, 9, 5)) +
                  region_info(0, 4096, fds=0) +
                  region_info(2, 65536, caps=sparse_cap([(0, 4096), (8192, 4096)])) +
                  region_info(7, 4096, flags=3, fds=0) +
                  ok(struct.pack("<IIII", 16, 9, 2, 4)) +
                  ok(struct.pack("<QII", 0, 7, 256) + bytes(256)) +
                  ok(struct.pack("<QII", 4, 7, 2)) +
                  ok(struct.pack("<Q", 2) + bytes(16 * 2)) +
                  ok(struct.pack("<IIII", 56, 0, 0, 1) +
                     struct.pack("<QQIIQ", 0x10, 4, 0, 0, 0), fds=C_EVENTFD) +
                  ok() + ok() + ok() + ok(struct.pack("<II", 8, 0)) +
                  ok(struct.pack("<IIII", 16, 3, 9, 5)) + ok() + ok() + ok())
    s["truncated_info"] = (bytes([0]) + version_reply() + ok(struct.pack("<IIII", 16, 3, 9, 5)) +
                           region_info(0, 4096, fds=0, argsz=200) +
                           region_info(0, 4096, fds=0, caps=sparse_cap([(0, 4096)] * 20)))
    s["cap_loop"] = (bytes([0]) + version_reply() + ok(struct.pack("<IIII", 16, 3, 9, 5)) +
                     region_info(0, 1 << 40, caps=sparse_cap([(1 << 63, 1 << 63)], nxt=32)))
    s["dma_cmds"] = (bytes([0]) + version_reply() +
                     chunk(C_SIZE, struct.pack("<QQ", 0x100000, 16), cmd=11, flags=0) +
                     chunk(C_SIZE, struct.pack("<QQ", 0x100000, 4) + b"abcd", cmd=12, flags=0) +
                     chunk(C_SIZE, struct.pack("<QQ", 0, 1 << 40), cmd=11, flags=0x10) +
                     ok(struct.pack("<IIII", 16, 3, 9, 5)))
    s["twin"] = (bytes([2]) + version_reply(
        '{"capabilities":{"max_msg_fds":8,"twin_socket":{"supported":true,"fd_index":0}}}',
        fds=C_SOCKPAIR) + ok(struct.pack("<IIII", 16, 3, 9, 5)))
    s["errors"] = (bytes([0]) + version_reply() + reply(error=22) + reply(error=0) +
                   reply(error=1 << 31) + chunk(C_WAIT, cmd=4, msg_id=999) +
                   chunk(C_SIZE, b"x" * 8, cmd=4, size=0xffffffff))
    s["bad_version"] = bytes([3]) + reply(struct.pack("<HH", 1, 0) + b"{}\0")
    s["version_json"] = bytes([3]) + reply(struct.pack("<HH", 0, 2) +
                                           b'{"capabilities":{"max_msg_fds":-1,"pgsizes":"x"}')
    return s


# --- fuzz_pci_cfg: accesses (u8 kind, u16 offset, u8 length, value bytes)

def acc(write, off, data=b"", length=None, reset=False):
    n = len(data) if length is None else length
    return struct.pack("<BHB", (1 if write else 0) | (2 if reset else 0), off, n) + \
        (data if write else b"")


def pci_seeds():
    s = {}
    s["header"] = (acc(False, 0, length=64) + acc(True, 4, b"\xff\xff") +
                   acc(True, 6, b"\xff\xff") + acc(True, 0x10, b"\xff" * 24) +
                   acc(False, 0x10, length=24) + acc(True, 0x30, b"\xff\xff\xff\xff") +
                   acc(True, 0x3c, b"\x0b\x01"))
    s["caps"] = (acc(False, 0x34, length=1) + acc(False, 0x40, length=0xc0) +
                 acc(True, 0x44, b"\x03\x81") + acc(True, 0x40, b"\xff" * 0x40) +
                 acc(True, 0x41, b"\x00\x00\x00") + acc(False, 0x40, length=0x40))
    s["ext"] = (acc(False, 0x100, length=64) + acc(True, 0x110 + 0x10, b"\x03\x00") +
                acc(True, 0x110 + 0x08, b"\x01\x00") + acc(True, 0x110 + 0x10, b"\x01\x00") +
                acc(True, 0x110 + 0x11, b"\x00") + acc(True, 0x110 + 0x24, b"\xff" * 24) +
                acc(True, 0x110, b"\xff" * 4))
    s["edges"] = (acc(False, 4095, length=1) + acc(False, 4095, length=2) +
                  acc(True, 4094, b"\xff\xff") + acc(True, 4096, b"") +
                  acc(True, 0xffff, b"\x01") + acc(True, 1, b"\xff" * 255) +
                  acc(False, 0, length=0, reset=True))
    return s


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus")
    targets = {
        "dispatch": {k: v.bytes() for k, v in seeds().items()},
        "ctl": ctl_seeds(),
        "client": client_seeds(),
        "pci_cfg": pci_seeds(),
    }
    for target, items in sorted(targets.items()):
        out = os.path.join(base, target)
        os.makedirs(out, exist_ok=True)
        for name, data in sorted(items.items()):
            with open(os.path.join(out, "seed-" + name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
