"""What a result was measured on and with: the machine, and the code's provenance.

Nothing here imports a framework (the parent process of a sweep never does). Nothing recorded is
an absolute path of this machine, so committed results do not leak one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import ukr_bench
from ukr_bench.bench.config import usable_cpus
from ukr_bench.schema import describe_cpu

#: Environment variables that change what a framework does; recorded with every run.
RECORDED_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
    "OPENBLAS_CORETYPE",
    # the instruction-set paths a framework can be held to (the noxfile's ISA_PATHS)
    "NPY_DISABLE_CPU_FEATURES",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "ONEDNN_MAX_CPU_ISA",
    "CUDA_VISIBLE_DEVICES",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
)
#: Distributions whose versions are recorded (whichever are installed).
RECORDED_PACKAGES = (
    "ukr-bench",
    "numpy",
    "scipy",
    "jax",
    "jaxlib",
    "torch",
    "pykeops",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "pytest-benchmark",
)


def meminfo(field: str) -> int | None:
    """A /proc/meminfo field in bytes, or None off Linux."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as nvidia-smi reports them (name, driver, memory); [] where there is none."""
    query = "name,driver_version,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [
        dict(zip(query.split(","), (p.strip() for p in line.split(",")), strict=False))
        for line in out.splitlines()
        if line.strip()
    ]


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in RECORDED_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def proc_cpu_flags() -> list[str] | None:
    """The first CPU's feature flags in /proc/cpuinfo (``flags``; ``Features`` on ARM), or None
    where there is no such file (off Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("flags", "Features"):
                return value.split()
    return None


def machine_metadata() -> dict[str, Any]:
    """CPU, memory, GPUs, OS, Python and library versions (no framework is imported).

    The CPU is named by model, vendor, family and SIMD features (:func:`ukr_bench.schema.
    describe_cpu`): the same code on Intel and on AMD, or with and without AVX-512, differs in
    time and in float32 rounding, so a report must tell such runs apart.
    """
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    machine = pytest_benchmark_generate_machine_info()
    cpu = machine.get("cpu", {})
    # Hundreds of flags nobody reads: only the SIMD ones that matter are kept, as cpu_simd.
    flags = cpu.pop("flags", None) or proc_cpu_flags()
    return {
        "machine": machine,
        "cpu_model": cpu.get("brand_raw") or platform.processor(),
        **describe_cpu(cpu, flags),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(usable_cpus()),
        "memory_total_bytes": meminfo("MemTotal"),
        "memory_available_bytes": meminfo("MemAvailable"),
        "gpus": gpus(),
        "os": platform.platform(),
        "versions": versions(),
        "env": {k: os.environ.get(k) for k in RECORDED_ENV},
    }


#: Names the commit of a checkout copied without its ``.git`` (see :func:`provenance`).
SOURCE_COMMIT_ENV = "UKR_BENCH_SOURCE_COMMIT"


def _git(source: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()


def provenance() -> dict[str, Any]:
    """The version and commit of the ``ukr_bench`` that is running (not of the working directory).

    ``commit`` is that of the git checkout the package was imported from, or None with
    ``source: "not a git checkout"`` for an installed wheel. ``dirty`` counts modified tracked
    files only: untracked result directories do not change the code that ran.

    A copy of a checkout without its ``.git`` (a working tree sent to a GPU machine) is named
    by whoever made the copy: ``UKR_BENCH_SOURCE_COMMIT`` (40 hex digits) is then recorded as
    the commit, with ``source: "copy of a git checkout"`` and ``dirty`` unknown (None), since
    nothing there can check it.
    """
    source = Path(ukr_bench.__file__).resolve().parent.parent
    out: dict[str, Any] = {"version": ukr_bench.__version__, "commit": None, "dirty": None}
    try:
        top = Path(_git(source, "rev-parse", "--show-toplevel")).resolve()
        if top != source or not (top / "ukr_bench").is_dir():
            raise subprocess.CalledProcessError(1, "git")  # an enclosing, unrelated repository
        out["commit"] = _git(source, "rev-parse", "HEAD")
        changed = _git(source, "status", "--porcelain", "--untracked-files=no")
        out["dirty"] = bool(changed)
        out["source"] = "git checkout"
    except (OSError, subprocess.SubprocessError):
        out["source"] = "not a git checkout"
    given = os.environ.get(SOURCE_COMMIT_ENV)
    if out["source"] == "not a git checkout" and given is not None:
        if not re.fullmatch(r"[0-9a-f]{40}", given):
            msg = f"{SOURCE_COMMIT_ENV} must be a full commit hash (40 hex digits), got {given!r}"
            raise ValueError(msg)
        out |= {"commit": given, "source": "copy of a git checkout"}
    return out
