"""``crm.salesforce``: loyalty points in Salesforce Loyalty Management.

A redemption runs the program's credit process, a reversal its debit process, through the
Loyalty Program Process Connect API (API 56.0+)::

    POST {instance_url}/services/data/{api_version}/connect/loyalty/programs/{program_name}
         /program-processes/{process_name}
    {"processParameters": [{"TransactionJournal": {"ActivityDate": "2026-11-25T06:30:00Z",
        "ExternalTransactionNumber": "<event id>", "JournalTypeName": "Accrual",
        "MembershipNumber": "C-0001", "TransactionAmount": "88.00", "Status": "Processed"},
      "PointsToCredit": 88}]}

The points are computed by the hub (:mod:`connectors.crm.points`), so the processes are
the pre-calculated-points templates: CreditPointsToMembers (``PointsToCredit``) and
DebitPointsFromMembers (``PointsToDebit``, journal type ``Redemption``).
``TransactionAmount`` is what the customer paid (order amount minus discount) in yuan, as
a decimal string like the documentation's ``"45.0"`` — never a float.
``MembershipNumber`` carries the customer's external id (``member_lookup:
"member_id"`` sends it as ``MemberId``, the LoyaltyProgramMember record id, instead).

Followed (developer.salesforce.com, Loyalty Management Developer Guide):

- "Loyalty Program Process" (connect_resources_process_name): the resource
  ``/connect/loyalty/programs/${programName}/program-processes/${processName}`` and its
  ``processParameters`` input ("Loyalty Process Input");
- "Credit Points to Members" / "Debit Points from Members"
  (connect_resources_credit_points_to_members, …_debit_points_from_members): the
  ``TransactionJournal`` + ``PointsToCredit``/``PointsToDebit`` request shapes, with
  ``MembershipNumber`` or ``MemberId``;
- "Loyalty Process" output (connect_responses_loyalty_process_output): ``status`` (true:
  succeeded, false: failed), ``message`` (the error), ``outputParameters``;
- the TransactionJournal object: ``ExternalTransactionNumber`` is filterable (idLookup);
- REST API "Status Codes and Error Responses" (api_rest/errorcodes): errors are a JSON
  list of ``{"errorCode", "message"}``; 401 is an expired/invalid session; 403
  ``REQUEST_LIMIT_EXCEEDED`` is the org's API limit;
- "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration": ``POST
  {my domain}/services/oauth2/token`` with a form body ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``; the answer has ``access_token`` and ``instance_url``
  but no ``expires_in``.

Note: the older "Transaction Journals Execution" resource
``/connect/realtime/loyalty/programs/${programName}`` takes a different body
(``transactionJournals``); the ``/program-processes/`` path is not under ``realtime``.

Idempotency. The hub delivers at least once, so a delivery first asks whether a journal of
this event exists — ``SELECT Id, Status FROM TransactionJournal WHERE
ExternalTransactionNumber = '<event id>'`` — and posts only when none does (journals in
status ``Error`` or ``Cancelled`` do not count: they credited nothing). An answer that is
a 2xx but cannot be read is retried: the query makes the retry safe.

Session. The token answer's ``instance_url`` is not used: a session is only headers, so
every request goes to the configured ``instance_url``, which must be the org's My Domain
URL (the client-credentials flow needs it anyway). Salesforce does not say how long a
token lives (it follows the org's session timeout, 2 hours by default); the hub keeps it
for an hour and renews it once when an answer is a 401 (``INVALID_SESSION_ID``).

Classification: ``REQUEST_LIMIT_EXCEEDED``, ``UNABLE_TO_LOCK_ROW`` and
``SERVER_UNAVAILABLE`` retry whatever the status; connection errors, timeouts, 408, 429
and 5xx retry (honouring ``Retry-After``); a 401 that survives the renewal, other 4xx and
a process answering ``"status": false`` fail with Salesforce's message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from connectors.crm.points import PointsChange, PointsError, points_for, with_points_schema, yuan
from hub.connectors import (
    Delivered,
    Exchange,
    Failed,
    OutboundConnector,
    OutboundRequest,
    OutboundResponse,
    Outcome,
    Retry,
    Session,
    classify_http,
    package_schema,
    retry_after_seconds,
)

DEFAULT_API_VERSION = "v60.0"
SESSION_TTL = 3600.0  # seconds; Salesforce does not say, a 401 renews it anyway
RETRY_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
VOID_JOURNAL_STATUSES = frozenset({"Error", "Cancelled"})  # journals that credited nothing
MAX_DETAIL = 300


def _errors(response: OutboundResponse) -> list[tuple[str, str]]:
    """``(errorCode, message)`` of a Salesforce error body: the REST list, a single
    object, or an OAuth ``{"error", "error_description"}``."""
    body = response.json()
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("errorCode", item.get("error"))
        message = item.get("message", item.get("error_description"))
        if code is not None or message is not None:
            found.append((str(code or ""), str(message or "")))
    return found


def _detail(errors: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{c}: {m}" if c and m else c or m for c, m in errors)[:MAX_DETAIL]


def classify_salesforce(response: OutboundResponse | None, error: Exception | None) -> Outcome:
    """Salesforce's answer (or a transport error) as an outcome; see the module docs."""
    if response is None:
        return classify_http(None, error)
    errors = _errors(response)
    detail = _detail(errors)
    if any(code in RETRY_CODES for code, _ in errors):
        after = retry_after_seconds(response.header("retry-after"))
        return Retry(f"HTTP {response.status}: {detail}", after=after)
    outcome = classify_http(response, None)
    if isinstance(outcome, Delivered):
        return outcome
    if isinstance(outcome, Retry):
        return Retry(f"{outcome.reason}: {detail}" if detail else outcome.reason, outcome.after)
    if response.status == 401:
        return Failed(f"HTTP 401: Salesforce refused the renewed access token ({detail})")
    return Failed(f"{outcome.reason}: {detail}" if detail else outcome.reason)


def _iso_utc(value: Any) -> str:
    """An ISO 8601 instant as Salesforce's dateTime, ``2026-11-25T06:30:00Z`` (UTC)."""
    if not isinstance(value, str):
        raise PointsError(f"occurred_at must be an ISO 8601 string, got {value!r}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PointsError(f"occurred_at is not ISO 8601: {value!r}") from None
    if when.tzinfo is None:
        raise PointsError(f"occurred_at has no UTC offset: {value!r}")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _soql_literal(value: str) -> str:
    """A SOQL string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceConnector(OutboundConnector):
    """Loyalty points to Salesforce Loyalty Management program processes."""

    name: ClassVar[str] = "crm.salesforce"
    kind: ClassVar[str] = "crm"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = (
        "Credit/debit loyalty points through Salesforce Loyalty Management program processes"
    )
    capabilities: ClassVar[tuple[str, ...]] = ("outbound", "loyalty.credit", "loyalty.debit")
    consumes: ClassVar[tuple[str, ...]] = ("coupon.redeemed", "coupon.redemption_reversed")
    secret_fields: ClassVar[tuple[str, ...]] = ("client_secret",)
    config_schema: ClassVar[dict[str, Any]] = with_points_schema(
        package_schema("connectors.crm", "salesforce.schema.json")
    )

    # ---------------------------------------------------------------- urls
    @staticmethod
    def _timeout(config: Mapping[str, Any]) -> float:
        return float(config.get("timeout", 10.0))

    @staticmethod
    def _data_url(config: Mapping[str, Any]) -> str:
        version = config.get("api_version", DEFAULT_API_VERSION)
        return f"{config['instance_url'].rstrip('/')}/services/data/{version}"

    def _get(self, config: Mapping[str, Any], url: str) -> OutboundRequest:
        return OutboundRequest(
            "GET", url, {"accept": "application/json"}, timeout=self._timeout(config)
        )

    def journal_query(self, config: Mapping[str, Any], event_id: str) -> OutboundRequest:
        soql = (
            "SELECT Id, Status FROM TransactionJournal "
            f"WHERE ExternalTransactionNumber = {_soql_literal(event_id)}"
        )
        return self._get(config, f"{self._data_url(config)}/query?{urlencode({'q': soql})}")

    def process_request(
        self, config: Mapping[str, Any], event: Mapping[str, Any], change: PointsChange
    ) -> OutboundRequest:
        credit = change.is_credit
        process = config["process_name"] if credit else config["debit_process_name"]
        journal: dict[str, Any] = {
            "ActivityDate": _iso_utc(event.get("occurred_at")),
            "ExternalTransactionNumber": change.reference,
            "JournalTypeName": (
                config.get("journal_type", "Accrual")
                if credit
                else config.get("debit_journal_type", "Redemption")
            ),
        }
        subtype = config.get("journal_subtype" if credit else "debit_journal_subtype")
        if subtype:
            journal["JournalSubTypeName"] = subtype
        member_field = (
            "MemberId" if config.get("member_lookup") == "member_id" else "MembershipNumber"
        )
        journal[member_field] = change.member
        journal["TransactionAmount"] = yuan(change.paid)
        if config.get("currency_iso_code"):
            journal["CurrencyIsoCode"] = config["currency_iso_code"]
        journal["Status"] = "Processed"
        parameters = {
            "TransactionJournal": journal,
            "PointsToCredit" if credit else "PointsToDebit": change.magnitude,
        }
        url = (
            f"{self._data_url(config)}/connect/loyalty/programs/"
            f"{quote(config['program_name'], safe='')}/program-processes/"
            f"{quote(process, safe='')}"
        )
        body = json.dumps({"processParameters": [parameters]}, ensure_ascii=False)
        return OutboundRequest(
            "POST",
            url,
            {"content-type": "application/json", "accept": "application/json"},
            body.encode(),
            timeout=self._timeout(config),
        )

    # ---------------------------------------------------------------- outbound
    def build_requests(
        self, event: dict[str, Any], config: dict[str, Any], *, now: datetime
    ) -> Sequence[OutboundRequest]:
        """The journal query; the post depends on its answer (see :meth:`exchange`)."""
        change = points_for(event, config)
        return [] if change is None else [self.journal_query(config, change.reference)]

    def exchange(self, event: dict[str, Any], config: dict[str, Any], *, now: datetime) -> Exchange:
        try:
            change = points_for(event, config)
            if change is None:
                return Delivered()  # no customer, or no points: nothing to tell Salesforce
            if not change.is_credit and not config.get("debit_process_name"):
                return Failed("config.debit_process_name is not set: cannot debit a reversal")
            post = self.process_request(config, event, change)
        except PointsError as exc:
            return Failed(f"cannot compute the points: {exc}")
        answer = yield self.journal_query(config, change.reference)
        outcome = self.classify(answer, None)
        if not isinstance(outcome, Delivered):
            return outcome
        existing = _live_journals(answer)
        if existing is None:
            return Failed(f"unexpected answer to the TransactionJournal query: {_head(answer)}")
        if existing:
            return Delivered()  # a replay: this event's journal is already there
        answer = yield post
        return self.process_outcome(answer)

    def process_outcome(self, answer: OutboundResponse) -> Outcome:
        outcome = self.classify(answer, None)
        if not isinstance(outcome, Delivered):
            return outcome
        body = answer.json()
        if not isinstance(body, dict) or not isinstance(body.get("status"), bool):
            return Retry(f"unreadable answer of the program process (HTTP {answer.status})")
        if body["status"]:
            return Delivered()
        message = str(body.get("message") or "no message")[:MAX_DETAIL]
        if any(code in message for code in RETRY_CODES):
            return Retry(f"program process: {message}")
        return Failed(f"program process refused the journal: {message}")

    def classify(self, response: OutboundResponse | None, error: Exception | None) -> Outcome:
        return classify_salesforce(response, error)

    # ---------------------------------------------------------------- session
    def session_request(self, config: dict[str, Any]) -> OutboundRequest | None:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
            }
        )
        return OutboundRequest(
            "POST",
            f"{config['instance_url'].rstrip('/')}/services/oauth2/token",
            {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            form.encode(),
            timeout=self._timeout(config),
        )

    def open_session(self, config: dict[str, Any], response: OutboundResponse) -> Session | Outcome:
        outcome = self.classify(response, None)
        if not isinstance(outcome, Delivered):
            return outcome
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return Failed(f"the token answer has no access_token (HTTP {response.status})")
        return Session(headers={"Authorization": f"Bearer {token}"}, expires_in=SESSION_TTL)

    def session_expired(self, response: OutboundResponse) -> bool:
        return response.status == 401

    def check_requests(self, config: dict[str, Any]) -> Sequence[OutboundRequest]:
        return [self._get(config, f"{self._data_url(config)}/limits")]


def _live_journals(answer: OutboundResponse) -> int | None:
    """How many journals of the query's answer credited or debited something; ``None``
    when the answer is not a query result."""
    body = answer.json()
    if not isinstance(body, dict):
        return None
    records = body.get("records")
    if isinstance(records, list):
        return sum(
            1
            for r in records
            if not (isinstance(r, dict) and r.get("Status") in VOID_JOURNAL_STATUSES)
        )
    total = body.get("totalSize")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    return None


def _head(answer: OutboundResponse) -> str:
    return f"HTTP {answer.status} {answer.body[:80].decode('utf-8', 'replace')!r}"


__all__ = ["SalesforceConnector", "classify_salesforce"]
