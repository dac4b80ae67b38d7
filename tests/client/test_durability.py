"""The offline queue survives ``kill -9`` of the till: every receipt the till printed is
in the queue after the kill, with the tally to match, and the file is intact."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hub.client.queue import OfflineQueue
from tests.client.conftest import OfflineKit

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, httpx
from hub.client import HubClient, RetryPolicy

def refused(request):
    raise httpx.ConnectError("connection refused", request=request)

tokens = json.load(open(sys.argv[2]))
till = HubClient("http://hub.test", "k", terminal_id="T-09", store="SH-001",
                 offline_queue=sys.argv[1], transport=httpx.MockTransport(refused),
                 retry=RetryPolicy(attempts=1))
for i, token in enumerate(tokens):
    r = till.redeem(token, {"id": f"A-{i}", "amount": 12800})
    print(r.idempotency_key, flush=True)  # the receipt the cashier sees
"""


def test_kill_9_mid_queue_loses_no_receipt(tmp_path: Path) -> None:
    kit = OfflineKit()
    kit.rules = {"max_count": 10_000, "max_discount": 10**9, "max_offline_seconds": 86_400}
    path = tmp_path / "till.db"
    q = OfflineQueue(path)
    q.save_keys_document(kit.document())
    q.close()
    tokens = [kit.token(f"C{i:05d}") for i in range(2000)]
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(tmp_path / "tokens.json")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    printed = []
    deadline = time.monotonic() + 60
    while len(printed) < 40 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        printed.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)  # mid-queue: it is redeeming the next one
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(printed) >= 40, "the till did not get going"

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    q = OfflineQueue(path)
    items = q.items()
    keys = [i.idempotency_key for i in items]
    assert keys[: len(printed)] == printed  # every printed receipt, in order
    assert len(items) in (len(printed), len(printed) + 1)  # maybe one committed, not printed
    assert [i.code for i in items] == [f"C{n:05d}" for n in range(len(items))]
    tally = q.tally()
    assert (tally.count, tally.discount) == (len(items), 2000 * len(items))
    assert all(i.status == "pending" for i in items)
    q.close()
