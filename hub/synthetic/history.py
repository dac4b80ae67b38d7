"""A realistic redemption history, generated from the seeds: pure and deterministic.

``generate(seed, ...)`` draws everything from ``random.Random`` instances derived from
``seed`` (no clock, no I/O, no database): the same arguments give the same history.
The history is what a merchant's hub would have recorded over ``days`` days ending at
``end``:

* **customers with habits** — a home store and a second store, preferred channels
  (``pos`` in store, or the online ones of :data:`hub.domain.templates.CHANNELS`),
  preferred coupon kinds (most liked first), a spend band (``low`` / ``mid`` /
  ``high``: what an order comes to), visits per week with a weekly rhythm (weekends
  busier) and a time of day (lunch, evening or any), a day they joined, and for some
  a day they stopped coming (churn);
* **coupons** — pushed directly to customers every week (``direct``) and claimed from
  campaigns that run a week every fortnight through online channels (``claimed_at``
  set, ``campaign`` named); each template's ``per_customer_limit`` holds (counting
  ``held``, what customers already hold), and coupons of a template limited to some
  stores go only to customers whose home or second store is one of them;
* **orders** — each a :class:`Sale` (no coupon used) or a :class:`Redemption` (one
  coupon used). Whether a held coupon is used follows the customer's kind preference;
  a customer who likes a kind tops an order up to a threshold now and then; a store
  in ``lagging`` uses coupons far less (its staff do not ask), so the league table has
  something to show. The discount is :func:`hub.domain.redeeming.check_redeemable`'s
  — the function the redeem service decides with — so every redemption is one the hub
  would grant (window, store, channel, time of day, threshold, product rules);
* **reversals** — about 1.5 % of redemptions are reversed (refunds) minutes to two
  days later; a reversed coupon is not used again.

Invariants (tests/synthetic): a coupon is redeemed at most once, inside its window,
not before it was issued (or claimed), by its holder; amounts are integer fen ≥ 0 and
a discount never exceeds its order; every time is in ``[end - days, end)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.domain.cart import Discount, Line, Order
from hub.domain.codes import ALPHABET, PAYLOAD_LENGTH, check_character
from hub.domain.errors import DomainError
from hub.domain.redeeming import CouponFacts, RedeemContext, check_redeemable
from hub.domain.state import CouponState
from hub.domain.templates import CHANNELS, ExchangeBenefit, Template
from hub.domain.validity import Window, window_for

ONLINE = tuple(c for c in CHANNELS if c != "pos")
SPEND_BANDS = ("low", "mid", "high")
# what an order aims at, fen (a range per band; the basket is built up to it)
_BAND_TARGET = {"low": (2000, 5000), "mid": (5000, 11000), "high": (10000, 26000)}
# visits are busier at weekends: factor by ISO weekday (Mon=1 … Sun=7)
_WEEKDAY = {1: 0.8, 2: 0.85, 3: 0.9, 4: 0.95, 5: 1.15, 6: 1.45, 7: 1.35}
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "超",
          "明", "霞", "平", "刚", "桂英")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    category: str
    price: int  # fen


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer and the habits the history was drawn from."""

    external_id: str
    name: str | None
    phone: str | None
    home_store: str
    second_store: str
    channels: tuple[str, ...]  # the channels they order through, most used first
    channel_weights: tuple[float, ...]  # share of their orders on each of ``channels``
    kinds: tuple[str, ...]  # coupon kinds they like, most liked first
    spend_band: str  # low | mid | high
    visits_per_week: float
    peak: str  # lunch | evening | any: when they come
    joined_at: datetime
    churned_at: datetime | None  # no order at or after it
    seeded: bool  # one of the ``known`` customers (already in the database)


@dataclass(frozen=True, slots=True)
class Campaign:
    """A claim campaign (领券) of the past: open ``starts_at`` … ``ends_at``."""

    key: str
    name: str
    template_key: str
    channels: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    per_customer: int


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    """A coupon given to ``customer``: pushed (``campaign`` None, ``claimed_at`` None)
    or claimed from ``campaign`` (``claimed_at`` == ``issued_at``)."""

    code: str
    customer: str  # external id
    template_key: str
    channel: str
    issued_at: datetime
    claimed_at: datetime | None
    valid_from: datetime
    valid_until: datetime
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class Redemption:
    """A coupon used on an order: ``discount`` as the hub computes it (``detail``)."""

    code: str
    customer: str
    template_key: str
    store_code: str
    channel: str
    order: Order  # id, amount and lines
    discount: int
    detail: Discount
    occurred_at: datetime
    reversed_at: datetime | None = None

    @property
    def order_id(self) -> str:
        return self.order.id

    @property
    def order_amount(self) -> int:
        return self.order.amount


@dataclass(frozen=True, slots=True)
class Sale:
    """An order where no coupon was used."""

    order_id: str
    customer: str
    store_code: str
    channel: str
    amount: int
    occurred_at: datetime


@dataclass(frozen=True)
class History:
    seed: int
    start: datetime
    end: datetime
    lagging: tuple[str, ...]  # the stores that use coupons far less
    customers: tuple[Customer, ...]
    campaigns: tuple[Campaign, ...]
    coupons: tuple[IssuedCoupon, ...]
    redemptions: tuple[Redemption, ...]
    sales: tuple[Sale, ...]


@dataclass(frozen=True)
class Knobs:
    """How busy the history is (defaults: a tea shop; the benchmark turns them up)."""

    push_rate: float = 0.10  # share of active customers a template is pushed to weekly
    claim_rate: tuple[float, float, float] = (0.45, 0.2, 0.07)  # by kind preference rank
    use_rate: tuple[float, float, float] = (0.8, 0.5, 0.22)  # by kind preference rank
    top_up_rate: float = 0.35  # a customer who likes the kind tops an order up
    lag_factor: float = 0.15  # coupon use at a lagging store, relative to the others
    reversal_rate: float = 0.015
    churn_share: float = 0.15
    visits_per_week: tuple[float, float] = (0.4, 3.0)
    campaign_every_days: int = 14
    campaign_days: int = 7


@dataclass
class _Held:
    coupon: IssuedCoupon
    window: Window
    start: datetime  # usable from (max of window start and issue/claim)


@dataclass
class _Run:
    """State of one customer's simulation."""

    rng: random.Random
    wallet: list[_Held] = field(default_factory=list)
    coupons: list[IssuedCoupon] = field(default_factory=list)
    redemptions: list[Redemption] = field(default_factory=list)
    sales: list[Sale] = field(default_factory=list)


def code_from(rng: random.Random) -> str:
    """A well-formed coupon code (check character included) drawn from ``rng``."""
    v = rng.getrandbits(5 * PAYLOAD_LENGTH)
    payload = "".join([ALPHABET[(v >> (5 * i)) & 31] for i in range(PAYLOAD_LENGTH)])
    return payload + check_character(payload)


def _local_at(day: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)


def _hour(rng: random.Random, peak: str) -> int:
    r = rng.random()
    if peak == "lunch" and r < 0.65:
        return rng.randint(11, 13)
    if peak == "evening" and r < 0.65:
        return rng.randint(17, 20)
    return rng.randint(8, 21)


def _make_customers(
    rng: random.Random,
    n: int,
    known: Sequence[tuple[str, str | None, str | None]],
    stores: Sequence[str],
    kinds: Sequence[str],
    start: datetime,
    end: datetime,
    id_prefix: str,
    knobs: Knobs,
) -> list[Customer]:
    out: list[Customer] = []
    span = (end - start).total_seconds()
    # uneven store popularity: the first stores draw more home customers
    store_weights = [1.0 / (1 + 0.35 * i) for i in range(len(stores))]
    for i in range(n):
        if i < len(known):
            ext, name, phone = known[i]
            seeded = True
            joined = start
        else:
            ext = f"{id_prefix}{i - len(known) + 1:06d}"
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
            phone = f"139{rng.randrange(10**8):08d}"
            seeded = False
            # most customers are there from the start; the rest join over the period
            joined = start if rng.random() < 0.6 else start + timedelta(
                seconds=rng.random() * span * 0.8
            )
        home = rng.choices(stores, store_weights)[0]
        others = [s for s in stores if s != home] or [home]
        second = rng.choice(others)
        style = rng.random()
        channels: tuple[str, ...]
        weights: tuple[float, ...]
        online = list(ONLINE)
        rng.shuffle(online)
        if style < 0.5:  # in store only
            channels, weights = ("pos",), (1.0,)
        elif style < 0.85:  # mostly in store, one online channel
            channels, weights = ("pos", online[0]), (0.7, 0.3)
        else:  # mostly online
            channels, weights = (online[0], online[1], "pos"), (0.6, 0.25, 0.15)
        liked = list(kinds)
        rng.shuffle(liked)
        band = rng.choices(SPEND_BANDS, (0.45, 0.4, 0.15))[0]
        lo, hi = knobs.visits_per_week
        visits = round(lo + (hi - lo) * rng.random() ** 2, 2)
        peak = rng.choices(("lunch", "evening", "any"), (0.4, 0.35, 0.25))[0]
        churned = None
        if rng.random() < knobs.churn_share:
            churned = joined + (end - joined) * (0.3 + 0.6 * rng.random())
        out.append(
            Customer(
                external_id=ext, name=name, phone=phone, home_store=home, second_store=second,
                channels=channels, channel_weights=weights, kinds=tuple(liked),
                spend_band=band, visits_per_week=visits, peak=peak, joined_at=joined,
                churned_at=churned, seeded=seeded,
            )
        )  # fmt: skip
    return out


def _campaigns(
    templates: Mapping[str, Template], start: datetime, end: datetime, knobs: Knobs, prefix: str
) -> list[Campaign]:
    out: list[Campaign] = []
    for n, (key, t) in enumerate(sorted(templates.items())):
        allowed = [c for c in ("mini_program", "h5", "app") if not t.usage.channels
                   or c in t.usage.channels] or list(t.usage.channels)  # fmt: skip
        at = start + timedelta(days=2 + 3 * n)
        k = 0
        while at < end:
            k += 1
            out.append(
                Campaign(
                    key=f"{prefix}C{n + 1}-{k}", name=f"{key} · 领券 #{k}", template_key=key,
                    channels=tuple(allowed[:2]), starts_at=at,
                    ends_at=min(at + timedelta(days=knobs.campaign_days), end),
                    per_customer=1,
                )
            )  # fmt: skip
            at += timedelta(days=knobs.campaign_every_days)
    return out


@dataclass(frozen=True)
class _Catalog:
    """The products by category, and each band's weights of the categories."""

    cats: tuple[str, ...]
    by_cat: dict[str, tuple[Product, ...]]
    weights: dict[str, tuple[float, ...]]

    @classmethod
    def of(cls, products: Sequence[Product]) -> _Catalog:
        by_cat: dict[str, list[Product]] = {}
        for p in products:
            by_cat.setdefault(p.category, []).append(p)
        cats = tuple(sorted(by_cat))
        weights = {
            band: tuple(6.0 if c == "drinks" else 3.0 if c == "bakery" else (
                1.0 if band == "high" else 0.15) for c in cats)
            for band in SPEND_BANDS
        }  # fmt: skip
        return cls(cats, {c: tuple(v) for c, v in by_cat.items()}, weights)


def _basket(
    rng: random.Random, catalog: _Catalog, band: str, target: int | None = None
) -> list[Line]:
    """Order lines adding up to about the band's target (or ``target``)."""
    lo, hi = _BAND_TARGET[band]
    goal = target if target is not None else rng.randint(lo, hi)
    cats, by_cat, weights = catalog.cats, catalog.by_cat, catalog.weights[band]
    qty: dict[str, int] = {}
    price: dict[str, Product] = {}
    total = 0
    while total < goal and len(qty) < 12:
        p = rng.choice(by_cat[rng.choices(cats, weights)[0]])
        qty[p.sku] = qty.get(p.sku, 0) + 1
        price[p.sku] = p
        total += p.price
    return [Line(sku, q, price[sku].price, price[sku].category) for sku, q in qty.items()]


def _order(oid: str, lines: Sequence[Line]) -> Order:
    return Order(oid, sum(ln.amount for ln in lines), tuple(lines))


def _with_gift(lines: list[Line], t: Template, products: Mapping[str, Product]) -> list[Line]:
    """An exchange coupon's customer puts its SKU in the basket."""
    b = t.benefit
    if not isinstance(b, ExchangeBenefit) or any(ln.sku == b.sku for ln in lines):
        return lines
    p = products.get(b.sku)
    return [*lines, Line(b.sku, b.qty, p.price if p else 1000, p.category if p else None)]


def generate(
    seed: int,
    *,
    customers: int,
    days: int,
    end: datetime,
    stores: Sequence[str],
    templates: Mapping[str, Template],
    products: Sequence[Product],
    tz: ZoneInfo = ZoneInfo("Asia/Shanghai"),
    known: Sequence[tuple[str, str | None, str | None]] = (),
    held: Mapping[tuple[str, str], int] | None = None,
    lagging: Sequence[str] | None = None,
    id_prefix: str = "H",
    knobs: Knobs = Knobs(),
) -> History:
    """The history of ``customers`` customers (``known`` ones first: (external id, name,
    phone) of customers already in the database; then new ones ``{id_prefix}000001`` …)
    over the ``days`` days before ``end``.

    ``templates``: the templates coupons are issued from, by key (the loader's name for
    them); ``held``: coupons customers already hold, by (external id, template key), so
    no one goes over a template's ``per_customer_limit``; ``lagging``: the stores that
    use coupons far less (default: one store drawn from ``stores``, none if only one);
    ``id_prefix`` prefixes new customer ids, order ids and campaign keys (so histories
    generated in chunks with different prefixes never collide)."""
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    if not stores or not templates or not products:
        raise ValueError("stores, templates and products must not be empty")
    end = end.astimezone(UTC)
    start = end - timedelta(days=days)
    master = random.Random(seed)
    kinds = sorted({t.kind for t in templates.values()})
    if lagging is None:
        lagging = (master.choice(list(stores)),) if len(stores) > 1 else ()
    lag = frozenset(lagging)
    people = _make_customers(
        master, customers, known, stores, kinds, start, end, id_prefix, knobs
    )
    camps = _campaigns(templates, start, end, knobs, id_prefix)
    seeds = [master.getrandbits(64) for _ in people]
    by_sku = {p.sku: p for p in products}
    catalog = _Catalog.of(products)
    held = held or {}
    out_coupons: list[IssuedCoupon] = []
    out_redemptions: list[Redemption] = []
    out_sales: list[Sale] = []
    for i, (c, s) in enumerate(zip(people, seeds, strict=True)):
        run = _Run(random.Random(s))
        _simulate(
            run, c, f"{id_prefix}{i + 1:06d}", start, end, tz, stores, templates, catalog,
            by_sku, camps, held, lag, knobs,
        )  # fmt: skip
        out_coupons.extend(run.coupons)
        out_redemptions.extend(run.redemptions)
        out_sales.extend(run.sales)
    out_coupons.sort(key=lambda x: (x.issued_at, x.code))
    out_redemptions.sort(key=lambda x: (x.occurred_at, x.order.id))
    out_sales.sort(key=lambda x: (x.occurred_at, x.order_id))
    return History(
        seed=seed, start=start, end=end, lagging=tuple(sorted(lag)), customers=tuple(people),
        campaigns=tuple(camps), coupons=tuple(out_coupons),
        redemptions=tuple(out_redemptions), sales=tuple(out_sales),
    )  # fmt: skip


def _can_use_somewhere(c: Customer, t: Template) -> bool:
    stores_ok = not t.usage.stores or bool({c.home_store, c.second_store} & t.usage.stores)
    channels_ok = not t.usage.channels or bool(set(c.channels) & t.usage.channels)
    return stores_ok and channels_ok


def _rank(c: Customer, t: Template) -> int:
    return c.kinds.index(t.kind) if t.kind in c.kinds else len(c.kinds) - 1


def _issuances(
    run: _Run,
    c: Customer,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    templates: Mapping[str, Template],
    camps: Sequence[Campaign],
    held: Mapping[tuple[str, str], int],
    knobs: Knobs,
) -> list[tuple[datetime, str, str, str | None]]:
    """(time, template key, channel, campaign key) of each coupon the customer gets."""
    rng = run.rng
    last = c.churned_at or end
    got: list[tuple[datetime, str, str, str | None]] = []
    # weekly pushes: Monday 10:00-11:59 local, every template, to a share of customers
    day = start.astimezone(tz).date()
    day += timedelta(days=(7 - day.weekday()) % 7)
    while True:
        for key in sorted(templates):
            t = templates[key]
            at = _local_at(day, 10 + rng.randrange(2), rng.randrange(60), tz)
            pushed = rng.random() < knobs.push_rate and start <= at < last
            if pushed and c.joined_at <= at and _can_use_somewhere(c, t):
                push_channel = "app" if not t.usage.channels or "app" in t.usage.channels \
                    else sorted(t.usage.channels)[0]  # fmt: skip
                got.append((at, key, push_channel, None))
        day += timedelta(days=7)
        if _local_at(day, 0, 0, tz) >= end:
            break
    online = [ch for ch in c.channels if ch != "pos"]
    for camp in camps:
        t = templates[camp.template_key]
        if not _can_use_somewhere(c, t):
            continue
        p = knobs.claim_rate[min(_rank(c, t), 2)]
        if not online:
            p *= 0.15
        if rng.random() >= p:
            continue
        lo = max(camp.starts_at, c.joined_at)
        hi = min(camp.ends_at, last)
        if hi <= lo:
            continue
        at = lo + (hi - lo) * rng.random()
        ch = next((x for x in online if x in camp.channels), camp.channels[0])
        got.append((at, camp.template_key, ch, camp.key))
    got.sort(key=lambda g: g[0])
    # per-customer limits (counting what the customer already holds)
    count: dict[str, int] = {}
    kept = []
    for g in got:
        limit = templates[g[1]].per_customer_limit
        n = count.get(g[1], held.get((c.external_id, g[1]), 0))
        if limit is not None and n >= limit:
            continue
        count[g[1]] = n + 1
        kept.append(g)
    return kept


def _visit_times(run: _Run, c: Customer, start: datetime, end: datetime, tz: ZoneInfo) -> list[
    datetime
]:
    rng = run.rng
    out: list[datetime] = []
    first = max(start, c.joined_at).astimezone(tz).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    stop = c.churned_at or end
    day = first
    base = c.visits_per_week / 7
    while day <= last_day:
        p = base * _WEEKDAY[day.isoweekday()]
        n = 1 if rng.random() < p else 0
        if n and rng.random() < p * 0.25:
            n = 2
        for _ in range(n):
            at = _local_at(day, _hour(rng, c.peak), rng.randrange(60), tz) + timedelta(
                seconds=rng.randrange(60)
            )
            if max(start, c.joined_at) <= at < min(stop, end):
                out.append(at)
        day += timedelta(days=1)
    out.sort()
    return out


def _simulate(
    run: _Run,
    c: Customer,
    oid_prefix: str,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    stores: Sequence[str],
    templates: Mapping[str, Template],
    catalog: _Catalog,
    by_sku: Mapping[str, Product],
    camps: Sequence[Campaign],
    held: Mapping[tuple[str, str], int],
    lag: frozenset[str],
    knobs: Knobs,
) -> None:
    rng = run.rng
    gifts = _issuances(run, c, start, end, tz, templates, camps, held, knobs)
    visits = _visit_times(run, c, start, end, tz)
    gi = 0
    for n_order, at in enumerate(visits, 1):
        while gi < len(gifts) and gifts[gi][0] <= at:
            g_at, key, ch, camp = gifts[gi]
            gi += 1
            window = window_for(templates[key].validity, g_at, tz)
            coupon = IssuedCoupon(
                code=code_from(rng), customer=c.external_id, template_key=key, channel=ch,
                issued_at=g_at, claimed_at=g_at if camp else None, valid_from=window.start,
                valid_until=window.end, campaign=camp,
            )  # fmt: skip
            run.coupons.append(coupon)
            run.wallet.append(_Held(coupon, window, max(window.start, g_at)))
        _one_order(run, c, f"{oid_prefix}-{n_order:05d}", at, end, tz, stores, templates,
                   catalog, by_sku, lag, knobs)  # fmt: skip
    for g_at, key, ch, camp in gifts[gi:]:  # coupons received after the last visit
        window = window_for(templates[key].validity, g_at, tz)
        run.coupons.append(
            IssuedCoupon(
                code=code_from(rng), customer=c.external_id, template_key=key, channel=ch,
                issued_at=g_at, claimed_at=g_at if camp else None, valid_from=window.start,
                valid_until=window.end, campaign=camp,
            )
        )  # fmt: skip


def _one_order(
    run: _Run,
    c: Customer,
    oid: str,
    at: datetime,
    end: datetime,
    tz: ZoneInfo,
    stores: Sequence[str],
    templates: Mapping[str, Template],
    catalog: _Catalog,
    by_sku: Mapping[str, Product],
    lag: frozenset[str],
    knobs: Knobs,
) -> None:
    rng = run.rng
    channel = rng.choices(c.channels, c.channel_weights)[0]
    if channel == "pos":
        r = rng.random()
        store = c.home_store if r < 0.72 else c.second_store if r < 0.92 else rng.choice(stores)
    else:
        store = c.home_store  # online orders are fulfilled by the home store
    lines = _basket(rng, catalog, c.spend_band)
    run.wallet = [h for h in run.wallet if h.window.end > at]
    ctx = RedeemContext(store, channel, at, tz)
    factor = knobs.lag_factor if store in lag else 1.0
    # the coupon they would use: the liked kinds first, then the soonest to expire
    candidates = sorted(run.wallet, key=lambda h: (_rank(c, templates[h.coupon.template_key]),
                                                   h.window.end))  # fmt: skip
    for h in candidates:
        if h.start > at:
            continue
        t = templates[h.coupon.template_key]
        rank = min(_rank(c, t), 2)
        if rng.random() >= knobs.use_rate[rank] * factor:
            continue
        trial = _with_gift(lines, t, by_sku)
        facts = CouponFacts(CouponState.ISSUED, h.window, t)
        try:
            d = check_redeemable(facts, ctx, _order(oid, trial))
        except DomainError as err:
            if err.code != "threshold_not_met" or rank > 0 or rng.random() >= knobs.top_up_rate:
                continue
            need = getattr(t.benefit, "threshold", 0)
            trial = trial + _basket(rng, catalog, c.spend_band, need - sum(
                ln.amount for ln in trial))  # fmt: skip
            trial = _merge(trial)
            try:
                d = check_redeemable(facts, ctx, _order(oid, trial))
            except DomainError:
                continue
        if d.total <= 0:
            continue
        order = _order(oid, trial)
        reversed_at = None
        if rng.random() < knobs.reversal_rate:
            later = at + timedelta(minutes=5 + rng.random() * 2 * 24 * 60)
            reversed_at = later if later < end else None
        run.redemptions.append(
            Redemption(
                code=h.coupon.code, customer=c.external_id, template_key=h.coupon.template_key,
                store_code=store, channel=channel, order=order, discount=d.total, detail=d,
                occurred_at=at, reversed_at=reversed_at,
            )
        )  # fmt: skip
        run.wallet.remove(h)
        return
    run.sales.append(Sale(oid, c.external_id, store, channel, sum(ln.amount for ln in lines), at))


def _merge(lines: Sequence[Line]) -> list[Line]:
    """Lines of the same SKU as one line."""
    out: dict[str, Line] = {}
    for ln in lines:
        prev = out.get(ln.sku)
        out[ln.sku] = ln if prev is None else Line(ln.sku, prev.qty + ln.qty, ln.unit_price,
                                                   ln.category)  # fmt: skip
    return list(out.values())
