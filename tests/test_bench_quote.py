"""``python -m bench quote`` (bench/quote.py): runs, prints every figure, and its
candidate families are what they say (no timing is asserted: figures, not tests)."""

from __future__ import annotations

import pytest

from bench import quote
from bench.__main__ import main as bench_main
from hub.domain.quote import EXACT_LIMIT, best_combination
from hub.domain.stacking import stacking_conflict


def test_quote_bench_prints_each_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["quote", "--lines", "6", "--candidates", "5", "--repeat", "1",
                       "--sweep", "3,4"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"EXACT_LIMIT {EXACT_LIMIT}" in out and "load" in out
    assert "mixed      5 candidates:" in out and "all-stack  5 candidates:" in out
    rows = [line.split()[0] for line in out.splitlines() if line[:4].strip().isdigit()]
    assert rows == ["3", "4"]
    for family in quote.WORST:
        assert family in out


def test_worst_case_families_all_stack_and_search_exactly() -> None:
    order = quote.cart(20)
    for make in quote.WORST.values():
        cands = make(6, order)
        assert len(cands) == 6 and len({c.code for c in cands}) == 6
        assert stacking_conflict([(c.code, c.template) for c in cands]) is None
        q = best_combination(order, cands, quote.CTX, exact_limit=6)
        assert q.exact and q.examined >= 1 and 0 < q.best.total <= order.amount
