#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2024.4"]
# ///
"""Nox sessions: ``nox`` runs lint and tests (type check included); ``nox -s bench`` the benchmark.

The heavy environment (jax + torch) is built once per session that needs it and reused across
runs (``reuse_existing_virtualenvs``); ``lint`` needs only ruff.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.4"
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

# CI pins the CPU wheel of torch (on this project's machines it lies on disk; an unpinned torch
# resolves to a multi-GB CUDA build). With a GPU, set UKR_BENCH_TORCH to the spec you want, e.g.
# UKR_BENCH_TORCH="torch --index-url https://download.pytorch.org/whl/cu126", or to "" to keep
# whatever torch the session already has.
TORCH = os.environ.get("UKR_BENCH_TORCH", "torch==2.13.0")


def install(session: nox.Session, *extras: str) -> None:
    """Install the project with ``extras``, torch first so the pin above wins."""
    # silent=False: the multi-GB install takes minutes; show pip's progress instead of nothing.
    if "torch" in extras and TORCH:
        session.install(*TORCH.split(), silent=False)
    session.install("-e", f".[{','.join(extras)}]" if extras else ".", silent=False)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The type check (mypy), then the test suite with every backend exercised.

    mypy runs here, in the environment that has every framework installed (their types are
    part of the check), rather than in a second multi-GB environment of its own.
    """
    install(session, "jax", "torch", "data", "sklearn", "test")
    session.install("mypy>=1.10", "pandas-stubs")
    session.run("mypy")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark sweep, then its report: ``nox -s bench -- --quick`` for a smoke run.

    Options after ``--`` go to ``ukr-bench bench`` (``nox -s bench -- --help`` lists them).
    """
    install(session, "jax", "torch")
    session.run("ukr-bench", "bench", *session.posargs)


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Report from results directories: ``nox -s report -- results/RUN [results/OTHER ...]``."""
    if not session.posargs:
        session.error("name one or more results directories: nox -s report -- results/RUN")
    install(session)
    session.run("ukr-bench", "report", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """UKR on the noisy saddle per backend (figures in results/figures); -- --tutorial: the tutorial."""
    install(session, "jax", "torch", "data", "sklearn")
    session.run("ukr-bench", "demo", *session.posargs)


@nox.session(default=False)
def mutate(session: nox.Session) -> None:
    """Mutation testing of the core modules (mutmut 3; configuration in pyproject.toml).

    Not in CI: about 7 minutes on 2 cores. ``nox -s mutate`` runs every mutant (results are
    cached in ``mutants/``), then lists the survivors; ``nox -s mutate -- NAME ...`` reruns
    some. docs/mutation.md has the last scores and why each survivor is equivalent.
    """
    install(session, "jax", "torch", "data", "test")
    session.install("mutmut>=3.3,<4")
    session.run("mutmut", "run", *session.posargs)
    session.run("mutmut", "results")


if __name__ == "__main__":
    nox.main()
