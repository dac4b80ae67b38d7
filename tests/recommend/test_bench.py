"""``python -m bench recommend``: one command, the same figures for the same seed, the
metrics computed as defined. Never asserts a speed."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import recommend as bench

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--customers", "300", "--days", "35", "--test-days", "7"]


def _run(args: list[str]) -> dict:
    report = bench.run(bench.parser().parse_args(args))
    report.pop("timing")
    return report


def test_the_same_seed_gives_the_same_figures():
    first = _run([*SMALL, "--seed", "3"])
    assert _run([*SMALL, "--seed", "3"]) == first
    assert _run([*SMALL, "--seed", "4"]) != first
    assert set(first["metrics"]) == {
        "random", "most-popular", "recommender", "segments only", "(true taste)"}
    assert first["test_customers"] > 0
    for row in first["metrics"].values():
        assert set(row) == {f"{m}@{k}" for m in ("HR", "P", "NDCG") for k in (1, 2, 3)} | {"MRR"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert set(first["lift_over_random"]) == set(first["metrics"]["random"])


def test_metrics_by_hand():
    m = bench.metrics(["a", "b", "c"], frozenset({"b", "c"}), [1, 2, 3])
    assert m["HR@1"] == 0.0 and m["P@1"] == 0.0 and m["NDCG@1"] == 0.0
    assert m["HR@2"] == 1.0 and m["P@2"] == 0.5
    assert m["NDCG@2"] == pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625))
    assert m["MRR"] == 0.5
    # random over three templates with one relevant: a hit at 1 one time in three
    r = bench.random_expectation(["a", "b", "c"], frozenset({"a"}), [1, 2], random.Random(0))
    assert r["HR@1"] == pytest.approx(1 / 3) and r["HR@2"] == pytest.approx(2 / 3)
    assert r["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_the_command_prints_the_table_and_writes_json(tmp_path: Path):
    out = tmp_path / "rec.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "recommend", *SMALL, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "lift over most-popular" in done.stdout and "recommender" in done.stdout
    data = json.loads(out.read_text())
    assert data["customers"] == 300 and "lift_over_random" in data
