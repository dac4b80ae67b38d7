"""The litestar application."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from sqlalchemy import Engine

from hub.api.auth import ApiKeyMiddleware
from hub.api.catalog import CatalogController
from hub.api.coupons import CouponController
from hub.api.dashboard import DashboardAccessController, dashboard, dashboard_asset
from hub.api.errors import EXCEPTION_HANDLERS
from hub.api.events import EventsController
from hub.api.hardening import (
    DEFAULT_MAX_BODY,
    HardeningMiddleware,
    HubRequest,
    cors_config,
    document_problems,
    security_headers,
)
from hub.api.metrics import RequestMetrics, check_multiprocess_dir
from hub.api.openapi import allow_every_method, allow_header_map, assets_router, openapi_config
from hub.api.ops import health, metrics, ready
from hub.api.redemptions import RedemptionController
from hub.api.staff_page import staff_asset, staff_page
from hub.api.state import HubState, utcnow
from hub.api.strict import raw_body
from hub.services.settings import Settings


def create_app(
    engine: Engine, settings: Settings | None = None, clock: Callable[[], datetime] = utcnow
) -> Litestar:
    from hub.api.alerts import AlertController
    from hub.api.analytics import AnalyticsController
    from hub.api.audit import AuditController
    from hub.api.campaigns import CampaignController
    from hub.api.exports import ExportController
    from hub.api.keys import KeyController
    from hub.api.offline import CouponTokenController, OfflineController
    from hub.api.orders import OrderController
    from hub.api.pos import PosController
    from hub.api.quote import QuoteController
    from hub.api.recommendations import RecommendationController
    from hub.api.reservations import ReservationController
    from hub.api.sales import SalesController
    from hub.api.scan import ScanController
    from hub.api.staff import StaffController
    from hub.api.subscriptions import DeliveryController, SubscriptionController
    from hub.api.sync import SyncController
    from hub.api.templates import TemplateController
    from hub.api.transfers import TransferController
    from hub.api.wallet import WalletController

    state = HubState.for_engine(engine, settings=settings or Settings(), clock=clock)
    app = Litestar(
        route_handlers=[
            health,
            ready,
            metrics,
            RedemptionController,
            CouponController,
            TemplateController,
            CatalogController,
            SubscriptionController,
            DeliveryController,
            EventsController,
            PosController,
            KeyController,
            AuditController,
            AlertController,
            CampaignController,
            WalletController,
            RecommendationController,
            QuoteController,
            TransferController,
            ReservationController,
            OrderController,
            OfflineController,
            CouponTokenController,
            SyncController,
            ScanController,
            StaffController,
            SalesController,
            AnalyticsController,
            ExportController,
            assets_router(),
            dashboard,
            DashboardAccessController,
            dashboard_asset,
            staff_page,
            staff_asset,
        ],
        middleware=[
            HardeningMiddleware,
            DefineMiddleware(ApiKeyMiddleware, state=state),  # PUBLIC_PATHS excepted
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        dependencies={"raw_body": Provide(raw_body)},
        request_max_body_size=DEFAULT_MAX_BODY,  # routes set their own (redeem: 64 KiB)
        request_class=HubRequest,
        before_send=[security_headers, allow_every_method],
        cors_config=cors_config(),
        openapi_config=openapi_config(),
        debug=False,
    )
    app.state.hub = state
    app.on_shutdown.append(_close_hot_path)
    # outermost: every response of every route, 404s and refusals included (hub.api.metrics)
    check_multiprocess_dir()
    app.asgi_handler = RequestMetrics(app.asgi_handler)
    app.state.allow_headers = allow_header_map(app)
    document_problems(app)
    return app


async def _close_hot_path(app: Litestar) -> None:
    """Close the hot path's asyncpg connections (:meth:`hub.api.state.HubState.aclose`)
    of the state the app holds now."""
    state: HubState = app.state.hub
    await state.aclose()
