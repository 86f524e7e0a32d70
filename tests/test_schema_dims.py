"""D and L in the row key: the schema's version 4, older rows upgraded, keys round-tripped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ukr_bench.bench.config import SweepConfig
from ukr_bench.schema import (
    SCHEMA_VERSION,
    ConfigKey,
    ResultsFileError,
    Row,
    RunMeta,
    Status,
    done_keys,
    read_rows,
    upgrade_row,
    write_meta,
)

#: A row as version 3 wrote it: L a field of its own, no D (the saddle's data set named).
V3 = {
    "backend": "numpy", "layout": "blocked", "gradient": "manual", "dtype": "float64",
    "device": "cpu", "n": 500, "devices": 1, "data": "saddle", "latent_dim": 2, "sigma": 0.5,
    "lam": 0.0, "loo": True, "threads": 2, "status": "ok", "schema_version": 3,
}  # fmt: skip


def test_the_version_went_up() -> None:
    assert SCHEMA_VERSION == 4


def test_a_version_3_row_gets_d_from_its_data_set_and_keeps_its_l() -> None:
    up = upgrade_row(V3)
    assert (up["data_dim"], up["latent_dim"], up["schema_version"]) == (3, 2, SCHEMA_VERSION)
    assert "data_dim" not in V3  # the input is untouched
    assert upgrade_row(V3 | {"data": "digits", "latent_dim": 3})["data_dim"] == 64
    assert upgrade_row(V3 | {"data": "spiral"})["data_dim"] == 2
    old = {k: v for k, v in V3.items() if k not in ("latent_dim", "data", "schema_version")}
    assert (upgrade_row(old)["data_dim"], upgrade_row(old)["latent_dim"]) == (3, 2)
    key = Row.from_json(V3).key
    assert (key.data_dim, key.latent_dim) == (3, 2)


def test_a_key_with_d_and_l_round_trips_through_a_row() -> None:
    key = ConfigKey("jax", "blocked", "manual", "float32", "cpu", 800, 1, 64, 3)
    row = Row(key=key, data="digits", sigma=0.5, lam=0.0, loo=True, threads=2)
    flat = json.loads(json.dumps(row.to_json()))
    assert (flat["data_dim"], flat["latent_dim"], flat["schema_version"]) == (64, 3, 4)
    back = Row.from_json(flat)
    assert back.key == key
    assert ConfigKey.from_mapping(flat) == key
    assert "D=64 L=3 N=800" in str(key)
    other = ConfigKey("jax", "blocked", "manual", "float32", "cpu", 800, 1, 3, 3)
    assert other != key
    assert other.series != key.series  # a figure against N never joins them


def test_resume_tells_configurations_of_different_d_apart(tmp_path: Path) -> None:
    cfg = SweepConfig(backends=["numpy"], dtypes=["float64"], layouts=["dense"], ns=[8],
                      data_dims=[3, 16], fit_iters=0)  # fmt: skip
    plan = cfg.plan()
    assert [(k.data_dim, k.latent_dim) for k in plan] == [(3, 2), (16, 2)]
    write_meta(tmp_path, RunMeta(config=cfg.to_dict()))
    row = Row(key=plan[0], data="saddle", sigma=0.5, lam=0.0, loo=True, threads=1,
              status=Status.SKIPPED)  # fmt: skip
    (tmp_path / "results.jsonl").write_text(json.dumps(row.to_json()) + "\n")
    assert done_keys(tmp_path) == {plan[0]}  # D = 16 is still to do
    assert [r.key for r in read_rows(tmp_path)] == [plan[0]]


def test_a_bad_d_in_a_row_names_the_field(tmp_path: Path) -> None:
    bad = upgrade_row(V3) | {"data_dim": 0}
    (tmp_path / "results.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ResultsFileError, match=r"line 1: field 'data_dim' must be a positive"):
        read_rows(tmp_path)


def test_runs_before_the_l_axis_resume_with_their_one_l() -> None:
    cfg = SweepConfig(backends=["numpy"], latent_dims=[1, 3])
    assert {k.latent_dim for k in cfg.plan()} == {1, 3}
    stored = cfg.to_dict()
    stored.pop("latent_dims")
    stored.pop("data_dims")
    old = SweepConfig.from_dict(stored | {"latent_dim": 3})
    assert (old.latent_dims, old.latent_dim, old.dims()) == ([3], 3, [3])
    with pytest.raises(ValueError, match=r"several L \(\[1, 3\]\)"):
        _ = cfg.latent_dim
    narrowed = cfg.for_key(cfg.plan()[-1])
    assert (narrowed.latent_dim, narrowed.ns) == (3, [cfg.ns[-1]])
