"""Recommendations: the coupon templates to push to a customer next, with a score and a
reason (``hub.services.recommendations``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter
from msgspec import Meta, Struct

from hub.api.openapi import ok
from hub.api.responses import problem_docs
from hub.api.state import hub, principal
from hub.services import recommendations as svc

ReasonCode = Literal[
    "own_template", "own_kind", "segment_store", "segment_mode", "segment_kind",
    "segment_spend", "segment_recency", "own_unused", "popular", "cold_start",
]  # fmt: skip  # hub.domain.recommend.REASON_CODES (tests/recommend check)


class RecommendationOut(Struct, kw_only=True):
    rank: int
    template_id: str
    template_name: str
    kind: str
    score: Annotated[
        str,
        Meta(description="estimated chance that the customer redeems a coupon of the "
             "template if given one, decimal string with 4 places (e.g. \"0.4215\")"),
    ]  # fmt: skip
    reason_code: Annotated[ReasonCode, Meta(description="what weighs most in the score")]
    reason: Annotated[str, Meta(description="the reason in words (English)")]


class CustomerProfileOut(Struct, kw_only=True):
    home_store: Annotated[str | None, Meta(description="the store they buy at most")]
    preference: Annotated[
        Literal["offline", "online"] | None,
        Meta(description="offline: most of their orders at the till (pos)"),
    ]
    preferred_kind: Annotated[str | None, Meta(description="the kind they redeemed most")]
    spend_band: Annotated[
        Literal["low", "mid", "high"] | None,
        Meta(description="their mean order: low < 50 yuan ≤ mid < 150 yuan ≤ high"),
    ]
    recency: Annotated[
        Literal["active", "lapsing", "lapsed", "never"],
        Meta(description="days since their last order: active ≤ 14 < lapsing ≤ 45 < lapsed; "
             "never: no order known"),
    ]  # fmt: skip


class ModelOut(Struct, kw_only=True):
    fitted_at: Annotated[str, Meta(description="when the model was fitted (ISO 8601 UTC)")]
    refresh_seconds: Annotated[int, Meta(description="it is fitted again after this long")]
    coupons: Annotated[int, Meta(description="customers' coupons it learned from")]


class RecommendationsOut(Struct, kw_only=True):
    customer: str
    cold_start: Annotated[
        bool, Meta(description="no history known: the ranking of customers without history")
    ]
    profile: CustomerProfileOut
    items: list[RecommendationOut]
    model: ModelOut


class RecommendationController(Controller):
    path = "/v1/customers/{customer:str}/recommendations"
    tags = ["customers"]

    @get(
        "/",
        sync_to_thread=True,
        summary="The coupon templates to push to a customer next, best first, each with a "
        "score and a reason",
        responses={200: ok(RecommendationsOut)} | problem_docs(400, 401, 403, 404, 422),
    )
    def list(
        self,
        request: Request[Any, Any, Any],
        customer: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=svc.MAX_LIMIT)] = 5,
    ) -> dict[str, Any]:
        h = hub(request)
        return svc.recommendations(h.engine, principal(request), customer, h.clock(), limit=limit)
