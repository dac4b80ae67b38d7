"""Campaigns customers claim coupons from (领券): create, read, claim.

A claim issues one coupon of the campaign's template to one customer. Stock is taken
with one conditional ``UPDATE campaigns SET claimed = claimed + 1 WHERE claimed < total``
(the row lock serialises racing claims on PostgreSQL; SQLite has one writer), and the
customer's n-th claim is a row unique on (campaign, customer, n), so neither the total
nor the per-customer limit can be exceeded however many requests race. A claim carries
an Idempotency-Key: a retry replays the first answer, another body under it is 422.

The campaign's ``claim_token`` (made with it, 192 random bits) is the shareable link: a
customer-facing app that has only the token reads the campaign as a customer sees it
(:func:`get_by_token`) and claims from it (:func:`claim_by_token`, the same claim as by
id). A token is a secret: a wrong one is ``campaign_not_found``, counted by the guessing
guard (:func:`hub.services.tokens.guarded_look_up`), and an ``app`` key none of whose
channels the campaign uses gets the same 404, so a key cannot learn of other channels'
campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.db.engine import read_conn, write_conn
from hub.db.schema import campaign_claims, campaigns, coupon_templates
from hub.domain.errors import DomainError, refuse
from hub.domain.ids import new_id
from hub.domain.templates import CHANNELS
from hub.domain.validity import to_utc
from hub.services import audit, idempotency, issuing, outbox
from hub.services.commands import HttpResult
from hub.services.guard import Guard
from hub.services.jsonio import dumps, iso
from hub.services.lookup import default_guard
from hub.services.principal import Principal
from hub.services.tokens import guarded_look_up, new_token, well_formed

MAX_TOTAL = 10_000_000
MAX_PER_CUSTOMER = 100


@dataclass(frozen=True)
class CampaignSpec:
    template_id: str
    name: str
    channels: list[str]
    starts_at: datetime
    ends_at: datetime
    total: int
    per_customer: int = 1
    daily_start: str | None = None  # "HH:MM" in the merchant's time zone
    daily_end: str | None = None


def _invalid(field: str, message: str) -> Exception:
    return refuse("invalid_request", message, errors=[{"field": field, "message": message}])


def _hhmm(value: str, field: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise _invalid(field, f"{field} is a time of day HH:MM.") from None


def _in_utc(spec: CampaignSpec) -> CampaignSpec:
    """``spec`` with its times in UTC; ``datetime_out_of_range`` for a time like
    ``0001-01-01T00:00:00+14:00`` whose UTC instant does not exist."""
    return replace(
        spec,
        starts_at=to_utc(spec.starts_at, "starts_at"),
        ends_at=to_utc(spec.ends_at, "ends_at"),
    )


def _check(spec: CampaignSpec) -> None:
    if not spec.channels or set(spec.channels) - set(CHANNELS):
        raise _invalid("channels", f"channels lists at least one of {list(CHANNELS)}.")
    if spec.ends_at <= spec.starts_at:
        raise _invalid("ends_at", "ends_at must be after starts_at.")
    if not 1 <= spec.total <= MAX_TOTAL:
        raise _invalid("total", f"total is 1 to {MAX_TOTAL}.")
    if not 1 <= spec.per_customer <= MAX_PER_CUSTOMER:
        raise _invalid("per_customer", f"per_customer is 1 to {MAX_PER_CUSTOMER}.")
    if (spec.daily_start is None) != (spec.daily_end is None):
        raise _invalid("daily_window", "A daily window has both start and end.")
    if (
        spec.daily_start is not None
        and spec.daily_end is not None
        and _hhmm(spec.daily_start, "start") >= _hhmm(spec.daily_end, "end")
    ):
        raise _invalid("daily_window", "The daily window's start is before its end.")


def _view(row: Any) -> dict[str, Any]:
    window = None
    if row.daily_start is not None:
        window = {"start": row.daily_start, "end": row.daily_end}
    return {
        "id": row.id,
        "name": row.name,
        "template_id": row.template_id,
        "claim_token": row.claim_token,
        "channels": list(row.channels),
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "total": row.total,
        "per_customer": row.per_customer,
        "daily_window": window,
        "claimed": row.claimed,
        "remaining": row.total - row.claimed,
        "created_at": iso(row.created_at),
    }


def create_campaign(
    engine: Engine, p: Principal, spec: CampaignSpec, now: datetime
) -> dict[str, Any]:
    p.require_admin()
    spec = _in_utc(spec)
    _check(spec)
    campaign_id = new_id("cmp")
    with write_conn(engine) as conn:
        issuing.get_template_row(conn, p, spec.template_id)
        conn.execute(
            insert(campaigns).values(
                id=campaign_id,
                merchant_id=p.merchant_id,
                template_id=spec.template_id,
                name=spec.name or f"campaign {campaign_id}",
                claim_token=new_token(),
                channels=sorted(set(spec.channels)),
                starts_at=spec.starts_at,
                ends_at=spec.ends_at,
                total=spec.total,
                per_customer=spec.per_customer,
                daily_start=spec.daily_start,
                daily_end=spec.daily_end,
                claimed=0,
                created_at=now,
            )
        )
        audit.record(conn, p, "campaign.created", "campaign", campaign_id, now,
                     template_id=spec.template_id, total=spec.total)
        return _view(_row(conn, p, campaign_id))


def _row(conn: Connection, p: Principal, campaign_id: str) -> Any:
    row = conn.execute(
        select(campaigns).where(
            campaigns.c.id == campaign_id, campaigns.c.merchant_id == p.merchant_id
        )
    ).first()
    if row is None:
        raise refuse("campaign_not_found", f"No campaign {campaign_id}.")
    return row


def get_campaign(engine: Engine, p: Principal, campaign_id: str) -> dict[str, Any]:
    with read_conn(engine) as conn:
        return _view(_row(conn, p, campaign_id))


def _why_closed(row: Any, p: Principal, now: datetime) -> DomainError | None:
    """The refusal a claim gets now for the campaign's window (not started, ended, or
    outside its daily window), or None while claims are open."""
    if now < row.starts_at:
        return refuse("campaign_not_started", f"Claims open at {iso(row.starts_at)}.",
                      starts_at=iso(row.starts_at))
    if now >= row.ends_at:
        return refuse("campaign_ended", f"Claims closed at {iso(row.ends_at)}.",
                      ends_at=iso(row.ends_at))
    if row.daily_start is not None:
        local = now.astimezone(p.tz).time()
        if not time.fromisoformat(row.daily_start) <= local < time.fromisoformat(row.daily_end):
            return refuse(
                "campaign_not_started",
                f"Claims are open daily from {row.daily_start} to {row.daily_end} "
                f"({p.tz.key}).",
                daily_window={"start": row.daily_start, "end": row.daily_end},
            )
    return None


def _check_open(row: Any, p: Principal, now: datetime) -> None:
    closed = _why_closed(row, p, now)
    if closed is not None:
        raise closed


def _channel(row: Any, p: Principal, channel: str | None) -> str:
    allowed = [c for c in row.channels if p.channels is None or c in p.channels]
    if channel is None:
        if not allowed:
            raise refuse("forbidden", "This key acts on none of the campaign's channels.")
        return str(allowed[0])
    p.require_channel(channel)
    if channel not in row.channels:
        raise refuse("channel_not_allowed",
                     f"This campaign is claimed through {', '.join(row.channels)}.")
    return channel


def claim(
    engine: Engine,
    p: Principal,
    campaign_id: str,
    customer: str,
    channel: str | None,
    idempotency_key: str | None,
    now: datetime,
    *,
    operation: str,
) -> HttpResult:
    """The claim's answer (201, or the first one replayed); refusals raise (nothing is
    stored).

    ``operation`` is the request as the transport names it (stored with the
    Idempotency-Key: the same key for another operation is refused)."""
    p.require("admin", "app")
    key = idempotency.check_key(idempotency_key)
    return idempotency.create_once(
        engine, scope=p.key_id, key=key, endpoint=operation,
        canonical_body=dumps({"customer": customer, "channel": channel}),
        now=now, make=lambda conn: _claim(conn, p, campaign_id, customer, channel, now),
    )  # fmt: skip


def _claim(
    conn: Connection, p: Principal, campaign_id: str, customer: str, channel: str | None,
    now: datetime,
) -> dict[str, Any]:
    row = _row(conn, p, campaign_id)
    used_channel = _channel(row, p, channel)
    _check_open(row, p, now)
    taken = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == row.id, campaigns.c.claimed < campaigns.c.total)
        .values(claimed=campaigns.c.claimed + 1)
        .returning(campaigns.c.claimed)
    ).first()
    if taken is None:
        raise refuse("campaign_sold_out", "Every coupon of this campaign has been claimed.")
    coupon_id, view = issuing.issue_one(conn, p, row.template_id, customer, used_channel, now)
    held = conn.execute(
        select(func.count()).select_from(campaign_claims).where(
            campaign_claims.c.campaign_id == row.id,
            campaign_claims.c.customer_id == view["customer_id"],
        )
    ).scalar_one()
    limit_reached = refuse(
        "claim_limit_reached",
        f"A customer claims at most {row.per_customer} coupon(s) of this campaign.",
        limit=row.per_customer,
    )
    if held >= row.per_customer:
        raise limit_reached
    try:
        with conn.begin_nested():
            conn.execute(insert(campaign_claims).values(
                id=new_id("clm"), campaign_id=row.id, customer_id=view["customer_id"],
                seq=held + 1, coupon_id=coupon_id, claimed_at=now,
            ))
    except IntegrityError:  # the same customer's claim committed in between
        raise limit_reached from None
    outbox.append(conn, [outbox.event_row(
        type="coupon.claimed", merchant_id=p.merchant_id, coupon_id=coupon_id,
        occurred_at=now, recorded_at=now,
        data={"code": view["code"], "customer": customer, "template_id": row.template_id,
              "campaign_id": row.id, "channel": used_channel},
    )])
    return {
        "campaign_id": row.id,
        "code": view["code"],
        "customer": customer,
        "template_id": row.template_id,
        "channel": used_channel,
        "valid_from": view["valid_from"],
        "valid_until": view["valid_until"],
        "claimed_at": iso(now),
    }


# --- by the claim token (the shareable link) -----------------------------------------------

_BY_TOKEN = (
    select(
        campaigns,
        coupon_templates.c.name.label("template_name"),
        coupon_templates.c.kind,
        coupon_templates.c.rules,
        coupon_templates.c.status.label("template_status"),
        coupon_templates.c.total_quantity,
        coupon_templates.c.issued_count,
    )
    .select_from(campaigns.join(coupon_templates, coupon_templates.c.id == campaigns.c.template_id))
    .where(
        campaigns.c.claim_token == bindparam("b_token"),
        campaigns.c.merchant_id == bindparam("b_merchant"),
    )
)


def _usable_channels(row: Any, p: Principal) -> list[str]:
    """The campaign's channels the key may act on (every one for a key not limited)."""
    return [str(c) for c in row.channels if p.channels is None or c in p.channels]


def _find_by_token(conn: Connection, p: Principal, token: str) -> Any:
    """The merchant's campaign with this claim token, or ``campaign_not_found`` — for a
    wrong token and for a campaign none of whose channels the key may act on alike
    (counted by the guard as it leaves :func:`hub.services.tokens.guarded_look_up`)."""
    row = None
    if well_formed(token):
        row = conn.execute(_BY_TOKEN, {"b_token": token, "b_merchant": p.merchant_id}).first()
    if row is None or not _usable_channels(row, p):
        raise refuse("campaign_not_found", "No campaign with this claim token.")
    return row


def _reason(row: Any, p: Principal, now: datetime) -> str | None:
    """Why a claim made now would be refused whoever claims (the refusal's code, in the
    order a claim checks), or None while claims are open."""
    closed = _why_closed(row, p, now)
    if closed is not None:
        return closed.code
    if row.claimed >= row.total:
        return "campaign_sold_out"
    if row.template_status != "active":
        return "template_paused"
    if row.total_quantity is not None and row.issued_count >= row.total_quantity:
        return "template_out_of_stock"
    return None


def _customer_view(row: Any, p: Principal, now: datetime) -> dict[str, Any]:
    window = None
    if row.daily_start is not None:
        window = {"start": row.daily_start, "end": row.daily_end}
    left = row.total - row.claimed
    if row.total_quantity is not None:  # the template's own stock may run out first
        left = min(left, row.total_quantity - row.issued_count)
    reason = _reason(row, p, now)
    return {
        "id": row.id,
        "name": row.name,
        "template": {
            "id": row.template_id,
            "name": row.template_name,
            "kind": row.kind,
            "benefit": dict(row.rules)["benefit"],
        },
        "channels": _usable_channels(row, p),
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "daily_window": window,
        "timezone": p.tz.key,
        "per_customer": row.per_customer,
        "remaining": max(left, 0),
        "open_now": reason is None,
        "reason": reason,
    }


def get_by_token(
    engine: Engine,
    p: Principal,
    token: str,
    now: datetime,
    *,
    guard: Guard | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """The campaign behind a claim link as a customer-facing app shows it: the template's
    benefit, the window, whether claims are open now and why not, the coupons left."""
    p.require("admin", "analyst", "app")
    with (
        guarded_look_up(engine, default_guard(guard), p, now, client, read=True),
        read_conn(engine) as conn,
    ):
        return _customer_view(_find_by_token(conn, p, token), p, now)


def claim_by_token(
    engine: Engine,
    p: Principal,
    token: str,
    customer: str,
    channel: str | None,
    idempotency_key: str | None,
    now: datetime,
    *,
    operation: str,
    guard: Guard | None = None,
    client: str | None = None,
) -> HttpResult:
    """:func:`claim` from the campaign behind a claim link (the token found behind the
    guessing guard first); the same answers, stored under ``operation``'s name."""
    p.require("admin", "app")
    idempotency.check_key(idempotency_key)  # refused before the look-up, as by id
    with (
        guarded_look_up(engine, default_guard(guard), p, now, client),
        read_conn(engine) as conn,
    ):
        campaign_id = str(_find_by_token(conn, p, token).id)
    return claim(engine, p, campaign_id, customer, channel, idempotency_key, now,
                 operation=operation)
