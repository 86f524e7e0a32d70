"""float32 stays float32: no computation of a float32 call runs in float64 behind the user's back.

A silent upcast (a NumPy float64 scalar such as ``np.sqrt(2.0)`` in an expression: under NumPy 2's
promotion rules it turns a float32 array into float64) costs time, not accuracy, so no agreement
test sees it. Here every NumPy ufunc a float32 call applies (arithmetic, ``exp``, ``matmul``,
reductions) is recorded through an ``ndarray`` subclass, and a float64 operand or result fails.
Other backends are checked on their outputs and on what they hand back to NumPy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import REGISTRY
from ukr_bench import get_backend
from ukr_bench.data import problem_inputs
from ukr_bench.problem import LAYOUTS


class Traced(np.ndarray):
    """An array that records the dtypes of every ufunc call it takes part in, and propagates."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        def plain(a: Any) -> Any:
            return a.view(np.ndarray) if isinstance(a, Traced) else a

        for a in inputs:
            if isinstance(a, np.ndarray | np.generic):
                Traced.seen.append((f"{ufunc.__name__}.{method} operand", str(a.dtype)))
        if "out" in kwargs:
            kwargs["out"] = tuple(plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*(plain(a) for a in inputs), **kwargs)
        outs = result if isinstance(result, tuple) else (result,)
        for r in outs:
            if isinstance(r, np.ndarray | np.generic):
                Traced.seen.append((f"{ufunc.__name__}.{method} result", str(r.dtype)))
        if isinstance(result, np.ndarray) and "out" not in kwargs:
            return result.view(Traced)
        return result


def _calls(b: Any, Z: Any, X: Any, layout: str) -> None:
    """Every raw computation of ``layout`` (small blocks, so that there are several)."""
    block = () if layout == "dense" else (7,)
    Zq, Xq = Z[:5], X[:5]
    getattr(b, f"_value_{layout}")(Z, X, 0.5, 0.1, True, *block)
    getattr(b, f"_value_and_grad_{layout}")(Z, X, 0.5, 0.1, True, *block)
    getattr(b, f"_predict_{layout}")(Zq, Z, X, 0.5, *block)
    getattr(b, f"_project_value_and_grad_{layout}")(Zq, Xq, Z, X, 0.5, *block)


@pytest.mark.parametrize("layout", ["dense", "blocked"])
def test_numpy_float32_never_computes_in_float64(layout: str) -> None:
    Z, X = problem_inputs("saddle", 40, 2)
    b = get_backend("numpy", dtype="float32", layout=layout)
    Zt, Xt = (b.asarray(a).view(Traced) for a in (Z, X))
    Traced.seen.clear()
    _calls(b, Zt, Xt, layout)
    assert len(Traced.seen) > 50, "the trace saw too little to mean anything"
    wide = sorted({op for op, dtype in Traced.seen if dtype != "float32"})
    assert not wide, f"float64 inside a float32 {layout} call: {wide}"


def test_the_trace_sees_an_upcast() -> None:
    """The check can fail: the upcast it guards against is caught."""
    x = np.ones(3, np.float32).view(Traced)
    Traced.seen.clear()
    _ = x / (np.sqrt(2.0) * 0.5)
    assert ("divide.__call__ result", "float64") in Traced.seen


@pytest.mark.parametrize("backend", [b for b in REGISTRY if REGISTRY[b].installed()])
@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(2, 30),
    sigma=st.sampled_from([0.5, np.float64(0.5), np.float32(0.7)]),
    layout=st.sampled_from(LAYOUTS),
)
def test_float32_results_are_float32(backend: str, n: int, sigma: float, layout: str) -> None:
    """Whatever the type of sigma (a Python float, a NumPy float64 or float32 scalar), float32
    in gives float32 out of every function, in every layout the backend implements."""
    if layout != "auto" and layout not in REGISTRY[backend].layouts:
        return
    Z, X = problem_inputs("saddle", n, 2)
    b = get_backend(backend, dtype="float32", layout=layout)
    Zb, Xb = b.asarray(Z), b.asarray(X)
    outs = [
        *b.value_and_grad(Zb, Xb, sigma, 0.1, True),
        b.value(Zb, Xb, sigma, 0.1, True),
        b.predict(Zb[:3], Zb, Xb, sigma),
        *b.project_value_and_grad(Zb[:3], Xb[:3], Zb, Xb, sigma),
    ]
    for out in b.sync(outs):
        assert b.to_numpy(out).dtype == np.float32
