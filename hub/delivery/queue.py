"""The broker (Redis, RabbitMQ, or in-process) and the ``deliver`` actor.

The database is the source of truth: a message only says "look at delivery X now".
Lost, duplicated or late messages are harmless — the worker re-checks the record, and
the sweeper re-enqueues whatever is due.

Wiring, set at start-up by whoever configures the broker (no module reaches for a global
runtime): :func:`configure` installs :func:`enqueue` as the outbox's announcer (so the
services announce new deliveries without knowing this module), and takes the
``handler`` the ``deliver`` actor calls with each delivery id (``Runtime.deliver``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker

from hub.delivery.backoff import BrokerBackoff
from hub.services import outbox
from hub.settings import env

log = structlog.get_logger("hub.delivery")

QUEUE = "hub-deliveries"
BROKER_TIMEOUT = 2.0
# delivery ids one message carries at most: what waits to be sent goes out together, so
# under load a worker takes many doorbells per message (and per acknowledgement)
IDS_PER_MESSAGE = 100
_state: dict[str, Any] = {}
_lock = threading.Lock()


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://")


def broker_url() -> str | None:
    return env("HUB_BROKER_URL") or None


def shown_url(url: str) -> str:
    """The broker URL without its password (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        return "<unparsable URL>"


def validate_url(url: str) -> None:
    """Raise ``ValueError`` (with the reason) for a URL that names no broker we speak."""
    if not url.startswith(REDIS_SCHEMES + AMQP_SCHEMES):
        raise ValueError(f"HUB_BROKER_URL must be redis://… or amqp://…, not {shown_url(url)!r}")
    if url.startswith(REDIS_SCHEMES):
        import redis

        try:
            redis.connection.ConnectionPool.from_url(url)
        except ValueError as exc:
            raise ValueError(
                f"HUB_BROKER_URL {shown_url(url)!r} is not a Redis URL: {exc}"
            ) from None
    else:
        import pika  # type: ignore[import-untyped]

        try:
            pika.URLParameters(url)
        except Exception as exc:
            raise ValueError(
                f"HUB_BROKER_URL {shown_url(url)!r} is not an AMQP URL: {exc}"
            ) from None


def make_broker(url: str | None) -> dramatiq.Broker:
    if url is None:
        return StubBroker()
    validate_url(url)
    if url.startswith(REDIS_SCHEMES):
        from dramatiq.brokers.redis import RedisBroker

        # Short socket timeouts: a hung broker must not hold a sender or a worker for long.
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
        )
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


Handler = Callable[[str], object]
"""What the ``deliver`` actor does with each delivery id of a message (``Runtime.ring``)."""


def configure(url: str | None, *, handler: Handler | None = None) -> dramatiq.Broker:
    """Create the broker and declare the actor on it (once per process), and install
    :func:`enqueue` as the outbox's announcer. ``handler`` (if given, also on a later
    call) is what the actor does with each message: the delivery runtime passes its
    ``deliver``; a process without one (an API that only enqueues) consumes nothing."""
    with _lock:
        if handler is not None:
            _state["handler"] = handler
        if "broker" in _state:
            return _state["broker"]  # type: ignore[no-any-return]
        broker = make_broker(url)
        dramatiq.set_broker(broker)
        actor = dramatiq.actor(
            actor_name="hub_deliver",
            queue_name=QUEUE,
            broker=broker,
            max_retries=0,
            time_limit=300_000,
        )(_deliver)
        _state.update(
            broker=broker,
            actor=actor,
            url=url,
            outgoing=SimpleQueue(),
            backoff=BrokerBackoff(shown_url(url) if url else "stub"),
        )
        outbox.announce_with(enqueue)
        return broker


def release(handler: Handler) -> None:
    """Stop calling ``handler`` (a runtime that stops); another one's stays."""
    with _lock:
        if _state.get("handler") == handler:
            del _state["handler"]


def reset() -> None:
    """Forget the broker (tests)."""
    with _lock:
        broker = _state.pop("broker", None)
        outgoing = _state.get("outgoing")
        if outgoing is not None:
            outgoing.put(None)  # stops the sender thread
        _state.clear()
        outbox.announce_with(None)
    if broker is not None:
        broker.close()


def is_configured() -> bool:
    return "broker" in _state


def backoff() -> BrokerBackoff | None:
    """This process's broker backoff (once :func:`configure` has run)."""
    return _state.get("backoff")


def check_broker() -> str:
    """ "ok" if this process's broker answers (or none is needed), else raises
    (``ValueError`` for a URL that names no broker)."""
    broker = _state.get("broker")
    url = _state.get("url") if broker is not None else broker_url()
    if url is None:
        return "ok"  # embedded: the in-process stub broker
    validate_url(url)
    if url.startswith(REDIS_SCHEMES):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = 2
    params.blocked_connection_timeout = 2
    connection = pika.BlockingConnection(params)
    connection.close()
    return "ok"


def enqueue(ids: list[str]) -> None:
    """Ask a worker to look at these deliveries (no-op when no broker is set up here).

    Never blocks the caller on the network: with a real broker the ids go to a sender
    thread. A message that cannot be sent is only logged — the delivery record is
    already committed, and the sweeper re-enqueues it (see ``sweeper.STALE``).
    """
    actor = _state.get("actor")
    if actor is None or not ids:
        return
    if isinstance(_state.get("broker"), StubBroker):
        for i in range(0, len(ids), IDS_PER_MESSAGE):
            actor.send(*ids[i : i + IDS_PER_MESSAGE])
        return
    with _lock:
        sender = _state.get("sender")
        if sender is None or not sender.is_alive():
            sender = threading.Thread(
                target=_send_loop, args=(actor, _state["outgoing"]), name="hub-enqueue", daemon=True
            )
            _state["sender"] = sender
            sender.start()
    for delivery_id in ids:
        _state["outgoing"].put(delivery_id)


def _send_loop(actor: Any, outgoing: SimpleQueue[str | None]) -> None:
    """Send ids to the broker: each message carries the ids waiting at that moment (at
    most :data:`IDS_PER_MESSAGE`; one when they come one at a time, so nothing waits for
    company). While the broker is down (see :mod:`hub.delivery.backoff`) ids are dropped
    until the next attempt is due, and failures are said once per backoff step: the
    records are committed and the sweeper sends them again (``sweeper.STALE``)."""
    backoff: BrokerBackoff = _state["backoff"]
    stopping = False
    while not stopping and (first := outgoing.get()) is not None:
        ids = [first]
        while len(ids) < IDS_PER_MESSAGE:
            try:
                more = outgoing.get_nowait()
            except Empty:
                break
            if more is None:
                stopping = True
                break
            ids.append(more)
        if backoff.remaining() > 0:
            continue
        try:
            actor.send(*ids)
        except Exception as exc:  # the sweeper re-enqueues them later
            backoff.failure(exc)
            continue
        backoff.success()


def _deliver(*delivery_ids: str) -> None:
    """A doorbell: one delivery id or several (a message of an older sender has one)."""
    handler: Handler | None = _state.get("handler")
    for delivery_id in delivery_ids:
        if handler is None:
            log.warning("delivery.no_runtime", delivery_id=delivery_id)
            continue
        handler(delivery_id)
