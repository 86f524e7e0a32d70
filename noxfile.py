#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2024.4"]
# ///
"""Nox sessions: ``nox`` runs lint and tests (type check included); ``nox -s bench`` the benchmark.

The sessions that need the frameworks (tests, bench, demo, mutate) share one environment,
``.nox/shared`` (jax + torch + everything the tests need, about 1.8 GB), built by the first of
them and reused by the others and across runs: nox gives each session a virtualenv of its own,
so these sessions run with ``venv_backend="none"`` and call the shared one's executables.
``lint`` and ``report`` need no framework and keep small environments of their own; ``core``
(run by ``tests``) builds the wheel and checks it in a fresh environment with NumPy alone.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.4"
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

# CI pins the CPU wheel of torch (on this project's machines it lies on disk; an unpinned torch
# resolves to a multi-GB CUDA build). With a GPU, set UKR_BENCH_TORCH to the spec you want, e.g.
# UKR_BENCH_TORCH="torch --index-url https://download.pytorch.org/whl/cu126", or to "" to keep
# whatever torch the session already has.
TORCH = os.environ.get("UKR_BENCH_TORCH", "torch==2.13.0")


def install(session: nox.Session, extras: str) -> None:
    """Install the project with ``extras`` (pyproject.toml) into the session's own environment."""
    session.install("-e", f".[{extras}]", silent=False)


SHARED = Path(".nox") / "shared"
#: Every extra but KeOps (pyproject.toml: "all"), Triton (its kernels' tests run in its
#: interpreter on the CPU), and the test tools.
SHARED_EXTRAS = "all,triton,test"


def shared(session: nox.Session, *packages: str) -> Path:
    """The shared environment's ``bin`` folder, created and brought up to date; ``packages``
    are installed into it as well. For sessions declared with ``venv_backend="none"``."""
    bin_dir = SHARED / ("Scripts" if sys.platform == "win32" else "bin")
    if not (bin_dir / "python").exists() and not (bin_dir / "python.exe").exists():
        session.run(sys.executable, "-m", "venv", str(SHARED), external=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    if TORCH:
        session.run(*pip, *TORCH.split(), external=True)
    session.run(*pip, "-e", f".[{SHARED_EXTRAS}]", *packages, external=True)
    return bin_dir


#: A module longer than this has more than one job (issue 22): split it.
MAX_MODULE_LINES = 400
#: The modules above the limit today and their length: a ratchet. None may grow; shrink an
#: entry (or drop it) when its module is split.
OVER_LIMIT = {
    "ukr_bench/interface.py": 585,
    "backends/numpy_backend.py": 472,
    "ukr_bench/report/build.py": 441,
    "ukr_bench/tutorial.py": 410,
}


def module_lengths() -> list[str]:
    """The modules of ukr_bench/ and backends/ over :data:`MAX_MODULE_LINES` lines that break
    the ratchet of :data:`OVER_LIMIT`, each as ``path: lines (allowed)``."""
    broken = []
    for path in sorted([*Path("ukr_bench").rglob("*.py"), *Path("backends").rglob("*.py")]):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        allowed = OVER_LIMIT.get(path.as_posix(), MAX_MODULE_LINES)
        if lines > allowed:
            broken.append(f"{path.as_posix()}: {lines} lines (allowed {allowed})")
    return broken


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check; the import contracts of pyproject.toml (import-linter); no
    module over :data:`MAX_MODULE_LINES` lines beyond the ratchet of :data:`OVER_LIMIT`."""
    session.install("ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    if broken := module_lengths():
        session.error("modules too long, split them: " + "; ".join(broken))


#: A second instruction-set path for the float32 accuracy tests: x86-64-v2 (SSE4.2, no AVX,
#: AVX2, FMA or AVX-512) wherever a framework lets its kernels be chosen, so that one machine
#: runs the float32 bounds under another CPU's code paths (another summation order, no fused
#: multiply-add). tests/test_isa_path.py checks that each setting took effect.
ISA_PATHS = {
    "x86-64-v2": {
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's SIMD loops
        "OPENBLAS_CORETYPE": "Nehalem",  # NumPy's BLAS: OpenBLAS's SSE4.2 kernels
        "ATEN_CPU_CAPABILITY": "default",  # torch's vectorised kernels
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",  # torch's BLAS (MKL; ignored where MKL decides)
        "ONEDNN_MAX_CPU_ISA": "SSE41",  # torch's oneDNN kernels
        "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2",  # the code XLA generates for JAX
    },
}


def float32_under_isa_paths(session: nox.Session, bin_dir: Path) -> None:
    """The float32 accuracy tests (``-m float32``) again under each of :data:`ISA_PATHS`."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        session.log(f"no second instruction-set path on {platform.machine()}: skipped")
        return
    for name, env in ISA_PATHS.items():
        session.log(f"float32 accuracy tests under the {name} instruction-set path: {env}")
        session.run(
            str(bin_dir / "pytest"), "-m", "float32", "-p", "no:cacheprovider",
            env={**env, "UKR_BENCH_ISA_PATH": name}, external=True,
        )  # fmt: skip


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The type check (mypy), the test suite with every backend exercised, then the float32
    accuracy tests under a second instruction-set path (:data:`ISA_PATHS`); then :func:`core`.

    mypy runs here, in the environment that has every framework installed (their types are
    part of the check), rather than in a second multi-GB environment of its own. With
    arguments (``nox -s tests -- tests/test_x.py``) only pytest runs, with them.
    """
    bin_dir = shared(session, "mypy>=1.10", "pandas-stubs")
    if session.posargs:
        session.run(str(bin_dir / "pytest"), *session.posargs, external=True)
        return
    session.notify("core")  # queued after this session, and run whether or not this one passes
    session.run(str(bin_dir / "mypy"), external=True)
    session.run(str(bin_dir / "pytest"), external=True)
    float32_under_isa_paths(session, bin_dir)


#: The wheel's top level: the two import packages (pyproject.toml) and its metadata.
WHEEL_PACKAGES = {"ukr_bench", "backends"}
#: The extras by use that ukr_bench.extras names in its errors (and "all").
WHEEL_EXTRAS = {"report", "bench", "sklearn", "data", "jax", "torch", "keops", "all"}


def check_wheel(session: nox.Session, wheel: Path) -> None:
    """The wheel holds exactly the two packages, its one unconditional requirement is NumPy, and
    it offers every extra."""
    with zipfile.ZipFile(wheel) as zf:
        top = {name.split("/")[0] for name in zf.namelist()}
        info = [name for name in top if name.endswith(".dist-info")]
        if len(info) != 1 or top - set(info) != WHEEL_PACKAGES:
            session.error(f"{wheel.name}: top level {sorted(top)}, expected {WHEEL_PACKAGES}")
        metadata = email.parser.Parser().parsestr(zf.read(f"{info[0]}/METADATA").decode())
    core = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0].lower() for r in core]
    if names != ["numpy"]:
        session.error(f"{wheel.name}: the core requires {core}, expected NumPy alone")
    extras = set(metadata.get_all("Provides-Extra") or [])
    if WHEEL_EXTRAS - extras:
        session.error(f"{wheel.name}: no extra {sorted(WHEEL_EXTRAS - extras)}")
    session.log(f"{wheel.name}: {sorted(top)}; requires {core}; extras {sorted(extras)}")


@nox.session(default=False, reuse_venv=False)  # fresh each time; ``tests`` runs it
def core(session: nox.Session) -> None:
    """The wheel in a fresh environment with NumPy alone: its contents and requirements
    (:func:`check_wheel`), ``import ukr_bench; ukr_bench.value_and_grad(...)``, and the error
    each extra's entry point gives without its packages (tests/core_check.py). About 30 s.
    """
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    # Built in pip's isolated build environment: hatchling stays out of this one.
    session.run("python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), ".")
    (wheel,) = dist.glob("ukr_bench-*.whl")
    check_wheel(session, wheel)
    session.install(str(wheel))  # brings NumPy, its one requirement
    script = Path("tests", "core_check.py").resolve()
    session.chdir(tmp)  # import the installed wheel, not the checkout
    session.run("python", str(script), "--installed")


@nox.session(name="tests-isa", default=False, venv_backend="none")
def tests_isa(session: nox.Session) -> None:
    """Only the float32 accuracy tests, under each second instruction-set path."""
    float32_under_isa_paths(session, shared(session))


@nox.session(default=False, venv_backend="none")
def bench(session: nox.Session) -> None:
    """The benchmark sweep, then its report: ``nox -s bench -- --quick`` for a smoke run.

    Options after ``--`` go to ``ukr-bench bench`` (``nox -s bench -- --help`` lists them).
    """
    session.run(str(shared(session) / "ukr-bench"), "bench", *session.posargs, external=True)


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Report from results directories: ``nox -s report -- results/RUN [results/OTHER ...]``."""
    if not session.posargs:
        session.error("name one or more results directories: nox -s report -- results/RUN")
    install(session, "report")
    session.run("ukr-bench", "report", *session.posargs)


@nox.session(default=False, venv_backend="none")
def demo(session: nox.Session) -> None:
    """UKR on the noisy saddle per backend; -- --tutorial: the tutorial.

    Here, unlike ``ukr-bench demo``, the figures go to the committed ``results/figures``
    unless ``-- --out DIR`` is given: this session is how they are regenerated.
    """
    out = [] if "--out" in session.posargs else ["--out", "results/figures"]
    session.run(str(shared(session) / "ukr-bench"), "demo", *session.posargs, *out, external=True)


# The documentation site's tools, at the lowest versions the site is built and tested with.
DOCS = (
    "mkdocs>=1.6",
    "mkdocs-material>=9.5",
    "mkdocstrings[python]>=0.28",
    "mkdocstrings-python>=1.16",
    "mkdocs-gen-files>=0.5",
    "ruff>=0.6",  # mkdocstrings formats the API pages' signatures with it
)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (``mkdocs.yml``, ``docs/``), built with ``--strict`` into ``site/``.

    The API pages come from the docstrings, the findings pages from the committed runs under
    ``results/`` (``docs/gen_pages.py``); a warning of any of them fails the build. Open
    ``site/index.html`` to read it.
    """
    session.install("-e", ".", *DOCS)
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site",
        # MkDocs 1.6's plugins print a notice about a future MkDocs 2 on every build.
        env={"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"},
    )  # fmt: skip


@nox.session(default=False, venv_backend="none")
def mutate(session: nox.Session) -> None:
    """Mutation testing of the core modules (mutmut 3; configuration in pyproject.toml).

    Not in CI: about half an hour on 2 cores. ``nox -s mutate`` runs every mutant (results
    are cached in ``mutants/``), lists the survivors, and writes the record of the run,
    ``results/mutation/`` (benchmarks/mutation_summary.py); ``nox -s mutate -- NAME ...``
    reruns some. docs/mutation.md says why each survivor of the record is equivalent.
    """
    bin_dir = shared(session, "mutmut>=3.3,<4")
    mutmut = str(bin_dir / "mutmut")
    session.run(mutmut, "run", *session.posargs, external=True)
    session.run(mutmut, "results", external=True)
    command = " ".join(["nox -s mutate", *(["--", *session.posargs] if session.posargs else [])])
    summary = ["benchmarks/mutation_summary.py", "--mutmut", mutmut, "--command", command]
    session.run(str(bin_dir / "python"), *summary, external=True)


if __name__ == "__main__":
    nox.main()
