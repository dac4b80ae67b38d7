"""Coupon look-ups by a code a caller sent: the one way in, behind the guessing guard.

Every service that turns a caller's code into a coupon — the coupon read, validate,
redeem, claim, void, a POS reversal by code, and any route added later — does it
through a :class:`CodeLookup`, which is what puts it behind the guard
(:mod:`hub.services.guard`):

* entering it checks the block state: a blocked key (or a key with failures behind a
  blocked address) gets 429 ``too_many_failed_attempts`` before anything is read;
* :meth:`CodeLookup.parse` normalises the code (:func:`hub.domain.codes.parse_code`:
  scanner suffixes, full-width input and the check character), and
  :meth:`CodeLookup.find` reads the merchant's coupon with it; their
  ``code_malformed`` / ``coupon_not_found`` refusals are *failures*;
* a failure is counted (each one, when a request looks up several codes: the quote),
  and its answer decided (itself, or 429 when it is one over the
  limit), either in the caller's write transaction (:meth:`CodeLookup.settle`: the
  redeem, whose stored refusal then replays without counting again) or, when the
  caller did not settle it, in a short transaction of its own as the refusal leaves the
  ``with`` block.

``tests/security/test_every_code_route.py`` enumerates the app's routes and proves each
one that takes a code is counted and throttled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection, Engine, Executable, Row

from hub.db.engine import write_conn
from hub.db.fastexec import FastStatement
from hub.domain.codes import parse_code
from hub.domain.errors import DomainError, refuse
from hub.domain.offline import PREFIX as TOKEN_PREFIX
from hub.services.guard import COUNTED, Guard
from hub.services.offline_keys import token_code
from hub.services.principal import Principal


@dataclass
class CodeLookup:
    """One request's look-ups of coupons by code (use it as a context manager).

    ``read``: the request only reads (an address block never stops an admin's reads).
    """

    engine: Engine
    guard: Guard
    principal: Principal
    now: datetime
    client: str | None = None
    read: bool = False
    _failures: list[DomainError] = field(default_factory=list, init=False, repr=False)
    _entered: bool = field(default=False, init=False, repr=False)

    def __enter__(self) -> CodeLookup:
        self.guard.check(self.engine, self.principal, self.client, self.now, read=self.read)
        self._entered = True
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False
        if not self._failures:
            return
        with write_conn(self.engine) as conn:
            answer = self.settle(conn)
        if answer is not None and answer.code not in COUNTED:
            raise answer from None

    @property
    def failed(self) -> bool:
        """A failure is waiting to be counted."""
        return bool(self._failures)

    def _require_entered(self) -> None:
        if not self._entered:  # a programming error: a look-up outside the guard
            raise RuntimeError("CodeLookup used outside its `with` block")

    def parse(self, raw: str, at: datetime | None = None) -> str:
        """The normalised code, or ``code_malformed`` (a failure). A coupon token
        (``HT1.…``, the offline QR) stands for its coupon's code once verified and judged
        at ``at`` (the redemption's time; default ``now``): its ``token_*`` refusals are
        failures as a wrong code is."""
        self._require_entered()
        try:
            if raw.startswith(TOKEN_PREFIX):
                return token_code(self.engine, raw, self.principal.merchant_id, at or self.now)
            return parse_code(raw)
        except DomainError as err:
            self._failures.append(err)
            raise

    def find(
        self, conn: Connection, statement: Executable | FastStatement, code: str, **params: Any
    ) -> Row[Any]:
        """The first row of ``statement`` — which must select the coupon by the bound
        parameters ``b_code`` and ``b_merchant`` (filled in here) — or
        ``coupon_not_found`` (a failure). A :class:`FastStatement` (the hot path's) gives
        a named tuple, read by attribute as a row is."""
        self._require_entered()
        bound = {"b_code": code, "b_merchant": self.principal.merchant_id, **params}
        row: Any
        if isinstance(statement, FastStatement):
            row = statement.first(conn, bound)
        else:
            row = conn.execute(statement, bound).first()
        if row is None:
            err = refuse("coupon_not_found", "No coupon with this code.")
            self._failures.append(err)
            raise err
        blocked = self.guard.known_block(self.principal, self.now)
        if blocked is not None:  # blocked while this look-up ran: the real code is refused
            raise blocked
        return cast("Row[Any]", row)  # a FastStatement's named tuple reads as a Row

    def settle(self, conn: Connection) -> DomainError | None:
        """Count the waiting failures in ``conn``'s write transaction (which commits with
        the refusal), in the order they happened; returns the answer to give (the first
        failure itself, or a 429 once one is over the limit), or ``None`` when no failure
        was waiting."""
        failures, self._failures = self._failures, []
        for failure in failures:  # several when one request looks up several codes
            answer = self.guard.count(
                conn, self.principal, self.client, failure, self.now, read=self.read
            )
            if answer is not failure:  # one over the limit: the rest are not counted
                return answer
        return failures[0] if failures else None

    def settle_refusal(self, conn: Connection, refusal: DomainError) -> None:
        """:meth:`settle` as ``refusal`` leaves ``conn``'s write transaction (the counts
        commit with the stored refusal); raises the 429 instead when a failure is one over
        the limit (answered, never stored)."""
        answer = self.settle(conn)
        if answer is not None and answer is not refusal:
            raise answer from None


def default_guard(guard: Guard | None) -> Guard:
    """The app's guard, or one from the environment for callers outside the API."""
    return guard if guard is not None else Guard.from_env()
