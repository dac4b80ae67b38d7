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
* a failure is counted, and its answer decided (itself, or 429 when it is one over the
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
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Row

from hub.db.engine import write_conn
from hub.domain.codes import parse_code
from hub.domain.errors import DomainError, refuse
from hub.services.guard import Guard
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
    _failure: DomainError | None = field(default=None, init=False, repr=False)
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
        failure, self._failure = self._failure, None
        if failure is None:
            return
        with write_conn(self.engine) as conn:
            answer = self.guard.count(
                conn, self.principal, self.client, failure, self.now, read=self.read
            )
        if answer is not failure:
            raise answer from None

    @property
    def failed(self) -> bool:
        """A failure is waiting to be counted."""
        return self._failure is not None

    def _require_entered(self) -> None:
        if not self._entered:  # a programming error: a look-up outside the guard
            raise RuntimeError("CodeLookup used outside its `with` block")

    def parse(self, raw: str) -> str:
        """The normalised code, or ``code_malformed`` (a failure)."""
        self._require_entered()
        try:
            return parse_code(raw)
        except DomainError as err:
            self._failure = err
            raise

    def find(self, conn: Connection, statement: Executable, code: str, **params: Any) -> Row[Any]:
        """The first row of ``statement`` — which must select the coupon by the bound
        parameters ``b_code`` and ``b_merchant`` (filled in here) — or
        ``coupon_not_found`` (a failure)."""
        self._require_entered()
        bound = {"b_code": code, "b_merchant": self.principal.merchant_id, **params}
        row = conn.execute(statement, bound).first()
        if row is None:
            err = refuse("coupon_not_found", "No coupon with this code.")
            self._failure = err
            raise err
        blocked = self.guard.known_block(self.principal, self.now)
        if blocked is not None:  # blocked while this look-up ran: the real code is refused
            raise blocked
        return row

    def settle(self, conn: Connection) -> DomainError | None:
        """Count the waiting failure in ``conn``'s write transaction (which commits with
        the refusal); returns the answer to give (the failure itself, or a 429), or
        ``None`` when no failure was waiting."""
        failure, self._failure = self._failure, None
        if failure is None:
            return None
        return self.guard.count(
            conn, self.principal, self.client, failure, self.now, read=self.read
        )


def default_guard(guard: Guard | None) -> Guard:
    """The app's guard, or one from the environment for callers outside the API."""
    return guard if guard is not None else Guard.from_env()
