"""ukr_bench.system: the /proc readers and CPU affinity, on Linux and off it (monkeypatched)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ukr_bench import system

ON_LINUX = sys.platform.startswith("linux")


@pytest.fixture
def fake_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty /proc, as on macOS or Windows (where there is none)."""
    monkeypatch.setattr(system, "PROC", tmp_path / "proc")
    return tmp_path / "proc"


def write_proc(proc: Path, name: str, text: str) -> None:
    path = proc / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_meminfo_and_cpu_flags_read_the_kernels_files(fake_proc: Path) -> None:
    write_proc(fake_proc, "meminfo", "MemTotal:  1000 kB\nMemAvailable:   250 kB\n")
    write_proc(
        fake_proc, "cpuinfo", "processor\t: 0\nflags\t\t: fpu avx avx2\n\nflags\t\t: other\n"
    )
    assert system.meminfo("MemTotal") == 1000 * 1024
    assert system.meminfo("MemAvailable") == 250 * 1024
    assert system.meminfo("SwapTotal") is None  # no such line
    assert system.host_available_memory() == 250 * 1024
    assert system.cpu_flags() == ["fpu", "avx", "avx2"]  # the first CPU's
    write_proc(fake_proc, "cpuinfo", "processor\t: 0\nFeatures\t: fp asimd\n")  # ARM
    assert system.cpu_flags() == ["fp", "asimd"]
    write_proc(fake_proc, "cpuinfo", "processor\t: 0\n")
    assert system.cpu_flags() is None


def test_readers_without_proc(fake_proc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert system.meminfo("MemTotal") is None
    assert system.cpu_flags() is None
    with system.PeakRSS() as rss:
        pass
    assert rss.bytes is None
    # the available memory: POSIX's physical memory, else a fixed guess
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 10}[name], raising=False)  # fmt: skip
    assert system.host_available_memory() == 40960
    monkeypatch.delattr(os, "sysconf", raising=False)
    assert system.host_available_memory() == system.FALLBACK_MEMORY_BYTES

    def refuse(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", refuse, raising=False)
    assert system.host_available_memory() == system.FALLBACK_MEMORY_BYTES


def test_peak_rss_reads_the_high_water_mark(fake_proc: Path) -> None:
    write_proc(fake_proc, "self/status", "Name:\tpython\nVmHWM:\t  100 kB\nVmRSS:\t   40 kB\n")
    write_proc(fake_proc, "self/clear_refs", "")
    with system.PeakRSS() as rss:
        write_proc(fake_proc, "self/status", "VmHWM:\t  300 kB\nVmRSS:\t   50 kB\n")
    assert rss.bytes == (300 - 40) * 1024
    assert (fake_proc / "self/clear_refs").read_text() == "5"  # VmHWM was reset first
    with system.PeakRSS() as rss:  # a peak below the start (the reset lags): no rise, not < 0
        write_proc(fake_proc, "self/status", "VmHWM:\t  10 kB\n")
    assert rss.bytes == 0


@pytest.mark.skipif(not ON_LINUX, reason="/proc is Linux's")
def test_peak_rss_sees_an_allocation() -> None:
    with system.PeakRSS() as rss:
        a = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert rss.bytes is not None
    assert rss.bytes >= 32 * 2**20
    del a


def test_cpus_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert system.usable_cpus() == [0, 1, 2]
    assert system.cpu_count() == 3
    assert system.pin_to_cpus(1) is None  # nothing pinned where affinity cannot be set
    monkeypatch.setattr(system, "PROC", Path("/nonexistent"))
    assert system._threads() == [0]  # the calling thread
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined"
    assert system.usable_cpus() == [0]
    assert system.cpu_count() == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pin_to_cpus_pins_the_first_usable_ones() -> None:
    before = system.usable_cpus()
    assert system.cpu_count() == len(before) == len(os.sched_getaffinity(0))
    started = threading.Event()
    stop = threading.Event()

    def idle() -> None:  # a thread started before the pinning, as a BLAS pool is at import
        started.set()
        stop.wait()

    thread = threading.Thread(target=idle, daemon=True)
    thread.start()
    started.wait()
    try:
        assert system.pin_to_cpus(1) == before[:1]
        assert system.usable_cpus() == before[:1]
        if ON_LINUX:  # every thread of the process, not only the calling one
            assert thread.native_id is not None
            assert os.sched_getaffinity(thread.native_id) == set(before[:1])
    finally:
        stop.set()
        thread.join()
        for tid in system._threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, before)
