"""Custom JMESPath functions for POS mapping files (see ``mappings/README.md``).

Mapping files compute values with these on top of JMESPath's built-ins (``to_number``,
``to_string``, ``join``, ``length`` …):

========================  ============================================================
``to_fen(yuan)``          ``"128.50"`` / ``128.5`` / ``128`` → ``12850``; fractional fen
                          are refused; ``null`` → ``null``
``to_yuan(fen)``          ``4000`` → ``"40.00"``; ``null`` → ``null``
``concat(a, b, …)``       the arguments as one string; ``null`` counts as ``""``
``lookup(table, key)``    ``table[key]`` (numbers are looked up as text), else ``null``
``from_epoch(n, unit)``   Unix time in ``'s'`` or ``'ms'`` → ISO 8601 UTC string
``to_epoch(iso, unit)``   ISO 8601 → Unix time in ``'s'`` or ``'ms'`` (an integer)
``local_time(iso, tz)``   ISO 8601 → ``"YYYY-MM-DD HH:MM:SS"`` wall time in IANA ``tz``
========================  ============================================================

Money goes through :class:`~decimal.Decimal`, never binary floating point: a JSON number
is read back through its shortest decimal representation (``repr``), which is exactly
the text the vendor wrote for any amount of up to 15 significant digits.

A function given a value it cannot use raises :class:`FunctionError` (a
``JMESPathError``); the connector turns it into an ``invalid_pos_payload`` refusal that
names the mapping field.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError

_DECIMAL = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_MAX_TEXT = 60  # how much of an offending value a message quotes


class FunctionError(JMESPathError):
    """A mapping function was given a value it cannot convert."""


def shown(value: Any) -> str:
    """A short rendering of ``value`` for messages (JSON-ish: null, not None)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "an array"
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def to_decimal(value: Any) -> Decimal:
    """A decimal amount from a JSON number or a plain decimal string (``"128.50"``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a decimal amount, got {shown(value)}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a decimal amount, got {shown(value)}")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 40 and _DECIMAL.match(text):
            try:
                return Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                pass
        raise ValueError(f"expected a decimal amount, got {shown(value)}")
    raise ValueError(f"expected a decimal amount, got {shown(value)}")


def yuan_to_fen(value: Any) -> int:
    """``"128.50"`` yuan → ``12850`` fen; refuses amounts with fractional fen."""
    fen = to_decimal(value) * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{shown(value)} yuan is not a whole number of fen")
    return int(fen)


def fen_to_yuan(value: Any) -> str:
    """``4000`` fen → ``"40.00"``."""
    fen = as_integer(value)
    if fen is None:
        raise ValueError(f"expected integer fen, got {shown(value)}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def as_integer(value: Any) -> int | None:
    """``value`` as an int if it is a JSON integer (``12800`` or ``12800.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return None


def parse_time(value: Any, tz: tzinfo | None = None) -> datetime:
    """An ISO 8601 timestamp (``T`` or a space between date and time). One without an
    offset is read in ``tz``; without ``tz`` it is refused. The result is UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ValueError(f"expected an ISO 8601 time, got {shown(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time, got {shown(value)}") from None
    if parsed.tzinfo is None:
        if tz is None:
            raise ValueError(f"{shown(value)} has no UTC offset (the mapping sets no timezone)")
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _unit(unit: str) -> int:
    if unit not in ("s", "ms"):
        raise FunctionError(f"time unit must be 's' or 'ms', not {shown(unit)}")
    return 1 if unit == "s" else 1000


class MappingFunctions(functions.Functions):
    """The functions mapping expressions may call besides JMESPath's own."""

    @functions.signature({"types": ["string", "number", "null"]})
    def _func_to_fen(self, yuan: Any) -> int | None:
        if yuan is None:
            return None
        try:
            return yuan_to_fen(yuan)
        except ValueError as exc:
            raise FunctionError(f"to_fen(): {exc}") from None

    @functions.signature({"types": ["number", "null"]})
    def _func_to_yuan(self, fen: Any) -> str | None:
        if fen is None:
            return None
        try:
            return fen_to_yuan(fen)
        except ValueError as exc:
            raise FunctionError(f"to_yuan(): {exc}") from None

    @functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        out = []
        for part in parts:
            if part is None:
                continue
            if isinstance(part, bool):
                out.append("true" if part else "false")
            elif isinstance(part, str | int):
                out.append(str(part))
            elif isinstance(part, float):
                out.append(str(int(part)) if part.is_integer() else repr(part))
            else:
                raise FunctionError(f"concat(): cannot join {shown(part)}")
        return "".join(out)

    @functions.signature({"types": ["object"]}, {"types": ["string", "number", "null"]})
    def _func_lookup(self, table: dict[str, Any], key: Any) -> Any:
        if key is None or isinstance(key, bool):
            return None
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        return table.get(str(key))

    @functions.signature({"types": ["number", "string", "null"]}, {"types": ["string"]})
    def _func_from_epoch(self, value: Any, unit: str) -> str | None:
        if value is None:
            return None
        per_second = _unit(unit)
        number = as_integer(value)
        if number is None and isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip()) if len(value) <= 20 else None
        if number is None or not 0 <= number < 253402300800 * per_second:  # < year 10000
            raise FunctionError(f"from_epoch(): expected a Unix time, got {shown(value)}")
        return iso(datetime.fromtimestamp(number / per_second, UTC))

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_to_epoch(self, value: Any, unit: str) -> int | None:
        if value is None:
            return None
        per_second = _unit(unit)
        try:
            moment = parse_time(value, UTC)
        except ValueError as exc:
            raise FunctionError(f"to_epoch(): {exc}") from None
        return int(moment.timestamp() * per_second)

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_local_time(self, value: Any, tz: str) -> str | None:
        if value is None:
            return None
        try:
            moment = parse_time(value, UTC).astimezone(zone(tz))
        except ValueError as exc:
            raise FunctionError(f"local_time(): {exc}") from None
        return moment.strftime("%Y-%m-%d %H:%M:%S")


FUNCTIONS = MappingFunctions()
OPTIONS = jmespath.Options(custom_functions=FUNCTIONS)


def arity(name: str) -> tuple[int, bool] | None:
    """``(number of parameters, variadic)`` of a function mapping expressions may call
    (built-in or custom), or ``None`` if there is no such function."""
    spec = FUNCTIONS.FUNCTION_TABLE.get(name)
    if spec is None:
        return None
    signature = spec["signature"]
    return len(signature), bool(signature and signature[-1].get("variadic"))
