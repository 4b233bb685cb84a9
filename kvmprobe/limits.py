"""kvmprobe's own limits and defaults (not KVM facts: those live in kvmprobe.tables and
kvmprobe.kvm.abi). Every bound on something the kernel or a file supplies is here."""

from __future__ import annotations

#: the device node probed when none is named
DEFAULT_DEVICE = "/dev/kvm"
#: KVM_CHECK_EXTENSION is asked for 0..CAP_LIMIT-1 in every fd scope (the ABI ends far below)
CAP_LIMIT = 512
#: first buffer size for variable-length ioctls (CPUID entries, MSR indices)
FIRST_BUFFER = 64
#: variable-length buffers never grow beyond this many entries (no kernel comes close)
MAX_BUFFER = 1 << 16
#: a snapshot list longer than this is refused (no kernel returns anywhere near this many)
MAX_ENTRIES = 100_000
#: a snapshot file larger than this is refused (real ones are about 40 KB)
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
