"""Periodic chores: dropping expired Idempotency-Key records."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Engine

from hub.db.engine import write_conn
from hub.services.idempotency import purge_expired

log = structlog.get_logger("hub.housekeeping")


def purge_idempotency(engine: Engine, now: datetime) -> int:
    with write_conn(engine) as conn:
        n = purge_expired(conn, now)
    if n:
        log.info("idempotency.purged", count=n)
    return n
