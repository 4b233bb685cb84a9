"""kvmprobe: ask /dev/kvm what a KVM guest on this host can really be given, and explain why."""

__version__ = "0.1.0"
