"""The loyalty points rule shared by the CRM connectors: pure, integer-only.

Config (``points``, validated by ``points.schema.json``)::

    {"basis": "payable",                       # or "order"; default "payable"
     "default": {"per_yuan": 1},               # the rule of every other template
     "templates": {"tpl_…": {"fixed": 50},     # a template's own rule replaces the default
                   "tpl_…": {"per_yuan": 2, "fixed": 10}}}

A rule gives ``floor(basis / 100) * per_yuan + fixed`` points, where ``basis`` is in fen:

- ``"payable"`` (the default): what the customer paid, ``data.order.amount -
  data.discount`` — points reward money spent, not money the coupon saved;
- ``"order"``: the order amount before the discount (``data.order.amount``).

Both are recomputed from ``data.order.amount`` and ``data.discount``, which the
``coupon.redeemed`` and the ``coupon.redemption_reversed`` events of one redemption
carry identically (the reversal copies them), so a reversal debits exactly what its
redemption credited — provided the ``points`` config did not change in between: keep a
template's rule while its coupons can still be reversed.

``coupon.redeemed`` credits (positive points), ``coupon.redemption_reversed`` debits
(negative); every other event type, an event without a customer (``data.customer`` null)
and a rule that gives zero points give ``None``: no request at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.connectors import package_schema

CREDIT = "coupon.redeemed"
DEBIT = "coupon.redemption_reversed"
EVENT_TYPES = (CREDIT, DEBIT)
BASES = ("payable", "order")
DEFAULT_RULE: Mapping[str, int] = {"per_yuan": 1}

POINTS_SCHEMA: dict[str, Any] = package_schema("connectors.crm", "points.schema.json")


class PointsError(ValueError):
    """The event lacks what the rule needs (a malformed envelope): a permanent failure."""


@dataclass(frozen=True)
class PointsChange:
    """One change to a member's balance, caused by one event."""

    member: str  # the customer's external id (data.customer)
    points: int  # positive: credit; negative: debit
    reason: str  # "redemption" | "reversal"
    reference: str  # the event id: the receiver's dedupe key
    redemption_id: str
    paid: int  # fen the customer paid: order amount minus discount (never negative)
    order_amount: int  # fen, before the discount
    template_id: str | None = None

    @property
    def is_credit(self) -> bool:
        return self.points > 0

    @property
    def magnitude(self) -> int:
        return abs(self.points)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PointsError(f"{where} must be an integer (fen), got {value!r}")
    return value


def _template_id(data: Mapping[str, Any]) -> str | None:
    template = data.get("template")
    if isinstance(template, Mapping) and isinstance(template.get("id"), str):
        return str(template["id"])
    tid = data.get("template_id")
    return tid if isinstance(tid, str) else None


def rule_for(config: Mapping[str, Any], template_id: str | None) -> Mapping[str, int]:
    """The rule of ``template_id``: its own, else the default, else 1 point per yuan."""
    points = config.get("points") or {}
    templates = points.get("templates") or {}
    if template_id is not None and template_id in templates:
        rule: Mapping[str, int] = templates[template_id]
        return rule
    default: Mapping[str, int] = points.get("default", DEFAULT_RULE)
    return default


def points_of(rule: Mapping[str, int], basis_fen: int) -> int:
    """``floor(basis_fen / 100) * per_yuan + fixed``, never negative."""
    whole_yuan = max(basis_fen, 0) // 100
    return whole_yuan * int(rule.get("per_yuan", 0)) + int(rule.get("fixed", 0))


def points_for(event: Mapping[str, Any], config: Mapping[str, Any]) -> PointsChange | None:
    """The points change ``event`` causes under ``config["points"]``, or ``None``.

    Raises :class:`PointsError` when a redemption event lacks its order amount or
    discount (the hub always sends them; a connector turns it into ``Failed``)."""
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return None
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise PointsError("event.data is missing")
    member = data.get("customer")
    if not isinstance(member, str) or not member:
        return None
    order = data.get("order")
    if not isinstance(order, Mapping):
        raise PointsError("data.order is missing")
    amount = _int(order.get("amount"), "data.order.amount")
    discount = _int(data.get("discount"), "data.discount")
    paid = max(amount - discount, 0)
    basis = (config.get("points") or {}).get("basis", "payable")
    if basis not in BASES:
        raise PointsError(f"points.basis must be one of {BASES}, got {basis!r}")
    template_id = _template_id(data)
    earned = points_of(rule_for(config, template_id), paid if basis == "payable" else amount)
    if earned == 0:
        return None
    return PointsChange(
        member=member,
        points=earned if kind == CREDIT else -earned,
        reason="redemption" if kind == CREDIT else "reversal",
        reference=str(event["id"]),
        redemption_id=str(data.get("redemption_id", "")),
        paid=paid,
        order_amount=amount,
        template_id=template_id,
    )


def with_points_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a connector's config schema) with the shared ``points`` property."""
    return {**schema, "properties": {**schema.get("properties", {}), "points": POINTS_SCHEMA}}


def yuan(fen: int) -> str:
    """Fen as a decimal string of yuan, ``12345`` → ``"123.45"`` (no float on the way)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


__all__ = [
    "CREDIT",
    "DEBIT",
    "EVENT_TYPES",
    "POINTS_SCHEMA",
    "PointsChange",
    "PointsError",
    "points_for",
    "points_of",
    "rule_for",
    "with_points_schema",
    "yuan",
]
