"""Campaigns customers claim coupons from (领券): by id, or by the claim token a shared
link carries."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from hub.api.client import client_address
from hub.api.dto import (
    CampaignByTokenOut,
    CampaignClaimIn,
    CampaignClaimOut,
    CampaignIn,
    CampaignOut,
)
from hub.api.openapi import ok
from hub.api.params import IdempotencyKey
from hub.api.responses import problem_docs, send, too_many_docs
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import campaigns


class CampaignController(Controller):
    path = "/v1/campaigns"
    tags = ["campaigns"]

    @post(
        "/",
        sync_to_thread=True,
        summary="Create a campaign customers claim coupons of a template from",
        responses={201: ok(CampaignOut)} | problem_docs(400, 401, 403, 404, 422),
        dto=Strict[CampaignIn],
        return_dto=None,
    )
    def create(self, request: Request[Any, Any, Any], data: JSONBody[CampaignIn]) -> dict[str, Any]:
        h = hub(request)
        window = data.daily_window
        spec = campaigns.CampaignSpec(
            template_id=data.template_id,
            name=data.name or "",
            channels=list(data.channels),
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            total=data.total,
            per_customer=data.per_customer,
            daily_start=window.start if window else None,
            daily_end=window.end if window else None,
        )
        return campaigns.create_campaign(h.engine, principal(request), spec, h.clock())

    @get(
        "/by-token/{claim_token:str}",
        sync_to_thread=True,
        summary="A campaign by its claim token, as a customer-facing app shows it: "
        "benefit, window, whether claims are open now and why not, coupons left",
        responses={200: ok(CampaignByTokenOut)} | problem_docs(401, 403, 404) | too_many_docs(),
    )
    def read_by_token(
        self, request: Request[Any, Any, Any], claim_token: FromPath[str]
    ) -> dict[str, Any]:
        h = hub(request)
        return campaigns.get_by_token(
            h.engine, principal(request), claim_token, h.clock(),
            guard=h.settings.guard, client=client_address(request),
        )

    @post(
        "/by-token/{claim_token:str}/claims",
        sync_to_thread=True,
        status_code=201,
        summary="Claim one coupon of the campaign behind a claim token for a customer, "
        "once per Idempotency-Key (as a claim by the campaign's id)",
        responses={201: ok(CampaignClaimOut)}
        | problem_docs(400, 401, 403, 404, 409, 422)
        | too_many_docs(),
        dto=Strict[CampaignClaimIn],
        return_dto=None,
    )
    def claim_by_token(
        self,
        request: Request[Any, Any, Any],
        claim_token: FromPath[str],
        data: JSONBody[CampaignClaimIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        return send(campaigns.claim_by_token(
            h.engine, principal(request), claim_token, data.customer, data.channel,
            idempotency_key, h.clock(),
            operation=f"POST /v1/campaigns/by-token/{claim_token}/claims",
            guard=h.settings.guard, client=client_address(request),
        ))

    @get(
        "/{campaign_id:str}",
        sync_to_thread=True,
        summary="A campaign: its window, limits and how many coupons are left",
        responses={200: ok(CampaignOut)} | problem_docs(401, 403, 404),
    )
    def read(self, request: Request[Any, Any, Any], campaign_id: FromPath[str]) -> dict[str, Any]:
        return campaigns.get_campaign(hub(request).engine, principal(request), campaign_id)

    @post(
        "/{campaign_id:str}/claims",
        sync_to_thread=True,
        status_code=201,
        summary="Claim one coupon of the campaign for a customer, once per Idempotency-Key",
        responses={201: ok(CampaignClaimOut)} | problem_docs(400, 401, 403, 404, 409, 422),
        dto=Strict[CampaignClaimIn],
        return_dto=None,
    )
    def claim(
        self,
        request: Request[Any, Any, Any],
        campaign_id: FromPath[str],
        data: JSONBody[CampaignClaimIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        h = hub(request)
        return send(campaigns.claim(
            h.engine, principal(request), campaign_id, data.customer, data.channel,
            idempotency_key, h.clock(), operation=f"POST /v1/campaigns/{campaign_id}/claims",
        ))
