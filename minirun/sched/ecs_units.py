"""ECS's units, converted in this one module: cpu in *CPU units* (1024 = one CPU), memory in
MiB. The worker turns them into what the runtime takes (bytes, CPUs, cgroup shares) and the
Kubernetes export into quantities (millicores, Mi)."""

from __future__ import annotations

CPU_UNITS_PER_CPU = 1024
MIN_MEMORY_MIB = 6                   # ECS (and Docker): a container needs at least 6 MiB
MIN_CPU_SHARES = 2                   # the kernel's floor for cpu.shares


def mib_to_bytes(mib: int) -> int:
    return mib * 1024 * 1024


def cpus(units: int, ncpus: int | None) -> float:
    """CPU units as a number of CPUs (a CFS quota), at most the machine's `ncpus`."""
    return min(units / CPU_UNITS_PER_CPU, ncpus or 1)


def cpu_shares(units: int) -> int:
    """A container's cpu (its relative weight, as in Docker's ECS agent) as cgroup cpu.shares."""
    return max(MIN_CPU_SHARES, units)


def millicores(units: int) -> str:
    """CPU units as a Kubernetes cpu quantity (at least 1m)."""
    return f"{max(1, round(units * 1000 / CPU_UNITS_PER_CPU))}m"


def mebibytes(mib: int) -> str:
    """MiB as a Kubernetes memory quantity."""
    return f"{mib}Mi"
