"""Which coupon template to push to a customer next, learned from redemption history.

The method: **smoothed redemption rates per segment, blended with the customer's own
record** (an explainable m-estimate model; no numpy, no training loop).

* A customer's *habits* at a moment (:class:`Profile`) come from what they did before it:
  home store (where they bought most often), offline/online (``pos`` against every other
  channel), preferred kind (the kind they redeemed most), spend band (their mean order)
  and recency (days since their last order).
* Every coupon a customer got is one *exposure* of its template to the segments the
  customer was in when they got it; a redeemed (and not reversed) coupon is a success.
  A coupon whose window is still open counts for the elapsed share of its window.
  Exposures may be weighted down with age (a half-life) so recent seasons weigh more.
* Rates are smoothed toward the level above them (m-estimates):
  merchant rate ← template rate ← template × segment value, so a template never
  redeemed by a segment still has its template's rate as a prior, and evidence moves
  it. The segment values the customer is in combine in log-odds space (each value's
  lift over the template's rate, damped so that correlated habits are not counted in
  full twice).
* The customer's own record on the template's kind, then on the template itself, is
  blended on top (again an m-estimate whose prior is the segment estimate); it is not
  aged, so its counts read as whole coupons.
* The score is the estimated probability that the customer redeems a coupon of the
  template if given one, as a :class:`~decimal.Decimal` with 4 places; ties are broken
  by the template's creation time, then its id. The reason is the largest positive
  contribution (own record, or one segment value), or their own record when it pulls
  the score down more than anything lifts it, else the template's overall rate;
  a customer with no history gets the cold-start ranking (the rates of customers who
  had none either).

Everything here is pure: the caller (``hub.services.recommendations``, ``bench``)
gives the facts and the clock; the same facts give the same ranking.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

FEATURES: Final = ("store", "mode", "kind", "spend", "recency")
OFFLINE_CHANNELS: Final = frozenset({"pos"})
KIND_ORDER: Final = ("threshold", "percentage", "exchange")
KIND_LABELS: Final = {
    "threshold": "满减 spend-and-save",
    "percentage": "折扣 percent-off",
    "exchange": "兑换 free-item",
}
SPEND_BANDS: Final = ((5000, "low"), (15000, "mid"))  # mean order below N fen; else "high"
RECENCY_BANDS: Final = ((14, "active"), (45, "lapsing"))  # days since last order; else "lapsed"
NO_HISTORY: Final = "never"  # the recency of a customer who never ordered

EPS: Final = 1e-6
PLACES: Final = Decimal("0.0001")

REASON_CODES: Final = (
    "own_template",  # redeemed this template's coupons before
    "own_kind",  # redeems coupons of this kind often
    "segment_store",
    "segment_mode",
    "segment_kind",
    "segment_spend",
    "segment_recency",
    "own_unused",  # ranked down: they left coupons of this kind unused
    "popular",  # no habit stands out: the template's own rate
    "cold_start",  # no history: the most redeemed by customers without history
)


@dataclass(frozen=True)
class Params:
    """Smoothing strengths (pseudo-exposures: how much evidence it takes to move a rate
    halfway from its prior) and the damping of combined segment lifts."""

    m_template: float = 10.0  # template rate toward the merchant's
    m_segment: float = 10.0  # template × segment value toward the template's
    m_own: float = 1.0  # the customer's own record toward the segment estimate
    damping: float = 1.0  # share of each segment value's lift (log-odds) that counts


# --- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateInfo:
    """A template as the recommender sees it. ``active``: its status is active, stock is
    left and its window has not closed (the caller judges it at its clock)."""

    id: str
    name: str
    kind: str
    created_at: datetime
    active: bool = True
    per_customer_limit: int | None = None


@dataclass(frozen=True)
class CouponFact:
    """A coupon a customer got (issued to them, claimed or accepted) and what became of
    it: ``redeemed_at`` set for a redemption that stands (not reversed)."""

    customer: str
    template_id: str
    got_at: datetime
    valid_from: datetime
    valid_until: datetime
    redeemed_at: datetime | None = None
    store: str | None = None  # where it was redeemed
    channel: str | None = None  # the channel it was redeemed on
    order_id: str | None = None
    order_amount: int | None = None  # fen


@dataclass(frozen=True)
class OrderFact:
    """An order a customer placed (reported sales; a redemption's order counts too)."""

    customer: str
    store: str
    channel: str
    amount: int  # fen
    occurred_at: datetime
    order_id: str | None = None


@dataclass(frozen=True)
class Holding:
    """What a customer holds of a template now: ``count`` coupons in all (the
    per-customer limit counts them), ``unused`` true when one is still usable."""

    count: int = 0
    unused: bool = False


@dataclass(frozen=True)
class Profile:
    """A customer's habits at a moment (None: not known)."""

    store: str | None = None
    mode: str | None = None  # offline | online
    kind: str | None = None
    spend: str | None = None  # low | mid | high
    recency: str = NO_HISTORY  # active | lapsing | lapsed | never

    def value(self, feature: str) -> str | None:
        found: str | None = getattr(self, feature)
        return found


@dataclass
class _Habits:
    """Running habit counters of one customer (fed in time order)."""

    stores: Counter[str] = field(default_factory=Counter)
    offline: int = 0
    online: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    amount_sum: int = 0
    orders: int = 0
    last_order: datetime | None = None
    seen_orders: set[str] = field(default_factory=set)

    def order(self, store: str, channel: str, amount: int, at: datetime, key: str | None) -> None:
        if key is not None:
            if key in self.seen_orders:
                return
            self.seen_orders.add(key)
        self.stores[store] += 1
        if channel in OFFLINE_CHANNELS:
            self.offline += 1
        else:
            self.online += 1
        self.amount_sum += amount
        self.orders += 1
        if self.last_order is None or at > self.last_order:
            self.last_order = at

    def profile(self, now: datetime) -> Profile:
        if not self.orders:
            return Profile(kind=_top(self.kinds, KIND_ORDER))
        mean = self.amount_sum // self.orders
        spend = next((band for limit, band in SPEND_BANDS if mean < limit), "high")
        assert self.last_order is not None
        days = (now - self.last_order) / timedelta(days=1)
        recency = next((band for limit, band in RECENCY_BANDS if days <= limit), "lapsed")
        return Profile(
            store=_top(self.stores, ()),
            mode="offline" if self.offline >= self.online else "online",
            kind=_top(self.kinds, KIND_ORDER),
            spend=spend,
            recency=recency,
        )


def _top(counts: Mapping[str, int], order: Sequence[str]) -> str | None:
    """The most counted key; ties go to the first in ``order`` (then by name)."""
    if not counts:
        return None
    if len(counts) == 1:
        return next(iter(counts))
    rank = {k: i for i, k in enumerate(order)}
    return min(counts, key=lambda k: (-counts[k], rank.get(k, len(rank)), k))


# --- the fitted model -------------------------------------------------------------------------


@dataclass
class Model:
    """Exposure and redemption weights, and each customer's habits at ``fitted_at``."""

    fitted_at: datetime
    templates: dict[str, TemplateInfo]
    exposures: int  # coupons counted
    total: list[float]  # [exposure, redeemed] over every template
    per_template: dict[str, list[float]]
    per_segment: dict[tuple[str, str, str], list[float]]  # (template, feature, value)
    profiles: dict[str, Profile]
    own_kind: dict[tuple[str, str], list[float]]  # (customer, kind)
    own_template: dict[tuple[str, str], list[float]]  # (customer, template)
    params: Params = field(default_factory=Params)

    def merchant_rate(self) -> float:
        n, r = self.total
        return (r + 1.0) / (n + 2.0)  # Laplace: 1/2 with no data

    def template_rate(self, template_id: str) -> float:
        n, r = self.per_template.get(template_id, (0.0, 0.0))
        m = self.params.m_template
        return (r + m * self.merchant_rate()) / (n + m)

    def segment_rate(self, template_id: str, feature: str, value: str) -> float:
        n, r = self.per_segment.get((template_id, feature, value), (0.0, 0.0))
        m = self.params.m_segment
        return (r + m * self.template_rate(template_id)) / (n + m)

    def profile(self, customer: str) -> Profile:
        return self.profiles.get(customer, Profile())

    def knows(self, customer: str) -> bool:
        """True when the customer had any coupon or order before ``fitted_at``."""
        return customer in self.profiles


def _exposure(c: CouponFact, now: datetime) -> tuple[float, float]:
    """(exposure, success) of one coupon at ``now``: a redeemed or closed coupon counts
    whole; an open one for the share of its window that has passed."""
    if c.redeemed_at is not None and c.redeemed_at <= now:
        return 1.0, 1.0
    if c.valid_until <= now:
        return 1.0, 0.0
    span = (c.valid_until - c.valid_from).total_seconds()
    done = (now - max(c.valid_from, c.got_at)).total_seconds()
    if span <= 0 or done <= 0:
        return 0.0, 0.0
    return min(1.0, done / span), 0.0


def fit(
    templates: Iterable[TemplateInfo],
    coupons: Iterable[CouponFact],
    orders: Iterable[OrderFact],
    now: datetime,
    *,
    half_life_days: float | None = None,
    params: Params | None = None,
) -> Model:
    """Count every coupon got before ``now`` against its template and the segments its
    customer was in when they got it (facts after ``now`` are ignored)."""
    tmap = {t.id: t for t in templates}
    events: dict[str, list[tuple[datetime, int, int, object]]] = defaultdict(list)
    # order at equal times: a coupon got sees only what happened before it
    for i, c in enumerate(coupons):
        if c.got_at > now or c.template_id not in tmap:
            continue
        events[c.customer].append((c.got_at, 0, i, c))
        if c.redeemed_at is not None and c.redeemed_at <= now:
            events[c.customer].append((c.redeemed_at, 1, i, c))
    for i, o in enumerate(orders):
        if o.occurred_at <= now:
            events[o.customer].append((o.occurred_at, 2, i, o))
    total = [0.0, 0.0]
    per_template: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    per_segment: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    own_kind: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    own_template: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    profiles: dict[str, Profile] = {}
    counted = 0
    for customer in sorted(events):
        habits = _Habits()
        for at, what, _, fact in sorted(events[customer], key=lambda e: e[:3]):
            if what == 2:
                assert isinstance(fact, OrderFact)
                habits.order(fact.store, fact.channel, fact.amount, at, fact.order_id)
                continue
            assert isinstance(fact, CouponFact)
            kind = tmap[fact.template_id].kind
            if what == 1:
                habits.kinds[kind] += 1
                if fact.store is not None:
                    habits.order(
                        fact.store, fact.channel or "pos", fact.order_amount or 0, at,
                        fact.order_id,
                    )
                continue
            n, r = _exposure(fact, now)
            if n <= 0.0:
                continue
            counted += 1
            for bucket in (own_kind[(customer, kind)], own_template[(customer, fact.template_id)]):
                bucket[0] += n  # the customer's own record: not aged (it is short)
                bucket[1] += r
            if half_life_days:
                decay = 0.5 ** (((now - at) / timedelta(days=1)) / half_life_days)
                n, r = n * decay, r * decay
            profile = habits.profile(at)
            for bucket in (total, per_template[fact.template_id]):
                bucket[0] += n
                bucket[1] += r
            for feature in FEATURES:
                value = profile.value(feature)
                if value is not None:
                    seg = per_segment[(fact.template_id, feature, value)]
                    seg[0] += n
                    seg[1] += r
        profiles[customer] = habits.profile(now)
    return Model(
        fitted_at=now,
        templates=tmap,
        exposures=counted,
        total=total,
        per_template=dict(per_template),
        per_segment=dict(per_segment),
        profiles=profiles,
        own_kind=dict(own_kind),
        own_template=dict(own_template),
        params=params or Params(),
    )


# --- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    template_id: str
    template_name: str
    kind: str
    score: Decimal  # estimated chance of a redemption if given, 4 places
    reason_code: str
    reason: str


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pct(p: float) -> str:
    return f"{round(p * 100)}%"


def _segment_text(feature: str, value: str, p: float) -> str:
    who = {
        "store": f"customers who shop at {value}",
        "mode": f"{value} shoppers",
        "kind": f"customers who prefer {KIND_LABELS.get(value, value)} coupons",
        "spend": f"{value} spenders",
        "recency": f"{value} customers" if value != NO_HISTORY else "customers without history",
    }[feature]
    return f"{who} redeem it often ({_pct(p)})"


def score(model: Model, customer: str, template: TemplateInfo) -> tuple[float, str, str]:
    """(probability, reason code, reason text) for ``customer`` and ``template``."""
    t = template.id
    base = model.template_rate(t)
    profile = model.profile(customer)
    if not model.knows(customer):  # nothing known: the cold-start ranking
        p = model.segment_rate(t, "recency", NO_HISTORY)
        if (t, "recency", NO_HISTORY) not in model.per_segment:
            return p, "cold_start", (
                f"no history yet, and no new customer has had it yet (a prior of {_pct(p)})"
            )
        return p, "cold_start", f"no history yet: redeemed by {_pct(p)} of new customers"
    lifts: list[tuple[float, str, str, float]] = []
    for feature in FEATURES:
        value = profile.value(feature)
        if value is None:
            continue
        p = model.segment_rate(t, feature, value)
        lifts.append((_logit(p) - _logit(base), feature, value, p))
    damping, m_own = model.params.damping, model.params.m_own
    seg = _sigmoid(_logit(base) + damping * sum(lift for lift, *_ in lifts))
    n_k, r_k = model.own_kind.get((customer, template.kind), (0.0, 0.0))
    kind_p = (r_k + m_own * seg) / (n_k + m_own)
    n_t, r_t = model.own_template.get((customer, t), (0.0, 0.0))
    final = (r_t + m_own * kind_p) / (n_t + m_own)
    candidates: list[tuple[float, int, str, str]] = []
    own = _logit(final) - _logit(seg)  # what their own record adds (or takes away)
    label = KIND_LABELS.get(template.kind, template.kind)
    if r_t > 0:  # their own record, on this template (and its kind)
        candidates.append((own, 0, "own_template",
                           f"redeemed this coupon before ({_count(r_t)} of {_count(n_t)})"))
    elif r_k > 0:
        candidates.append((own, 1, "own_kind",
                           f"redeems {label} coupons often ({_count(r_k)} of {_count(n_k)})"))
    for i, (lift, feature, value, p) in enumerate(lifts):
        candidates.append((damping * lift, 2 + i, f"segment_{feature}",
                           _segment_text(feature, value, p)))
    best = max(candidates, key=lambda c: (c[0], -c[1]), default=None)
    if own < 0 and (best is None or -own > best[0]):  # their record weighs most: down
        return final, "own_unused", (
            f"left {label} coupons unused ({_count(r_k)} of {_count(n_k)} redeemed)"
        )
    if best is None or best[0] <= 0.0:
        if t not in model.per_template:
            return final, "popular", f"no one has had it yet (a prior of {_pct(base)})"
        return final, "popular", f"redeemed by {_pct(base)} of the customers who got it"
    return final, best[2], best[3]


def _count(x: float) -> str:
    return str(round(x)) if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def quantize(p: float) -> Decimal:
    return Decimal(repr(p)).quantize(PLACES, rounding=ROUND_HALF_EVEN)


def rank(
    model: Model, customer: str, candidates: Iterable[TemplateInfo]
) -> list[Recommendation]:
    """Every candidate with its score, best first; equal scores by creation time, id."""
    scored = []
    for t in candidates:
        p, code, text = score(model, customer, t)
        scored.append((quantize(p), t, code, text))
    scored.sort(key=lambda s: (-s[0], s[1].created_at, s[1].id))
    return [Recommendation(t.id, t.name, t.kind, q, code, text) for q, t, code, text in scored]


def eligible(template: TemplateInfo, holding: Holding) -> bool:
    """The customer may still be given a coupon of ``template``: it is active, they are
    under its per-customer limit and hold no usable coupon of it already."""
    if not template.active or holding.unused:
        return False
    limit = template.per_customer_limit
    return limit is None or holding.count < limit


def recommend(
    model: Model,
    customer: str,
    templates: Iterable[TemplateInfo],
    holdings: Mapping[str, Holding],
    limit: int,
) -> list[Recommendation]:
    """The ``limit`` best templates the customer may still be given."""
    candidates = [t for t in templates if eligible(t, holdings.get(t.id, Holding()))]
    return rank(model, customer, candidates)[: max(limit, 0)]
