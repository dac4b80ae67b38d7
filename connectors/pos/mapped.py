"""``pos.mapped``: JSON POS vendor formats described by mapping files, no code.

Every mapping file in ``$HUB_MAPPINGS_DIR/pos/`` (default: the repository's
``mappings/pos/``) describes one vendor format and is served as the connector variant
``pos.mapped.<name>``. A file says, per operation (redeem, validate, reverse), where the
hub's fields are in the vendor's request (JMESPath expressions) and how the vendor's
reply is built from the hub's answer; ``errors`` translates the hub's error codes into
the vendor's. ``mappings/README.md`` documents the format, ``mappings/schema.json`` is
its JSON Schema, and :mod:`connectors.pos.mapping_functions` the functions expressions
may call (``to_fen``, ``to_yuan``, ``concat`` …).

Files are checked when the connector loads: against the schema, every expression is
compiled and its function calls resolved, hub error codes must exist, the time zone
must be known, names must be unique. A file that fails is left out and reported
(:meth:`MappedPosConnector.broken_mappings`, ``hub connectors list``) with its name and
the JSON path of the problem; the good ones are served.

Parsing is pure: any bytes give an :class:`~hub.connectors.InboundCommand` or a
:class:`~hub.domain.errors.DomainError` (``malformed_json``, ``invalid_pos_payload``
naming the mapping field, ``unsupported_media_type``), never another exception.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import jmespath
import yaml
from jmespath.lexer import Lexer
from jmespath.parser import ParsedResult
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from connectors.pos.mapping_functions import (
    OPTIONS,
    arity,
    as_integer,
    parse_time,
    shown,
    yuan_to_fen,
    zone,
)
from hub.connectors import (
    CODE_MAX,
    FEN_MAX,
    LINES_MAX,
    OPERATIONS,
    QTY_MAX,
    REQUEST_ID_MAX,
    TEXT_MAX,
    AnyConnector,
    InboundCommand,
    InboundConnector,
    InboundReply,
    InboundResult,
    Operation,
    PayloadError,
    header,
    package_schema,
)
from hub.domain.cart import Line, Order
from hub.domain.commands import RedeemCommand
from hub.domain.errors import ERROR_CODES, DomainError, refuse
from hub.domain.jsontext import check_strings, no_duplicate_keys
from hub.domain.templates import CHANNELS
from hub.domain.validity import out_of_range

MAPPINGS_ENV = "HUB_MAPPINGS_DIR"
# Package data (the repository's mappings/, linked in as connectors/pos/mappings): found
# the same way in a checkout, an editable install and an installed wheel.
DEFAULT_MAPPINGS_DIR = Path(str(files("connectors.pos") / "mappings"))
SCHEMA_FILE = DEFAULT_MAPPINGS_DIR / "schema.json"
SUFFIXES = (".yaml", ".yml", ".json")
FILE_MAX = 1024 * 1024
MEDIA_TYPE = "application/json"

# the native API's limits (FEN_MAX … TEXT_MAX from hub.connectors, the native redeem
# body's), so a mapped request is held to the same shape
REASON_MAX = 500
STORE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

REDEEM_FIELDS = (
    "code",
    "store",
    "channel",
    "order_id",
    "amount",
    "lines",
    "occurred_at",
    "request_id",
)
LINE_FIELDS = ("sku", "qty", "unit_price", "category")
REVERSE_FIELDS = ("code", "redemption_id", "reason", "store", "request_id")


class MappingError(ValueError):
    """A mapping file that cannot be served: ``file`` (as shown, e.g.
    ``mappings/pos/acme.yaml``), ``path`` (JSON path of the problem, ``$`` for the whole
    file) and ``message``."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}")
        self.file = file
        self.path = path
        self.message = message


# ------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Expr:
    """A compiled expression and where it is in its mapping file."""

    source: str
    where: str  # JSON path in the mapping file
    compiled: ParsedResult = field(compare=False, repr=False)

    def search(self, data: Any) -> Any:
        return self.compiled.search(data, options=OPTIONS)

    @property
    def short(self) -> str:
        text = " ".join(self.source.split())
        return text if len(text) <= 120 else text[:119] + "…"


@dataclass(frozen=True)
class VendorError:
    code: str | int
    message: str | None = None


@dataclass(frozen=True)
class RequestSpec:
    fields: Mapping[str, Expr]  # hub field → expression over the vendor request
    line: Mapping[str, Expr]  # line field → expression over one element of `lines`
    required: frozenset[str]
    amount_unit: str  # fen | yuan


@dataclass(frozen=True)
class ReplySpec:
    success: Expr
    failure: Expr
    success_status: int | None  # None: the hub's status
    failure_status: int | None


@dataclass(frozen=True)
class OperationSpec:
    request: RequestSpec
    reply: ReplySpec


@dataclass(frozen=True)
class MappingSpec:
    name: str
    file: str
    description: str
    version: str
    operations: Mapping[Operation, OperationSpec]
    errors: Mapping[str, VendorError]
    default_error: VendorError | None
    timezone: ZoneInfo | None

    def vendor_error(self, code: str) -> VendorError:
        """The vendor's code for hub error ``code`` (the hub's own code if unmapped)."""
        return self.errors.get(code) or self.default_error or VendorError(code)


# ------------------------------------------------------------------------- loading
def json_path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


@lru_cache(maxsize=1)
def mapping_schema() -> dict[str, Any]:
    """The JSON Schema of mapping files (``mappings/schema.json``)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text("utf-8"))
    Draft202012Validator.check_schema(loaded)
    return loaded


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_document(path: Path, display: str) -> Any:
    try:
        if path.stat().st_size > FILE_MAX:
            raise MappingError(display, "$", f"larger than {FILE_MAX // 1024} KiB")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise MappingError(display, "$", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MappingError(display, "$", "not UTF-8 text") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingError(
                display, "$", f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise MappingError(display, "$", "not JSON: nested too deeply") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise MappingError(display, "$", f"not YAML: {exc.problem or exc}{where}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise MappingError(display, "$", f"not YAML: {_one_line(str(exc))}") from None


def _check_json_values(doc: Any, display: str, parts: tuple[str | int, ...] = ()) -> None:
    """YAML can say things JSON cannot (dates, non-text keys): refuse them by path."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if not isinstance(key, str):
                raise MappingError(
                    display,
                    json_path(parts),
                    f"key {key!r} is not text (quote it: YAML reads yes/no/on/off and "
                    "numbers as other types)",
                )
            _check_json_values(value, display, (*parts, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _check_json_values(value, display, (*parts, i))
    elif doc is not None and not isinstance(doc, str | int | float | bool):
        raise MappingError(
            display,
            json_path(parts),
            f"{type(doc).__name__} is not a JSON value (quote it to make it text)",
        )


def _first_error(doc: Any, errors: Iterable[ValidationError]) -> ValidationError | None:
    """The error to report: the one highest up in the file, the first in the file's own
    order among those (not jsonschema's alphabetical tie-break), then as specific as
    ``best_match`` can make an ``anyOf``/``oneOf``."""

    def position(err: ValidationError) -> list[int]:
        out: list[int] = []
        node = doc
        for part in err.absolute_path:
            if isinstance(node, dict):
                keys = list(node)
                out.append(keys.index(part) if part in node else len(keys))
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                out.append(part)
                node = node[part]
            else:
                out.append(0)
                node = None
        return out

    found = list(errors)
    if not found:
        return None
    chosen = min(
        found,
        key=lambda e: (len(e.absolute_path), position(e), e.validator in ("anyOf", "oneOf")),
    )
    best: ValidationError | None = best_match([chosen])
    return best


def _schema_error(err: ValidationError, display: str) -> MappingError:
    parts: list[str | int] = list(err.absolute_path)
    message = err.message
    shown_instance = repr(err.instance)
    if len(shown_instance) > 60 and message.startswith(shown_instance):
        message = "this value" + message[len(shown_instance) :]
    alternatives = list(err.context or ())
    if (
        err.validator == "anyOf"
        and alternatives
        and all(e.validator == "required" for e in alternatives)
    ):
        missing = [e.message.split("'")[1] for e in alternatives if "'" in e.message]
        message = f"one of {', '.join(repr(m) for m in missing)} is a required property"
    elif err.validator == "required" and "'" in message:
        parts.append(message.split("'")[1])
    elif err.validator == "additionalProperties" and "'" in message:
        allowed = sorted(cast(dict[str, Any], err.schema).get("properties", {}))
        message = f"{message} (allowed: {', '.join(allowed)})"
    return MappingError(display, json_path(parts), _one_line(message))


def _walk_functions(node: Any, expr: str, where: str, display: str) -> None:
    """JMESPath resolves function names only when it runs: check them at load."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "function_expression":
        name = str(node.get("value"))
        given = len(node.get("children", []))
        known = arity(name)
        if known is None:
            raise MappingError(display, where, f"unknown function {name}() in `{expr}`")
        count, variadic = known
        if (given < count) if variadic else (given != count):
            expected = f"at least {count}" if variadic else str(count)
            raise MappingError(
                display,
                where,
                f"{name}() takes {expected} argument(s), {given} given, in `{expr}`",
            )
    for child in node.get("children", []):
        _walk_functions(child, expr, where, display)


def compile_expression(source: str, where: str, display: str) -> Expr:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # lexed apart from compile(), whose cache would skip the warning next time
            for _token in Lexer().tokenize(source):
                pass
            deprecated = any(
                issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
                for w in caught
            )
            if not deprecated:
                compiled = jmespath.compile(source)
    except Exception as exc:  # ParseError, LexerError … (and anything else the parser does)
        raise MappingError(
            display, where, f"not a JMESPath expression: {_one_line(str(exc))}"
        ) from None
    if deprecated:
        raise MappingError(
            display,
            where,
            "not a JMESPath expression: a literal in backticks must be JSON "
            f"(`\"text\"` or 'text', not `text`) in `{_one_line(source, 120)}`",
        )
    _walk_functions(compiled.parsed, source, where, display)
    return Expr(source, where, compiled)


def _vendor_error(value: Any) -> VendorError:
    if isinstance(value, dict):
        return VendorError(value["code"], value.get("message"))
    return VendorError(value)


def _status(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    return None if value == "hub" else int(value)


def _request_spec(
    doc: dict[str, Any],
    names: Sequence[str],
    where: tuple[str | int, ...],
    display: str,
    default_unit: str,
) -> RequestSpec:
    fields = {
        name: compile_expression(doc[name], json_path((*where, name)), display)
        for name in names
        if name in doc
    }
    line = {
        name: compile_expression(doc["line"][name], json_path((*where, "line", name)), display)
        for name in LINE_FIELDS
        if name in doc.get("line", {})
    }
    required = frozenset(doc.get("required", ()))
    for name in sorted(required - fields.keys()):
        raise MappingError(
            display,
            json_path((*where, "required")),
            f"{name!r} is required but the request does not map it",
        )
    return RequestSpec(fields, line, required, str(doc.get("amount_unit", default_unit)))


def build_mapping(doc: Any, display: str) -> MappingSpec:
    """Check a loaded mapping document and compile it."""
    _check_json_values(doc, display)
    error = _first_error(doc, Draft202012Validator(mapping_schema()).iter_errors(doc))
    if error is not None:
        raise _schema_error(error, display)
    timezone = None
    if "timezone" in doc:
        try:
            timezone = zone(doc["timezone"])
        except ValueError as exc:
            raise MappingError(display, "$.timezone", str(exc)) from None
    errors: dict[str, VendorError] = {}
    for code, value in doc.get("errors", {}).items():
        if code != "default" and code not in ERROR_CODES:
            raise MappingError(
                display,
                json_path(("errors", code)),
                f"{code!r} is not a hub error code (see the README's error table)",
            )
        errors[code] = _vendor_error(value)
    default_error = errors.pop("default", None)
    unit = str(doc.get("amount_unit", "fen"))
    operations: dict[Operation, OperationSpec] = {}
    for operation in OPERATIONS:
        op = doc["operations"].get(operation)
        if op is None:
            continue
        where: tuple[str, ...] = ("operations", operation)
        names = REVERSE_FIELDS if operation == "reverse" else REDEEM_FIELDS
        request = _request_spec(op["request"], names, (*where, "request"), display, unit)
        reply = op["reply"]
        statuses = reply.get("status", {})
        operations[operation] = OperationSpec(
            request,
            ReplySpec(
                success=compile_expression(
                    reply["success"], json_path((*where, "reply", "success")), display
                ),
                failure=compile_expression(
                    reply["failure"], json_path((*where, "reply", "failure")), display
                ),
                success_status=_status(statuses.get("success"), 200),
                failure_status=_status(statuses.get("failure"), None),
            ),
        )
    return MappingSpec(
        name=doc["name"],
        file=display,
        description=str(doc.get("description", "")).strip(),
        version=str(doc.get("version", "1")),
        operations=operations,
        errors=errors,
        default_error=default_error,
        timezone=timezone,
    )


def load_mapping(path: Path, display: str | None = None) -> MappingSpec:
    """Read, check and compile one mapping file; :class:`MappingError` if it is broken."""
    shown_as = display or path.name
    if path.suffix not in SUFFIXES:
        raise MappingError(shown_as, "$", f"not a mapping file (expected {', '.join(SUFFIXES)})")
    try:
        mapping_schema()
    except Exception as exc:  # the format's own schema is missing or broken
        raise MappingError(shown_as, "$", f"the mapping schema is unavailable: {exc}") from None
    return build_mapping(_read_document(path, shown_as), shown_as)


# ------------------------------------------------------------------------- parsing helpers
def _invalid(field_name: str, message: str, expr: Expr | None = None) -> DomainError:
    text = f"{field_name}: {message}"
    detail: dict[str, str] = {"field": field_name, "message": message}
    if expr is not None:
        text += f" (from `{expr.short}`)"
        detail["expression"] = expr.source
    return refuse("invalid_pos_payload", text, errors=[detail])


def _decode(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(
            body.decode("utf-8-sig"),
            parse_constant=_no_constant,
            object_pairs_hook=no_duplicate_keys,  # 400 duplicate_json_key
        )
    except DomainError:
        raise
    except RecursionError:
        raise refuse("malformed_json", "The body is nested too deeply.") from None
    except UnicodeDecodeError:
        raise refuse("malformed_json", "The body is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise refuse(
            "malformed_json",
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
        ) from None
    except Exception:  # anything else the decoder may raise for odd bytes
        raise refuse("malformed_json", "The body is not valid JSON.") from None
    if not isinstance(doc, dict):
        kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}
        raise refuse(
            "invalid_pos_payload",
            f"The body must be a JSON object, not {kind.get(type(doc), 'a number')}.",
            errors=[{"field": "body", "message": "not a JSON object"}],
        )
    return doc


def _safe_id(read: _Reader, doc: dict[str, Any]) -> str | None:
    try:
        return read.request_id(doc)
    except DomainError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Reader:
    """Evaluates one request's expressions and converts the values, refusing with the
    mapping field's name."""

    def __init__(self, spec: RequestSpec, timezone: ZoneInfo | None) -> None:
        self.spec = spec
        self.timezone = timezone

    def value(self, name: str, data: Any, label: str | None = None) -> tuple[Any, Expr | None]:
        expr = self.spec.line.get(name) if label else self.spec.fields.get(name)
        label = label or f"request.{name}"
        if expr is None:
            return None, None
        try:
            return expr.search(data), expr
        except Exception as exc:  # a function refused the value, a type error …
            raise _invalid(label, _one_line(str(exc), 200), expr) from None

    def _missing(
        self, name: str, label: str, expr: Expr | None, what: str, value: Any = None
    ) -> DomainError:
        if expr is None:
            return _invalid(label, f"expected {what}; the mapping does not map it")
        return _invalid(label, f"expected {what}, got {shown(value)}", expr)

    def text(
        self,
        name: str,
        data: Any,
        *,
        required: bool = False,
        max_len: int = TEXT_MAX,
        label: str | None = None,
    ) -> str | None:
        where = label or f"request.{name}"
        value, expr = self.value(name, data, label)
        if value is None or value == "":
            if required or (label is None and name in self.spec.required):
                raise self._missing(name, where, expr, "text", value)
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _invalid(where, f"expected text, got {shown(value)}", expr)
        if len(value) > max_len:
            raise _invalid(where, f"longer than {max_len} characters", expr)
        return value

    def fen(self, name: str, data: Any, *, label: str | None = None) -> int:
        where = label or f"request.{name}"
        value, expr = self.value(name, data, label)
        unit = self.spec.amount_unit
        what = "an amount in yuan" if unit == "yuan" else "an amount in integer fen"
        if value is None:
            raise self._missing(name, where, expr, what)
        if unit == "yuan":
            try:
                fen = yuan_to_fen(value)
            except ValueError as exc:
                raise _invalid(where, str(exc), expr) from None
        else:
            integer = as_integer(value)
            if integer is None:
                raise _invalid(where, f"expected {what}, got {shown(value)}", expr)
            fen = integer
        if not 0 <= fen <= FEN_MAX:
            raise _invalid(where, f"{fen} fen is out of range (0 … {FEN_MAX})", expr)
        return fen

    def qty(self, data: Any, label: str) -> int:
        value, expr = self.value("qty", data, label)
        if value is None:
            raise self._missing("qty", label, expr, "a quantity")
        count = as_integer(value)
        if count is None or not 1 <= count <= QTY_MAX:
            raise _invalid(
                label, f"expected a whole quantity 1 … {QTY_MAX}, got {shown(value)}", expr
            )
        return count

    def lines(self, data: Any) -> tuple[Line, ...] | None:
        raw, expr = self.value("lines", data)
        if raw is None:
            if "lines" in self.spec.required:
                raise self._missing("lines", "request.lines", expr, "an array of lines")
            return None
        if not isinstance(raw, list):
            raise _invalid("request.lines", f"expected an array, got {shown(raw)}", expr)
        if len(raw) > LINES_MAX:
            raise _invalid("request.lines", f"more than {LINES_MAX} lines", expr)
        out = []
        for i, item in enumerate(raw):
            at = f"request.lines[{i}]"
            sku = self.text("sku", item, required=True, label=f"{at}.sku")
            out.append(
                Line(
                    sku=cast(str, sku),
                    qty=self.qty(item, f"{at}.qty"),
                    unit_price=self.fen("unit_price", item, label=f"{at}.unit_price"),
                    category=self.text("category", item, label=f"{at}.category"),
                )
            )
        return tuple(out)

    def store(self, data: Any) -> str | None:
        store = self.text("store", data)
        if store is not None and not STORE.match(store):
            expr = self.spec.fields.get("store")
            raise _invalid("request.store", f"{shown(store)} is not a store code", expr)
        return store

    def channel(self, data: Any) -> str:
        channel = self.text("channel", data)
        if channel is None:
            return "pos"
        if channel not in CHANNELS:
            expr = self.spec.fields.get("channel")
            raise _invalid(
                "request.channel",
                f"{shown(channel)} is not a channel ({', '.join(CHANNELS)})",
                expr,
            )
        return channel

    def occurred_at(self, data: Any) -> Any:
        value, expr = self.value("occurred_at", data)
        if value is None:
            if "occurred_at" in self.spec.required:
                raise self._missing("occurred_at", "request.occurred_at", expr, "a time")
            return None
        try:
            return parse_time(value, self.timezone)
        except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC instant
            raise out_of_range("request.occurred_at", value) from None
        except ValueError as exc:
            raise _invalid("request.occurred_at", str(exc), expr) from None

    def request_id(self, data: Any) -> str | None:
        return self.text("request_id", data, max_len=REQUEST_ID_MAX)


# ------------------------------------------------------------------------- connectors
_CONFIG_SCHEMA = package_schema("connectors.pos", "mapped.schema.json")


class MappedVariant(InboundConnector):
    """One mapping file served as ``pos.mapped.<name>`` (made by
    :meth:`MappedPosConnector.variant`; the class attributes are set per mapping)."""

    kind: ClassVar[str] = "pos"
    config_schema: ClassVar[dict[str, Any]] = _CONFIG_SCHEMA
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE,)

    def __init__(self, mapping: MappingSpec) -> None:
        self.mapping = mapping

    def describe(self) -> dict[str, Any]:
        about = super().describe()
        about["mapping"] = {"file": self.mapping.file, "name": self.mapping.name}
        if self.mapping.description:
            about["description"] = self.mapping.description
        return about

    # ---------------------------------------------------------------- parse
    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        spec = self.mapping.operations.get(operation)
        if spec is None:
            raise refuse(
                "invalid_pos_payload",
                f"The {self.mapping.name} mapping defines no {operation!r} operation.",
            )
        media = (header(headers, "content-type") or "").split(";")[0].strip().lower()
        if media and media not in self.media_types:
            raise refuse(
                "unsupported_media_type",
                f"{self.name} takes {', '.join(self.media_types)}, not {media}.",
                accepted=list(self.media_types),
            )
        doc = _decode(body)
        read = _Reader(spec.request, self.mapping.timezone)
        try:  # readable JSON from here: a refusal still echoes the vendor's request id
            check_strings(doc)  # 422 invalid_characters (NUL), as on every JSON route
            return self._read(operation, read, doc)
        except DomainError as err:
            partial = InboundCommand(operation=operation, request_id=_safe_id(read, doc), echo=doc)
            raise PayloadError(err, partial) from None

    def _read(self, operation: Operation, read: _Reader, doc: dict[str, Any]) -> InboundCommand:
        if operation == "reverse":
            return self._reverse(read, doc)
        # read in the order a person checks a request: the coupon first
        code = cast(str, read.text("code", doc, required=True, max_len=CODE_MAX))
        store = read.store(doc)
        channel = read.channel(doc)
        order = Order(
            id=cast(str, read.text("order_id", doc, required=True)),
            amount=read.fen("amount", doc),
            lines=read.lines(doc),
        )
        redeem = RedeemCommand(
            code=code,
            store=store,
            channel=channel,
            order=order,
            occurred_at=read.occurred_at(doc),
        )
        return InboundCommand(
            operation=operation,
            request_id=read.request_id(doc),
            redeem=redeem,
            store=redeem.store,
            echo=doc,
        )

    def _reverse(self, read: _Reader, doc: dict[str, Any]) -> InboundCommand:
        code = read.text("code", doc, max_len=CODE_MAX)
        redemption_id = read.text("redemption_id", doc, max_len=CODE_MAX)
        if code is None and redemption_id is None:
            name = "code" if "code" in read.spec.fields else "redemption_id"
            raise _invalid(
                f"request.{name}",
                "a reversal names the coupon code or the redemption id; both are null",
                read.spec.fields.get(name),
            )
        return InboundCommand(
            operation="reverse",
            request_id=read.request_id(doc),
            code=code,
            redemption_id=redemption_id,
            store=read.store(doc),
            reason=read.text("reason", doc, max_len=REASON_MAX),
            echo=doc,
        )

    # ---------------------------------------------------------------- reply
    def reply_context(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> dict[str, Any]:
        """What reply expressions see (documented in ``mappings/README.md``)."""
        body = dict(result.body)
        error: dict[str, Any] | None = None
        if not result.ok:
            code = result.code or "internal_error"
            vendor = self.mapping.vendor_error(code)
            detail = str(body.get("detail") or body.get("title") or code)
            error = {
                "code": code,
                "status": result.status,
                "detail": detail,
                "vendor_code": vendor.code,
                "vendor_message": vendor.message or detail,
            }
        return {
            "ok": result.ok,
            "status": result.status,
            "operation": operation,
            "replayed": result.replayed,
            "request": dict(command.echo) if command is not None else {},
            "result": body,
            "error": error,
        }

    def reply(
        self, operation: Operation, command: InboundCommand | None, result: InboundResult
    ) -> InboundReply:
        spec = self.mapping.operations.get(operation)
        if spec is None:
            raise MappingError(self.mapping.file, "$.operations", f"no {operation!r} operation")
        expr = spec.reply.success if result.ok else spec.reply.failure
        wanted = spec.reply.success_status if result.ok else spec.reply.failure_status
        try:
            value = expr.search(self.reply_context(operation, command, result))
        except Exception as exc:
            raise MappingError(
                self.mapping.file, expr.where, f"cannot render the reply: {exc}"
            ) from exc
        if value is None:
            raise MappingError(self.mapping.file, expr.where, "the reply expression gave null")
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            body = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from the request: escape everything
            body = json.dumps(value, separators=(",", ":")).encode("ascii")
        return InboundReply(wanted or result.status, MEDIA_TYPE, body)


class MappedPosConnector(InboundConnector):
    """JSON POS formats described by mapping files (``mappings/pos/*.yaml``); each file
    is served as the variant ``pos.mapped.<name>``."""

    name: ClassVar[str] = "pos.mapped"
    kind: ClassVar[str] = "pos"
    version: ClassVar[str] = "1.0"
    summary: ClassVar[str] = (
        "JSON POS vendor formats described by mapping files, served as pos.mapped.<name>"
    )
    capabilities: ClassVar[tuple[str, ...]] = (
        "inbound.redeem",
        "inbound.validate",
        "inbound.reverse",
        "inbound.variants",
    )
    config_schema: ClassVar[dict[str, Any]] = _CONFIG_SCHEMA
    operations: ClassVar[tuple[Operation, ...]] = ()  # only the variants serve requests

    def __init__(self, directory: Path | str | None = None) -> None:
        configured = directory if directory is not None else os.environ.get(MAPPINGS_ENV)
        self.directory = Path(configured) if configured else DEFAULT_MAPPINGS_DIR
        self._explicit = bool(configured)
        self._variants: dict[str, MappedVariant] = {}
        self._broken: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """(Re)read every mapping file of ``<directory>/pos/``."""
        variants: dict[str, MappedVariant] = {}
        broken: dict[str, str] = {}
        folder = self.directory / "pos"
        if not folder.is_dir():
            if self._explicit:
                broken[str(folder)] = f"{MAPPINGS_ENV}: {folder} is not a directory"
            self._variants, self._broken = variants, broken
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.is_dir():
                continue
            display = f"{self.directory.name}/pos/{path.name}"
            try:
                mapping = load_mapping(path, display)
                other = variants.get(mapping.name)
                if other is not None:
                    raise MappingError(
                        display,
                        "$.name",
                        f"duplicate name {mapping.name!r}: {other.mapping.file} defines it",
                    )
            except MappingError as exc:
                broken[exc.file] = str(exc)
                continue
            except Exception as exc:  # a bug here must not take the other mappings down
                broken[display] = f"{display}: $: {type(exc).__name__}: {exc}"
                continue
            variants[mapping.name] = _make_variant(mapping)
        self._variants, self._broken = variants, broken

    def variant(self, name: str) -> AnyConnector:
        return self._variants[name]

    def variants(self) -> Sequence[str]:
        return sorted(self._variants)

    def broken_mappings(self) -> dict[str, str]:
        """Mapping files left out: file → why (the message names file and JSON path)."""
        return dict(self._broken)

    def problems(self) -> dict[str, str]:
        """Like :meth:`broken_mappings`, the message without the file name repeated
        (``hub connectors list`` prints ``file: message``)."""
        return {file: message.removeprefix(f"{file}: ") for file, message in self._broken.items()}

    def describe(self) -> dict[str, Any]:
        about = super().describe()
        about["mappings_dir"] = str(self.directory)
        about["variants"] = list(self.variants())
        if self._broken:
            about["broken_mappings"] = self.broken_mappings()
        return about

    def parse(
        self, operation: Operation, body: bytes, headers: Mapping[str, str]
    ) -> InboundCommand:
        raise refuse(
            "invalid_pos_payload",
            "pos.mapped serves its mappings as pos.mapped.<name>: "
            f"{', '.join(self.variants()) or 'none loaded'}.",
        )


def _make_variant(mapping: MappingSpec) -> MappedVariant:
    operations = tuple(op for op in OPERATIONS if op in mapping.operations)
    attrs: dict[str, Any] = {
        "name": f"pos.mapped.{mapping.name}",
        "version": mapping.version,
        "summary": (mapping.description.split("\n")[0] if mapping.description else "")
        or f"POS format described by {mapping.file}",
        "capabilities": tuple(f"inbound.{op}" for op in operations),
        "operations": operations,
    }
    cls = cast(
        "type[MappedVariant]", type(f"MappedVariant_{mapping.name}", (MappedVariant,), attrs)
    )
    return cls(mapping)


__all__ = [
    "DEFAULT_MAPPINGS_DIR",
    "MAPPINGS_ENV",
    "MappedPosConnector",
    "MappedVariant",
    "MappingError",
    "MappingSpec",
    "build_mapping",
    "load_mapping",
    "mapping_schema",
]
