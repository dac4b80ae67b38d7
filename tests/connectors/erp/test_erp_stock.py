"""The shared stock rule (connectors.erp.stock): which event moves which stock where."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.erp.sap import SapConnector
from connectors.erp.stock import (
    COMMON_PROPERTIES,
    StockError,
    StockMovement,
    UnmappedStore,
    movements,
    plan,
)
from connectors.erp.webhook import ErpWebhookConnector
from hub.connectors import Failed, load_connectors
from hub.testing import all_samples, sample_event

GIFT = sample_event("coupon.redeemed", kind="exchange")
CASH = sample_event("coupon.redeemed", kind="threshold")
GIFT_BACK = sample_event("coupon.redemption_reversed", kind="exchange")
CASH_BACK = sample_event("coupon.redemption_reversed", kind="threshold")
LOCATIONS = {"SH-001": "WH-SH-001", "BJ-002": "WH-BJ-002"}


def _with(event: dict[str, Any], **data: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["data"].update(data)
    return changed


# ------------------------------------------------------------------ the default rule
def test_an_exchange_redemption_moves_its_gift_out_of_the_store() -> None:
    assert movements(GIFT, {"locations": LOCATIONS}) == [
        StockMovement(
            sku="SKU-GIFT-1",
            qty=1,
            direction="out",
            store="SH-001",
            location="WH-SH-001",
            reference=GIFT["id"],
            redemption_id=GIFT["data"]["redemption_id"],
            hub_skus=("SKU-GIFT-1",),
        )
    ]


def test_reversing_an_exchange_redemption_puts_the_gift_back() -> None:
    [back] = movements(GIFT_BACK, {"locations": LOCATIONS})
    assert (back.sku, back.qty, back.direction, back.location) == (
        "SKU-GIFT-1",
        1,
        "in",
        "WH-SH-001",
    )
    assert back.reference == GIFT_BACK["id"]  # the reversal's own event id
    assert back.redemption_id == GIFT["data"]["redemption_id"]


def test_the_gift_quantity_is_the_coupon_s() -> None:
    event = _with(GIFT, gift={"sku": "SKU-GIFT-1", "qty": 3})
    assert [m.qty for m in movements(event, {})] == [3]


@pytest.mark.parametrize("event", [CASH, CASH_BACK], ids=["redeemed", "reversed"])
def test_threshold_coupons_move_no_stock_by_default(event: dict[str, Any]) -> None:
    assert movements(event, {"locations": LOCATIONS}) == []
    assert movements(event, {"locations": LOCATIONS, "move_stock_for_lines": False}) == []


@pytest.mark.parametrize(
    "event",
    [e for e in all_samples() if not e["type"].startswith("coupon.rede")],
    ids=lambda e: e["type"],
)
def test_other_event_types_move_nothing(event: dict[str, Any]) -> None:
    config = {"move_stock_for_lines": True, "locations": {}}  # an unmapped store would fail
    assert movements(event, config) == []


def test_percentage_coupons_are_threshold_coupons_for_stock() -> None:
    event = _with(CASH, template={**CASH["data"]["template"], "kind": "percentage"})
    assert movements(event, {}) == []
    assert len(movements(event, {"move_stock_for_lines": True})) == 2


# ------------------------------------------------------------------ order lines
def test_move_stock_for_lines_moves_every_order_line() -> None:
    config = {"locations": LOCATIONS, "move_stock_for_lines": True}
    out = movements(CASH, config)
    assert [(m.sku, m.qty, m.direction) for m in out] == [
        ("SKU-TEA-1", 2, "out"),
        ("SKU-GIFT-1", 1, "out"),
    ]
    back = movements(CASH_BACK, config)
    assert [(m.sku, m.qty, m.direction) for m in back] == [
        ("SKU-TEA-1", 2, "in"),
        ("SKU-GIFT-1", 1, "in"),
    ]


def test_with_lines_the_gift_is_one_of_the_lines_and_does_not_move_twice() -> None:
    out = movements(GIFT, {"move_stock_for_lines": True})
    assert Counter({m.sku: m.qty for m in out}) == Counter({"SKU-TEA-1": 2, "SKU-GIFT-1": 1})


def test_without_order_lines_the_lines_option_falls_back_to_the_gift() -> None:
    no_lines = {"id": "A-1001", "amount": 12800}
    assert [
        m.sku for m in movements(_with(GIFT, order=no_lines), {"move_stock_for_lines": True})
    ] == ["SKU-GIFT-1"]
    assert movements(_with(CASH, order=no_lines), {"move_stock_for_lines": True}) == []


def test_lines_of_one_sku_are_summed_in_first_appearance_order() -> None:
    lines = [
        {"sku": "B", "category": None, "qty": 1, "unit_price": 100},
        {"sku": "A", "category": None, "qty": 2, "unit_price": 100},
        {"sku": "B", "category": None, "qty": 4, "unit_price": 100},
    ]
    event = _with(CASH, order={"id": "A-1", "amount": 700, "lines": lines})
    out = movements(event, {"move_stock_for_lines": True})
    assert [(m.sku, m.qty) for m in out] == [("B", 5), ("A", 2)]


# ------------------------------------------------------------------ locations
def test_without_a_mapping_the_store_code_is_the_location() -> None:
    [m] = movements(GIFT, {})
    assert m.location == "SH-001"


def test_a_location_may_be_an_object() -> None:
    plants = {"SH-001": {"plant": "1010", "storage_location": "0001"}}
    [m] = movements(GIFT, {"plants": plants}, locations_key="plants")
    assert m.location == {"plant": "1010", "storage_location": "0001"}


def test_an_unmapped_store_fails_by_default_naming_the_store() -> None:
    with pytest.raises(UnmappedStore) as info:
        movements(GIFT, {"locations": {"BJ-002": "WH"}})
    assert info.value.store == "SH-001"
    assert "'SH-001'" in info.value.reason and "config.locations" in info.value.reason
    failed = plan(GIFT, {"locations": {"BJ-002": "WH"}, "unmapped_store": "fail"})
    assert isinstance(failed, Failed) and "SH-001" in failed.reason


def test_an_unmapped_store_is_skipped_when_configured() -> None:
    assert movements(GIFT, {"locations": {"BJ-002": "WH"}, "unmapped_store": "skip"}) == []


def test_an_event_that_moves_nothing_never_needs_its_store_mapped() -> None:
    assert movements(CASH, {"locations": {}}) == []


def test_the_mapping_key_is_the_connector_s() -> None:
    with pytest.raises(UnmappedStore, match=r"config\.plants"):
        movements(GIFT, {"plants": {}}, locations_key="plants")


# ------------------------------------------------------------------ SKUs
def test_sku_map_translates_skus_and_unlisted_ones_keep_their_code() -> None:
    config = {"move_stock_for_lines": True, "sku_map": {"SKU-GIFT-1": "MAT-100042"}}
    assert [m.sku for m in movements(GIFT, config)] == ["SKU-TEA-1", "MAT-100042"]


def test_skus_mapped_to_one_code_are_summed() -> None:
    config = {"move_stock_for_lines": True, "sku_map": {"SKU-GIFT-1": "M", "SKU-TEA-1": "M"}}
    [m] = movements(GIFT, config)
    assert (m.sku, m.qty, m.hub_skus) == ("M", 3, ("SKU-TEA-1", "SKU-GIFT-1"))


# ------------------------------------------------------------------ malformed events
@pytest.mark.parametrize(
    "data",
    [
        {"gift": {"sku": "X", "qty": 0}},
        {"gift": {"sku": "X", "qty": -1}},
        {"gift": {"sku": "X", "qty": True}},
        {"gift": {"sku": "X", "qty": "1"}},
        {"gift": {"sku": "", "qty": 1}},
        {"gift": {"qty": 1}},
        {"gift": ["X", 1]},
        {"store": None},
        {"store": ""},
    ],
)
def test_malformed_stock_data_is_a_stock_error_not_a_crash(data: dict[str, Any]) -> None:
    event = _with(GIFT, **data)
    with pytest.raises(StockError):
        movements(event, {})
    assert isinstance(plan(event, {}), Failed)


@pytest.mark.parametrize(
    "order",
    [
        {"id": "A", "amount": 1, "lines": "SKU-1"},
        {"id": "A", "amount": 1, "lines": [{"sku": "X", "qty": 0}]},
        {"id": "A", "amount": 1, "lines": [None]},
    ],
)
def test_malformed_order_lines_are_a_stock_error(order: dict[str, Any]) -> None:
    with pytest.raises(StockError):
        movements(_with(CASH, order=order), {"move_stock_for_lines": True})


def test_an_event_without_data_is_a_stock_error() -> None:
    with pytest.raises(StockError):
        movements({"id": "evt_1", "type": "coupon.redeemed", "data": None}, {})


def test_a_movement_is_immutable() -> None:
    [m] = movements(GIFT, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.qty = 2  # type: ignore[misc]


# ------------------------------------------------------------------ properties
SKUS = st.sampled_from(["A", "B", "C", "D"])
_line = st.builds(
    lambda sku, qty: {"sku": sku, "category": None, "qty": qty, "unit_price": 100},
    SKUS,
    st.integers(min_value=1, max_value=50),
)
_gift = st.none() | st.builds(
    lambda sku, qty: {"sku": sku, "qty": qty}, SKUS, st.integers(min_value=1, max_value=5)
)


@st.composite
def redemption(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A redemption, its reversal, and a config."""
    gift = draw(_gift)
    lines = draw(st.none() | st.lists(_line, max_size=6))
    store = draw(st.sampled_from(["SH-001", "BJ-002", "GZ-003"]))
    order: dict[str, Any] = {"id": "A-1", "amount": 100}
    if lines is not None:
        order["lines"] = lines
    redeemed = _with(GIFT, gift=gift, order=order, store=store)
    reversed_ = _with(GIFT_BACK, gift=gift, order=order, store=store)
    config: dict[str, Any] = {
        "move_stock_for_lines": draw(st.booleans()),
        "sku_map": draw(st.dictionaries(SKUS, SKUS, max_size=4)),
        "unmapped_store": "skip",
    }
    if draw(st.booleans()):
        config["locations"] = draw(
            st.dictionaries(st.sampled_from(["SH-001", "BJ-002"]), st.sampled_from(["L1", "L2"]))
        )
    return redeemed, reversed_, config


def _net(moves: list[StockMovement]) -> Counter[tuple[str, str]]:
    net: Counter[tuple[str, str]] = Counter()
    for m in moves:
        key = (m.sku, json.dumps(m.location, sort_keys=True))
        net[key] += m.qty if m.direction == "in" else -m.qty
    return net


@settings(max_examples=300, deadline=None)
@given(redemption())
def test_a_reversal_cancels_its_redemption_per_sku_and_location(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    redeemed, reversed_, config = case
    out, back = movements(redeemed, config), movements(reversed_, config)
    assert all(m.direction == "out" for m in out) and all(m.direction == "in" for m in back)
    assert +_net(out + back) == Counter() and -_net(out + back) == Counter()
    assert len(out) == len(back)


@settings(max_examples=300, deadline=None)
@given(redemption())
def test_movements_conserve_quantity_and_carry_the_event(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    redeemed, _, config = case
    out = movements(redeemed, config)
    assert out == movements(copy.deepcopy(redeemed), dict(config))  # deterministic
    assert all(m.qty > 0 for m in out)
    assert len({m.sku for m in out}) == len(out)  # one movement per ERP code
    assert all(m.reference == redeemed["id"] for m in out)
    data = redeemed["data"]
    mapping = config.get("locations")
    if mapping is not None and data["store"] not in mapping:
        assert out == []  # unmapped store, skipped
        return
    lines = data["order"].get("lines")
    if config["move_stock_for_lines"] and lines is not None:
        expected = sum(line["qty"] for line in lines)
    else:
        expected = data["gift"]["qty"] if data["gift"] else 0
    assert sum(m.qty for m in out) == expected
    for m in out:
        assert m.location == (mapping[data["store"]] if mapping is not None else data["store"])
        assert all(config["sku_map"].get(s, s) == m.sku for s in m.hub_skus)


# ------------------------------------------------------------------ the common options
def _erp_connectors() -> dict[str, Any]:
    found = {c.name: c for c in load_connectors().values() if c.kind == "erp"}
    for mine in (SapConnector(), ErpWebhookConnector()):
        found.setdefault(mine.name, mine)
    return found


@pytest.mark.parametrize("name", sorted(_erp_connectors()))
def test_every_erp_schema_carries_the_common_options_verbatim(name: str) -> None:
    properties = _erp_connectors()[name].config_schema["properties"]
    for option, schema in COMMON_PROPERTIES.items():
        assert properties.get(option) == schema, f"{name}: config.{option}"


def test_my_erp_connectors_are_registered() -> None:
    found = load_connectors()
    assert isinstance(found.get("erp.sap"), SapConnector)
    assert isinstance(found.get("erp.webhook"), ErpWebhookConnector)
