"""The order a coupon is presented against. Amounts in integer fen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit_price: int
    category: str | None = None

    @property
    def amount(self) -> int:
        return self.qty * self.unit_price


@dataclass(frozen=True)
class Order:
    id: str
    amount: int
    lines: tuple[Line, ...] | None = None


@dataclass(frozen=True)
class LineDiscount:
    """Discount granted on order line ``index`` (position in ``order.lines``)."""

    index: int
    sku: str
    discount: int


@dataclass(frozen=True)
class Discount:
    """Outcome of the discount maths: ``total`` fen off, split over ``lines``."""

    total: int
    eligible_amount: int
    lines: tuple[LineDiscount, ...] = ()
    units_given: int | None = None  # exchange coupons: units of the gift SKU handed over
