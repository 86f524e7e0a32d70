"""Comparison reports from benchmark results: Markdown + HTML, matplotlib figures.

``write_report([run_dir])`` answers, for one run: which backend is fastest at which N and in
which precision, how the cost grows (fitted exponent), what the gradient costs relative to the
objective, the first call's (compile) cost, memory, and how much float32 loses. With two or more
runs it adds a side-by-side table of time ratios per configuration and an overlay figure;
configurations present in only some runs are listed, never dropped silently.

One job per module: :mod:`~ukr_bench.report.style` (how series are drawn and named),
:mod:`~ukr_bench.report.stats` (significance of a comparison, agreement of runs),
:mod:`~ukr_bench.report.analysis` (series, exponents, ratios, flags, winners: DataFrames in and
out, nothing drawn), :mod:`~ukr_bench.report.figures` (drawing what analysis computed),
:mod:`~ukr_bench.report.tables`,
:mod:`~ukr_bench.report.render` (Markdown and HTML from one list of blocks) and
:mod:`~ukr_bench.report.build` (loading runs, assembling sections, writing files).

It needs the ``report`` extra (pandas, matplotlib, SciPy, tabulate): importing any of its modules
without one of them raises :class:`ukr_bench.extras.MissingExtraError` naming them all.
"""

from ukr_bench.extras import require_extra

# Before any module of the report imports pandas: one error naming every missing package.
require_extra("report", "ukr_bench.report")

from ukr_bench.report.build import load_run, write_report
from ukr_bench.report.stats import scaling_exponent
from ukr_bench.report.tables import winners

__all__ = ["load_run", "scaling_exponent", "winners", "write_report"]
