"""What a result was measured on and with: the machine, and the code's provenance.

Nothing here imports a framework (the parent process of a sweep never does). Nothing recorded is
an absolute path of this machine, so committed results do not leak one.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ukr_bench
from ukr_bench.schema import describe_cpu
from ukr_bench.system import cpu_flags, meminfo, usable_cpus

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
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in RECORDED_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def cpu_info() -> dict[str, Any]:
    """py-cpuinfo's record of the CPU (``cpuinfo.get_cpu_info()``), or {} without py-cpuinfo.

    Its ``brand_raw``, ``vendor_id_raw``, ``family`` and ``model`` name the CPU
    (:func:`ukr_bench.schema.describe_cpu`); its ``flags``, hundreds, are not kept.
    """
    try:
        import cpuinfo  # type: ignore[import-untyped]
    except ImportError:
        return {}
    return dict(cpuinfo.get_cpu_info() or {})


def _implementation_version() -> str:
    """The Python implementation's own version: PyPy's, not the language's it implements."""
    pypy = getattr(sys, "pypy_version_info", None)
    if pypy is None:
        return platform.python_version()
    text = "{}.{}.{}".format(*pypy[:3])
    return text if pypy.releaselevel == "final" else f"{text}-{pypy.releaselevel}{pypy.serial}"


def platform_info() -> dict[str, Any]:
    """The platform and the CPU, under the ``machine`` key of every run's metadata.

    The fields and their order are those pytest-benchmark's ``machine_info`` recorded, which
    runs up to issue 22 took from its plugin hook; now from :mod:`platform` and py-cpuinfo.
    """
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": _implementation_version(),
        "python_version": platform.python_version(),
        "python_build": platform.python_build(),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": cpu_info(),
    }


def machine_metadata() -> dict[str, Any]:
    """CPU, memory, GPUs, OS, Python and library versions (no framework is imported).

    The CPU is named by model, vendor, family and SIMD features (:func:`ukr_bench.schema.
    describe_cpu`): the same code on Intel and on AMD, or with and without AVX-512, differs in
    time and in float32 rounding, so a report must tell such runs apart.
    """
    machine = platform_info()
    cpu = machine["cpu"]
    # Hundreds of flags nobody reads: only the SIMD ones that matter are kept, as cpu_simd.
    flags = cpu.pop("flags", None) or cpu_flags()
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
