"""Which stock an event moves: the one rule every ERP connector shares.

:func:`movements` reads a published event and a subscription's config and says which
goods leave or come back to which ERP location. Pure: no I/O, deterministic.

Events
    ``coupon.redeemed`` moves stock **out** of the store; ``coupon.redemption_reversed``
    moves the same stock back **in** (the reversal event carries the redemption's
    order and gift, so a reversal exactly cancels its redemption). Every other event
    type moves nothing.

What moves
    * By default only exchange coupons (兑换券, ``data.gift`` not null) move stock:
      ``gift.qty`` of ``gift.sku``. Threshold and percentage coupons move nothing —
      the till's own sale posting is expected to move the goods of the order.
    * ``move_stock_for_lines: true``: every line of ``data.order.lines`` moves its
      ``qty``, for every coupon kind. An exchange coupon's gift is one of the order's
      lines (the hub refuses an exchange redemption whose order lacks the SKU), so it
      is not moved a second time. An event without order lines falls back to the
      default rule (the gift, if any).
    * Quantities are summed per ERP code (after ``sku_map``), in the order the codes
      first appear; every movement has ``qty > 0``.

Where it moves
    ``config[locations_key]`` maps a store code to the ERP's location for it: a
    location code or id (Tryton, generic webhooks) or an object (SAP: plant and
    storage location). Without that mapping in the config at all, the store code
    itself is the location. A store missing from a configured mapping is handled by
    ``unmapped_store``: ``"fail"`` (default) — the delivery fails naming the store, so
    an operator adds it and replays — or ``"skip"`` — the event moves nothing.

SKUs
    ``sku_map`` maps a hub SKU to the ERP's material / product code; SKUs it does not
    list keep their code.

Every ERP connector's config schema carries the options of :data:`COMMON_PROPERTIES`
(tests check each ``erp.*`` connector's schema includes them verbatim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hub.connectors import Failed

Direction = Literal["out", "in"]

DIRECTIONS: dict[str, Direction] = {
    "coupon.redeemed": "out",
    "coupon.redemption_reversed": "in",
}

# The options every ERP connector accepts, as JSON Schema properties. Each connector's
# ``*.schema.json`` repeats them verbatim (a test keeps them consistent).
COMMON_PROPERTIES: dict[str, Any] = {
    "unmapped_store": {
        "enum": ["fail", "skip"],
        "default": "fail",
        "description": "A store missing from the location mapping: fail the delivery "
        "naming the store (default), or skip the event (no stock moves).",
    },
    "sku_map": {
        "type": "object",
        "additionalProperties": {"type": "string", "minLength": 1},
        "description": "Hub SKU -> ERP material / product code; unlisted SKUs keep their code.",
    },
    "move_stock_for_lines": {
        "type": "boolean",
        "default": False,
        "description": "Move every order line's quantity (all coupon kinds) instead "
        "of only the gift of exchange coupons.",
    },
}


@dataclass(frozen=True)
class StockMovement:
    """``qty`` units of ERP code ``sku`` leaving (``out``) or entering (``in``) the ERP
    location of ``store``. ``reference`` is the event id (the receiver's dedupe key);
    ``hub_skus`` the hub SKUs summed into it (several when ``sku_map`` merges them)."""

    sku: str
    qty: int
    direction: Direction
    store: str
    location: Any  # the mapping's value: a code, an id, or an object (SAP plant …)
    reference: str
    redemption_id: str | None
    hub_skus: tuple[str, ...] = ()


class StockError(ValueError):
    """The event cannot be turned into movements; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnmappedStore(StockError):
    def __init__(self, store: str, locations_key: str) -> None:
        super().__init__(
            f"store {store!r} has no entry in config.{locations_key}: add it (or set "
            'config.unmapped_store to "skip") and replay'
        )
        self.store = store


def movements(
    event: Mapping[str, Any], config: Mapping[str, Any], *, locations_key: str = "locations"
) -> list[StockMovement]:
    """The stock movements ``event`` causes under ``config`` (see the module docstring).

    Raises :class:`UnmappedStore` for a store outside the mapping under
    ``unmapped_store: "fail"``, and :class:`StockError` for an event whose stock data
    is malformed."""
    direction = DIRECTIONS.get(str(event.get("type")))
    if direction is None:
        return []
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise StockError("event has no data object")
    quantities = _quantities(data, bool(config.get("move_stock_for_lines", False)))
    if not quantities:
        return []
    store = data.get("store")
    if not isinstance(store, str) or not store:
        raise StockError("event data has no store")
    mapping = config.get(locations_key)
    if mapping is None:
        location: Any = store
    elif not isinstance(mapping, Mapping):
        raise StockError(f"config.{locations_key} is not an object")
    elif store in mapping:
        location = mapping[store]
    elif config.get("unmapped_store", "fail") == "skip":
        return []
    else:
        raise UnmappedStore(store, locations_key)
    sku_map = config.get("sku_map") or {}
    if not isinstance(sku_map, Mapping):
        raise StockError("config.sku_map is not an object")
    merged: dict[str, tuple[int, tuple[str, ...]]] = {}
    for hub_sku, qty in quantities.items():
        code = str(sku_map.get(hub_sku, hub_sku))
        total, sources = merged.get(code, (0, ()))
        merged[code] = (total + qty, (*sources, hub_sku))
    redemption_id = data.get("redemption_id")
    return [
        StockMovement(
            sku=code,
            qty=qty,
            direction=direction,
            store=store,
            location=location,
            reference=str(event["id"]),
            redemption_id=redemption_id if isinstance(redemption_id, str) else None,
            hub_skus=sources,
        )
        for code, (qty, sources) in merged.items()
    ]


def plan(
    event: Mapping[str, Any], config: Mapping[str, Any], *, locations_key: str = "locations"
) -> list[StockMovement] | Failed:
    """:func:`movements`, with its refusals as the delivery's :class:`Failed` outcome."""
    try:
        return movements(event, config, locations_key=locations_key)
    except StockError as exc:
        return Failed(exc.reason)


def _quantities(data: Mapping[str, Any], by_lines: bool) -> dict[str, int]:
    """Hub SKU -> units, in order of first appearance."""
    if by_lines:
        order = data.get("order")
        lines = order.get("lines") if isinstance(order, Mapping) else None
        if lines is not None:
            if not isinstance(lines, list):
                raise StockError("order.lines is not a list")
            found: dict[str, int] = {}
            for i, line in enumerate(lines):
                sku, qty = _sku_qty(line, f"order.lines[{i}]")
                found[sku] = found.get(sku, 0) + qty
            return found
    gift = data.get("gift")
    if gift is None:
        return {}
    sku, qty = _sku_qty(gift, "gift")
    return {sku: qty}


def _sku_qty(item: object, where: str) -> tuple[str, int]:
    if not isinstance(item, Mapping):
        raise StockError(f"{where} is not an object")
    sku, qty = item.get("sku"), item.get("qty")
    if not isinstance(sku, str) or not sku:
        raise StockError(f"{where}.sku is missing")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        raise StockError(f"{where}.qty must be a positive integer, not {qty!r}")
    return sku, qty


__all__ = [
    "COMMON_PROPERTIES",
    "DIRECTIONS",
    "Direction",
    "StockError",
    "StockMovement",
    "UnmappedStore",
    "movements",
    "plan",
]
