"""The terminal's local SQLite file: the cached keys document, the offline tally and the
queue of offline redemptions.

Durability: WAL journal with ``synchronous=FULL``, and every offline redemption is one
transaction committed before its receipt is returned, so a receipt the cashier has seen
survives ``kill -9`` of the till and a power cut. Sync marks an item done only in the
transaction that stores the hub's answer; an item sent whose answer was lost stays
``pending`` and is sent again with the same Idempotency-Key (the hub replays it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.client.types import KeysDocument, QueueItem, format_time, parse_time
from hub.domain.offline import OfflineTally

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,
    order_id TEXT NOT NULL,
    discount INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    body TEXT NOT NULL,
    receipt TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    outcome TEXT,
    http_status INTEGER,
    answer TEXT,
    created_at TEXT NOT NULL,
    synced_at TEXT
);
CREATE INDEX IF NOT EXISTS queue_pending ON queue (status, seq);
CREATE INDEX IF NOT EXISTS queue_code ON queue (code);
"""


class OfflineQueue:
    """One till's SQLite file (one process uses it at a time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self.lock = self._lock  # callers may hold it across several steps
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on an exception)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- kv -------------------------------------------------------------------------------

    def _get(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _put(conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO kv (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def keys_document(self) -> KeysDocument | None:
        text = self._get("keys_document")
        return None if text is None else KeysDocument.from_json(json.loads(text))

    def save_keys_document(self, raw: dict[str, Any], at: datetime | None = None) -> None:
        """Cache the keys document, fetched at ``at`` by the till's clock (its age is
        measured on the till's clock, whatever the hub's says)."""
        with self.transaction() as conn:
            self._put(conn, "keys_document", json.dumps(raw))
            if at is not None:
                self._put(conn, "keys_fetched", format_time(at))

    def keys_fetched(self) -> datetime | None:
        text = self._get("keys_fetched")
        return None if text is None else parse_time(text)

    def last_contact(self) -> datetime | None:
        text = self._get("last_contact")
        return None if text is None else parse_time(text)

    def touch(self, at: datetime) -> None:
        """The hub answered at ``at`` (the offline duration counts from the last answer)."""
        with self.transaction() as conn:
            self._put(conn, "last_contact", format_time(at))

    def tally(self) -> OfflineTally:
        text = self._get("tally")
        if text is None:
            return OfflineTally()
        d = json.loads(text)
        since = d.get("since")
        return OfflineTally(
            int(d["count"]), int(d["discount"]), None if since is None else parse_time(since)
        )

    @classmethod
    def _put_tally(cls, conn: sqlite3.Connection, tally: OfflineTally) -> None:
        since = None if tally.since is None else format_time(tally.since)
        cls._put(
            conn,
            "tally",
            json.dumps({"count": tally.count, "discount": tally.discount, "since": since}),
        )

    def reset_tally_if_drained(self, at: datetime) -> bool:
        """Back online with nothing left to send: the offline limits start afresh."""
        with self.transaction() as conn:
            pending = conn.execute(
                "SELECT COUNT(*) FROM queue WHERE status = 'pending'"
            ).fetchone()[0]
            if pending:
                return False
            self._put_tally(conn, OfflineTally())
            self._put(conn, "last_contact", format_time(at))
            return True

    # --- the queue ----------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        key: str,
        code: str,
        order_id: str,
        discount: int,
        occurred_at: datetime,
        body: dict[str, Any],
        receipt: dict[str, Any],
        tally: OfflineTally,
        now: datetime,
    ) -> None:
        """Queue one offline redemption and store the new tally, in one committed
        transaction (durable when this returns)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO queue (idempotency_key, code, order_id, discount, occurred_at,"
                " body, receipt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    code,
                    order_id,
                    discount,
                    format_time(occurred_at),
                    json.dumps(body),
                    json.dumps(receipt),
                    format_time(now),
                ),
            )
            self._put_tally(conn, tally)

    def queued_under(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The body and receipt queued under Idempotency-Key ``key``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT body, receipt FROM queue WHERE idempotency_key = ?", (key,)
            ).fetchone()
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))

    def holds_code(self, code: str) -> QueueItem | None:
        """An earlier offline redemption of ``code`` that the hub did not refuse."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM queue WHERE code = ? AND "
                "(status = 'pending' OR outcome IN ('redeemed', 'replayed', 'conflict')) "
                "ORDER BY seq LIMIT 1",
                (code,),
            ).fetchone()
        return None if row is None else _item(row)

    def pending(self, limit: int) -> list[QueueItem]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM queue WHERE status = 'pending' ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [_item(r) for r in rows]

    def count_pending(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM queue WHERE status = 'pending'").fetchone()[
                    0
                ]
            )

    def items(self, *, status: str | None = None, outcome: str | None = None) -> list[QueueItem]:
        sql = f"SELECT {_COLUMNS} FROM queue WHERE 1 = 1"
        args: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if outcome is not None:
            sql += " AND outcome = ?"
            args.append(outcome)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [_item(r) for r in rows]

    def record_answers(self, answers: Sequence[dict[str, Any]], now: datetime) -> list[str]:
        """Store the hub's answer of each item and mark it done, in one transaction.
        Returns the keys marked done (answers for keys not pending are ignored)."""
        done = []
        with self.transaction() as conn:
            for a in answers:
                key = a.get("idempotency_key")
                outcome = a.get("outcome")
                if outcome not in ("redeemed", "replayed", "refused", "conflict"):
                    continue
                cur = conn.execute(
                    "UPDATE queue SET status = 'done', outcome = ?, http_status = ?, "
                    "answer = ?, synced_at = ? WHERE idempotency_key = ? AND status = 'pending'",
                    (outcome, a.get("status"), json.dumps(a), format_time(now), key),
                )
                if cur.rowcount:
                    done.append(str(key))
            self._put(conn, "last_contact", format_time(now))
        return done


_COLUMNS = (
    "seq, idempotency_key, code, order_id, discount, occurred_at, status, outcome, "
    "http_status, answer, body"
)


def _item(row: Sequence[Any]) -> QueueItem:
    answer = json.loads(row[9]) if row[9] else {}
    redemption = answer.get("redemption") or {}
    return QueueItem(
        seq=int(row[0]),
        idempotency_key=str(row[1]),
        code=str(row[2]),
        order_id=str(row[3]),
        discount=int(row[4]),
        occurred_at=parse_time(row[5]),
        status=str(row[6]),
        outcome=row[7],
        http_status=row[8],
        problem=answer.get("problem"),
        conflict_id=answer.get("conflict_id"),
        redemption_id=redemption.get("redemption_id"),
        body=json.loads(row[10]),
    )
