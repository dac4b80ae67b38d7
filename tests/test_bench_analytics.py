"""bench analytics: the tiles it lays a generated history down as stay consistent."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.analytics import tile
from hub.domain.codes import is_well_formed
from hub.synthetic.seeds import from_seeds


def test_tiles_have_their_own_codes_customers_and_orders():
    base = from_seeds(2, customers=60, days=21, end=datetime(2026, 12, 1, tzinfo=UTC))
    tiles = [tile(base, k) for k in range(3)]
    assert tiles[0] == base
    codes = [c.code for t in tiles for c in t.coupons]
    assert len(set(codes)) == len(codes) and all(is_well_formed(c) for c in codes)
    orders = [r.order_id for t in tiles for r in t.redemptions] + [
        s.order_id for t in tiles for s in t.sales]
    assert len(set(orders)) == len(orders)
    customers = [c.external_id for t in tiles for c in t.customers]
    assert len(set(customers)) == len(customers)
    for t in tiles:
        mine = {c.code: c for c in t.coupons}
        people = {c.external_id for c in t.customers}
        camps = {c.key for c in t.campaigns}
        assert all(r.code in mine and mine[r.code].customer == r.customer for r in t.redemptions)
        assert all(c.customer in people for c in t.coupons)
        assert all(c.campaign is None or c.campaign in camps for c in t.coupons)
    cut = tile(base, 1, limit=5)
    assert len(cut.redemptions) == 5 and len(cut.coupons) == len(base.coupons)
