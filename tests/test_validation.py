"""ukr_bench.validation: every error path of the shared validators, and the one policy.

TypeError where the argument's type is wrong, ValueError where its value is; a choice that
names none of the choices is a ValueError whatever its type. Every message starts with the
parameter's name.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ukr_bench import problem
from ukr_bench.devices import parse_device, parse_devices
from ukr_bench.validation import (
    check_array,
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_nonnegative_float,
    check_positive_float,
    check_real,
    is_int,
)


def test_is_int_accepts_integers_only() -> None:
    for good in (0, -3, np.int64(5), np.uint8(1)):
        assert is_int(good)
    for bad in (True, np.bool_(False), 2.0, "3", None, np.float64(1.0)):
        assert not is_int(bad)


@pytest.mark.parametrize(
    ("value", "minimum", "expected"), [(3, 1, 3), (0, 0, 0), (np.int32(7), 7, 7), (-2, -5, -2)]
)
def test_check_int_returns_a_python_int(value: object, minimum: int, expected: int) -> None:
    out = check_int("k", value, minimum)
    assert (out, type(out)) == (expected, int)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, r"^k must be an integer >= 1, got 0$"),
        (-4, ValueError, r"^k must be an integer >= 1, got -4$"),
        (np.int64(0), ValueError, r"^k must be an integer >= 1, got "),
        (2.5, TypeError, r"^k must be an integer >= 1, got 2.5 of type float$"),
        (2.0, TypeError, r"^k must be an integer >= 1, got 2.0 of type float$"),
        (True, TypeError, r"^k must be an integer >= 1, got True of type bool$"),
        (np.bool_(True), TypeError, r"^k must be an integer >= 1, got .* of type bool"),
        ("3", TypeError, r"^k must be an integer >= 1, got '3' of type str$"),
        (None, TypeError, r"^k must be an integer >= 1, got None of type NoneType$"),
    ],
)
def test_check_int_errors(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_int("k", value, 1)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("1", TypeError, r"^x must be a real number, got '1' of type str$"),
        (True, TypeError, r"^x must be a real number, got True of type bool$"),
        (1j, TypeError, r"^x must be a real number, got 1j of type complex$"),
        (None, TypeError, r"^x must be a real number"),
        (float("nan"), ValueError, r"^x must be finite, got nan$"),
        (float("inf"), ValueError, r"^x must be finite, got inf$"),
        (-np.inf, ValueError, r"^x must be finite, got -inf$"),
    ],
)
def test_check_real_errors(value: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_real("x", value)
    # the bounded checks run the same checks first, with the same messages
    with pytest.raises(error, match=match):
        check_positive_float("x", value)
    with pytest.raises(error, match=match):
        check_nonnegative_float("x", value)


def test_bounded_floats() -> None:
    assert check_real("x", np.float32(0.5)) == 0.5
    assert type(check_real("x", 2)) is float
    assert check_positive_float("x", 1e-300) == 1e-300
    assert check_nonnegative_float("x", 0) == 0.0
    with pytest.raises(ValueError, match=r"^x must be > 0, got 0.0$"):
        check_positive_float("x", 0)
    with pytest.raises(ValueError, match=r"^x must be > 0, got -1.0$"):
        check_positive_float("x", -1.0)
    with pytest.raises(ValueError, match=r"^x must be >= 0, got -0.1$"):
        check_nonnegative_float("x", -0.1)


def test_check_bool() -> None:
    assert check_bool("flag", np.bool_(True)) is True
    assert check_bool("flag", False) is False
    for bad in (1, 0, "yes", None, 1.0):
        with pytest.raises(TypeError, match=rf"^flag must be True or False, got {bad!r}$"):
            check_bool("flag", bad)


def test_check_choice_is_a_value_error_whatever_the_type() -> None:
    assert check_choice("mode", "b", ("a", "b")) == "b"
    for bad in ("c", None, 3, ["a"]):
        with pytest.raises(ValueError, match=r"^mode must be one of \['a', 'b'\], got "):
            check_choice("mode", bad, ("a", "b"))


def test_check_dtype() -> None:
    assert check_dtype("float32") == "float32"
    assert check_dtype(np.float64) == "float64"
    assert check_dtype(np.dtype("float32")) == "float32"
    for bad in ("float16", "double-ish", None, 3, int):
        with pytest.raises(ValueError, match=r"^dtype must be one of \['float32', 'float64'\]"):
            check_dtype(bad)


def test_check_array() -> None:
    out = check_array("A", [[1.0, 2.0]], "float32")
    assert (out.dtype, out.flags.c_contiguous) == (np.float32, True)
    assert check_array("A", np.ones(3), "float64", ndim=1).shape == (3,)
    cases: list[tuple[object, type[Exception], str]] = [
        (np.ones((2, 2), dtype=int), TypeError, r"^A must be a real floating-point array, got dtype int"),
        (np.ones((2, 2), dtype=bool), TypeError, r"^A must be a real floating-point array"),
        (np.ones((2, 2), dtype=complex), TypeError, r"^A must be a real floating-point array"),
        (np.ones(3), ValueError, r"^A must be 2-D, got shape \(3,\)$"),
        (np.ones((2, 0)), ValueError, r"^A must not be empty, got shape \(2, 0\)$"),
        (np.full((2, 2), np.nan), ValueError, r"^A has 4 non-finite value\(s\) \(NaN or inf, in float64\)$"),
    ]  # fmt: skip
    for a, error, match in cases:
        with pytest.raises(error, match=match):
            check_array("A", a, "float64")
    # finite in float64, inf in float32: checked after the conversion
    with pytest.raises(
        ValueError, match=r"^A has 1 non-finite value\(s\) \(NaN or inf, in float32\)$"
    ):
        check_array("A", [[1e39, 0.0]], "float32")


def test_check_array_rule_is_on_the_values_not_the_container() -> None:
    """Lists and arrays follow one rule: accepted when NumPy makes floats of them."""
    as_list = check_array("Z", [[0.0, 1.5], [2.0, 3.0]], "float64")
    np.testing.assert_array_equal(as_list, np.array([[0.0, 1.5], [2.0, 3.0]]))
    mixed = check_array("Z", [[0, 1.5], [2, 3]], "float64")  # NumPy promotes ints with a float
    np.testing.assert_array_equal(mixed, as_list)
    for integers in ([[0, 1], [2, 3]], np.array([[0, 1], [2, 3]]), [[True, False]]):
        with pytest.raises(TypeError, match=r"^Z must be a real floating-point array, got dtype"):
            check_array("Z", integers, "float64")


def test_devices() -> None:
    assert parse_device("cuda:3") == ("cuda", 3)
    assert parse_device("cpu") == ("cpu", 0)
    assert parse_devices("cuda:1-3") == ("cuda", (1, 2, 3))
    assert parse_devices(["cuda:2", "cuda:0"]) == ("cuda", (2, 0))
    cases: list[tuple[object, str]] = [
        ("tpu", r"^device must be 'cpu', 'cuda' or 'cuda:<index>', got 'tpu' \(or, for several"),
        (0, r"^device must be 'cpu', 'cuda' or 'cuda:<index>', got 0"),
        ([], r"^device must be 'cpu', 'cuda'"),
        ("cuda:3-1", r"^device range 'cuda:3-1' is empty"),
        (["cpu", "cuda"], r"^device list .* mixes kinds \['cpu', 'cuda'\]"),
        (["cuda:1", "cuda:1"], r"^device list .* names a device twice$"),
        (["cuda:0-1"], r"^device must be 'cpu', 'cuda' or 'cuda:<index>', got 'cuda:0-1'$"),
    ]
    for device, match in cases:
        with pytest.raises(ValueError, match=match):
            parse_devices(device)
    with pytest.raises(ValueError, match=r"^device must be .*, got 'cuda:0-1'$"):
        parse_device("cuda:0-1")


def test_problem_checks_follow_the_policy() -> None:
    with pytest.raises(TypeError, match=r"^loo must be True or False, got 1$"):
        problem.Params(loo=1)  # type: ignore[arg-type]
    listed = re.escape(str(list(problem.LAYOUTS)))
    with pytest.raises(ValueError, match=rf"^layout must be one of {listed}, got 'sparse'$"):
        problem.check_layout("sparse")
    assert problem.check_block_size(None) is None
    assert problem.check_block_size(np.int64(4)) == 4
    with pytest.raises(TypeError, match=r"^block_size must be a positive integer or None"):
        problem.check_block_size(2.0)
    with pytest.raises(ValueError, match=r"^block_size must be >= 1, got 0$"):
        problem.check_block_size(0)
