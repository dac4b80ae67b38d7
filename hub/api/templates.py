"""Coupon templates and issuing."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from hub.api.dto import IssueIn, IssueOut, TemplateIn, TemplateList, TemplateOut
from hub.api.openapi import ok
from hub.api.state import hub, principal
from hub.api.strict import Strict
from hub.services import issuing

ISSUE_MAX_BODY = 2 * 1024 * 1024  # 10,000 customer ids fit comfortably


class TemplateController(Controller):
    path = "/v1/templates"
    tags = ["templates"]

    @post(
        "/",
        sync_to_thread=True,
        summary="Create a coupon template",
        responses={201: ok(TemplateOut)},
        dto=Strict[TemplateIn],
        return_dto=None,
    )
    def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[TemplateIn],
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.create_template(
            h.engine, principal(request), data.name, data.spec(), h.clock()
        )

    @get(
        "/",
        sync_to_thread=True,
        summary="List templates",
        responses={200: ok(TemplateList)},
    )
    def list(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"items": issuing.list_templates(hub(request).engine, principal(request))}

    @get(
        "/{template_id:str}",
        sync_to_thread=True,
        summary="One template",
        responses={200: ok(TemplateOut)},
    )
    def get_one(
        self, request: Request[Any, Any, Any], template_id: FromPath[str]
    ) -> dict[str, Any]:
        return issuing.get_template(hub(request).engine, principal(request), template_id)

    @post(
        "/{template_id:str}/pause",
        sync_to_thread=True,
        status_code=200,
        summary="Stop issuing (issued coupons stay usable)",
        responses={200: ok(TemplateOut)},
    )
    def pause(self, request: Request[Any, Any, Any], template_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        return issuing.set_template_status(
            h.engine, principal(request), template_id, "paused", h.clock()
        )

    @post(
        "/{template_id:str}/resume",
        sync_to_thread=True,
        status_code=200,
        summary="Resume issuing",
        responses={200: ok(TemplateOut)},
    )
    def resume(self, request: Request[Any, Any, Any], template_id: FromPath[str]) -> dict[str, Any]:
        h = hub(request)
        return issuing.set_template_status(
            h.engine, principal(request), template_id, "active", h.clock()
        )

    @post(
        "/{template_id:str}/coupons",
        sync_to_thread=True,
        status_code=201,
        request_max_body_size=ISSUE_MAX_BODY,
        summary="Issue coupons: count unassigned, or one per customer (≤ 10,000)",
        responses={201: ok(IssueOut)},
        dto=Strict[IssueIn],
        return_dto=None,
    )
    def issue(
        self,
        request: Request[Any, Any, Any],
        template_id: FromPath[str],
        data: JSONBody[IssueIn],
    ) -> dict[str, Any]:
        h = hub(request)
        return issuing.issue_coupons(
            h.engine,
            principal(request),
            template_id,
            count=data.count,
            customer_external_ids=data.customers,
            channel=data.channel,
            now=h.clock(),
        )
