"""Connector secrets at rest: encrypted inside ``subscriptions.config`` with Fernet.

A connector declares its ``secret_fields``; each such field of a stored config holds
``{"$enc": "<Fernet token>"}``, the token encrypting the field's value serialised as JSON
(so an object such as the webhook's ``headers`` is one encrypted value). Everything
else in the config stays plain JSON (URLs, mappings: what the API shows).

Keys (first match wins):

* ``HUB_SECRET_KEY``: one or more Fernet keys (url-safe base64 of 32 bytes), comma
  separated. The first encrypts; every one decrypts (:class:`~cryptography.fernet.
  MultiFernet`), so a new key goes first, ``hub secrets rotate`` re-encrypts, and the
  old key can then be dropped.
* otherwise a key file, ``hub-secret.key`` (mode 0600, created on first use; the same
  format as the variable): next to the SQLite database file, or in the working
  directory for PostgreSQL. A warning is logged once per process: production should set
  ``HUB_SECRET_KEY`` (a key kept next to the database ends up in its backups).
* an in-memory SQLite database gets a key that lives as long as the process.

Values stored before encryption existed (plain JSON) are read as they are and encrypted
by ``hub secrets rotate``. Nothing here ever logs or puts into an exception message a
secret or a key; only paths, field names and subscription ids.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import os
import re
import secrets as random_source
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url

from hub.db.engine import normalize_url
from hub.settings import env as read_env

log = structlog.get_logger("hub.secrets")

ENV_VAR = "HUB_SECRET_KEY"
KEY_FILE_NAME = "hub-secret.key"
ENC = "$enc"


class SecretKeyError(Exception):
    """The configured key(s) cannot be used (malformed, unreadable key file)."""


class UndecryptableSecret(Exception):
    """Stored secret(s) that no configured key decrypts. Carries field names only."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"cannot decrypt config field(s) {', '.join(fields)}")
        self.fields = fields


def is_encrypted(value: Any) -> bool:
    """Whether a stored config value is an encrypted secret (``{"$enc": token}``)."""
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(ENC), str)


def generate_key() -> str:
    """A new Fernet key, as ``HUB_SECRET_KEY`` takes it."""
    return Fernet.generate_key().decode("ascii")


@dataclass(frozen=True)
class Keyring:
    """The keys in use: the first encrypts, all decrypt."""

    fernet: MultiFernet
    source: str  # where the keys come from, for messages (never the keys)
    count: int

    def encrypt(self, value: Any) -> dict[str, str]:
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return {ENC: self.fernet.encrypt(plain.encode("utf-8")).decode("ascii")}

    def decrypt(self, stored: Any) -> Any:
        """The value of a stored field; a plaintext (pre-encryption) value as it is.
        Raises :class:`InvalidToken` when no key decrypts it."""
        if not is_encrypted(stored):
            return stored
        plain = self.fernet.decrypt(_token(stored))
        try:
            return json.loads(plain)
        except ValueError:  # a token of ours always holds JSON: treat it as foreign
            raise InvalidToken() from None

    def rotate(self, stored: Any) -> dict[str, str]:
        """``stored`` encrypted with the first key (plaintext values get encrypted)."""
        if not is_encrypted(stored):
            return self.encrypt(stored)
        return {ENC: self.fernet.rotate(_token(stored)).decode("ascii")}


def _token(stored: Mapping[str, str]) -> bytes:
    try:
        return stored[ENC].encode("ascii")
    except UnicodeEncodeError:  # not a token: tampered with, or not ours
        raise InvalidToken() from None


def _parse_keys(text: str, source: str) -> Keyring:
    parts = [p.strip() for p in text.replace("\n", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise SecretKeyError(f"{source} holds no key")
    fernets = []
    for i, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"{source}: key #{i} is not a Fernet key (url-safe base64 of 32 bytes; "
                "make one with `hub secrets generate-key`)"
            ) from None
    return Keyring(MultiFernet(fernets), source, len(fernets))


_lock = threading.Lock()
_by_env: dict[str, Keyring] = {}  # HUB_SECRET_KEY's value -> its keys
_paths: dict[str, Path | None] = {}  # database URL -> its key file
_by_path: dict[Path, Keyring] = {}  # key file -> its keys (loaded once per process)
_memory_key: Keyring | None = None


def key_file_for(url: URL | str) -> Path | None:
    """The key file used without ``HUB_SECRET_KEY``: next to a SQLite file, else in the
    working directory; ``None`` for an in-memory SQLite database."""
    u = make_url(normalize_url(url)) if isinstance(url, str) else url
    if u.get_backend_name() == "sqlite":
        database = u.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            return None
        return Path(database).resolve().parent / KEY_FILE_NAME
    return Path.cwd().resolve() / KEY_FILE_NAME


def keyring(engine: Engine | URL | str) -> Keyring:
    """The keys for a database (see the module's docstring for where they come from)."""
    global _memory_key
    env = (read_env(ENV_VAR) or "").strip()
    if env:
        found = _by_env.get(env)
        if found is None:
            found = _parse_keys(env, ENV_VAR)  # raises before anything is cached
            with _lock:
                found = _by_env.setdefault(env, found)
        return found
    url = engine.url if isinstance(engine, Engine) else engine
    url_key = url if isinstance(url, str) else url.render_as_string(hide_password=True)
    if url_key not in _paths:
        _paths[url_key] = key_file_for(url)
    path = _paths[url_key]
    found = _by_path.get(path) if path is not None else _memory_key
    if found is not None:
        return found
    with _lock:
        if path is None:
            if _memory_key is None:
                _memory_key = _parse_keys(generate_key(), "a key of this process")
                log.warning(
                    "secrets.ephemeral_key",
                    message=f"{ENV_VAR} is not set and the database is in memory: "
                    "connector secrets are encrypted with a key that dies with the process",
                )
            return _memory_key
        found = _by_path.get(path)
        if found is None:
            found = _by_path[path] = _key_file(path)
        return found


def _key_file(path: Path) -> Keyring:
    created = False
    if not path.exists():
        try:
            created = _create_key_file(path)
        except OSError as exc:
            raise SecretKeyError(
                f"cannot create the key file {path} ({type(exc).__name__}); set {ENV_VAR}"
            ) from None
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {type(exc).__name__}") from None
    ring = _parse_keys(text, f"the key file {path}")
    mode = path.stat().st_mode & 0o777
    log.warning(
        "secrets.key_file",
        path=str(path),
        created=created,
        message=f"{ENV_VAR} is not set: connector secrets are encrypted with the key in "
        f"{path}. Production should set {ENV_VAR} (a key next to the database travels "
        "with its backups).",
    )
    if mode & 0o077:
        log.warning("secrets.key_file_permissions", path=str(path), mode=oct(mode))
    return ring


def _create_key_file(path: Path) -> bool:
    """Write a new key to ``path`` unless another process got there first (atomic:
    written aside, then hard-linked into place). Returns whether this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{random_source.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(generate_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def reset_cache() -> None:
    """Forget loaded keys (tests; a process that changed ``HUB_SECRET_KEY`` reloads
    anyway, the cache being keyed by its value)."""
    global _memory_key
    with _lock:
        _by_env.clear()
        _paths.clear()
        _by_path.clear()
        _memory_key = None


# --- configs ----------------------------------------------------------------------------


def encrypt_config(
    ring: Keyring, config: Mapping[str, Any], secret_fields: Iterable[str]
) -> dict[str, Any]:
    """``config`` with each secret field encrypted (already encrypted ones are kept)."""
    fields = set(secret_fields)
    return {
        k: (v if is_encrypted(v) or k not in fields else ring.encrypt(v)) for k, v in config.items()
    }


def decrypt_config(ring: Keyring, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every encrypted field decrypted; raises
    :class:`UndecryptableSecret` naming the fields no key opens."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for k, v in config.items():
        try:
            out[k] = ring.decrypt(v)
        except InvalidToken:
            bad.append(k)
    if bad:
        raise UndecryptableSecret(sorted(bad))
    return out


def decrypt_fields(
    ring: Keyring, config: Mapping[str, Any], names: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """The named fields decrypted (those present), and the names no key opens."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for name in names:
        if name in config:
            try:
                out[name] = ring.decrypt(config[name])
            except InvalidToken:
                bad.append(name)
    return out, bad


def secret_strings(config: Mapping[str, Any], secret_fields: Iterable[str]) -> list[str]:
    """The plaintext strings inside a (decrypted) config's secret fields, longest first,
    for :func:`scrub`. Strings under 4 characters are left out (scrubbing them would
    mangle text and hide nothing)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= 4:
                found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    for name in secret_fields:
        if name in config:
            walk(config[name])
    return sorted(set(found), key=len, reverse=True)


_CREDENTIAL_HEADER_PARTS = ("authorization", "cookie", "token", "key", "secret", "password")
_MIN = 4  # shorter strings are not scrubbed (it would mangle text and hide nothing)
_B64_FRAGMENT_MIN = 8  # base64 fragments shorter than this are too likely by chance


def _basic_parts(credential: str) -> list[str]:
    """``user:pass`` and ``pass`` when ``credential`` is the base64 of ``user:pass``."""
    try:
        decoded = base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return []
    if ":" not in text or not text.isprintable():
        return []
    password = text.partition(":")[2]
    return [p for p in (text, password) if len(p) >= _MIN]


def _credential_parts(value: str) -> list[str]:
    """The value, the credential after an auth scheme (``Bearer x``, ``Basic x``), what
    a Basic credential decodes to, and each cookie's value (``a=x; b=y``)."""
    found = [value]
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if credential and scheme.isalpha() and len(credential) >= _MIN:
        found.append(credential)
        if scheme.lower() == "basic":
            found += _basic_parts(credential)
    if ("=" in value and ";" in value) or value.count("=") == 1:
        for pair in value.split(";"):
            name, eq, cookie = pair.strip().partition("=")
            if eq and name and len(cookie) >= _MIN:
                found.append(cookie)
    return [f for f in found if len(f) >= _MIN]


def _b64_fragments(raw: bytes) -> set[str]:
    """How ``raw`` reads inside any base64 text (standard and URL-safe alphabets, at
    each of the three alignments): whole, padded or not, and the characters that
    depend on ``raw`` alone when it sits in the middle of a longer encoded value."""
    found: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode("ascii")
        found |= {whole, whole.rstrip("=")}
        for k in range(3):
            encoded = encode(b"\0" * k + raw).decode("ascii").rstrip("=")
            first = -(-8 * k // 6)  # the first character made of raw's bits only
            last = (8 * (k + len(raw))) // 6  # … and one past the last
            fragment = encoded[first:last]
            if len(fragment) >= _B64_FRAGMENT_MIN:
                found.add(fragment)
    return found


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` a receiver could echo: as it is; JSON-escaped (with
    and without ``\\u`` escapes, ``/`` as ``\\/``); percent-encoded (``%20`` or ``+``
    for a space, hex in either case); HTML-escaped; base64 (both alphabets, embedded at
    any offset); and the same for the credential after an auth scheme and for a Basic
    credential's ``user:pass``."""
    forms: set[str] = set()
    for part in _credential_parts(secret):
        base = {
            part,
            json.dumps(part)[1:-1],
            json.dumps(part, ensure_ascii=False)[1:-1],
            quote(part, safe=""),
            quote(part),
            quote_plus(part),
            html.escape(part),
            html.escape(part, quote=False),
        }
        base |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in set(base)}
        base |= _b64_fragments(part.encode("utf-8"))
        base |= {f.replace("/", "\\/") for f in base if "/" in f}
        forms |= base
    return {f for f in forms if len(f) >= _MIN}


def credential_strings(headers: Mapping[str, str]) -> list[str]:
    """Values of credential-bearing request headers (``Authorization``, cookies, API
    keys, CSRF tokens), the credential after an auth scheme (``Basic …``) and what a
    Basic credential decodes to: what a receiver echoing the request back must not get
    into the attempt log (:func:`scrub` adds every encoding of each)."""
    found: list[str] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "idempotency-key" or len(value) < _MIN:  # an event id: no credential
            continue
        if any(part in lowered for part in _CREDENTIAL_HEADER_PARTS):
            found += _credential_parts(value)
    return found


def url_credentials(url: str) -> list[str]:
    """The ``user:pass`` (and the password) of a URL's userinfo, if it has one."""
    netloc = urlsplit(url).netloc if "//" in url else ""
    userinfo, at, _ = netloc.rpartition("@")
    if not at or not userinfo:
        return []
    found = [userinfo, unquote(userinfo)]
    password = userinfo.partition(":")[2]
    found += [password, unquote(password)]
    return [f for f in found if len(f) >= _MIN]


def hidden_strings(
    config: Mapping[str, Any],
    secret_fields: Iterable[str],
    requests: Iterable[Any] = (),
) -> list[str]:
    """What an attempt log, a check's report or an error must not show: the config's
    secret values (nested ones too) and the credentials the ``requests`` (objects with
    ``headers`` and ``url``) carried. :func:`scrub` takes care of their encodings."""
    found = secret_strings(config, secret_fields)
    for req in requests:
        found += credential_strings(getattr(req, "headers", {}) or {})
        found += url_credentials(str(getattr(req, "url", "")))
    return found


def scrub(text: str, secrets: Iterable[str], limit: int | None = None) -> str:
    """``text`` (its first ``limit`` characters) with every secret, in every spelling
    :func:`secret_forms` knows, replaced by ``***``: a receiver that echoes the request
    it refused must not put a credential into the attempt log."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= _MIN:
            forms |= secret_forms(secret)
    ordered = sorted(forms, key=len, reverse=True)
    if limit is not None:  # a secret starting before the cut is still seen whole
        text = text[: limit + (len(ordered[0]) if ordered else 0)]
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, "***")
    return text if limit is None else text[:limit]


__all__ = [
    "ENC",
    "ENV_VAR",
    "KEY_FILE_NAME",
    "Keyring",
    "SecretKeyError",
    "UndecryptableSecret",
    "credential_strings",
    "decrypt_config",
    "decrypt_fields",
    "encrypt_config",
    "generate_key",
    "hidden_strings",
    "is_encrypted",
    "key_file_for",
    "keyring",
    "reset_cache",
    "scrub",
    "secret_forms",
    "secret_strings",
    "url_credentials",
]
