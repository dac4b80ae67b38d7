"""The shared loyalty points rule (connectors.crm.points): pure and integer-only."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.crm.points import (
    POINTS_SCHEMA,
    PointsChange,
    PointsError,
    points_for,
    points_of,
    rule_for,
    with_points_schema,
    yuan,
)
from hub.testing import all_samples, sample_event

GIFT_TPL = "tpl_01JDK000000000000000000017"
CASH_TPL = "tpl_01JDK000000000000000000016"


def redeemed(kind: str = "threshold", **data: Any) -> dict[str, Any]:
    event = sample_event("coupon.redeemed", kind=kind)
    event["data"].update(data)
    return event


def reversed_(kind: str = "threshold", **data: Any) -> dict[str, Any]:
    event = sample_event("coupon.redemption_reversed", kind=kind)
    event["data"].update(data)
    return event


def test_default_is_one_point_per_whole_yuan_paid():
    # cash sample: order 128.00, discount 20.00 -> paid 108.00 -> 108 points
    change = points_for(redeemed(), {})
    assert change == PointsChange(
        member="C-0001",
        points=108,
        reason="redemption",
        reference="evt_01JDK000000000000000000006",
        redemption_id="rdm_01JDK000000000000000000014",
        paid=10800,
        order_amount=12800,
        template_id=CASH_TPL,
    )
    assert change.is_credit and change.magnitude == 108


def test_payable_is_order_amount_minus_discount_and_matches_the_events_payable():
    event = redeemed()
    change = points_for(event, {})
    assert change is not None and change.paid == event["data"]["payable"]


def test_basis_order_counts_the_amount_before_the_discount():
    change = points_for(redeemed(), {"points": {"basis": "order"}})
    assert change is not None and change.points == 128


def test_whole_yuan_are_floored():
    event = redeemed()
    event["data"]["order"]["amount"] = 12899
    event["data"]["discount"] = 0
    assert points_for(event, {}).points == 128  # type: ignore[union-attr]
    event["data"]["order"]["amount"] = 99
    assert points_for(event, {}) is None  # under a yuan: zero points, no change


def test_per_yuan_multiplies():
    change = points_for(redeemed(), {"points": {"default": {"per_yuan": 3}}})
    assert change is not None and change.points == 324


def test_a_templates_fixed_rule_replaces_the_default():
    config = {"points": {"default": {"per_yuan": 2}, "templates": {CASH_TPL: {"fixed": 50}}}}
    assert points_for(redeemed(), config).points == 50  # type: ignore[union-attr]
    # the gift template has no rule of its own: the default applies (88 yuan paid)
    assert points_for(redeemed("exchange"), config).points == 176  # type: ignore[union-attr]


def test_per_yuan_and_fixed_add_up():
    config = {"points": {"templates": {CASH_TPL: {"per_yuan": 1, "fixed": 10}}}}
    assert points_for(redeemed(), config).points == 118  # type: ignore[union-attr]


def test_reversal_debits_exactly_what_the_redemption_credited():
    config = {"points": {"templates": {GIFT_TPL: {"fixed": 50}}}}
    for kind in ("exchange", "threshold"):
        credit = points_for(sample_event("coupon.redeemed", kind=kind), config)
        debit = points_for(sample_event("coupon.redemption_reversed", kind=kind), config)
        assert credit is not None and debit is not None
        assert debit.points == -credit.points and debit.points < 0
        assert debit.reason == "reversal" and not debit.is_credit
        assert debit.redemption_id == credit.redemption_id
        assert debit.reference != credit.reference  # each event is its own dedupe key


def test_reversal_uses_template_id_when_the_template_object_is_absent():
    event = reversed_()
    del event["data"]["template"]
    config = {"points": {"templates": {CASH_TPL: {"fixed": 7}}}}
    assert points_for(event, config).points == -7  # type: ignore[union-attr]


def test_no_customer_means_no_change():
    assert points_for(redeemed(customer=None), {}) is None
    assert points_for(reversed_(customer=None), {}) is None
    assert points_for(redeemed(customer=""), {}) is None


def test_zero_points_means_no_change():
    assert points_for(redeemed(), {"points": {"default": {"per_yuan": 0}}}) is None
    assert points_for(redeemed(), {"points": {"templates": {CASH_TPL: {"fixed": 0}}}}) is None


def test_discount_above_the_amount_pays_nothing_but_fixed_still_counts():
    event = redeemed(discount=20000)
    assert points_for(event, {}) is None
    assert points_for(event, {"points": {"default": {"fixed": 5}}}).points == 5  # type: ignore[union-attr]


@pytest.mark.parametrize("event", all_samples(), ids=lambda e: e["type"] + e["id"][-2:])
def test_other_event_types_change_nothing(event):
    if event["type"] in ("coupon.redeemed", "coupon.redemption_reversed"):
        assert points_for(event, {}) is not None
    else:
        assert points_for(event, {}) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("order"),
        lambda d: d.update(order=None),
        lambda d: d["order"].update(amount=128.0),
        lambda d: d["order"].update(amount="12800"),
        lambda d: d["order"].update(amount=True),
        lambda d: d.update(discount=None),
        lambda d: d.update(discount=20.5),
    ],
    ids=[
        "no order",
        "null order",
        "float amount",
        "str amount",
        "bool amount",
        "null discount",
        "float discount",
    ],
)
def test_malformed_amounts_raise_points_error_never_compute_with_floats(mutate):
    event = redeemed()
    mutate(event["data"])
    with pytest.raises(PointsError):
        points_for(event, {})


def test_an_unknown_basis_is_refused():
    with pytest.raises(PointsError):
        points_for(redeemed(), {"points": {"basis": "eligible"}})


def test_rule_lookup():
    config = {"points": {"default": {"fixed": 1}, "templates": {"tpl_x": {"per_yuan": 4}}}}
    assert rule_for(config, "tpl_x") == {"per_yuan": 4}
    assert rule_for(config, "tpl_y") == {"fixed": 1}
    assert rule_for(config, None) == {"fixed": 1}
    assert rule_for({}, "tpl_x") == {"per_yuan": 1}
    assert points_of({"per_yuan": 2, "fixed": 3}, -500) == 3


def test_yuan_formats_fen_exactly():
    assert yuan(12345) == "123.45"
    assert yuan(5) == "0.05"
    assert yuan(0) == "0.00"
    assert yuan(-105) == "-1.05"
    assert yuan(10**15 + 1) == "10000000000000.01"  # no float rounding


def test_the_points_schema_is_merged_into_a_connector_schema():
    merged = with_points_schema({"type": "object", "properties": {"url": {"type": "string"}}})
    assert merged["properties"]["points"] is POINTS_SCHEMA
    assert set(merged["properties"]) == {"url", "points"}


rules = st.fixed_dictionaries(
    {},
    optional={
        "per_yuan": st.integers(min_value=0, max_value=10000),
        "fixed": st.integers(min_value=0, max_value=10**8),
    },
).filter(bool)


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    discount_share=st.integers(min_value=0, max_value=100),
    default=rules,
    own=st.one_of(st.none(), rules),
    basis=st.sampled_from(["payable", "order"]),
    kind=st.sampled_from(["exchange", "threshold"]),
)
def test_credit_then_debit_nets_to_zero_in_integers(
    amount, discount_share, default, own, basis, kind
):
    discount = amount * discount_share // 100
    redeemed_event = sample_event("coupon.redeemed", kind=kind)
    reversed_event = sample_event("coupon.redemption_reversed", kind=kind)
    for event in (redeemed_event, reversed_event):
        event["data"]["order"] = {"id": "A-1", "amount": amount}
        event["data"]["discount"] = discount
    template = redeemed_event["data"]["template"]["id"]
    config: dict[str, Any] = {"points": {"basis": basis, "default": default}}
    if own is not None:
        config["points"]["templates"] = {template: own}
    before = copy.deepcopy(config)
    credit = points_for(redeemed_event, config)
    debit = points_for(reversed_event, config)
    assert config == before  # pure: the config is not touched
    if credit is None:
        assert debit is None
        return
    assert debit is not None
    assert type(credit.points) is int and type(debit.points) is int
    assert credit.points > 0 and credit.points + debit.points == 0
    rule = own if own is not None else default
    base = amount - discount if basis == "payable" else amount
    assert credit.points == (base // 100) * rule.get("per_yuan", 0) + rule.get("fixed", 0)
