"""Prometheus metrics read from the database at scrape time.

The database is the one place every API and worker process writes to, so figures read
from it are the same whichever process is scraped: deliveries by status, attempts by
outcome, the age of the oldest waiting delivery per subscription, and histograms of
attempt latency and of event-to-delivery time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from hub.db.schema import deliveries, delivery_attempts

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUSES = ("pending", "delivering", "succeeded", "retrying", "dead", "cancelled")


def _histogram(
    name: str,
    doc: str,
    column: object,
    buckets: tuple[float, ...],
    rows_total: int,
    sum_value: float,
    counts: list[int],
) -> HistogramMetricFamily:
    cumulative = [(str(b), float(c)) for b, c in zip(buckets, counts, strict=True)]
    cumulative.append(("+Inf", float(rows_total)))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=sum_value)


class DeliveryCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            by_status: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
                ).all()
            )
            by_outcome: dict[str, int] = dict(
                conn.execute(
                    select(delivery_attempts.c.outcome, func.count()).group_by(
                        delivery_attempts.c.outcome
                    )
                ).all()
            )
            oldest = conn.execute(
                select(deliveries.c.subscription_id, func.min(deliveries.c.created_at))
                .where(deliveries.c.status.in_(("pending", "retrying", "delivering")))
                .group_by(deliveries.c.subscription_id)
            ).all()
            lat = delivery_attempts.c.latency_ms
            lat_row = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(lat), 0),
                    *[func.sum(case((lat <= b * 1000, 1), else_=0)) for b in LATENCY_BUCKETS],
                )
            ).one()
        gauge = GaugeMetricFamily("hub_deliveries", "Delivery records by status", labels=["status"])
        for status in STATUSES:
            gauge.add_metric([status], float(by_status.get(status, 0)))
        yield gauge
        attempts = CounterMetricFamily(
            "hub_delivery_attempts", "Delivery attempts by outcome", labels=["outcome"]
        )
        for outcome in ("delivered", "retry", "failed"):
            attempts.add_metric([outcome], float(by_outcome.get(outcome, 0)))
        yield attempts
        age = GaugeMetricFamily(
            "hub_oldest_waiting_delivery_age_seconds",
            "Age of the oldest undelivered delivery per subscription",
            labels=["subscription"],
        )
        for sub_id, created in oldest:
            created_at = created if created.tzinfo else created.replace(tzinfo=UTC)
            age.add_metric([sub_id], max(0.0, (now - created_at).total_seconds()))
        yield age
        total = int(lat_row[0] or 0)
        yield _histogram(
            "hub_delivery_attempt_latency_seconds",
            "Duration of delivery attempts (HTTP round trips)",
            lat,
            LATENCY_BUCKETS,
            total,
            float(lat_row[1] or 0) / 1000,
            [int(x or 0) for x in lat_row[2:]],
        )


def render(engine: Engine, *more: Collector) -> bytes:
    """The delivery figures (from the database), then ``more`` (e.g. the API's own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(engine))
    for collector in more:
        registry.register(collector)
    return generate_latest(registry)
