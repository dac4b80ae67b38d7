"""crm.csv — an example third-party connector for Redemption Hub.

A (fictional) CRM imports loyalty points as CSV over HTTP: one ``POST`` with a header
row and one line per points change. This package lives outside the hub's tree and is
found only through its ``hub.connectors`` entry point (see ``pyproject.toml``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from hub.connectors import (
    Delivered,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    classify_http,
    package_schema,
)

COLUMNS = ("event_id", "member", "points", "reason", "occurred_at")


def points(event: dict[str, Any], per_yuan: int) -> int:
    """Points for a redemption: ``per_yuan`` per whole yuan paid; a reversal takes them back."""
    data = event["data"]
    paid = data["order"]["amount"] - data["discount"]
    earned = (paid // 100) * per_yuan
    return -earned if event["type"] == "coupon.redemption_reversed" else earned


class CsvCrmConnector(OutboundConnector):
    """Loyalty points to a CRM that imports CSV over HTTP."""

    name: ClassVar[str] = "crm.csv"
    kind: ClassVar[str] = "crm"
    version: ClassVar[str] = "0.1.0"
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "loyalty.credit", "loyalty.debit")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)
    config_schema: ClassVar[dict[str, Any]] = package_schema(__name__)

    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        member = event["data"].get("customer")
        change = points(event, int(config.get("points_per_yuan", 1)))
        if not member or change == 0:
            return []  # nothing to credit: counts as delivered
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerow((event["id"], member, change, event["type"], event["occurred_at"]))
        return [
            OutboundRequest(
                "POST",
                config["url"],
                {
                    "content-type": "text/csv; charset=utf-8",
                    "authorization": f"Token {config['token']}",
                    "idempotency-key": event["id"],  # the CRM ignores a repeated import
                },
                out.getvalue().encode(),
            )
        ]

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        # this CRM answers 200 with "ERROR <reason>" for rows it refuses
        if response is not None and response.status == 200 and response.body.startswith(b"ERROR"):
            return Failed(response.body.decode("utf-8", "replace")[:200])
        outcome = classify_http(response, error)
        return outcome if not isinstance(outcome, Delivered) else Delivered()
