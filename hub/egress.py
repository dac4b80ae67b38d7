"""The egress policy: where the hub's outbound HTTP may go (one place for every connector).

A connector's requests go out only to public addresses unless the operator opens
private ranges with ``HUB_EGRESS_ALLOW`` (comma-separated CIDRs, e.g.
``10.0.0.0/8,127.0.0.0/8,::1/128`` for an on-premise ERP or a test receiver).
Refused by default: loopback, private (RFC 1918, unique-local IPv6), link-local (the
cloud metadata service 169.254.169.254 among them), unspecified, shared/CGNAT
(100.64.0.0/10), documentation, benchmarking, multicast, reserved and broadcast
addresses, and IPv6 forms that embed such an IPv4 address (``::ffff:127.0.0.1``, NAT64).

Three checks, one policy:

* :func:`check_config_urls` at subscription create/update and ``hub connectors check``:
  every URL-valued config field (JSON Schema ``format: uri``, the connector's
  ``url_fields``, or a top-level ``*url``/``*uri``/``*endpoint`` field) must be a well
  formed ``http``/``https`` URL without credentials whose host is, or resolves to, an
  allowed address; otherwise ``422 url_not_allowed`` naming the field (never the URL).
* :func:`check_request_url` before each request is sent (static: scheme, credentials,
  literal addresses in any spelling).
* :class:`EgressBackend` at connect time: the host is resolved, every address judged,
  and the connection made to an address that was judged (no second look-up), so a
  name that changes its answer between the check and the connection (DNS rebinding)
  gains nothing. Redirects are never followed; each hop would be checked here anyway.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpcore
import httpx
import structlog

from hub.domain.errors import refuse
from hub.settings import env

log = structlog.get_logger("hub.egress")

ENV_VAR = "HUB_EGRESS_ALLOW"
ERROR_CODE = "url_not_allowed"
SCHEMES = ("http", "https")
URI_FORMATS = frozenset({"uri", "url", "iri", "uri-reference", "iri-reference"})
_URL_NAME = re.compile(r"(^|_)(url|uri|endpoint)$", re.IGNORECASE)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused unless HUB_EGRESS_ALLOW opens them (anything not globally routable is too).
BLOCKED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved or broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("100::/64", "discard"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_BLOCKED = tuple((ipaddress.ip_network(n), why) for n, why in BLOCKED)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only public IPv6 space
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class EgressDenied(Exception):
    """A destination the egress policy refuses (the message names no URL or secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the allow-list ---------------------------------------------------------------------

_lock = threading.Lock()
_parsed: dict[str, tuple[IPNetwork, ...]] = {}


def allowed_networks() -> tuple[IPNetwork, ...]:
    """The networks ``HUB_EGRESS_ALLOW`` opens (read on every call; parsed once per
    value). An entry that is not a CIDR is ignored with an error logged: it opens
    nothing (the policy fails closed)."""
    raw = env(ENV_VAR) or ""
    found = _parsed.get(raw)
    if found is not None:
        return found
    nets: list[IPNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            log.error("egress.bad_allow_entry", variable=ENV_VAR, entry=part[:60])
    with _lock:
        _parsed[raw] = tuple(nets)
    return _parsed[raw]


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be connected to, or ``None`` when it may."""
    mapped = _embedded_v4(ip)
    candidates = [ip] if mapped is None else [mapped, ip]
    allow = allowed_networks()
    for candidate in candidates:
        if any(candidate.version == net.version and candidate in net for net in allow):
            return None
    judged = mapped if mapped is not None else ip
    for net, why in _BLOCKED:
        if judged.version == net.version and judged in net:
            return why
    if not judged.is_global or judged.is_multicast or judged.is_reserved:
        return "not public"
    if judged.version == 6 and judged not in _GLOBAL_UNICAST:
        return "not public"
    return None


# --- host names and literal addresses ---------------------------------------------------


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _ends_in_number(host: str) -> bool:
    labels = host.split(".")
    if labels and labels[-1] == "":
        labels = labels[:-1]
    if not labels:
        return False
    last = labels[-1]
    return last.isdigit() or bool(re.fullmatch(r"0[xX][0-9a-fA-F]*", last))


def literal_ip(host: str) -> IPAddress | None:
    """``host`` as an address when it is one, in any spelling a resolver accepts:
    dotted, decimal (``2130706433``), hex (``0x7f.1``), octal (``0177.0.0.1``), short
    (``127.1``) and IPv6 (with or without brackets). Raises :class:`EgressDenied`
    for a host that ends in a number but is no address (``1.2.3.4.5``, ``999.1``)."""
    h = host.strip("[]")
    if "%" in h:  # an IPv6 zone id (link-local by nature), or a percent-encoded host
        raise EgressDenied("the host is malformed (a zone id or percent-encoding)")
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            raise EgressDenied("the host is not a valid IPv6 address") from None
    if not _ends_in_number(h):
        return None
    parts = h.split(".")
    if parts[-1] == "":
        parts = parts[:-1]
    numbers = [_ipv4_number(p) for p in parts]
    if not 1 <= len(parts) <= 4 or any(n is None for n in numbers):
        raise EgressDenied("the host is neither a name nor an IPv4 address")
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        raise EgressDenied("the host is neither a name nor an IPv4 address")
    number = last
    for i, n in enumerate(head):
        number += n << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (``getaddrinfo``: DNS, /etc/hosts …)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# Replaceable (tests give names fixed answers instead of asking DNS).
resolver: Resolver = system_resolver


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` stands for (a literal one as it is), in resolver order.
    Raises :class:`OSError` when the name does not resolve."""
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    found: list[IPAddress] = []
    for text in resolver(host, port):
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if ip not in found:
            found.append(ip)
    if not found:
        raise OSError("no address for the host")
    return found


def allowed_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` the policy allows, in resolver order; raises
    :class:`EgressDenied` when there is none (or :class:`OSError`: no address)."""
    addresses = resolve(host, port)
    allowed = [ip for ip in addresses if refusal(ip) is None]
    if not allowed:
        why = refusal(addresses[0])
        kind = "is" if literal_ip(host) is not None else "resolves to"
        raise EgressDenied(
            f"the host {kind} an address that is {why}; the egress policy refuses it"
        )
    return allowed


# --- URLs -------------------------------------------------------------------------------

_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def parse_url(url: object) -> httpx.URL:
    """``url`` as the client will read it, if it is an acceptable absolute http(s) URL:
    no whitespace, control characters or backslashes, no credentials, a host, a valid
    port. Raises :class:`EgressDenied` saying what is wrong (never repeating the URL)."""
    if not isinstance(url, str) or not url:
        raise EgressDenied("not a URL")
    if _BAD_CHARS.search(url):
        raise EgressDenied("the URL contains whitespace, control characters or a backslash")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise EgressDenied("only http and https URLs are allowed")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise EgressDenied("the URL has no host")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise EgressDenied("the URL is malformed (host or port)") from None
    if parsed.scheme not in SCHEMES:
        raise EgressDenied("only http and https URLs are allowed")
    if not parsed.host:
        raise EgressDenied("the URL has no host")
    if parsed.userinfo or "@" in url.split("//", 1)[1].split("/", 1)[0]:
        raise EgressDenied(
            "credentials in the URL are not allowed (they would be shown and logged); "
            "use the connector's credential fields"
        )
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise EgressDenied("the port is out of range")
    literal_ip(_host(parsed))  # a numeric host that is no address
    return parsed


def _host(parsed: httpx.URL) -> str:
    """The host as it goes on the wire (IDNA-encoded, no brackets)."""
    return parsed.raw_host.decode("ascii").strip("[]")


def _port(parsed: httpx.URL) -> int:
    return parsed.port or (443 if parsed.scheme == "https" else 80)


@functools.lru_cache(maxsize=4096)
def _request_target(url: str) -> tuple[httpx.URL, IPAddress | None]:
    """A URL's parse and its literal address (pure functions of the text; a refused URL
    raises and is not kept): a subscription's URL is parsed once, not per request."""
    parsed = parse_url(url)
    return parsed, literal_ip(_host(parsed))


def check_request_url(url: str) -> httpx.URL:
    """The checks that need no look-up, before a request is sent: a well formed URL
    and, when the host is an address (any spelling), an allowed one (judged against the
    allow-list of the moment); returns the URL as parsed. Names are judged at connect
    time by :class:`EgressBackend`."""
    parsed, literal = _request_target(url)
    if literal is not None:
        why = refusal(literal)
        if why is not None:
            raise EgressDenied(
                f"the host is an address that is {why}; the egress policy refuses it"
            )
    return parsed


def check_url(url: object, *, resolve_names: bool = True) -> None:
    """Raise :class:`EgressDenied` unless ``url`` may be configured: well formed, and
    its host is (or resolves only to) allowed addresses. A name that does not resolve
    now is accepted: the connection is checked again when it is made."""
    parsed = parse_url(url)
    check_request_url(str(url))
    if not resolve_names or literal_ip(_host(parsed)) is not None:
        return
    try:
        addresses = resolve(_host(parsed), _port(parsed))
    except (OSError, UnicodeError):
        return
    for ip in addresses:
        why = refusal(ip)
        if why is not None:
            raise EgressDenied(
                f"the host resolves to an address that is {why}; the egress policy refuses it"
            )


# --- which config fields hold URLs ------------------------------------------------------


def _walk(schema: Any, value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(schema, Mapping):
        return
    if schema.get("format") in URI_FORMATS:
        yield path, value
        return
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = props.get(key, extra if isinstance(extra, Mapping) else None)
            yield from _walk(sub_schema, sub, f"{path}.{key}")
    elif isinstance(value, list):
        items = schema.get("items")
        for i, sub in enumerate(value):
            yield from _walk(items, sub, f"{path}.{i}")


def url_values(connector: Any, config: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(field, value)`` of every URL-valued field of ``config`` (field as
    ``config.<path>``): those whose schema says ``format: uri`` (any depth), those the
    connector lists in ``url_fields``, and top-level ``*url``/``*uri``/``*endpoint``
    fields."""
    found: dict[str, Any] = dict(_walk(getattr(connector, "config_schema", {}), config, "config"))
    declared = set(getattr(connector, "url_fields", ()) or ())
    secret = set(getattr(connector, "secret_fields", ()) or ())
    for key, value in config.items():
        if key in declared or (_URL_NAME.search(key) and key not in secret):
            found.setdefault(f"config.{key}", value)
    return sorted(found.items())


def check_config_urls(connector: Any, config: Mapping[str, Any]) -> None:
    """Refuse (``422 url_not_allowed``, naming the field) a config whose URL fields
    point where the egress policy does not allow, or are malformed. A value that is
    not a string (or a config that is no object) is left to the schema
    (``invalid_config``)."""
    if not isinstance(config, Mapping):
        return
    for field_name, value in url_values(connector, config):
        if not isinstance(value, str):
            continue
        try:
            check_url(value)
        except EgressDenied as exc:
            raise refuse(
                ERROR_CODE,
                f"{field_name}: {exc.reason}",
                errors=[{"field": field_name, "message": exc.reason}],
            ) from None


def denied(exc: BaseException) -> EgressDenied | None:
    """The :class:`EgressDenied` behind ``exc`` (itself, or a cause), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, EgressDenied):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# --- connect time -----------------------------------------------------------------------


class EgressBackend(httpcore.NetworkBackend):
    """httpcore's network backend with the policy at connect time: resolve once, judge
    every address, connect to an allowed one by address (so no second look-up can
    answer differently). Unix sockets are refused."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = allowed_addresses(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve the host: {exc}") from None
        last: Exception | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise EgressDenied("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class EgressTransport(httpx.HTTPTransport):
    """httpx's transport whose connections go through :class:`EgressBackend`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("uds", None)
        kwargs.pop("proxy", None)
        super().__init__(**kwargs)
        self._pool._network_backend = EgressBackend()


def client(**kwargs: Any) -> httpx.Client:
    """An HTTP client under the egress policy: connections checked when made, no
    redirects followed, no proxy variables honoured (a proxy would hide the
    destination), ``limits`` as given."""
    limits = kwargs.pop("limits", httpx.Limits(max_connections=64))
    return httpx.Client(
        transport=EgressTransport(limits=limits),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


__all__ = [
    "BLOCKED",
    "ENV_VAR",
    "ERROR_CODE",
    "EgressBackend",
    "EgressDenied",
    "EgressTransport",
    "allowed_addresses",
    "allowed_networks",
    "check_config_urls",
    "check_request_url",
    "check_url",
    "client",
    "denied",
    "literal_ip",
    "parse_url",
    "refusal",
    "resolve",
    "url_values",
]
