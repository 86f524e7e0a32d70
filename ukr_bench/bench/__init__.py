"""The benchmark harness: speed, memory and float32/float64 precision of each backend over N.

Split along its seams, one job per module:

* :mod:`~ukr_bench.bench.config`: what a sweep measures (:class:`SweepConfig`, its plan);
* :mod:`~ukr_bench.bench.presets`: named sets of options (``--preset``);
* :mod:`~ukr_bench.bench.machine`: the machine and the code's provenance;
* :mod:`~ukr_bench.bench.timing`: the timing protocol, how one configuration is measured;
* :mod:`~ukr_bench.bench.estimates`: what a configuration's memory is expected to be;
* :mod:`~ukr_bench.bench.bound`: the per-pair lower bound on time, at the device's rates;
* :mod:`~ukr_bench.bench.policy`: which configurations are skipped, how failures are recorded;
* :mod:`~ukr_bench.bench.worker`: the per-backend worker process, its loop and its watchdog;
* :mod:`~ukr_bench.bench.rundir`: the run directory, created with its metadata, and its lock;
* :mod:`~ukr_bench.bench.sweep`: the parent that runs, supervises and resumes workers;
* :mod:`ukr_bench.schema`: what is written (rows, metadata, files).

The operating system's side (``/proc``, CPU affinity, peak memory) is :mod:`ukr_bench.system`.

Why not pytest-benchmark's fixture: it writes its JSON only when the pytest session ends (a
killed sweep would lose everything) and has no notion of per-process backends, resuming or
skipping. The harness uses its pieces instead: :class:`pytest_benchmark.stats.Stats` for the
statistics (same field names as its JSON); the machine information it recorded is now
collected from :mod:`platform` and py-cpuinfo directly, with the same fields.
"""

from ukr_bench.bench.config import SweepConfig
from ukr_bench.bench.presets import PRESETS, preset
from ukr_bench.bench.rundir import RunLockedError
from ukr_bench.bench.sweep import resume_sweep, run_sweep
from ukr_bench.bench.timing import measure_case
from ukr_bench.bench.worker import run_worker

__all__ = [
    "PRESETS",
    "RunLockedError",
    "SweepConfig",
    "measure_case",
    "preset",
    "resume_sweep",
    "run_sweep",
    "run_worker",
]
