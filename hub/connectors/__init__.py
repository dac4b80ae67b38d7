"""The connector plugin surface: everything a connector imports from the hub
(docs/architecture.md, "The plugin protocol").

A connector — a built-in under ``connectors/`` or a third-party package — imports only
this package (the names in :data:`__all__`) and the pure rules of ``hub.domain``;
``tests/connectors/test_public_surface.py`` holds both lines. Outbound connectors
subclass :class:`OutboundConnector`, inbound (POS) ones :class:`InboundConnector`::

    from hub.connectors import OutboundConnector, OutboundRequest, Delivered, Retry, Failed

``docs/write-a-connector.md`` is the guide and lists every name; the modules behind it
(``base``, ``outbound``, ``inbound``, ``pos_types``, ``registry``) are private.
"""

from hub.connectors.base import ConnectorBase, config_error, package_schema
from hub.connectors.inbound import (
    OPERATIONS,
    REQUEST_ID_MAX,
    InboundCommand,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    PayloadError,
)
from hub.connectors.outbound import (
    MAX_EXCHANGE_STEPS,
    MAX_RETRY_AFTER,
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
    classify_http,
    header,
    retry_after_seconds,
)
from hub.connectors.pos_types import (
    CODE_MAX,
    FEN_MAX,
    LINES_MAX,
    QTY_MAX,
    STORE_MAX,
    STORE_PATTERN,
    TEXT_MAX,
    Channel,
    Fen,
    LineIn,
    OrderIn,
    RedeemIn,
    ShortText,
    StoreCode,
    UtcTime,
    redeem_command,
)
from hub.connectors.registry import (
    ENTRY_POINT_GROUP,
    AnyConnector,
    broken_connectors,
    get_connector,
    load_connectors,
)

__all__ = [
    "CODE_MAX",
    "ENTRY_POINT_GROUP",
    "FEN_MAX",
    "LINES_MAX",
    "MAX_EXCHANGE_STEPS",
    "MAX_RETRY_AFTER",
    "OPERATIONS",
    "QTY_MAX",
    "REQUEST_ID_MAX",
    "STORE_MAX",
    "STORE_PATTERN",
    "TEXT_MAX",
    "AnyConnector",
    "Channel",
    "ConnectorBase",
    "Delivered",
    "Exchange",
    "Failed",
    "Fen",
    "InboundCommand",
    "InboundConnector",
    "InboundReply",
    "InboundResult",
    "LineIn",
    "Operation",
    "OrderIn",
    "OutboundConnector",
    "OutboundRequest",
    "OutboundResponse",
    "Outcome",
    "PayloadError",
    "RedeemIn",
    "Retry",
    "Session",
    "ShortText",
    "StoreCode",
    "UtcTime",
    "broken_connectors",
    "classify_http",
    "config_error",
    "get_connector",
    "header",
    "load_connectors",
    "package_schema",
    "redeem_command",
    "retry_after_seconds",
]
