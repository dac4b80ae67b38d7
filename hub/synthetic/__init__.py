"""Synthetic redemption history: a pure, deterministic generator
(:mod:`hub.synthetic.history`), its inputs read from the seeds (:mod:`hub.synthetic.seeds`)
and the bulk loader that writes a history into a database (:mod:`hub.synthetic.load`)."""

from hub.synthetic.history import (
    Campaign,
    Customer,
    History,
    IssuedCoupon,
    Knobs,
    Product,
    Redemption,
    Sale,
    generate,
)

__all__ = [
    "Campaign",
    "Customer",
    "History",
    "IssuedCoupon",
    "Knobs",
    "Product",
    "Redemption",
    "Sale",
    "generate",
]
