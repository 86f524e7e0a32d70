"""The sweep: the parent process that starts one worker per backend and supervises it.

The parent imports no framework. For each backend it starts a worker process
(:mod:`ukr_bench.bench.worker`) in the backend's own environment (thread pools are sized at
import); by default one per backend *and N*, the backends taking turns at each N
(``SweepConfig.rounds``), so that a drift of the machine's speed during the run is shared by
all backends at the same N instead of landing on whichever backend ran then. It watches the
configuration in flight, and

* past the sweep's ``timeout`` kills the worker and records a time-out;
* records a worker that dies (e.g. killed by the kernel for memory) as ``crashed``;
* then starts a new worker for the rest of that backend's configurations.

One writer per run directory: a sweep holds the directory's lock for its whole life
(:mod:`ukr_bench.bench.rundir`, which also creates the directory). Workers never outlive their
sweep: on Linux the kernel kills them when the parent dies (``PR_SET_PDEATHSIG``), elsewhere
they exit when the pipe from the parent closes. So no configuration is ever measured by two
processes, and ``--resume`` after any kill measures only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from backends import REGISTRY
from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.rundir import check_data_file, new_run, run_lock
from ukr_bench.bench.timing import base_row
from ukr_bench.bench.worker import NS_ENV, PARENT_ENV
from ukr_bench.schema import (
    INFLIGHT_FILE,
    RESULTS_FILE,
    ConfigKey,
    Row,
    Status,
    append_row,
    done_keys,
    read_meta,
    upgrade_row,
    write_meta,
    write_table,
)

__all__ = ["Progress", "WorkerCommand", "resume_sweep", "run_sweep", "worker_command"]

WorkerCommand = Callable[[Path, str], list[str]]
Progress = Callable[[int, str], None]


def worker_command(run_dir: Path, backend: str) -> list[str]:
    return [sys.executable, "-m", "ukr_bench.bench", str(run_dir), backend]


def run_sweep(
    cfg: SweepConfig | None = None,
    out: Path | str | None = None,
    *,
    progress: bool = True,
    command: list[str] | None = None,
    worker_cmd: WorkerCommand = worker_command,
    reference: bool = False,
    allow_dirty: bool = False,
) -> Path:
    """Run a new sweep of ``cfg`` (default: the defaults) into ``out``; returns the directory.

    ``reference`` and ``allow_dirty``: see :func:`new_run`.
    """
    run_dir = new_run(
        cfg or SweepConfig(), out, command=command, reference=reference, allow_dirty=allow_dirty
    )
    return _sweep(run_dir, progress=progress, worker_cmd=worker_cmd)


def resume_sweep(
    run_dir: Path | str,
    *,
    progress: bool = True,
    command: list[str] | None = None,
    worker_cmd: WorkerCommand = worker_command,
) -> Path:
    """Finish an interrupted run with its own stored configuration; finished rows stay as they are."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)  # names the file if it is missing or damaged
    check_data_file(run_dir, meta)
    meta.resumed.append(
        {"date": datetime.now(timezone.utc).isoformat(), "command": command or list(sys.argv)}
    )
    # One lock for the whole resume: refused before meta.json is touched if another sweep
    # writes here, and no other sweep can slip in between.
    with run_lock(run_dir):
        write_meta(run_dir, meta)
        return _sweep_locked(run_dir, progress=progress, worker_cmd=worker_cmd)


def _sweep(run_dir: Path, *, progress: bool, worker_cmd: WorkerCommand) -> Path:
    with run_lock(run_dir):
        return _sweep_locked(run_dir, progress=progress, worker_cmd=worker_cmd)


def _sweep_locked(run_dir: Path, *, progress: bool, worker_cmd: WorkerCommand) -> Path:
    cfg = SweepConfig.from_dict(read_meta(run_dir).config)
    plan = cfg.plan()
    with _progress(progress, len(plan)) as update:
        for ns in cfg.rounds():
            for backend in cfg.backends:
                _run_backend(run_dir, backend, cfg, plan, worker_cmd, update, ns)
        update(len(done_keys(run_dir) & set(plan)), "done")
    write_table(run_dir)
    return run_dir


def _run_backend(
    run_dir: Path,
    backend: str,
    cfg: SweepConfig,
    plan: list[ConfigKey],
    worker_cmd: WorkerCommand,
    update: Progress,
    ns: list[int],
) -> None:
    """Workers for ``backend``'s configurations with N in ``ns``, until each one has a row.

    A worker that fails outside any configuration (its framework does not import, say) fails
    every configuration of the backend still to do, in this turn and the later ones.
    """
    mine = [k for k in plan if k.backend == backend and k.n in ns]
    spec_env = REGISTRY[backend].worker_env(cfg.threads, cfg.host_devices(backend))
    env = os.environ | spec_env | {PARENT_ENV: str(os.getpid()), NS_ENV: ",".join(map(str, ns))}
    log_path = run_dir / f"worker-{backend}.log"
    while True:
        todo = [k for k in mine if k not in done_keys(run_dir)]
        if not todo:
            return
        (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)
        with log_path.open("a") as log:
            returncode, timed_out = _supervise(run_dir, worker_cmd(run_dir, backend), env, log,
                                               cfg.timeout, set(plan), backend, update)  # fmt: skip
        write_table(run_dir)
        inflight = _inflight(run_dir)
        if timed_out is not None:
            _record_failure(
                timed_out, Status.TIMEOUT, f"no result within {cfg.timeout:g} s; worker killed",
                run_dir,
            )  # fmt: skip
        elif returncode != 0:
            reason = _exit_reason(returncode)
            if inflight is None:
                # Died outside any configuration (e.g. the framework failed to import).
                tail = _log_tail(log_path)
                left = [k for k in plan if k.backend == backend and k not in done_keys(run_dir)]
                for k in left:
                    _record_failure(
                        base_row(k, cfg), Status.ERROR, f"worker failed: {reason}; {tail}", run_dir
                    )
                return
            _record_failure(
                inflight, Status.CRASHED, f"worker {reason} during this configuration", run_dir
            )
        elif not done_keys(run_dir) & set(todo):
            msg = f"worker for {backend} exited cleanly without finishing any configuration"
            raise RuntimeError(msg)


def _supervise(
    run_dir: Path,
    command: list[str],
    env: dict[str, str],
    log: IO[str],
    timeout: float,
    plan: set[ConfigKey],
    backend: str,
    update: Progress,
) -> tuple[int, Row | None]:
    """Run one worker to its end; returns its exit status and the row it timed out on, if any."""
    # stdin is a pipe that only this process holds open: the worker exits when it closes.
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env
    ) as proc:
        results, seen_size, done = run_dir / RESULTS_FILE, -1, 0
        try:
            while proc.poll() is None:
                # Parse the results only when they grew: the worker is timing on these CPUs.
                size = results.stat().st_size if results.exists() else 0
                if size != seen_size:
                    seen_size, done = size, len(done_keys(run_dir) & plan)
                found = _inflight_started(run_dir)
                inflight = None if found is None else found[0]
                update(done, str(inflight.key) if inflight else backend)
                if found is not None and time.time() - found[1] > timeout:
                    proc.kill()
                    proc.wait()
                    return proc.returncode, inflight
                time.sleep(0.2)
        except BaseException:
            # Interrupted (Ctrl-C) or failing here: never leave a worker running on its own.
            # Its configuration in flight is not recorded, so --resume measures it again.
            proc.kill()
            proc.wait()
            raise
    return proc.returncode, None


def _inflight(run_dir: Path) -> Row | None:
    """The configuration being measured, or None; see :func:`_inflight_started`."""
    found = _inflight_started(run_dir)
    return None if found is None else found[0]


def _inflight_started(run_dir: Path) -> tuple[Row, float] | None:
    """The in-flight row and when its measuring started (one read of the marker)."""
    try:
        raw = json.loads((run_dir / INFLIGHT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    started = float(raw.pop("started", time.time()))
    raw.pop("pid", None)
    return Row.from_json(upgrade_row(raw)), started


def _record_failure(row: Row, status: Status, reason: str, run_dir: Path) -> None:
    row.status, row.reason = status, reason
    row.finished = datetime.now(timezone.utc).isoformat()
    append_row(run_dir, row)
    (run_dir / INFLIGHT_FILE).unlink(missing_ok=True)


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's out-of-memory killer sends this)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


def _log_tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Progress]:
    """A rich progress bar (done/total, elapsed, time left), or nothing."""
    if not enabled:
        yield lambda done, what: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("starting", total=total)
        yield lambda done, what: bar.update(task, completed=done, description=what)
