"""``GET /v1/analytics/...``: the figures the dashboard reads, from the rollups
(``hub/services/analytics.py`` defines each figure). Admin and analyst keys (an analyst
limited to stores: those stores), store keys (their own store)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter
from msgspec import Struct

from hub.api.openapi import ok
from hub.api.responses import problem_docs
from hub.api.state import hub, principal
from hub.services import analytics as svc

Rate = str | None  # a decimal with 4 places, e.g. "0.4215"; null when undefined

From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="First local date (YYYY-MM-DD, inclusive); default: 29 days before `to`",
        format="date",
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        name="to", description="Last local date (YYYY-MM-DD, inclusive); default: today",
        format="date",
    ),
]
Store = Annotated[str | None, QueryParameter(description="A store code")]
ChannelParam = Annotated[
    str | None,
    QueryParameter(
        description="pos, mini_program, h5, app, web, or online (all but pos) / offline (pos)"
    ),
]
Template = Annotated[str | None, QueryParameter(description="A template id (tpl_…)")]
Kind = Annotated[str | None, QueryParameter(description="threshold, percentage or exchange")]


class _Envelope(Struct, rename={"from_": "from"}):
    timezone: str
    from_: str
    to: str
    as_of: str
    lag_seconds: int


class RateWithin(Struct):
    days: int
    rate: Rate


class TimeToRedeem(Struct):
    median: int | None
    p90: int | None


class SummaryFigures(Struct):
    issued: int
    claimed: int
    redeemed: int
    reversed: int
    net_redeemed: int
    redemption_rate: Rate
    redemption_rate_within: RateWithin
    discount: int
    order_amount: int
    average_order_with_coupon: int | None
    average_order_without_coupon: int | None
    repeat_purchase_rate: Rate
    repeat_within_days: int
    time_to_redeem_days: TimeToRedeem


class SummaryOut(_Envelope, kw_only=True):
    figures: SummaryFigures


class SeriesPoint(Struct):
    period: str
    issued: int
    claimed: int
    redeemed: int
    reversed: int
    net_redeemed: int
    discount: int
    order_amount: int


class SeriesOut(_Envelope, kw_only=True):
    group: Literal["day", "week", "month"]
    points: list[SeriesPoint]


class BreakdownRow(Struct):
    key: str
    label: str
    issued: int | None  # null for stores: coupons are issued to no store
    claimed: int | None
    redeemed: int
    reversed: int
    net_redeemed: int
    discount: int
    order_amount: int
    redemption_rate: Rate


class BreakdownOut(_Envelope, kw_only=True):
    by: Literal["store", "channel", "online", "template", "kind"]
    rows: list[BreakdownRow]


class MerchantAverage(Struct):
    net_redeemed: str | None
    discount: str | None
    redemption_rate: str | None


class LeagueRow(Struct):
    rank: int
    store: str
    name: str
    net_redeemed: int
    discount: int
    order_amount: int
    redemption_rate: Rate
    lagging: bool
    reason: str | None


class LeagueOut(_Envelope, kw_only=True):
    margin: str
    merchant_average: MerchantAverage
    rows: list[LeagueRow]


class FunnelStep(Struct):
    step: Literal["issued", "claimed", "redeemed"]
    count: int
    rate_from_previous: Rate
    rate_from_first: Rate


class FunnelOut(_Envelope, kw_only=True):
    steps: list[FunnelStep]


class ExpiringRow(Struct):
    day: str
    template_id: str
    template_name: str
    coupons: int


class ExpiringOut(_Envelope, kw_only=True):
    days: int
    rows: list[ExpiringRow]
    total: int


def _filters(
    start: str | None, end: str | None, store: str | None, channel: str | None,
    template: str | None, kind: str | None,
) -> dict[str, str | None]:  # fmt: skip
    return {
        "start": start, "end": end, "store": store, "channel": channel,
        "template": template, "kind": kind,
    }  # fmt: skip


_PROBLEMS = problem_docs(401, 403, 404, 422)


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]

    @get(
        "/summary",
        sync_to_thread=True,
        summary="Headline figures for a range of local days (see the README's definitions)",
        responses={200: ok(SummaryOut)} | _PROBLEMS,
    )
    def summary(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
        within_days: Annotated[str | None, QueryParameter(
            description="N of the redemption rate within N days (1-366, default 7)")] = None,
        repeat_days: Annotated[str | None, QueryParameter(
            description="N of the repeat purchase within N days (1-366, default 30)")] = None,
    ) -> SummaryOut:  # fmt: skip
        h = hub(request)
        out = svc.summary(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind), within_days, repeat_days,
        )  # fmt: skip
        return msgspec.convert(out, SummaryOut)

    @get(
        "/series",
        sync_to_thread=True,
        summary="Activity figures per local day, ISO week or month (every period of the "
        "range, zeros included)",
        responses={200: ok(SeriesOut)} | _PROBLEMS,
    )
    def series(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
        group: Annotated[str | None, QueryParameter(description="day (default), week or month")]
        = None,
    ) -> SeriesOut:  # fmt: skip
        h = hub(request)
        out = svc.series(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind), group,
        )  # fmt: skip
        return msgspec.convert(out, SeriesOut)

    @get(
        "/breakdown",
        sync_to_thread=True,
        summary="Figures by store, channel, online/offline, template or template kind",
        responses={200: ok(BreakdownOut)} | _PROBLEMS,
    )
    def breakdown(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
        by: Annotated[str | None, QueryParameter(
            description="store, channel, online, template or kind")] = None,
    ) -> BreakdownOut:  # fmt: skip
        h = hub(request)
        out = svc.breakdown(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind), by,
        )  # fmt: skip
        return msgspec.convert(out, BreakdownOut)

    @get(
        "/stores/league",
        sync_to_thread=True,
        summary="Stores ranked by net redemptions; a store lags when a figure is below the "
        "stores' average by more than the margin",
        responses={200: ok(LeagueOut)} | _PROBLEMS,
    )
    def league(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
        margin: Annotated[str | None, QueryParameter(
            description="fraction of the average (0-0.99, default 0.2)")] = None,
    ) -> LeagueOut:  # fmt: skip
        h = hub(request)
        out = svc.league(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind), margin,
        )  # fmt: skip
        return msgspec.convert(out, LeagueOut)

    @get(
        "/funnel",
        sync_to_thread=True,
        summary="Coupons issued in the range, how many were claimed and how many redeemed",
        responses={200: ok(FunnelOut)} | _PROBLEMS,
    )
    def funnel(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
    ) -> FunnelOut:  # fmt: skip
        h = hub(request)
        out = svc.funnel(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind),
        )  # fmt: skip
        return msgspec.convert(out, FunnelOut)

    @get(
        "/expiring",
        sync_to_thread=True,
        summary="Claimed, unredeemed coupons whose last usable local day is within the "
        "next N days (today included)",
        responses={200: ok(ExpiringOut)} | _PROBLEMS,
    )
    def expiring(
        self, request: Request[Any, Any, Any], start: From = None, end: To = None,
        store: Store = None, channel: ChannelParam = None, template: Template = None,
        kind: Kind = None,
        days: Annotated[str | None, QueryParameter(description="N (1-90, default 7)")] = None,
    ) -> ExpiringOut:  # fmt: skip
        h = hub(request)
        out = svc.expiring(
            h.engine, principal(request), h.clock(),
            _filters(start, end, store, channel, template, kind), days,
        )  # fmt: skip
        return msgspec.convert(out, ExpiringOut)
