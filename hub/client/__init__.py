"""The hub's client library for POS vendors (``docs/pos-client.md``).

:class:`HubClient` (blocking) and :class:`AsyncHubClient` (asyncio) call the hub's
redeem API with one Idempotency-Key per intent and retry transient failures with it, and
— given an offline queue file — keep redeeming signed coupon tokens while the hub cannot
be reached, then sync them in order with their original keys and times.

It imports only :mod:`hub.domain` and :mod:`hub.signing` of the project (an
import-linter contract in ``pyproject.toml``), so the offline decision is the hub's own
code, and nothing of the server imports it.
"""

from hub.client.aio import AsyncHubClient
from hub.client.core import RetryPolicy
from hub.client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    HubError,
    HubUnreachable,
    InvalidRequestError,
    NotFoundError,
    OfflineRefused,
    PermissionDeniedError,
    RateLimitError,
    RefusedError,
    ServerError,
)
from hub.client.queue import OfflineQueue
from hub.client.sync import HubClient
from hub.client.types import (
    Coupon,
    KeysDocument,
    OfflineReceipt,
    OrderRedemption,
    QueueItem,
    Quote,
    Redemption,
    Reversal,
    SyncReport,
    Validation,
)
from hub.domain.cart import Line, Order

__all__ = [
    "ApiError",
    "AsyncHubClient",
    "AuthenticationError",
    "ConflictError",
    "Coupon",
    "HubClient",
    "HubError",
    "HubUnreachable",
    "InvalidRequestError",
    "KeysDocument",
    "Line",
    "NotFoundError",
    "OfflineQueue",
    "OfflineReceipt",
    "OfflineRefused",
    "Order",
    "OrderRedemption",
    "PermissionDeniedError",
    "QueueItem",
    "Quote",
    "RateLimitError",
    "Redemption",
    "RefusedError",
    "RetryPolicy",
    "Reversal",
    "ServerError",
    "SyncReport",
    "Validation",
]
