"""The JSON views every checkout answer spells alike (the redeem, the order redeem, a
reservation, the quote, a transfer): a coupon's template, a coupon's discount per line,
and the lines of a combination of coupons."""

from __future__ import annotations

from typing import Any

from hub.domain.cart import Discount
from hub.domain.combination import Combination


def template_view(row: Any) -> dict[str, Any]:
    """The template of a row read with the template's id, name and kind."""
    return {"id": row.template_id, "name": row.template_name, "kind": row.kind}


def discount_lines(d: Discount) -> list[dict[str, Any]]:
    """A coupon's discount on each order line it covers."""
    return [{"index": ld.index, "sku": ld.sku, "discount": ld.discount} for ld in d.lines]


def combination_lines(combo: Combination) -> list[dict[str, Any]]:
    """Each order line under a combination: its amount, the discount of all the coupons
    together, what is left to pay, and each coupon's part in order of application."""
    return [
        {
            "index": ln.index,
            "sku": ln.sku,
            "amount": ln.amount,
            "discount": ln.discount,
            "payable": ln.payable,
            "by_coupon": [{"code": c, "discount": d} for c, d in ln.by_coupon],
        }
        for ln in combo.lines
    ]
