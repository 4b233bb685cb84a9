"""The baseline: the same ioctls as `kvmprobe caps` (API version, KVM_CHECK_EXTENSION 0..511 on
/dev/kvm, on a fresh VM and on a split-irqchip VM), stdlib only, printing JSON."""

import fcntl
import json
import os
import struct
import sys


def caps(fd):
    return {n: v for n in range(512) if (v := fcntl.ioctl(fd, 0xAE03, n))}


def main(path="/dev/kvm"):
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    out = {"api": fcntl.ioctl(fd, 0xAE00, 0), "system": caps(fd)}
    vm = fcntl.ioctl(fd, 0xAE01, 0)
    out["vm"] = caps(vm)
    os.close(vm)
    vm = fcntl.ioctl(fd, 0xAE01, 0)
    fcntl.ioctl(vm, 0x4068AEA3, struct.pack("<IIQQQQ64x", 121, 0, 24, 0, 0, 0))
    out["vm_split_irqchip"] = caps(vm)
    os.close(vm)
    os.close(fd)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
