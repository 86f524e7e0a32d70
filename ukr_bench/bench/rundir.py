"""The run directory: created with its ``meta.json``, and written by one sweep at a time.

A sweep holds an exclusive OS lock (``flock``) on the directory's ``.lock`` for its whole life,
released by the kernel however the sweep ends; a second sweep on the same directory is refused
with the holder's pid and command (:class:`RunLockedError`). A reference run is refused on a
checkout with uncommitted changes (:class:`DirtyTreeError`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from backends import REGISTRY
from ukr_bench import data_files
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.machine import machine_metadata, provenance
from ukr_bench.interface import available_backends
from ukr_bench.schema import RunMeta, write_meta

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another sweep is writing this run directory."""


def default_run_dir(cfg: SweepConfig) -> Path:
    """``results/<UTC date-time>_<host>_<device kinds>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%SZ")
    devices = "-".join(sorted({d.split(":")[0] for d in cfg.devices}))
    return Path("results") / f"{stamp}_{platform.node() or 'host'}_{devices}"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock, or raise :class:`RunLockedError` at once."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        msg = f"cannot write to the run directory {run_dir}: {exc.strerror}"
        raise OSError(exc.errno, msg) from exc
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no OS lock; the worker pipe still prevents orphans
            pass
        except OSError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            msg = (
                f"{run_dir} is being written by another sweep ({holder}); wait for it to "
                f"finish, or stop it (kill <pid>) and run --resume {run_dir}"
            )
            raise RunLockedError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class DirtyTreeError(RuntimeError):
    """A reference run asked of a checkout with uncommitted changes."""


def check_data_file(run_dir: Path, meta: RunMeta) -> None:
    """Refuse to resume a run on the user's data file when the file changed since the run
    began: its rows would mix two data sets under one name."""
    recorded = meta.data_file
    if not recorded:
        return
    path = Path(recorded["path"])
    if not path.is_file():
        msg = f"{run_dir} measured {path}, which no longer exists: restore it to --resume"
        raise FileNotFoundError(msg)
    now = data_files.sha256(path)
    if now != recorded["sha256"]:
        msg = (
            f"{path} changed since {run_dir} began (SHA-256 {recorded['sha256'][:12]}..., now "
            f"{now[:12]}...): restore it to --resume, or start a new run"
        )
        raise ValueError(msg)


def new_run(
    cfg: SweepConfig,
    out: Path | str | None = None,
    *,
    command: list[str] | None = None,
    reference: bool = False,
    allow_dirty: bool = False,
) -> Path:
    """Create a run directory with its ``meta.json``; refuses a non-empty one.

    ``reference``: the run is meant to be committed as a reference, so it must be reproducible
    from a commit: a checkout with uncommitted changes is refused unless ``allow_dirty`` (the
    report then says so).
    """
    prov = provenance()
    if reference and prov.get("dirty") and not allow_dirty:
        msg = (
            "a reference run must come from a clean tree, and this checkout has uncommitted "
            "changes: commit them (or pass --allow-dirty, which the report will state)"
        )
        raise DirtyTreeError(msg)
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    if run_dir.exists() and any(run_dir.iterdir()):
        msg = f"{run_dir} exists and is not empty: choose another --out, or --resume it"
        raise FileExistsError(msg)
    missing = [b for b in cfg.backends if b not in available_backends()]
    if missing:
        msg = f"backends not installed: {missing}; " + "; ".join(
            REGISTRY[b].install for b in missing
        )
        raise ValueError(msg)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = RunMeta(
        config=cfg.to_dict(),
        command=command or list(sys.argv),
        date=datetime.now(timezone.utc).isoformat(),
        provenance=prov,
        machine=machine_metadata(),
        thread_env={
            b: REGISTRY[b].worker_env(cfg.threads, cfg.host_devices(b)) for b in cfg.backends
        },
        reference=reference,
        data_file=data_files.describe(cfg.data) if data_files.is_data_file(cfg.data) else None,
    )
    write_meta(run_dir, meta)
    return run_dir
