"""The generator's inputs read from the seed files (seeds/*.yaml): stores, products,
templates (by name, as hub.domain templates), the merchant's time zone and the known
customers. Reads files only; no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from hub.domain.template_codec import template_from_dict
from hub.domain.templates import Template
from hub.synthetic.history import History, Knobs, Product, generate

SEEDS_DIR = Path(str(files("hub") / "seeds"))
TEMPLATE_FIELDS = (
    "benefit", "validity", "usage", "total_quantity", "per_customer_limit", "transferable",
    "stacking", "offline",
)  # fmt: skip


@dataclass(frozen=True)
class SeedInputs:
    tz: ZoneInfo
    stores: tuple[str, ...]
    products: tuple[Product, ...]
    templates: dict[str, Template]  # by template name
    known: tuple[tuple[str, str | None, str | None], ...]  # (external id, name, phone)


def _load(seeds: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((seeds / name).read_text(encoding="utf-8"))
    return data


def template_spec(t: dict[str, Any]) -> dict[str, Any]:
    """A seed template's API form (what issuing.create_template takes)."""
    return {k: t[k] for k in TEMPLATE_FIELDS if k in t}


def seed_inputs(seeds: Path = SEEDS_DIR) -> SeedInputs:
    m = _load(seeds, "merchant.yaml")
    return SeedInputs(
        tz=ZoneInfo(m["merchant"]["timezone"]),
        stores=tuple(s["code"] for s in m["stores"]),
        products=tuple(
            Product(p["sku"], p["category"], int(p["price"]))
            for p in _load(seeds, "products.yaml")["products"]
        ),
        templates={
            t["name"]: template_from_dict(template_spec(t))
            for t in _load(seeds, "templates.yaml")["templates"]
        },
        known=tuple(
            (c["external_id"], c.get("name"), str(c.get("phone") or "") or None)
            for c in _load(seeds, "customers.yaml")["customers"]
        ),
    )


def from_seeds(
    seed: int,
    *,
    customers: int,
    days: int,
    end: datetime,
    seeds: Path = SEEDS_DIR,
    knobs: Knobs = Knobs(),
    held: dict[tuple[str, str], int] | None = None,
) -> History:
    """:func:`hub.synthetic.history.generate` on the seeds' merchant: its stores,
    products, templates (keys: template names) and customers (the first ``customers``
    are the seed's, then new ones)."""
    inp = seed_inputs(seeds)
    return generate(
        seed, customers=customers, days=days, end=end, stores=inp.stores,
        templates=inp.templates, products=inp.products, tz=inp.tz, known=inp.known,
        held=held, knobs=knobs,
    )  # fmt: skip
