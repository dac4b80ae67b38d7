"""Offline signing keys (离线核销): each merchant's Ed25519 keys, the keys document
terminals fetch, the coupon tokens the hub signs and verifies, and the offline rules.

* **Keys.** A merchant has at most one ``active`` key (the partial unique index
  ``uq_offline_signing_keys_active``); it is created on first use — the first keys
  document or token — race-safely: the insert is ``ON CONFLICT DO
  NOTHING`` and the loser of a race reads the winner's key. The private key is stored
  encrypted with :mod:`hub.secrets` (``{"$enc": …}``, as subscription secrets are;
  ``hub secrets rotate`` re-encrypts it), never shown, never logged.
* **Rotation** (``hub keys offline rotate``): a new active key; the old one becomes
  ``retired`` (``retired_at``). Tokens it signed still verify.
* **Publishing rule.** The document lists the active key and every retired key that may
  still have signed a valid token: a retired key stays while the merchant has a coupon
  issued at or before the key's retirement whose ``valid_until`` is still ahead (a token never
  outlives its coupon's window: its ``u`` is the coupon's ``valid_until``). That moment
  (the latest ``valid_until`` of the coupons issued by ``retired_at``) never changes
  once the key is retired, so it is computed once per key and process.
* **Verification** uses every key of the token's merchant, retired ones included
  (a token of a dropped key is past its window: ``token_expired``). Public keys are
  cached per merchant in the process; a rotation here clears the merchant's entry, and
  a token naming a key the cache does not know re-reads the merchant's keys (a rotation
  in another process), so the cache is never wrong, only sometimes one read behind.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from hub.db.engine import read_conn, write_conn
from hub.db.schema import coupon_templates, coupons, merchants
from hub.db.schema import offline_signing_keys as osk
from hub.db.upsert import InsertIfAbsent
from hub.domain.errors import DomainError
from hub.domain.ids import new_id
from hub.domain.offline import OfflineRules, TokenClaims, b64url, judge_claims, parse, unb64url
from hub.domain.template_codec import template_to_dict
from hub.secrets import keyring
from hub.services import audit, idempotency
from hub.services.commands import HttpResult
from hub.services.jsonio import dumps, iso
from hub.services.principal import Principal
from hub.services.template_cache import template_of
from hub.signing import ALGORITHM, generate_keypair, sign, verify

REFRESH_AFTER = 3600  # seconds: how often a terminal should fetch the document again

_INSERT_KEY = InsertIfAbsent(osk, osk.c.id)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    merchant_id: str
    public_key: str  # raw 32 bytes, base64url
    status: str
    created_at: datetime
    retired_at: datetime | None

    def jwk(self) -> dict[str, Any]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": self.public_key,
            "status": self.status,
            "created_at": iso(self.created_at),
            "retired_at": None if self.retired_at is None else iso(self.retired_at),
        }


_KEY_COLUMNS = (osk.c.id, osk.c.merchant_id, osk.c.public_key, osk.c.status, osk.c.created_at,
                osk.c.retired_at)  # fmt: skip


def _key(row: Any) -> SigningKey:
    return SigningKey(row.id, row.merchant_id, row.public_key, row.status, row.created_at,
                      row.retired_at)  # fmt: skip


def _keys(conn: Connection, merchant_id: str) -> list[SigningKey]:
    rows = conn.execute(
        select(*_KEY_COLUMNS)
        .where(osk.c.merchant_id == merchant_id)
        .order_by(osk.c.created_at.desc(), osk.c.id.desc())
    ).all()
    return [_key(r) for r in rows]


def _insert_key(conn: Connection, engine: Engine, merchant_id: str, now: datetime) -> str | None:
    """A new active key for the merchant, unless it has one (then None)."""
    private, public = generate_keypair()
    kid = new_id("ok")
    inserted = _INSERT_KEY.inserted(
        conn,
        {
            "id": kid,
            "merchant_id": merchant_id,
            "algorithm": ALGORITHM,
            "public_key": b64url(public),
            "private_key": keyring(engine).encrypt(b64url(private)),
            "status": "active",
            "created_at": now,
            "retired_at": None,
        },
    )
    return kid if inserted else None


_ACTIVE = select(osk.c.id, osk.c.private_key).where(
    osk.c.merchant_id == bindparam("m"), osk.c.status == "active"
)


def ensure_key(engine: Engine, merchant_id: str, now: datetime) -> None:
    """Create the merchant's first key unless it has an active one (race-safe)."""
    with read_conn(engine) as conn:
        if conn.execute(_ACTIVE, {"m": merchant_id}).first() is not None:
            return
    with write_conn(engine) as conn:
        if conn.execute(_ACTIVE, {"m": merchant_id}).first() is None:
            _insert_key(conn, engine, merchant_id, now)  # None: another request won


def rotate(engine: Engine, p: Principal, now: datetime) -> dict[str, Any]:
    """A new active key; the active one (if any) becomes retired. Audited."""
    p.require_admin()
    with write_conn(engine) as conn:
        kid = old = None
        for _ in range(3):  # PostgreSQL: a concurrent rotation's new key shows up late
            retired = conn.execute(
                update(osk)
                .where(osk.c.merchant_id == p.merchant_id, osk.c.status == "active")
                .values(status="retired", retired_at=now)
                .returning(osk.c.id)
            ).scalar()
            old = retired or old
            kid = _insert_key(conn, engine, p.merchant_id, now)
            if kid is not None:
                break
        if kid is None:  # never two active keys: the partial unique index refused it
            raise RuntimeError("another rotation keeps making the active offline key")
        audit.record(conn, p, "offline_key.rotated", "offline_key", kid, now, retired=old)
    forget(p.merchant_id)
    return {"kid": kid, "retired": old}


def list_keys(engine: Engine, p: Principal) -> list[dict[str, Any]]:
    """Every key of the merchant (newest first), published or not."""
    with read_conn(engine) as conn:
        return [k.jwk() for k in _keys(conn, p.merchant_id)]


def _active_signer(engine: Engine, merchant_id: str, now: datetime) -> tuple[str, bytes]:
    """The merchant's active key id and raw private key (created on first use)."""
    for _ in range(2):
        with read_conn(engine) as conn:
            row = conn.execute(_ACTIVE, {"m": merchant_id}).first()
        if row is not None:
            return row.id, unb64url(keyring(engine).decrypt(row.private_key))
        ensure_key(engine, merchant_id, now)
    raise RuntimeError("no active offline key after creating one")


# --- public keys: an in-process cache per merchant ----------------------------------

_cache_lock = threading.Lock()
_public: dict[str, dict[str, str]] = {}  # merchant id → {kid: public key (base64url)}
_published_until: dict[str, datetime | None] = {}  # retired kid → last valid_until


def forget(merchant_id: str | None = None) -> None:
    """Drop the cached public keys of a merchant (all merchants: None)."""
    with _cache_lock:
        if merchant_id is None:
            _public.clear()
            _published_until.clear()
        else:
            _public.pop(merchant_id, None)


def public_keys(engine: Engine, merchant_id: str, kid: str | None = None) -> dict[str, str]:
    """Every public key of the merchant (retired ones too), cached; re-read when ``kid``
    is not among the cached ones (a key rotated in another process)."""
    found = _public.get(merchant_id)
    if found is not None and (kid is None or kid in found):
        return found
    with read_conn(engine) as conn:
        rows = conn.execute(
            select(osk.c.id, osk.c.public_key).where(osk.c.merchant_id == merchant_id)
        ).all()
    fresh = {r.id: r.public_key for r in rows}
    if fresh:  # a merchant without keys yet is not cached (its first key is coming)
        with _cache_lock:
            _public[merchant_id] = fresh
    return fresh


def verify_token(engine: Engine, token: str, merchant_id: str, at: datetime) -> TokenClaims:
    """The claims of a presented coupon token, verified with its merchant's keys and
    judged at ``at`` (the redemption's time): ``token_malformed``, ``token_unknown_key``,
    ``token_signature_invalid``, ``token_wrong_merchant``, ``token_expired``,
    ``coupon_not_yet_valid``. A token of another merchant is verified with that
    merchant's (public) keys, so a genuine one is told apart from a forgery."""
    claims = parse(token).claims
    claims = verify(token, public_keys(engine, claims.merchant_id, claims.kid))
    judge_claims(claims, merchant_id=merchant_id, at=at)
    return claims


def token_code(engine: Engine, token: str, merchant_id: str, at: datetime) -> str:
    """The code a presented token names (see :func:`verify_token`). A coupon not valid
    yet is left to the coupon's own checks (the same window, the same answer, in the
    redeem's order of checks)."""
    try:
        return verify_token(engine, token, merchant_id, at).code
    except DomainError as err:
        if err.code != "coupon_not_yet_valid":
            raise
        return parse(token).claims.code


def _published(conn: Connection, key: SigningKey, now: datetime) -> bool:
    """Whether a key belongs in the document now (see the module's publishing rule)."""
    if key.status == "active" or key.retired_at is None:
        return True
    if key.kid not in _published_until:
        last = conn.execute(
            select(func.max(coupons.c.valid_until)).where(
                coupons.c.merchant_id == key.merchant_id, coupons.c.issued_at <= key.retired_at
            )
        ).scalar()
        with _cache_lock:
            _published_until[key.kid] = last
    last = _published_until[key.kid]
    return last is not None and last > now


# --- the document terminals fetch -----------------------------------------------------


def rules_of(conn: Connection, merchant_id: str) -> OfflineRules:
    doc = conn.execute(
        select(merchants.c.offline_rules).where(merchants.c.id == merchant_id)
    ).scalar()
    return OfflineRules.from_json(doc)


def _offline_templates(conn: Connection, merchant_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(coupon_templates.c.id, coupon_templates.c.name, coupon_templates.c.kind,
               coupon_templates.c.rules)
        .where(coupon_templates.c.merchant_id == merchant_id,
               coupon_templates.c.status == "active")
        .order_by(coupon_templates.c.created_at, coupon_templates.c.id)
    ).all()  # fmt: skip
    out = []
    for r in rows:
        template = template_of(r.id, dict(r.rules))
        if template.offline:
            out.append(
                {"id": r.id, "name": r.name, "kind": r.kind,
                 "rules": template_to_dict(template), "offline": True}
            )  # fmt: skip
    return out


def keys_document(engine: Engine, p: Principal, now: datetime) -> dict[str, Any]:
    """``GET /v1/offline/keys``: the keys to verify tokens with, the offline rules and
    the templates whose coupons may be redeemed offline (their rules in the domain's
    dict form: :func:`hub.domain.template_codec.template_from_dict` reads them)."""
    ensure_key(engine, p.merchant_id, now)
    with read_conn(engine) as conn:
        keys = [k.jwk() for k in _keys(conn, p.merchant_id) if _published(conn, k, now)]
        return {
            "merchant": p.merchant_id,
            # the zone a template's weekday and hour rules are read in
            "timezone": conn.execute(
                select(merchants.c.timezone).where(merchants.c.id == p.merchant_id)
            ).scalar_one(),
            "keys": keys,
            "rules": rules_of(conn, p.merchant_id).to_json(),
            "templates": _offline_templates(conn, p.merchant_id),
            "fetched_at": iso(now),
            "refresh_after": REFRESH_AFTER,
        }


def set_rules(conn: Connection, p: Principal, doc: Any, now: datetime) -> dict[str, Any]:
    """Replace the merchant's offline rules (missing members: the defaults). Audited."""
    p.require_admin()
    rules = OfflineRules.from_json(doc)
    conn.execute(
        update(merchants).where(merchants.c.id == p.merchant_id).values(
            offline_rules=rules.to_json()
        )
    )
    audit.record(conn, p, "offline_rules.updated", "merchant", p.merchant_id, now,
                 **rules.to_json())  # fmt: skip
    return {"rules": rules.to_json()}


def put_rules(
    engine: Engine,
    p: Principal,
    doc: dict[str, Any],
    idempotency_key: str | None,
    now: datetime,
    *,
    operation: str,
) -> HttpResult:
    """``PUT /v1/offline/rules`` exactly once per Idempotency-Key (the same key and
    body replay the first answer; a refusal is answered, never stored)."""
    p.require_admin()
    key = idempotency.check_key(idempotency_key)
    rules = OfflineRules.from_json(doc)  # invalid_request before the key is claimed
    req_hash = idempotency.request_hash(operation, dumps(rules.to_json()))
    with write_conn(engine) as conn:
        stored = idempotency.claim(
            conn, scope=p.key_id, key=key, endpoint=operation, req_hash=req_hash, now=now
        )
        if stored is not None:
            return HttpResult(stored.status, stored.body, replayed=True)
        body = dumps(set_rules(conn, p, doc, now))
        idempotency.complete(conn, scope=p.key_id, key=key, status=200, body=body)
    return HttpResult(200, body)


def update_rules(engine: Engine, p: Principal, doc: Any, now: datetime) -> dict[str, Any]:
    """:func:`set_rules` in a transaction of its own (the command line)."""
    with write_conn(engine) as conn:
        return set_rules(conn, p, doc, now)


def get_rules(engine: Engine, p: Principal) -> dict[str, Any]:
    with read_conn(engine) as conn:
        return {"rules": rules_of(conn, p.merchant_id).to_json()}


# --- coupon tokens ----------------------------------------------------------------------


def sign_token(
    engine: Engine,
    merchant_id: str,
    *,
    code: str,
    template_id: str,
    holder: str | None,
    valid_from: datetime,
    valid_until: datetime,
    offline_allowed: bool,
    now: datetime,
) -> tuple[str, str]:
    """A token for a coupon signed with the merchant's active key: ``(token, kid)``."""
    kid, private = _active_signer(engine, merchant_id, now)
    claims = TokenClaims(
        kid=kid,
        merchant_id=merchant_id,
        code=code,
        template_id=template_id,
        holder=holder,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_at=now,
        offline_allowed=offline_allowed,
    )
    return sign(private, claims), kid

