"""``python -m bench quote`` (bench/quote.py): runs, prints every figure, and its
candidate families are what they say (no timing is asserted: figures, not tests)."""

from __future__ import annotations

import pytest

from bench import quote, quote_http
from bench.__main__ import main as bench_main
from hub.domain.quote import EXACT_LIMIT, best_combination
from hub.domain.stacking import stacking_conflict
from hub.domain.template_codec import template_from_dict


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


def test_the_http_bench_quotes_the_mixed_family(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m bench quote-http``: its templates are bench/quote.py's *mixed* coupons
    (the same benefits, product rules and stacking), and one small run prints a figure
    per way of quoting, every answer 200."""
    order = quote.cart(12)
    made = [template_from_dict(s) for s in quote_http.template_specs(8, order)]
    domain = [c.template for c in quote.mixed(8, order)]
    assert [(t.benefit, t.stacking, t.usage) for t in made] == [
        (t.benefit, t.stacking, t.usage) for t in domain]
    assert bench_main(["quote-http", "--db", "sqlite", "--candidates", "6", "--lines", "12",
                       "--requests", "10", "--concurrency", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("sqlite")]
    assert [r[:3] for r in rows] == [["sqlite", "wallet", "c1"], ["sqlite", "codes", "c1"]]
    assert all("{200: 10}" in line for line in out.splitlines() if line.startswith("sqlite"))
