"""The client's address (hub/api/client.py): worked out once per request and once per
distinct peer and X-Forwarded-For, with the guard's trusted proxies."""

from __future__ import annotations

from typing import Any

from hub.api.client import AddressBook
from hub.services.guard import Guard, Limits


def _scope(peer: str | None, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"hub")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    return {"type": "http", "client": (peer, 5000) if peer else None, "headers": headers}


def test_the_address_as_the_guard_reads_it_worked_out_once_per_pair() -> None:
    guard = Guard(Limits(trusted_proxies=("10.0.0.0/8",)))
    book = AddressBook(guard)
    calls: list[tuple[Any, ...]] = []
    real = guard.client_address

    def counted(peer: str | None, forwarded: str | None) -> str | None:
        calls.append((peer, forwarded))
        return real(peer, forwarded)

    guard.client_address = counted  # type: ignore[method-assign]
    assert book.of(_scope("203.0.113.9", "198.51.100.1")) == "203.0.113.9"  # untrusted peer
    assert book.of(_scope("10.0.0.2", "198.51.100.1, 10.0.0.7")) == "198.51.100.1"
    assert book.of(_scope("10.0.0.2")) == "10.0.0.2"
    assert book.of(_scope(None)) is None
    for _ in range(3):
        assert book.of(_scope("10.0.0.2", "198.51.100.1, 10.0.0.7")) == "198.51.100.1"
    assert len(calls) == 4
