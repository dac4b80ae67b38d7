"""The demo's history makes the analytics API show something real: redemptions over the
six weeks, every store and kind, and the lagging store flagged by the league table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient

from hub.api.app import create_app
from hub.seeding import seed, seed_history

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def test_the_demo_history_shows_in_the_analytics_api(db):
    facts = seed(db, now=NOW)
    loaded = seed_history(db, facts["merchant_id"], NOW, seed=3)
    auth = {"Authorization": f"Bearer {facts['admin_key']}"}
    last = (NOW + timedelta(hours=8)).date()  # Shanghai
    span = {"from": (last - timedelta(days=41)).isoformat(), "to": last.isoformat()}
    with TestClient(create_app(db, clock=lambda: NOW)) as http:
        summary = http.get("/v1/analytics/summary", params=span, headers=auth)
        assert summary.status_code == 200, summary.text
        figures = summary.json()["figures"]
        assert figures["redeemed"] == loaded["redemptions"] > 1000
        assert figures["reversed"] == loaded["reversed"] > 0
        kinds = http.get("/v1/analytics/breakdown", params={**span, "by": "kind"}, headers=auth)
        assert {r["key"] for r in kinds.json()["rows"] if r["redeemed"]} == {
            "threshold", "percentage", "exchange"}
        league = http.get("/v1/analytics/stores/league", params=span, headers=auth)
        assert league.status_code == 200, league.text
        rows = {r["store"]: r for r in league.json()["rows"]}
        assert set(rows) == {"SH-001", "SH-002", "BJ-001"}
        [lagging] = loaded["lagging_stores"]
        assert rows[lagging]["lagging"] is True
        assert [s for s, r in rows.items() if r["lagging"]] == [lagging]
