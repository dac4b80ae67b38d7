"""Templates to and from plain JSON-able dicts (the stored and the API form)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from hub.domain.errors import refuse
from hub.domain.templates import (
    DEFAULT_REMIND_DAYS,
    KINDS,
    Benefit,
    ExchangeBenefit,
    FixedWindow,
    HourRange,
    PercentageBenefit,
    RelativeWindow,
    Stacking,
    Template,
    ThresholdBenefit,
    UsageRules,
    Validity,
    check_template,
)
from hub.domain.validity import to_utc


def _time(value: str, field_name: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise refuse("invalid_template", f"{field_name} must be HH:MM", field=field_name) from None


def _dt(value: str, field_name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise refuse(
            "invalid_template", f"{field_name} must be an ISO 8601 time", field=field_name
        ) from None
    if parsed.tzinfo is None:
        raise refuse("invalid_template", f"{field_name} must carry a time zone", field=field_name)
    to_utc(parsed, field_name)  # 0001-01-01T00:00:00+14:00 has no UTC instant
    return parsed


def benefit_from_dict(d: dict[str, Any]) -> Benefit:
    kind = d.get("kind")
    if kind == "threshold":
        return ThresholdBenefit(threshold=int(d["threshold"]), discount=int(d["discount"]))
    if kind == "percentage":
        cap = d.get("cap")
        return PercentageBenefit(
            percent_off=int(d["percent_off"]),
            threshold=int(d.get("threshold") or 0),
            cap=None if cap is None else int(cap),
        )
    if kind == "exchange":
        return ExchangeBenefit(
            sku=str(d["sku"]),
            qty=int(d.get("qty", 1)),
            price=int(d.get("price") or 0),
            threshold=int(d.get("threshold") or 0),
        )
    raise refuse(
        "invalid_template",
        "benefit.kind must be threshold, percentage or exchange",
        field="benefit.kind",
    )


def validity_from_dict(d: dict[str, Any]) -> Validity:
    if d.get("type") == "fixed":
        return FixedWindow(
            start=_dt(d["start"], "validity.start"), end=_dt(d["end"], "validity.end")
        )
    if d.get("type") == "relative":
        return RelativeWindow(
            days=int(d["days"]), start_after_days=int(d.get("start_after_days") or 0)
        )
    raise refuse(
        "invalid_template", "validity.type must be fixed or relative", field="validity.type"
    )


def usage_from_dict(d: dict[str, Any] | None) -> UsageRules:
    d = d or {}
    hours = tuple(
        HourRange(
            _time(h["start"], f"usage.hours[{i}].start"), _time(h["end"], f"usage.hours[{i}].end")
        )
        for i, h in enumerate(d.get("hours") or ())
    )
    return UsageRules(
        weekdays=frozenset(int(x) for x in d.get("weekdays") or ()),
        hours=hours,
        skus=frozenset(d.get("skus") or ()),
        categories=frozenset(d.get("categories") or ()),
        stores=frozenset(d.get("stores") or ()),
        channels=frozenset(d.get("channels") or ()),
    )


def stacking_from_dict(d: dict[str, Any] | None) -> Stacking:
    """``{"combines_with": [kinds], "max_per_order": n | null}``; absent = exclusive.

    A missing (or null) ``max_per_order`` is 1 for an exclusive coupon and "no limit of
    its own" for one that combines with others. The rules are checked by
    :func:`hub.domain.templates.check_template`.
    """
    if d is None:
        return Stacking()
    if not isinstance(d, dict):
        raise refuse(
            "invalid_template",
            'stacking must be an object: {"combines_with": [...], "max_per_order": n}',
            field="stacking",
        )
    kinds = d.get("combines_with") or []
    if not isinstance(kinds, list | tuple) or not all(isinstance(k, str) for k in kinds):
        raise refuse(
            "invalid_template",
            f"stacking.combines_with must be a list of kinds out of {list(KINDS)}",
            field="stacking.combines_with",
        )
    limit = d.get("max_per_order")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise refuse(
            "invalid_template",
            "stacking.max_per_order must be an integer or null",
            field="stacking.max_per_order",
        )
    combines_with = frozenset(kinds)
    if limit is None and not combines_with:
        limit = 1
    return Stacking(combines_with=combines_with, max_per_order=limit)


def transferable_from_dict(value: Any) -> bool:
    """``transferable``: true or false; absent (or null) is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise refuse(
            "invalid_template", "transferable must be true or false", field="transferable"
        )
    return value


def offline_from_dict(value: Any) -> bool:
    """``offline``: true or false; absent (or null) is true (templates stored before
    terminals could redeem offline allow it)."""
    if value is None:
        return True
    if not isinstance(value, bool):
        raise refuse("invalid_template", "offline must be true or false", field="offline")
    return value


def remind_days_from_dict(value: Any) -> tuple[int, ...]:
    """``remind_days_before``: a list of whole days, kept largest first; absent (or null)
    is the default ``[3]`` (templates stored before reminders existed remind 3 days
    before); ``[]`` is no reminder. The values are checked by ``check_template``
    (1 … 365, at most 5, each once)."""
    if value is None:
        return DEFAULT_REMIND_DAYS
    if not isinstance(value, list | tuple) or any(
        isinstance(d, bool) or not isinstance(d, int) for d in value
    ):
        raise refuse(
            "invalid_template",
            "remind_days_before must be a list of whole days, e.g. [3, 1]",
            field="remind_days_before",
        )
    return tuple(sorted(value, reverse=True))


def template_from_dict(d: dict[str, Any]) -> Template:
    """Build and check a template from its dict form (raises ``invalid_template``).

    Stored rules written before templates had ``stacking`` read as exclusive, and
    before they had ``transferable`` as not transferable."""
    return check_template(
        Template(
            benefit=benefit_from_dict(d["benefit"]),
            validity=validity_from_dict(d["validity"]),
            usage=usage_from_dict(d.get("usage")),
            total_quantity=d.get("total_quantity"),
            per_customer_limit=d.get("per_customer_limit"),
            stacking=stacking_from_dict(d.get("stacking")),
            transferable=transferable_from_dict(d.get("transferable")),
            offline=offline_from_dict(d.get("offline")),
            remind_days_before=remind_days_from_dict(d.get("remind_days_before")),
        )
    )


def benefit_to_dict(b: Benefit) -> dict[str, Any]:
    if isinstance(b, ThresholdBenefit):
        return {"kind": b.kind, "threshold": b.threshold, "discount": b.discount}
    if isinstance(b, PercentageBenefit):
        return {
            "kind": b.kind,
            "percent_off": b.percent_off,
            "threshold": b.threshold,
            "cap": b.cap,
        }
    return {"kind": b.kind, "sku": b.sku, "qty": b.qty, "price": b.price, "threshold": b.threshold}


def validity_to_dict(v: Validity) -> dict[str, Any]:
    if isinstance(v, FixedWindow):
        return {"type": "fixed", "start": v.start.isoformat(), "end": v.end.isoformat()}
    return {"type": "relative", "days": v.days, "start_after_days": v.start_after_days}


def _hhmm(t: time) -> str:
    """``HH:MM``, or the full ISO time when it has seconds (nothing is dropped)."""
    return t.strftime("%H:%M") if not (t.second or t.microsecond) else t.isoformat()


def usage_to_dict(u: UsageRules) -> dict[str, Any]:
    return {
        "weekdays": sorted(u.weekdays),
        "hours": [{"start": _hhmm(h.start), "end": _hhmm(h.end)} for h in u.hours],
        "skus": sorted(u.skus),
        "categories": sorted(u.categories),
        "stores": sorted(u.stores),
        "channels": sorted(u.channels),
    }


def stacking_to_dict(s: Stacking) -> dict[str, Any]:
    return {
        "combines_with": [k for k in KINDS if k in s.combines_with],
        "max_per_order": s.max_per_order,
    }


def template_to_dict(t: Template) -> dict[str, Any]:
    return {
        "benefit": benefit_to_dict(t.benefit),
        "validity": validity_to_dict(t.validity),
        "usage": usage_to_dict(t.usage),
        "total_quantity": t.total_quantity,
        "per_customer_limit": t.per_customer_limit,
        "stacking": stacking_to_dict(t.stacking),
        "transferable": t.transferable,
        "offline": t.offline,
        "remind_days_before": sorted(t.remind_days_before, reverse=True),
    }
