"""The connector plugin protocol and registry (docs/architecture.md, "The plugin protocol").

Plugin authors import everything from here::

    from hub.connectors import Connector, OutboundRequest, Delivered, Retry, Failed
"""

from hub.connectors.base import Connector, config_error, package_schema
from hub.connectors.inbound import (
    OPERATIONS,
    REQUEST_ID_MAX,
    InboundCommand,
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
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
    classify_http,
    header,
    retry_after_seconds,
)
from hub.connectors.registry import (
    ENTRY_POINT_GROUP,
    broken_connectors,
    get_connector,
    load_connectors,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_EXCHANGE_STEPS",
    "MAX_RETRY_AFTER",
    "OPERATIONS",
    "REQUEST_ID_MAX",
    "Connector",
    "Delivered",
    "Exchange",
    "Failed",
    "InboundCommand",
    "InboundReply",
    "InboundResult",
    "Operation",
    "OutboundRequest",
    "OutboundResponse",
    "Outcome",
    "PayloadError",
    "Retry",
    "Session",
    "broken_connectors",
    "classify_http",
    "config_error",
    "get_connector",
    "header",
    "load_connectors",
    "package_schema",
    "retry_after_seconds",
]
