"""Helpers of the client's tests: a merchant's offline signing kit (keys made here with
hub.signing, tokens signed with them, the keys document of the contract
``GET /v1/offline/keys``) and a scriptable hub behind an httpx transport.

The offline tests run without the hub's keys endpoint (it lands with the keys part):
they serve the document from :class:`FakeHub`. To point them at the real server once it
has the endpoint, build the client on ``live_server`` and fetch the keys with
``client.offline_keys()`` instead of ``fake.keys_doc``; the tokens then come from
``GET /v1/coupons/{code}/token``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hub import signing
from hub.client import HubClient, RetryPolicy
from hub.domain.offline import TokenClaims
from hub.domain.template_codec import template_from_dict, template_to_dict

FAST = RetryPolicy(attempts=2, deadline=5, initial_wait=0.001, max_wait=0.01)
THRESHOLD = {
    "benefit": {"kind": "threshold", "threshold": 10000, "discount": 2000},
    "validity": {"type": "relative", "days": 30},
}


@dataclass
class OfflineKit:
    """One merchant's signing key and offline templates, as the hub would serve them."""

    merchant: str = "m_kit"
    kid: str = "ok_kit1"
    keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, int] = field(
        default_factory=lambda: {"max_count": 200, "max_discount": 200_000,
                                 "max_offline_seconds": 86_400})

    def __post_init__(self) -> None:
        self.keys.setdefault(self.kid, signing.generate_keypair())
        self.template("tpl_kit", THRESHOLD)

    def template(self, tid: str, spec: dict[str, Any], *, offline: bool = True,
                 name: str = "满100减20") -> str:
        rules = template_to_dict(template_from_dict(spec))  # as the template API shows them
        self.templates.append({"id": tid, "name": name, "kind": spec["benefit"]["kind"],
                               "rules": rules, "offline": offline})
        return tid

    def token(self, code: str, *, template: str = "tpl_kit", kid: str | None = None,
              merchant: str | None = None, valid_from: datetime | None = None,
              valid_until: datetime | None = None, offline: bool = True) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        kid = kid or self.kid
        private = self.keys[kid][0] if kid in self.keys else signing.generate_keypair()[0]
        claims = TokenClaims(
            kid=kid, merchant_id=merchant or self.merchant, code=code, template_id=template,
            holder=None, valid_from=valid_from or now - timedelta(days=1),
            valid_until=valid_until or now + timedelta(days=29), issued_at=now - timedelta(days=1),
            offline_allowed=offline,
        )
        return signing.sign(private, claims)

    def document(self) -> dict[str, Any]:
        return {
            "merchant": self.merchant,
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                 "x": signing.public_key_text(pair[1]), "status": "active",
                 "created_at": "2026-01-01T00:00:00Z", "retired_at": None}
                for kid, pair in self.keys.items()
            ],
            "rules": self.rules,
            "templates": [t for t in self.templates if t["offline"]],
            "fetched_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "refresh_after": 3600,
        }


Handler = Callable[[httpx.Request], httpx.Response]


class FakeHub:
    """A hub behind an httpx transport: ``up`` or not (connection refused), the keys
    document, a sync endpoint following the contract (``POST /v1/redemptions/sync``),
    and a log of every request."""

    def __init__(self, kit: OfflineKit) -> None:
        self.kit = kit
        self.up = True
        self.requests: list[httpx.Request] = []
        self.redeemed: dict[str, str] = {}  # coupon code → idempotency key that redeemed it
        self.answers: dict[str, dict[str, Any]] = {}  # idempotency key → stored item answer
        self.drop_after_sync = False  # process a sync, then lose the answer (once)
        self.down_after_batches: int | None = None  # refuse connections after N syncs
        self.syncs = 0
        self.synced: list[dict[str, Any]] = []  # the sync bodies the hub processed
        self.extra: dict[tuple[str, str], Handler] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        route = (request.method, request.url.path)
        if route in self.extra:
            return self.extra[route](request)
        if route == ("GET", "/v1/offline/keys"):
            return httpx.Response(200, json=self.kit.document())
        if route == ("POST", "/v1/redemptions/sync"):
            if self.down_after_batches is not None and self.syncs >= self.down_after_batches:
                raise httpx.ConnectError("connection refused", request=request)
            self.syncs += 1
            self.synced.append(json.loads(request.content))
            answer = self.sync(json.loads(request.content))
            if self.drop_after_sync:
                self.drop_after_sync = False
                raise httpx.ReadTimeout("answer lost", request=request)
            return httpx.Response(200, json=answer)
        raise httpx.ConnectError("connection refused", request=request)

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        assert len(body["items"]) <= 100
        out = []
        counts = {"redeemed": 0, "replayed": 0, "refused": 0, "conflict": 0}
        for item in body["items"]:
            key = item["idempotency_key"]
            if key in self.answers:
                answer = {**self.answers[key], "outcome": "replayed"}
            else:
                claims = signing.verify(item["code"], {k: p[1] for k, p in self.kit.keys.items()})
                if claims.code in self.redeemed:
                    answer = {"idempotency_key": key, "outcome": "conflict", "status": 409,
                              "redemption": None, "conflict_id": f"cfl_{len(self.answers)}",
                              "problem": {"code": "offline_conflict", "status": 409}}
                else:
                    self.redeemed[claims.code] = key
                    answer = {"idempotency_key": key, "outcome": "redeemed", "status": 201,
                              "redemption": {"redemption_id": f"rd_{len(self.answers)}",
                                             "code": claims.code,
                                             "discount": item["offline_discount"]},
                              "problem": None, "conflict_id": None}
                self.answers[key] = answer
            counts[answer["outcome"]] += 1
            out.append(answer)
        return {"items": out, "counts": counts}


@pytest.fixture
def kit() -> OfflineKit:
    return OfflineKit()


@pytest.fixture
def fake(kit: OfflineKit) -> FakeHub:
    return FakeHub(kit)


@pytest.fixture
def till(fake: FakeHub, tmp_path: Any) -> Any:
    """A client with an offline queue on the fake hub, its keys cached, the hub down."""
    c = HubClient("http://hub.test", "sk_test", terminal_id="T-01", store="SH-001",
                  offline_queue=tmp_path / "till.db", retry=FAST, transport=fake.transport())
    c.offline_keys()
    fake.up = False
    yield c
    c.close()


def order(amount: int = 12800, order_id: str = "A-1") -> dict[str, Any]:
    return {"id": order_id, "amount": amount}
