"""Guessing defence: failed code look-ups throttled per API key and per client address.

A *failure* is a code look-up (any route: the coupon read, validate, redeem, claim,
void, a POS redeem/validate/reverse by code; all go through
:class:`hub.services.lookup.CodeLookup`) refused with ``coupon_not_found`` or
``code_malformed`` — or a look-up by a secret token (:mod:`hub.services.tokens`) refused
with ``transfer_not_found`` (a transfer offer's, :mod:`hub.services.transfers`) or
``campaign_not_found`` (a campaign's claim link, :mod:`hub.services.campaigns`; only its
look-ups by token go through the guard, a campaign read or claimed by its id is never
counted) — or a staff sign-in code refused with ``sign_in_code_invalid``
(``POST /v1/staff/sessions`` needs no key: such failures are counted in one scope,
``signin:<address>``, with the per-address limit; see :meth:`Guard.sign_in_scope`).
Each of the others is counted in two
*scopes*: the API key (``key:<key id>``) and the client address
(``addr:<merchant id>:<address>``; the address is per merchant, so tills of several
merchants behind one NAT never block each other). The limits work on a sliding window:

* **per key** — a key with ``max_per_key`` failures within the window is blocked until
  the oldest of them leaves it: every code look-up it makes answers 429
  ``too_many_failed_attempts`` with ``Retry-After`` — valid codes too, since a guesser
  that found one must not learn it.
* **per address** — an address with ``max_per_address`` failures is blocked *for keys
  that failed themselves* within the window: a key with a clean record behind the same
  address (a shared NAT) carries on, and an admin key's reads (``GET``) are never
  blocked by an address. A clean key's first failure from a blocked address is answered
  429 (and gives it a record), so fresh keys cannot keep guessing either.

**Count and decide are one step.** A failure is counted in a write transaction that
first takes a lock per scope (``pg_advisory_xact_lock``, key then address; on SQLite the
``BEGIN IMMEDIATE`` writer lock serialises), counts the window, and only then decides
the answer: the failure within the limit is answered as itself (404/422), one over it
429. So however many wrong guesses race, at most ``max_per_key`` of them are answered.
Reaching a limit blocks the scope (``throttle_blocks``) and raises one ``alert.raised``
(``code_enumeration_suspected``) in that transaction.

State lives in the database (works for the embedded SQLite file and for PostgreSQL
behind any number of API processes): ``failed_attempts`` (one row per failure and scope,
pruned per scope as the window slides) and ``throttle_blocks`` (scope → blocked_until).

Cost on the hot path: a successful request writes nothing. Its "blocked?" check is a
primary-key read of ``throttle_blocks`` that each process caches for
``Limits.cache_seconds`` (1 s): a process sees a block made by another within that
time, and its own blocks at once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

import structlog
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update

from hub.db.engine import after_commit, read_conn, write_conn
from hub.db.schema import failed_attempts, throttle_blocks
from hub.db.upsert import InsertIfAbsent
from hub.domain.errors import DomainError, refuse
from hub.services import alerts
from hub.services.jsonio import iso
from hub.services.principal import Principal
from hub.settings import env as read_env

log = structlog.get_logger("hub.guard")

# transfer_not_found, campaign_not_found: a wrong transfer token (hub/services/transfers.py)
# or campaign claim token (hub/services/campaigns.py) is a guess at a secret too, counted
# with the codes; only look-ups by token (hub/services/tokens.py) reach the guard with them.
# A coupon token (offline QR) refused stands for a wrong code: TOKEN_REFUSALS count too.
TOKEN_REFUSALS = frozenset(
    {"token_malformed", "token_signature_invalid", "token_unknown_key",
     "token_wrong_merchant", "token_expired"}
)  # fmt: skip
# sign_in_code_invalid: a wrong staff sign-in code (hub/services/staff_sessions.py), counted
# per client address in a scope no merchant owns ("signin:<address>", see sign_in_scope).
COUNTED = frozenset(
    {"coupon_not_found", "code_malformed", "transfer_not_found", "campaign_not_found",
     "sign_in_code_invalid"}
) | TOKEN_REFUSALS  # fmt: skip
ENUMERATION_ALERT = "code_enumeration_suspected"
_CACHE_SIZE = 10_000


def _env_seconds(environ: Mapping[str, str] | None, name: str, default: float) -> timedelta:
    raw = read_env(name, environ)
    value = default if raw is None or not raw.strip() else float(raw)
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return timedelta(seconds=value)


def _env_count(environ: Mapping[str, str] | None, name: str, default: int) -> int:
    raw = read_env(name, environ)
    value = default if raw is None or not raw.strip() else int(raw)
    if value < 0:
        raise ValueError(f"{name} must be 0 (off) or a positive count, not {raw!r}")
    return value


def _proxies(raw: str | None) -> tuple[str, ...]:
    entries = tuple(e.strip() for e in (raw or "").split(",") if e.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"HUB_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return entries


@dataclass(frozen=True)
class Limits:
    """The guard's knobs (``HUB_GUESS_*``, ``HUB_REPEAT_WINDOW_SECONDS``,
    ``HUB_TRUSTED_PROXIES``). A limit of 0 switches that scope's blocking off (a key's
    failures are still recorded: an address block looks at them)."""

    window: timedelta = timedelta(seconds=600)
    max_per_key: int = 20
    max_per_address: int = 50
    repeat_window: timedelta = timedelta(seconds=600)
    # peers whose X-Forwarded-For is believed: IP addresses or networks (a bare name
    # such as "testclient" matches that peer literally)
    trusted_proxies: tuple[str, ...] = ()
    cache_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        e = env  # None: the process environment, read now (hub.settings)
        return cls(
            window=_env_seconds(e, "HUB_GUESS_WINDOW_SECONDS", 600),
            max_per_key=_env_count(e, "HUB_GUESS_MAX_FAILURES", 20),
            max_per_address=_env_count(e, "HUB_GUESS_MAX_FAILURES_PER_ADDRESS", 50),
            repeat_window=_env_seconds(e, "HUB_REPEAT_WINDOW_SECONDS", 600),
            trusted_proxies=_proxies(read_env("HUB_TRUSTED_PROXIES", e)),
        )


@dataclass(frozen=True)
class Scope:
    name: str
    kind: Literal["key", "address"]
    limit: int


# statements, built once
_BLOCKS = select(throttle_blocks.c.scope, throttle_blocks.c.blocked_until).where(
    throttle_blocks.c.scope.in_(bindparam("b_scopes", expanding=True))
)
_INSERT_FAILURE = insert(failed_attempts)
_PRUNE_SCOPE = delete(failed_attempts).where(
    failed_attempts.c.scope == bindparam("b_scope"),
    failed_attempts.c.at <= bindparam("b_before"),
)
# the limit-th most recent failure in the window: exists iff the scope is at its limit
_NTH_FAILURE = (
    select(failed_attempts.c.at)
    .where(failed_attempts.c.scope == bindparam("b_scope"))
    .where(failed_attempts.c.at > bindparam("b_since"))
    .order_by(failed_attempts.c.at.desc())
    .limit(1)
    .offset(bindparam("b_offset"))
)
_COUNT = select(func.count()).where(
    failed_attempts.c.scope == bindparam("b_scope"),
    failed_attempts.c.at > bindparam("b_since"),
)
_NEW_BLOCK = InsertIfAbsent(throttle_blocks, throttle_blocks.c.scope)
_PG_LOCK = select(func.pg_advisory_xact_lock(bindparam("b_lock")))
_HAS_RECORD = select(failed_attempts.c.id).where(
    failed_attempts.c.scope == bindparam("b_scope"),
    failed_attempts.c.at > bindparam("b_since"),
).limit(1)
_REOPEN_BLOCK = (
    update(throttle_blocks)
    .where(
        throttle_blocks.c.scope == bindparam("b_scope"),
        throttle_blocks.c.blocked_until <= bindparam("b_now"),
    )
    .values(
        blocked_at=bindparam("b_now"),
        blocked_until=bindparam("b_until"),
        failures=bindparam("b_failures"),
    )
    .returning(throttle_blocks.c.scope)
)
_EXTEND_BLOCK = (
    update(throttle_blocks)
    .where(
        throttle_blocks.c.scope == bindparam("b_scope"),
        throttle_blocks.c.blocked_until < bindparam("b_until"),
    )
    .values(blocked_until=bindparam("b_until"), failures=bindparam("b_failures"))
)



def _lock_id(scope: str) -> int:
    digest = hashlib.sha256(f"hub.guard\0{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(eq=False)
class Guard:
    """The limits plus this process's short cache of block state (one per app)."""

    limits: Limits = field(default_factory=Limits)
    _cache: dict[str, tuple[float, datetime | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @classmethod
    def from_env(cls) -> Guard:
        return cls(Limits.from_env())

    # --- who is asking -----------------------------------------------------------------

    def client_address(self, peer: str | None, forwarded: str | None) -> str | None:
        """The client's address: the TCP peer, or — when the peer is a trusted proxy —
        the nearest untrusted hop of ``X-Forwarded-For`` (read right to left)."""
        if not peer:
            return None
        addr = _normalise(peer)
        if forwarded and self._trusted(addr):
            for hop in reversed(forwarded.split(",")):
                hop_addr = _normalise(hop.strip())
                if not _is_ip(hop_addr):
                    break  # garbage a proxy passed on: keep the last good hop
                addr = hop_addr
                if not self._trusted(addr):
                    break
        return addr[:64]

    def _trusted(self, addr: str) -> bool:
        for entry in self.limits.trusted_proxies:
            if entry == addr:
                return True
            try:
                if ipaddress.ip_address(addr) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def scopes(self, p: Principal, client: str | None) -> tuple[Scope, ...]:
        """The key's scope (always first: it is always recorded, so a key that failed
        has a record even when its own limit is 0, "off"), then the address's if any."""
        out = [Scope(f"key:{p.key_id}", "key", self.limits.max_per_key)]
        if client and self.limits.max_per_address > 0:
            out.append(
                Scope(f"addr:{p.merchant_id}:{client}", "address", self.limits.max_per_address)
            )
        return tuple(out)

    @staticmethod
    def address_applies(p: Principal, read: bool) -> bool:
        """An address block never stops an admin key's reads."""
        return not (p.is_admin and read)

    # --- the hot-path check ------------------------------------------------------------

    def check(
        self,
        engine: Engine,
        p: Principal,
        client: str | None,
        now: datetime,
        *,
        read: bool = False,
    ) -> None:
        """Raise 429 ``too_many_failed_attempts`` while the key is blocked, or the address
        is blocked and the key has failed within the window (see the module's rules)."""
        key, *rest = self.scopes(p, client)
        names = (key.name, *(s.name for s in rest))
        blocked = self._blocked_until(engine, names, now)
        until = blocked.get(key.name)
        addr = rest[0].name if rest else None
        if (
            until is None
            and addr in blocked
            and self.address_applies(p, read)
            and self._has_record(engine, key, now)
        ):
            until = blocked[addr]
        if until is not None:
            raise self._too_many(until, now)

    def known_block(self, p: Principal, now: datetime) -> DomainError | None:
        """The key's block as this process already knows it (no database read): checked
        again after a look-up succeeds, so a block committed while the look-up ran (by a
        concurrent wrong guess) refuses the real code too."""
        with self._lock:
            item = self._cache.get(f"key:{p.key_id}")
        if item is None or item[1] is None or item[1] <= now:
            return None
        return self._too_many(item[1], now)

    def _too_many(self, until: datetime, now: datetime) -> DomainError:
        retry_after = max(1, math.ceil((until - now).total_seconds()))
        return refuse(
            "too_many_failed_attempts",
            "Too many unknown or mistyped coupon codes from this key or address; "
            f"look-ups, validations and redemptions are refused for {retry_after} s.",
            retry_after=retry_after,
            blocked_until=iso(until),
        )

    def _has_record(self, engine: Engine, key: Scope, now: datetime) -> bool:
        with read_conn(engine) as conn:
            params = {"b_scope": key.name, "b_since": now - self.limits.window}
            return conn.execute(_HAS_RECORD, params).first() is not None

    def _blocked_until(
        self, engine: Engine, names: tuple[str, ...], now: datetime
    ) -> dict[str, datetime]:
        """scope → end of its block, for the scopes blocked now (cached ≤ 1 s)."""
        mono = time.monotonic()
        known: dict[str, datetime | None] = {}
        missing: list[str] = []
        with self._lock:
            for name in names:
                item = self._cache.get(name)
                if item is not None and item[0] > mono:
                    known[name] = item[1]
                else:
                    missing.append(name)
        if missing:
            with read_conn(engine) as conn:
                rows: dict[str, datetime] = {
                    r.scope: r.blocked_until
                    for r in conn.execute(_BLOCKS, {"b_scopes": missing}).all()
                }
            expires = mono + self.limits.cache_seconds
            with self._lock:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                for name in missing:
                    known[name] = rows.get(name)
                    self._cache[name] = (expires, rows.get(name))
        return {name: u for name, u in known.items() if u is not None and u > now}

    def _remember(self, name: str, until: datetime) -> None:
        with self._lock:
            self._cache[name] = (time.monotonic() + self.limits.cache_seconds, until)

    # --- a scope without a key: staff sign-in codes by client address -------------------

    def sign_in_scope(self, client: str | None) -> Scope:
        """Where wrong staff sign-in codes are counted: the client address, across
        merchants (``POST /v1/staff/sessions`` needs no key, and the code names its
        merchant only once it is found), with the per-address limit."""
        return Scope(f"signin:{client or 'unknown'}", "address", self.limits.max_per_address)

    def check_scope(self, engine: Engine, scope: Scope, now: datetime) -> None:
        """429 ``too_many_failed_attempts`` while ``scope`` is blocked (cached ≤ 1 s)."""
        until = self._blocked_until(engine, (scope.name,), now).get(scope.name)
        if until is not None:
            raise self._too_many(until, now)

    def count_scope(
        self, engine: Engine, scope: Scope, err: DomainError, now: datetime
    ) -> DomainError:
        """Count a refusal in ``scope`` alone, in a write transaction of its own, and
        decide its answer as :meth:`count` does (``err``, or 429 over the limit). The
        block is logged; no merchant owns the scope, so it raises no alert."""
        if not self.counts(err):
            return err
        since = now - self.limits.window
        with write_conn(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(_PG_LOCK, {"b_lock": _lock_id(scope.name)})
            if self._at_limit(conn, scope, since):
                until = self._until(conn, scope, since)
                after_commit(conn, partial(self._remember, scope.name, until))
                return self._too_many(until, now)
            self._record(conn, scope, None, None, now, since)
        return err

    # --- counting refusals ---------------------------------------------------------------

    def counts(self, err: DomainError) -> bool:
        return err.code in COUNTED

    def count(
        self,
        conn: Connection,
        p: Principal,
        client: str | None,
        err: DomainError,
        now: datetime,
        *,
        read: bool = False,
    ) -> DomainError:
        """Count a refusal (if it is a guessing failure) in the caller's write
        transaction and decide its answer, atomically: ``err`` itself while the key and
        address are within their limits, else a 429 to answer instead. A scope that
        reaches its limit is blocked, with one alert per block."""
        if not self.counts(err):
            return err
        since = now - self.limits.window
        key, *rest = scopes = self.scopes(p, client)
        if conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE serialises already
            for scope in scopes:  # always key, then address: no lock-order deadlock
                conn.execute(_PG_LOCK, {"b_lock": _lock_id(scope.name)})
        key_full = self._at_limit(conn, key, since)
        addr = rest[0] if rest else None
        addr_full = addr is not None and self._at_limit(conn, addr, since)
        if key_full or (addr_full and self.address_applies(p, read)):
            if not key_full:  # a clean key at a blocked address: it has a record now
                self._record(conn, key, p, client, now, since)
            blocker = key if key_full else addr
            assert blocker is not None
            until = self._until(conn, blocker, since)
            after_commit(conn, partial(self._remember, blocker.name, until))
            return self._too_many(until, now)
        for scope in scopes:
            if scope.kind == "key" or not addr_full:
                self._record(conn, scope, p, client, now, since)
        return err

    def _at_limit(self, conn: Connection, scope: Scope, since: datetime) -> bool:
        if scope.limit <= 0:
            return False
        params = {"b_scope": scope.name, "b_since": since, "b_offset": scope.limit - 1}
        return conn.execute(_NTH_FAILURE, params).first() is not None

    def _until(self, conn: Connection, scope: Scope, since: datetime) -> datetime:
        """When a scope at its limit is free again: its limit-th newest failure leaves
        the window."""
        params = {"b_scope": scope.name, "b_since": since, "b_offset": scope.limit - 1}
        nth: datetime = conn.execute(_NTH_FAILURE, params).scalar_one()
        return nth + self.limits.window

    def _record(
        self,
        conn: Connection,
        scope: Scope,
        p: Principal | None,
        client: str | None,
        now: datetime,
        since: datetime,
    ) -> None:
        """One failure for ``scope``; block it (and alert) when that reaches its limit.
        ``p`` None: a scope no merchant owns (sign-in codes), blocked and logged only."""
        merchant_id = p.merchant_id if p is not None else None
        conn.execute(_INSERT_FAILURE, {"scope": scope.name, "merchant_id": merchant_id, "at": now})
        conn.execute(_PRUNE_SCOPE, {"b_scope": scope.name, "b_before": since})
        if not self._at_limit(conn, scope, since):
            return
        until = self._until(conn, scope, since)
        failures = int(conn.execute(_COUNT, {"b_scope": scope.name, "b_since": since}).scalar_one())
        if self._block(conn, scope, merchant_id, until, failures, now):
            if p is not None:
                self._alert(conn, scope, p, client, until, failures, now)
            else:
                log.warning(
                    "guard.blocked", scope=scope.name, failures=failures, blocked_until=iso(until)
                )
        after_commit(conn, partial(self._remember, scope.name, until))

    def count_txn(
        self,
        engine: Engine,
        p: Principal,
        client: str | None,
        err: DomainError,
        now: datetime,
        *,
        read: bool = False,
    ) -> DomainError:
        """:meth:`count` in a short write transaction of its own (only for failures)."""
        if not self.counts(err):
            return err
        with write_conn(engine) as conn:
            return self.count(conn, p, client, err, now, read=read)

    def _block(
        self,
        conn: Connection,
        scope: Scope,
        merchant_id: str | None,
        until: datetime,
        failures: int,
        now: datetime,
    ) -> bool:
        """Block ``scope`` until ``until``; True when this opened a new block (no row,
        or the last block had ended), so racing processes raise one alert, not two."""
        row = {
            "scope": scope.name,
            "merchant_id": merchant_id,
            "blocked_at": now,
            "blocked_until": until,
            "failures": failures,
        }
        if _NEW_BLOCK.inserted(conn, row):
            return True
        ident = {"b_scope": scope.name, "b_until": until, "b_failures": failures}
        if conn.execute(_REOPEN_BLOCK, {**ident, "b_now": now}).first() is not None:
            return True
        conn.execute(_EXTEND_BLOCK, ident)
        return False

    def _alert(
        self,
        conn: Connection,
        scope: Scope,
        p: Principal,
        client: str | None,
        until: datetime,
        failures: int,
        now: datetime,
    ) -> None:
        minutes = self.limits.window.total_seconds() / 60
        who = f"API key {p.key_id}" if scope.kind == "key" else f"address {client}"
        alerts.raise_alert(
            conn,
            merchant_id=p.merchant_id,
            kind=ENUMERATION_ALERT,
            severity="warning",
            message=f"{failures} unknown or mistyped coupon codes from {who} within "
            f"{minutes:g} min: someone may be guessing codes. Its look-ups, validations "
            f"and redemptions are refused until {iso(until)}.",
            details={
                "scope": scope.kind,
                "key_id": p.key_id,
                "store": p.store_code,
                "address": client,
                "failures": failures,
                "limit": scope.limit,
                "window_seconds": int(self.limits.window.total_seconds()),
                "blocked_until": iso(until),
            },
            now=now,
            store_code=p.store_code,
        )
        log.warning(
            "guard.blocked",
            scope=scope.kind,
            key_id=p.key_id,
            address=client,
            failures=failures,
            blocked_until=iso(until),
        )


def _normalise(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def _is_ip(addr: str) -> bool:
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def prune(engine: Engine, now: datetime, limits: Limits | None = None) -> int:
    """Delete guard rows no window can see any more (for a housekeeping loop); returns
    how many. Each scope also prunes its own rows whenever it fails again."""
    lim = limits or Limits.from_env()
    with write_conn(engine) as conn:
        n = conn.execute(delete(failed_attempts).where(failed_attempts.c.at <= now - lim.window))
        b = conn.execute(delete(throttle_blocks).where(throttle_blocks.c.blocked_until <= now))
        total = int(n.rowcount or 0) + int(b.rowcount or 0)
        total += alerts.prune(conn, now, lim.repeat_window)
    return total
