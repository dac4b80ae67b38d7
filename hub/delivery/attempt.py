"""One delivery attempt's send: run the connector's exchange for a claimed delivery over
a transport, and say what happened in words fit for the attempt log (secrets scrubbed,
bodies capped).

The attempt around it: :mod:`hub.delivery.claim` claims the record before and records
the outcome after (two short transactions; nothing is open during the HTTP call);
:mod:`hub.delivery.transport` is the HTTP side; :mod:`hub.delivery.breaker` the circuit.
"""

from __future__ import annotations

import time
from datetime import datetime

from hub.connectors import Failed, Outcome, Retry, get_connector
from hub.delivery.claim import Claimed, Sent
from hub.delivery.exchange import SessionCache, Trace, Transport, run_exchange
from hub.domain.errors import DomainError
from hub.secrets import hidden_strings, scrub, secret_strings
from hub.services.subscriptions import MAX_BODY_LOGGED

SESSIONS = SessionCache()  # connector sessions (OAuth, CSRF tokens) of this process


def send(transport: Transport, claimed: Claimed, now: datetime) -> Sent:
    """Run the claimed delivery's exchange over ``transport`` (no transaction open)."""
    t0 = time.perf_counter()
    hidden: list[str] = []  # the config's secrets: never into the attempt log
    try:
        connector = get_connector(claimed.connector)
    except DomainError as exc:  # uninstalled since the subscription was made: retry later
        outcome: Outcome = Retry(f"connector unavailable: {exc.message}")
        trace = Trace()
    else:
        hidden = secret_strings(claimed.config, connector.secret_fields)
        if claimed.config_error is not None:  # secrets unreadable: retried, nothing sent
            outcome, trace = Retry(claimed.config_error), Trace()
        else:
            outcome, trace = run_exchange(
                connector,
                claimed.event,
                claimed.config,
                now=now,
                transport=transport,
                sessions=SESSIONS,
                session_owner=claimed.subscription_id,
            )
    latency = int((time.perf_counter() - t0) * 1000)
    # and the credentials the requests carried (sessions, Basic auth, cookies …)
    hidden += hidden_strings({}, (), (req for req, _ in trace.steps))
    error = scrub(trace.error, hidden, MAX_BODY_LOGGED) if trace.error else None
    if isinstance(outcome, (Retry, Failed)) and error is None:
        error = scrub(outcome.reason, hidden, MAX_BODY_LOGGED)
    body = None
    if trace.body is not None:
        body = scrub(trace.body.decode("utf-8", "replace"), hidden, MAX_BODY_LOGGED)
    return Sent(
        outcome=outcome, http_status=trace.status, error=error, body=body, latency_ms=latency
    )
