"""A complete till on hub.client (docs/pos-client.md): it reads one command per line —
what a cashier's scanner and keys would send — and prints what the cashier sees.

    python examples/pos-till/till.py --hub http://127.0.0.1:8000 --key "$STORE_KEY" \\
        --terminal T-01 --store SH-001 --queue till.db

Commands (one per line on stdin):

    sale ORDER_ID AMOUNT_FEN CODE_OR_TOKEN   redeem a coupon on a sale (offline if need be)
    check ORDER_ID AMOUNT_FEN CODE           what the coupon would take off (no change)
    look CODE                                the coupon's status
    refund REDEMPTION_ID [REASON…]           reverse a redemption
    sync                                     send the offline queue (also done every 30 s)
    conflicts                                offline sales the hub found redeemed elsewhere
    quit

Every line of output is ``OK …``, ``OFFLINE …`` (a receipt queued on this till) or
``NO <code> …`` (refused, with the reason the cashier reads out).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import TextIO

from hub.client import (
    HubClient,
    HubError,
    HubUnreachable,
    OfflineReceipt,
    OfflineRefused,
    Order,
)

SYNC_EVERY = 30.0  # seconds between background syncs while the till is idle


def yuan(fen: int) -> str:
    return f"¥{fen / 100:.2f}"


def run(client: HubClient, lines: TextIO, out: TextIO) -> None:
    last_sync = 0.0
    for raw in lines:
        words = shlex.split(raw)
        if not words:
            continue
        command, args = words[0], words[1:]
        try:
            if command == "quit":
                break
            if command == "sale":
                order_id, amount, code = args[0], int(args[1]), args[2]
                result = client.redeem(code, Order(id=order_id, amount=amount))
                if isinstance(result, OfflineReceipt):
                    print(f"OFFLINE {result.code} -{yuan(result.discount)} pay "
                          f"{yuan(result.payable)} (queued {result.idempotency_key})", file=out)
                else:
                    print(f"OK {result.redemption_id} -{yuan(result.discount)} pay "
                          f"{yuan(result.payable)}", file=out)
            elif command == "check":
                v = client.validate(args[2], Order(id=args[0], amount=int(args[1])))
                print(f"OK valid -{yuan(v.discount)} pay {yuan(v.payable)}", file=out)
            elif command == "look":
                c = client.lookup(args[0])
                print(f"OK {c.code} {c.status} until {c.valid_until:%Y-%m-%d}", file=out)
            elif command == "refund":
                r = client.reverse(args[0], reason=" ".join(args[1:]) or None)
                print(f"OK reversed {r.redemption_id} coupon {r.coupon_status}", file=out)
            elif command == "sync":
                report = client.sync()
                state = "done" if report.complete else f"stopped: {report.error}"
                print(f"OK synced {report.sent} {report.counts} left {report.remaining} "
                      f"({state})", file=out)
            elif command == "conflicts":
                for item in client.queued(outcome="conflict"):
                    print(f"CONFLICT {item.code} order {item.order_id} {item.conflict_id}",
                          file=out)
                print("OK", file=out)
            else:
                print(f"NO unknown_command {command}", file=out)
        except OfflineRefused as err:
            print(f"NO {err.code} {err.message}", file=out)
        except HubUnreachable as err:
            print(f"NO {err.code} the hub cannot be reached; try again", file=out)
        except HubError as err:
            print(f"NO {err.code} {err.message}", file=out)
        except (IndexError, ValueError):
            print(f"NO bad_command {raw.strip()}", file=out)
        out.flush()
        if time.monotonic() - last_sync > SYNC_EVERY and client.queued(status="pending"):
            last_sync = time.monotonic()
            client.sync()  # quietly: the queue drains as soon as the hub is back


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hub", required=True, help="the hub's base URL")
    ap.add_argument("--key", required=True, help="the store's API key")
    ap.add_argument("--terminal", required=True, help="this till's id, e.g. T-01")
    ap.add_argument("--store", required=True, help="the store code, e.g. SH-001")
    ap.add_argument("--queue", default="till.db", help="the offline queue file")
    a = ap.parse_args(argv)
    with HubClient(a.hub, a.key, terminal_id=a.terminal, store=a.store,
                   offline_queue=a.queue) as client:
        try:
            client.offline_keys()  # cache the keys while the hub is reachable
        except HubError as err:
            print(f"WARN no fresh offline keys ({err.code}); using the cached ones",
                  file=sys.stderr)
        run(client, sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
