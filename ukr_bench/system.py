"""What the operating system says about this process and machine: ``/proc`` and CPU affinity.

The one place that reads ``/proc`` (Linux) or asks for the CPUs this process may run on. Each
reader has a fallback where there is no ``/proc`` (macOS, Windows): None where nothing else
can tell, the POSIX or the process-wide answer where one exists.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Where the kernel's process and machine files are (tests point it elsewhere).
PROC = Path("/proc")
#: :func:`host_available_memory` where neither ``/proc`` nor ``sysconf`` can tell.
FALLBACK_MEMORY_BYTES = 8 * 2**30


def _kib_field(path: Path, field: str) -> int | None:
    """A ``Field:  1234 kB`` line of a /proc file, in bytes; None without the file or field."""
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def meminfo(field: str) -> int | None:
    """A /proc/meminfo field (``MemTotal``, ``MemAvailable``) in bytes, or None off Linux."""
    return _kib_field(PROC / "meminfo", field)


def host_available_memory() -> int:
    """Bytes of host memory available to a new allocation.

    Linux: ``MemAvailable``. Other POSIX systems: the physical memory, an upper bound.
    Elsewhere :data:`FALLBACK_MEMORY_BYTES`.
    """
    available = meminfo("MemAvailable")
    if available is not None:
        return available
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY_BYTES


def cpu_flags() -> list[str] | None:
    """The first CPU's feature flags in /proc/cpuinfo (``flags``; ``Features`` on ARM), or None
    where there is no such file (off Linux) or no such line."""
    with contextlib.suppress(OSError):
        for line in (PROC / "cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features"):
                return value.split()
    return None


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; off Linux: every CPU)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_count() -> int:
    """How many CPUs this process may run on (the harness pins workers with an affinity mask)."""
    return max(len(usable_cpus()), 1)


def _threads() -> list[int]:
    """The ids of this process's threads (/proc/self/task), or [0] (the calling thread) off Linux."""
    with contextlib.suppress(OSError):
        return sorted(int(tid) for tid in os.listdir(PROC / "self" / "task"))
    return [0]


def pin_to_cpus(count: int) -> list[int] | None:
    """Restrict this process to the first ``count`` CPUs it may use; return the CPUs it now
    may use, or None where affinity cannot be set (macOS, Windows: the process is not pinned).

    Every thread the process has is pinned, not only the calling one: on Linux an affinity
    mask is a thread's, and the threads a library started at import (OpenBLAS' pool, when
    NumPy is imported) kept the old mask when only the calling thread was pinned.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = usable_cpus()[:count]
    for tid in _threads():
        with contextlib.suppress(OSError):  # a thread that has ended since
            os.sched_setaffinity(tid, cpus)
    os.sched_setaffinity(0, cpus)  # the caller for certain (raises if it cannot be pinned)
    return usable_cpus()


class PeakRSS:
    """The rise of this process's peak resident memory over a block (Linux: VmHWM, reset first).

    ``bytes`` is None where the peak cannot be reset or read (off Linux).
    """

    def __enter__(self) -> PeakRSS:  # noqa: PYI034 - py3.10 has no typing.Self
        self.bytes: int | None = None
        self._base: int | None = None
        with contextlib.suppress(OSError):
            (PROC / "self" / "clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._base = _kib_field(PROC / "self" / "status", "VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._base is not None:
            peak = _kib_field(PROC / "self" / "status", "VmHWM")
            self.bytes = None if peak is None else max(peak - self._base, 0)
