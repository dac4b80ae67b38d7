"""The hub's native redeem body, for POS connectors: what ``/v1/redemptions`` and
``/v1/redemptions/validate`` decode, and the command it becomes.

A POS connector that speaks the native JSON (``pos.native``) decodes these types; one
that maps a vendor's format builds the same shape (``msgspec.convert(data, RedeemIn,
strict=True)``) so a vendor's request is held to exactly the native API's limits, then
turns it into the :class:`~hub.domain.commands.RedeemCommand` the hub runs with
:func:`redeem_command`. The API layer (``hub.api.dto``) imports these types from here.
Amounts are integer fen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from hub.domain.cart import Line, Order
from hub.domain.commands import RedeemCommand
from hub.domain.offline import MAX_TOKEN_LENGTH

# the native API's limits; a connector reading another format holds it to the same
FEN_MAX = 10**12  # the largest amount, in fen
QTY_MAX = 100_000  # units on one order line
LINES_MAX = 500  # lines in one order
# characters of a coupon code as presented: a code, or a coupon token (the offline QR,
# hub.domain.offline: at most 1024 characters; 50 of them still fit a 64 KiB redeem body)
CODE_MAX = MAX_TOKEN_LENGTH
TEXT_MAX = 128  # an order id, a SKU, a category
STORE_MAX = 64  # a store code
STORE_PATTERN = r"^[A-Za-z0-9_.\-]+$"

Channel = Literal["pos", "mini_program", "h5", "app", "web"]
Fen = Annotated[int, Meta(ge=0, le=FEN_MAX, description="amount in fen (1/100 yuan)")]
ShortText = Annotated[str, Meta(min_length=1, max_length=TEXT_MAX)]
StoreCode = Annotated[str, Meta(min_length=1, max_length=STORE_MAX, pattern=STORE_PATTERN)]
UtcTime = Annotated[datetime, Meta(tz=True, description="ISO 8601 with offset, e.g. ...Z")]


class _Strict(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class LineIn(_Strict):
    """One order line: ``qty`` × ``unit_price`` fen of ``sku`` (in ``category``)."""

    sku: ShortText
    qty: Annotated[int, Meta(ge=1, le=QTY_MAX)]
    unit_price: Fen
    category: ShortText | None = None


class OrderIn(_Strict):
    """The order a coupon is presented against; ``lines`` when the coupon needs them
    (a percentage off one category, an exchange of one SKU)."""

    id: ShortText
    amount: Fen
    lines: Annotated[list[LineIn], Meta(max_length=LINES_MAX)] | None = None

    def to_order(self) -> Order:
        """The domain's :class:`Order` (every body that carries an order decodes it so)."""
        lines = None
        if self.lines is not None:
            lines = tuple(
                Line(sku=ln.sku, qty=ln.qty, unit_price=ln.unit_price, category=ln.category)
                for ln in self.lines
            )
        return Order(id=self.id, amount=self.amount, lines=lines)


class RedeemIn(_Strict):
    """The ``/v1/redemptions`` (and ``/validate``) body."""

    code: Annotated[str, Meta(min_length=1, max_length=CODE_MAX)]
    order: OrderIn
    store: StoreCode | None = None
    channel: Channel = "pos"
    occurred_at: UtcTime | None = None


def redeem_command(data: RedeemIn) -> RedeemCommand:
    """The command the hub runs for ``data``: the one ``/v1/redemptions`` runs."""
    return RedeemCommand(
        code=data.code,
        store=data.store,
        channel=data.channel,
        order=data.order.to_order(),
        occurred_at=data.occurred_at,
    )


__all__ = [
    "CODE_MAX",
    "FEN_MAX",
    "LINES_MAX",
    "QTY_MAX",
    "STORE_MAX",
    "STORE_PATTERN",
    "TEXT_MAX",
    "Channel",
    "Fen",
    "LineIn",
    "OrderIn",
    "RedeemIn",
    "ShortText",
    "StoreCode",
    "UtcTime",
    "redeem_command",
]
