r"""The fused layout's Triton kernels: UKR's value and hand-derived gradient, tiled.

The computation, its formulas and its cost per ordered pair are :mod:`backends.torch_fused`'s
(the drivers: the O(N D) work between the passes, the ``torch.autograd.Function``). Here the
kernels, defined on first use by :func:`kernels`.

Tiles and arithmetic. ``tl.dot`` needs every dimension >= 16 (``min_dot_size``); L = 2 and
D = 3 are far below, so the contractions over L and D are elementwise multiply-adds over
(BM x BN) tiles, one dimension at a time (``tl.static_range``, unrolled), and the sums
over j are row reductions (``tl.sum(..., axis=1)``). The per-row results (y: D values, g: L
values) live in a (BM x next_pow2(D or L)) accumulator, each dimension's row sum put in its
column with a ``tl.where`` (O(BM) per tile step, not per pair). Padding D to 16 for
``tl.dot`` would multiply the work by 16/D and bring TF32 into ``R X``; a large D (>= 64) would
make ``R X`` a real matrix product, not implemented here. Default tiles and warps, per pass
(:data:`TILES`): pass 1 64 x 64 on 8 warps, pass 2 32 x 32 on 4 warps (16
and 8 pairs per thread per tile step), chosen, without a GPU, from ptxas's register report
for sm_90 in float32 (the compile that ``tests/test_fused.py`` also runs): pass 1 used 128
registers there and pass 2, which keeps about 2 + L + D tiles live, 168, neither spilling,
while 64 x 64 on 4 warps spilled 2.4 KB per thread in pass 2 (and 64 x 32 on 4 warps 116
bytes). Not timed on a GPU yet. Arrays are transposed, (L, N) and (D, N), so that a tile of
one dimension is a contiguous load. No padding: loads and stores are masked (columns >= N, and
rows >= N in pass 2's column terms, get q = +inf, weight 0).

Triton and interpret mode. Triton is an optional extra (``pip install "ukr-bench[triton]"``),
imported only when a kernel is first needed (:func:`kernels`). On a machine without CUDA the
kernels run on CPU tensors in Triton's interpreter, which ``TRITON_INTERPRET=1`` selects when
Triton is imported and the kernels are defined: if no CUDA device is available and the variable
is unset, :func:`choose_interpreter` sets it (when :mod:`backends.torch_backend` is imported),
and the first definition says so in a one-time :class:`FusedInterpretWarning`: interpret mode
is for correctness, not speed.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import cache
from typing import Any

import torch

from backends import TRITON_INSTALL, FusedInterpretWarning

__all__ = ["INSTALL_HINT", "TILES", "kernels"]

INSTALL_HINT = TRITON_INSTALL

#: Query rows per program and columns per step of its loop (square tiles), by default, and
#: warps per program, per pass (module docstring).
TILES = {"pass1": 64, "pass2": 32}


def _num_warps(tile: int) -> int:
    """Warps per program: 8 for tiles of 64 and more (pass 1's), 4 below (module docstring)."""
    return 8 if tile >= 64 else 4


#: How the interpreter was chosen, once per process: ``"set"`` where :func:`choose_interpreter`
#: set TRITON_INTERPRET=1, ``"late"`` where it did so after Triton had been imported.
_CHOSEN: dict[str, bool] = {}


def choose_interpreter() -> None:
    """Set TRITON_INTERPRET=1 where no CUDA device is available and it is unset.

    Triton reads it when it is first imported, not only when a kernel is defined: its library
    functions (``tl.sum``, ``tl.min``...) are jitted at import, compiled unless interpreted, and
    an interpreted kernel cannot call a compiled one. torch imports Triton lazily (the blocked
    layout's ``torch.utils.checkpoint`` does), so :mod:`backends.torch_backend` calls this when
    it is imported, before anything of torch's could.
    """
    if os.environ.get("TRITON_INTERPRET", "0") == "1" or torch.cuda.is_available():
        return
    os.environ["TRITON_INTERPRET"] = "1"
    _CHOSEN.update(set=True, late="triton" in sys.modules)


def _interpret_wanted() -> tuple[bool, bool]:
    """(interpret, whether this module set TRITON_INTERPRET=1) for the kernels to be defined."""
    choose_interpreter()
    if _CHOSEN.get("late"):
        msg = (
            "Triton was imported before TRITON_INTERPRET=1 was set, so its library functions are "
            "compiled and the fused kernels cannot be interpreted on this machine without CUDA: "
            "set TRITON_INTERPRET=1 before Python starts (or import backends.torch_backend first)"
        )
        raise RuntimeError(msg)
    return os.environ.get("TRITON_INTERPRET", "0") == "1", _CHOSEN.get("set", False)


@cache
def kernels() -> dict[str, Any]:
    """The Triton kernels, defined on first use: {"pass1", "pass2", "project2", "interpret"}.

    Imports Triton (a clear ImportError naming the extra when it is missing) after choosing
    the interpreter for a machine without CUDA (module docstring).
    """
    interpret, set_here = _interpret_wanted()
    try:
        import triton  # type: ignore[import-untyped]
        import triton.language as tl  # type: ignore[import-untyped]
    except ImportError as err:
        msg = f"the fused torch kernels need Triton, which is not installed: {INSTALL_HINT}"
        raise ImportError(msg) from err
    if interpret:
        how = (
            "no CUDA device is available, so backends.torch_fused_kernels set TRITON_INTERPRET=1"
            if set_here
            else "TRITON_INTERPRET=1 is set"
        )
        warnings.warn(
            f"the fused (Triton) kernels run in Triton's interpreter ({how}), which is for "
            "correctness, not speed: time them on a GPU",
            FusedInterpretWarning,
            stacklevel=3,
        )
    globals()["tl"] = tl  # the kernels' source names ``tl``: Triton resolves it in globals

    @triton.jit  # type: ignore[untyped-decorator]
    def _pass1(  # type: ignore[no-untyped-def]
        UQ,
        U,
        X,
        MU,
        LS,
        Y,
        M,
        N,
        LOO: tl.constexpr,
        NAIVE: tl.constexpr,
        L: tl.constexpr,
        D: tl.constexpr,
        DP: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
    ) -> None:
        # query rows UQ (L x M) against keys U (L x N) with data X (D x N); out mu, l (M,),
        # y (D x M); NAIVE: the "no_shift" plant (tests only)
        dtype = U.dtype.element_ty
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        rmask = rows < M
        dcols = tl.arange(0, DP)
        mu = tl.full((BM,), float("inf"), dtype)
        s = tl.zeros((BM,), dtype)
        acc = tl.zeros((BM, DP), dtype)
        for j0 in range(0, N, BN):
            cols = j0 + tl.arange(0, BN)
            cmask = cols < N
            ui = tl.load(UQ + rows, mask=rmask, other=0.0)
            uj = tl.load(U + cols, mask=cmask, other=0.0)
            dd = ui[:, None] - uj[None, :]
            q = dd * dd
            for l in tl.static_range(1, L):
                ui = tl.load(UQ + l * M + rows, mask=rmask, other=0.0)
                uj = tl.load(U + l * N + cols, mask=cmask, other=0.0)
                dd = ui[:, None] - uj[None, :]
                q += dd * dd
            valid = cmask[None, :] & (rows[:, None] >= 0)
            if LOO:
                valid = valid & (rows[:, None] != cols[None, :])
            q = tl.where(valid, q, float("inf"))
            mu_new = tl.minimum(mu, tl.min(q, axis=1))
            if NAIVE:
                shift = tl.zeros((BM,), dtype)
                alpha = tl.full((BM,), 1.0, dtype)
            else:
                shift = tl.where(mu_new == float("inf"), 0.0, mu_new)
                alpha = tl.exp(shift - mu)
            p = tl.exp(shift[:, None] - q)
            s = s * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None]
            for d in tl.static_range(D):
                xj = tl.load(X + d * N + cols, mask=cmask, other=0.0)
                acc += tl.where(dcols[None, :] == d, tl.sum(p * xj[None, :], axis=1)[:, None], 0.0)
            mu = mu_new
        if NAIVE:
            mu = tl.zeros((BM,), dtype)
        y = acc / s[:, None]
        ymask = rmask[:, None] & (dcols[None, :] < D)
        tl.store(Y + dcols[None, :] * M + rows[:, None], y, mask=ymask)
        tl.store(MU + rows, mu, mask=rmask)
        tl.store(LS + rows, s, mask=rmask)

    @triton.jit  # type: ignore[untyped-decorator]
    def _pass2(  # type: ignore[no-untyped-def]
        U,
        X,
        Y,
        WR,
        WC,
        MU,
        G,
        N,
        LOO: tl.constexpr,
        L: tl.constexpr,
        D: tl.constexpr,
        LP: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
    ) -> None:
        # g (L x N) = sum_j (B'_ij + B'_ji)(u_i - u_j); WR: the rows' weights w = e / l in
        # their row terms, WC: the columns' in their column terms (the same but for plants)
        dtype = U.dtype.element_ty
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        rmask = rows < N
        lcols = tl.arange(0, LP)
        mu_i = tl.load(MU + rows, mask=rmask, other=0.0)
        g = tl.zeros((BM, LP), dtype)
        for j0 in range(0, N, BN):
            cols = j0 + tl.arange(0, BN)
            cmask = cols < N
            ui = tl.load(U + rows, mask=rmask, other=0.0)
            uj = tl.load(U + cols, mask=cmask, other=0.0)
            dd = ui[:, None] - uj[None, :]
            q = dd * dd
            for l in tl.static_range(1, L):
                ui = tl.load(U + l * N + rows, mask=rmask, other=0.0)
                uj = tl.load(U + l * N + cols, mask=cmask, other=0.0)
                dd = ui[:, None] - uj[None, :]
                q += dd * dd
            # rows >= N too: their q against real columns may be below mu_j (exp overflow)
            valid = cmask[None, :] & rmask[:, None]
            if LOO:
                valid = valid & (rows[:, None] != cols[None, :])
            q = tl.where(valid, q, float("inf"))
            mu_j = tl.load(MU + cols, mask=cmask, other=0.0)
            p_row = tl.exp(mu_i[:, None] - q)  # R_ij l_i
            p_col = tl.exp(mu_j[None, :] - q)  # R_ji l_j (q symmetric)
            xi = tl.load(X + rows, mask=rmask, other=0.0)
            yi = tl.load(Y + rows, mask=rmask, other=0.0)
            wi = tl.load(WR + rows, mask=rmask, other=0.0)
            xj = tl.load(X + cols, mask=cmask, other=0.0)
            yj = tl.load(Y + cols, mask=cmask, other=0.0)
            wj = tl.load(WC + cols, mask=cmask, other=0.0)
            r = wi[:, None] * (xj[None, :] - yi[:, None])  # w_i.(x_j - y_i)
            c = wj[None, :] * (xi[:, None] - yj[None, :])  # w_j.(x_i - y_j)
            for d in tl.static_range(1, D):
                xi = tl.load(X + d * N + rows, mask=rmask, other=0.0)
                yi = tl.load(Y + d * N + rows, mask=rmask, other=0.0)
                wi = tl.load(WR + d * N + rows, mask=rmask, other=0.0)
                xj = tl.load(X + d * N + cols, mask=cmask, other=0.0)
                yj = tl.load(Y + d * N + cols, mask=cmask, other=0.0)
                wj = tl.load(WC + d * N + cols, mask=cmask, other=0.0)
                r += wi[:, None] * (xj[None, :] - yi[:, None])
                c += wj[None, :] * (xi[:, None] - yj[None, :])
            sv = p_row * r + p_col * c  # B'_ij + B'_ji
            for l in tl.static_range(L):
                ui = tl.load(U + l * N + rows, mask=rmask, other=0.0)
                uj = tl.load(U + l * N + cols, mask=cmask, other=0.0)
                dd = ui[:, None] - uj[None, :]
                g += tl.where(lcols[None, :] == l, tl.sum(sv * dd, axis=1)[:, None], 0.0)
        gmask = rmask[:, None] & (lcols[None, :] < L)
        tl.store(G + lcols[None, :] * N + rows[:, None], g, mask=gmask)

    @triton.jit  # type: ignore[untyped-decorator]
    def _project2(  # type: ignore[no-untyped-def]
        UQ,
        YQ,
        WQ,
        MUQ,
        U,
        X,
        G,
        M,
        N,
        L: tl.constexpr,
        D: tl.constexpr,
        LP: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
    ) -> None:
        # the projection's g (L x M) = sum_j B'_qj (u_q - u_j), B'_qj = exp(mu_q - q_qj)
        # w_q.(x_j - y_q): row terms only (the training latents U (L x N) are fixed), no loo
        dtype = U.dtype.element_ty
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        rmask = rows < M
        lcols = tl.arange(0, LP)
        mu_i = tl.load(MUQ + rows, mask=rmask, other=0.0)
        g = tl.zeros((BM, LP), dtype)
        for j0 in range(0, N, BN):
            cols = j0 + tl.arange(0, BN)
            cmask = cols < N
            ui = tl.load(UQ + rows, mask=rmask, other=0.0)
            uj = tl.load(U + cols, mask=cmask, other=0.0)
            dd = ui[:, None] - uj[None, :]
            q = dd * dd
            for l in tl.static_range(1, L):
                ui = tl.load(UQ + l * M + rows, mask=rmask, other=0.0)
                uj = tl.load(U + l * N + cols, mask=cmask, other=0.0)
                dd = ui[:, None] - uj[None, :]
                q += dd * dd
            q = tl.where(cmask[None, :] & rmask[:, None], q, float("inf"))
            yi = tl.load(YQ + rows, mask=rmask, other=0.0)
            wi = tl.load(WQ + rows, mask=rmask, other=0.0)
            xj = tl.load(X + cols, mask=cmask, other=0.0)
            r = wi[:, None] * (xj[None, :] - yi[:, None])
            for d in tl.static_range(1, D):
                yi = tl.load(YQ + d * M + rows, mask=rmask, other=0.0)
                wi = tl.load(WQ + d * M + rows, mask=rmask, other=0.0)
                xj = tl.load(X + d * N + cols, mask=cmask, other=0.0)
                r += wi[:, None] * (xj[None, :] - yi[:, None])
            sv = tl.exp(mu_i[:, None] - q) * r  # B'_qj
            for l in tl.static_range(L):
                ui = tl.load(UQ + l * M + rows, mask=rmask, other=0.0)
                uj = tl.load(U + l * N + cols, mask=cmask, other=0.0)
                dd = ui[:, None] - uj[None, :]
                g += tl.where(lcols[None, :] == l, tl.sum(sv * dd, axis=1)[:, None], 0.0)
        gmask = rmask[:, None] & (lcols[None, :] < L)
        tl.store(G + lcols[None, :] * M + rows[:, None], g, mask=gmask)

    return {"pass1": _pass1, "pass2": _pass2, "project2": _project2, "interpret": interpret}
