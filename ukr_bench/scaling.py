r"""Scaling over several devices: a communication-and-compute model, and the scaling figure.

The sharded value + gradient (``device="cuda:0-7"``; see ``backends/jax_sharded.py`` and
``backends/torch_distributed.py``) splits the N rows into k contiguous ranges of
``ceil(N / k)`` rows; ``Z`` and ``X`` are replicated. Per pass (one value + gradient), each
device:

* computes ``ceil(N / k) * N`` kernel pairs (its rows against all N columns), at a per-pair
  rate ``R`` (pairs/s) that includes the exp, the distance, both GEMM-like products and the
  hand-derived gradient's row and column terms;
* moves ``2 (k - 1) / k * (N L + 1) * b`` bytes in one ring all-reduce (reduce-scatter +
  all-gather) of its N x L gradient contribution and the sum of squares (``b`` bytes per
  element), plus the collective's latency, ``2 ceil(log2 k)`` hops of ``alpha`` each (tree);
* does ``O(N (L + D))`` replicated work that does not shrink with k (building ``[X, 1]`` and
  ``[Z, 1]``, the column-term accumulator, combining the gradient, the optimiser step):
  memory-bound, modelled as ``replicated_bytes_per_point * N`` bytes at the HBM bandwidth.

.. math::

    T(k) = \frac{\lceil N/k \rceil N}{R}
         + \frac{2 (k-1)}{k} \frac{(N L + 1) b}{B(k)} + 2 \lceil \log_2 k \rceil \alpha(k)
         + \frac{c N}{B_{HBM}},
    \qquad E(k) = \frac{T(1)}{k \, T(k)} .

The communication volume per device is constant in k (about ``2 N L b``) while the compute
per device falls as ``N^2 / k``, so efficiency falls once ``N^2 / (k R)`` nears
``2 N L b / B``: at ``k* = N B / (2 L b R)`` devices communication equals compute. What limits
it is therefore the per-pair rate: the faster the kernel, the sooner communication shows.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ukr_bench.extras import pyplot
from ukr_bench.report import style


@dataclass(frozen=True)
class Hardware:
    """One accelerator type and its interconnect (defaults: NVIDIA H200 SXM nodes of 8).

    Sources: a prototype of the JAX row-blocked value + gradient, measured in float32 on one
    H200 before this project's GPU runs were committed, took 216 ms / 2.06 s / 22.3 s at
    N = 1e5 / 3e5 / 1e6, 4.5e10 pairs/s at every N (``measured``; a design constant until a
    committed large-N GPU run replaces it); the hardware bound (67 TFLOP/s FP32, 4e12
    exp/s, 30-40 flops and 1-2 exp per pair) is 0.5-1 s at N = 1e6, 1e12 pairs/s
    (``bound``). Interconnect (assumed, not measured here): NVLink 4 within a node, 450 GB/s
    per direction per GPU, of which NCCL's all-reduce reaches ~300 GB/s bus bandwidth; between
    nodes one 400 Gb/s InfiniBand NDR link per GPU, 50 GB/s, ~40 GB/s reached; latency 5 us
    per hop in a node, 10 us across nodes; HBM3e 4.8 TB/s.
    """

    name: str = "H200"
    pair_rate: float = 4.5e10  # pairs/s, measured (float32, JAX row-blocked, one H200)
    devices_per_node: int = 8
    bw_intra: float = 300e9  # bytes/s, all-reduce bus bandwidth within a node (NVLink)
    bw_inter: float = 40e9  # bytes/s per GPU between nodes (InfiniBand NDR 400 Gb/s)
    alpha_intra: float = 5e-6  # s per hop
    alpha_inter: float = 10e-6
    hbm_bw: float = 4.8e12  # bytes/s
    #: Bytes of replicated (not sharded) memory traffic per point and pass: about 20 arrays of
    #: N x (L + D + 2) float32 values read or written (concatenations, the column accumulator,
    #: the combine, the optimiser step), at L = 2, D = 3.
    replicated_bytes_per_point: float = 20 * 7 * 4


ASSUMPTIONS = """Assumptions. Per-pair rate of one H200 (float32): measured 4.5e10 pairs/s (JAX row-blocked
value + gradient prototype: 216 ms / 2.06 s / 22.3 s at N = 1e5 / 3e5 / 1e6, not a committed run;
the committed dense H200 reference run, `results/reference_h200`, reaches 7e10 at N = 32,000), and the
hardware bound, 1e12 pairs/s (67 TFLOP/s FP32, 4e12 exp/s, 30-40 flops and 1-2 exp per pair).
Interconnect (assumed, not measured by this project): 8 GPUs per node on NVLink 4 (450 GB/s per
direction per GPU; 300 GB/s all-reduce bus bandwidth assumed reached), one 400 Gb/s InfiniBand
NDR link per GPU between nodes (50 GB/s; 40 GB/s assumed reached); 5 us per all-reduce hop in a
node, 10 us across nodes, 2 log2(k) hops; HBM3e 4.8 TB/s for the replicated O(N) work."""

MEASURED = Hardware()
BOUND = replace(MEASURED, name="H200 at the per-pair bound", pair_rate=1e12)


def predict(
    n: int, k: int, hw: Hardware = MEASURED, *, latent_dim: int = 2, itemsize: int = 4
) -> dict[str, float]:
    """Model of one sharded value + gradient on ``k`` devices (see the module docstring).

    Returns per-device pairs and bytes moved, the compute, communication and replicated times
    (s), the total T(k), T(1) and the parallel efficiency T(1) / (k T(k)).
    """
    if n < 1 or k < 1:
        msg = f"n and k must be >= 1, got n={n}, k={k}"
        raise ValueError(msg)

    def parts(k: int) -> tuple[float, float, float, float, float]:
        pairs = math.ceil(n / k) * n
        elements = n * latent_dim + 1
        moved = 2.0 * (k - 1) / k * elements * itemsize
        inter = k > hw.devices_per_node
        bw = hw.bw_inter if inter else hw.bw_intra
        alpha = hw.alpha_inter if inter else hw.alpha_intra
        comm = moved / bw + 2 * math.ceil(math.log2(k)) * alpha if k > 1 else 0.0
        rep = hw.replicated_bytes_per_point * n / hw.hbm_bw
        return pairs, moved, pairs / hw.pair_rate, comm, rep

    pairs, moved, compute, comm, rep = parts(k)
    _, _, compute1, _, rep1 = parts(1)
    total, total1 = compute + comm + rep, compute1 + rep1
    return {
        "n": n,
        "devices": k,
        "pairs_per_device": pairs,
        "bytes_per_device": moved,
        "compute_s": compute,
        "comm_s": comm,
        "replicated_s": rep,
        "time_s": total,
        "time_1_s": total1,
        "efficiency": total1 / (k * total),
        "balance_devices": n * hw.bw_inter / (2 * latent_dim * itemsize * hw.pair_rate),
    }


def model_markdown(
    ns: tuple[int, ...] = (1_000_000, 10_000_000), ks: tuple[int, ...] = (8, 64, 512)
) -> str:
    """The model's predictions as a Markdown section (tables for both per-pair rates)."""
    lines = [
        "# Sharded value + gradient on many GPUs: model predictions",
        "",
        "Model of `ukr_bench/scaling.py` (float32, L = 2; rows split in k ranges, one",
        "ring all-reduce of the N x L gradient contributions per pass).",
        "",
        ASSUMPTIONS,
        "",
    ]
    for hw in (MEASURED, BOUND):
        lines += [
            f"## {hw.name}: {hw.pair_rate:.2g} pairs/s per device",
            "",
            (
                "| N | devices | pairs / device | bytes moved / device | compute "
                "| communication | replicated | time | efficiency |"
            ),
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in ns:
            for k in ks:
                p = predict(n, k, hw)
                lines.append(
                    f"| {n:.0e} | {k} | {p['pairs_per_device']:.3g} | "
                    f"{p['bytes_per_device'] / 1e6:.3g} MB | {_s(p['compute_s'])} | "
                    f"{_s(p['comm_s'])} | {_s(p['replicated_s'])} | {_s(p['time_s'])} | "
                    f"{100 * p['efficiency']:.1f} % |"
                )
        balance = ", ".join(
            f"{predict(n, 2, hw)['balance_devices']:.3g} at N = {n:.0e}" for n in ns
        )
        lines += ["", f"Communication equals compute (across nodes) at k = {balance}.", ""]
    lines += [
        "What limits it: the bytes each device moves per pass (about 2 N L b) do not shrink",
        "with k, while its pairs (N^2 / k) do; the collective's latency grows as log2 k. At",
        "the measured per-pair rate communication is under 2 % of a pass up to 512 GPUs at",
        "N = 1e6; a kernel at the hardware bound (22x faster) makes 512 GPUs at N = 1e6",
        "communication-bound (efficiency ~75 %), while N = 1e7 stays compute-bound. Not",
        "modelled: per-block launch overheads when a device has few rows, stragglers, and the",
        "one-time replication of X (N D b bytes) at start-up.",
        "",
    ]
    return "\n".join(lines)


def _s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{1e3 * seconds:.3g} ms"
    return f"{1e6 * seconds:.3g} µs"


def scaling_figure(data: dict[str, Any], path: Path) -> Path:
    """Measured strong and weak scaling (``benchmarks/scaling.py``'s ``scaling.json``) and the
    model's efficiency on H200s, in three panels; saved as PNG at ``path``."""
    plt = pyplot("drawing the scaling figure")
    rows = data["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for backend in sorted({r["backend"] for r in rows}):
        color = style.color(backend)
        for mode, ls in (("strong", "-"), ("weak", "--")):
            rs = sorted(
                (r for r in rows if r["backend"] == backend and r["mode"] == mode),
                key=lambda r: r["devices"],
            )
            if not rs:
                continue
            k = [r["devices"] for r in rs]
            sharded = [r["sharded_median_s"] for r in rs]
            one = [r["one_device_median_s"] for r in rs]
            n_label = f"N = {rs[0]['n']}" if mode == "strong" else f"N = {rs[0]['n']}·sqrt(k)"
            axes[0].plot(
                k, sharded, ls, color=color, marker="o", label=f"{backend} {mode}, {n_label}"
            )
            axes[0].plot(k, one, ls, color=color, marker="x", alpha=0.4)
            axes[1].plot(
                k,
                np.asarray(one) / np.asarray(sharded),
                ls,
                color=color,
                marker="o",
                label=f"{backend} {mode}",
            )
    axes[0].set(
        xlabel="devices k",
        ylabel="value + gradient, median (s)",
        title="Measured (o: sharded, x: one device, same N)",
        ylim=(0, None),
    )
    axes[1].axhline(1.0, color="0.6", lw=0.8)
    axes[1].set(
        xlabel="devices k",
        ylabel="one-device time / sharded time",
        title="Measured: against one device on the same cores",
    )
    for ax in axes[:2]:
        ax.set_xticks(sorted({r["devices"] for r in rows}))
        ax.legend(fontsize=8)
    note = data.get("note") or ""
    if note:
        fig.text(0.01, 0.01, textwrap.fill(f"Measured: {note}.", 200), fontsize=8, va="bottom")
    ks = 2 ** np.arange(0, 13)
    for hw, ls in ((MEASURED, "-"), (BOUND, ":")):
        for n, color in ((1_000_000, "#1f77b4"), (10_000_000, "#d62728")):
            eff = [predict(n, int(k), hw)["efficiency"] for k in ks]
            axes[2].plot(ks, eff, ls, color=color, label=f"N = {n:.0e}, {hw.pair_rate:.2g} pairs/s")
    axes[2].set(
        xscale="log",
        xlabel="devices k (8 per node)",
        ylabel="parallel efficiency T(1) / (k T(k))",
        title="Model: H200s, NVLink + InfiniBand NDR",
        ylim=(0, 1.05),
    )
    axes[2].set_xticks([1, 8, 64, 512, 4096], labels=["1", "8", "64", "512", "4096"])
    axes[2].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
