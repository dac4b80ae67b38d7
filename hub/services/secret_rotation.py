"""Operations over every subscription's stored secrets: check at start that the keys open
them (:func:`probe`), and re-encrypt them with the first key (:func:`rotate_all`,
``hub secrets rotate``). The keys and the cipher are :mod:`hub.secrets`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from cryptography.fernet import InvalidToken
from sqlalchemy import Engine, select, update

from hub.connectors import get_connector
from hub.db.engine import write_conn
from hub.db.schema import offline_signing_keys as osk
from hub.db.schema import subscriptions as subs
from hub.domain.errors import DomainError
from hub.secrets import Keyring, is_encrypted, keyring
from hub.services import audit
from hub.services.principal import Principal

log = structlog.get_logger("hub.secrets")


def probe(engine: Engine, limit: int = 200) -> tuple[int, list[str]]:
    """Try the keys on the stored secrets of live subscriptions (up to ``limit``):
    how many were tried, and the subscriptions whose secrets no key opens. ``hub serve``
    and ``hub worker`` run it at start, so a wrong key (or a key file in another working
    directory) is reported at once rather than by every delivery."""
    ring = keyring(engine)
    tried, failed = 0, []
    with engine.connect() as conn:
        rows = conn.execute(
            select(subs.c.id, subs.c.config).where(subs.c.status != "deleted").limit(limit)
        ).all()
    for row in rows:
        values = [v for v in dict(row.config).values() if is_encrypted(v)]
        tried += len(values)
        for value in values:
            try:
                ring.decrypt(value)
            except InvalidToken:
                failed.append(row.id)
                break
    return tried, failed


# --- rotation ---------------------------------------------------------------------------


@dataclass
class Rotation:
    """What ``hub secrets rotate`` did."""

    subscriptions: int = 0  # subscriptions rewritten
    rotated: int = 0  # encrypted values re-encrypted with the first key
    encrypted: int = 0  # plaintext values (stored before encryption) encrypted
    failed: dict[str, list[str]] = field(default_factory=dict)  # sub id -> fields
    unknown_connector: dict[str, str] = field(default_factory=dict)  # sub id -> connector
    offline_keys: int = 0  # offline signing keys' private keys re-encrypted
    offline_keys_failed: list[str] = field(default_factory=list)  # kids no key opens

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscriptions": self.subscriptions,
            "rotated": self.rotated,
            "encrypted": self.encrypted,
            "failed": self.failed,
            "unknown_connector": self.unknown_connector,
            "offline_keys": self.offline_keys,
            "offline_keys_failed": self.offline_keys_failed,
        }


def rotate_all(engine: Engine) -> Rotation:
    """Re-encrypt every subscription's secrets (deleted ones too) with the first key and
    encrypt the plaintext ones. A subscription whose secret no key opens is left as it
    is and reported; the others are rewritten, each in its own short transaction (a
    concurrent change to the same subscription is never lost)."""
    ring = keyring(engine)
    result = Rotation()
    with engine.connect() as conn:
        ids = list(conn.execute(select(subs.c.id).order_by(subs.c.id)).scalars())
    for sub_id in ids:
        with write_conn(engine) as conn:
            q = select(subs.c.connector, subs.c.config, subs.c.merchant_id).where(
                subs.c.id == sub_id
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).first()
            if row is None:  # deleted since
                continue
            try:
                names = set(get_connector(row.connector).secret_fields)
            except DomainError:  # plugin uninstalled: rotate what is visibly encrypted
                names = set()
                result.unknown_connector[sub_id] = row.connector
            config = dict(row.config)
            names |= {k for k, v in config.items() if is_encrypted(v)}
            names &= set(config)
            bad: list[str] = []
            rotated = encrypted = 0
            for name in sorted(names):
                was_encrypted = is_encrypted(config[name])
                try:
                    config[name] = ring.rotate(config[name])
                except InvalidToken:
                    bad.append(name)
                    continue
                if was_encrypted:
                    rotated += 1
                else:
                    encrypted += 1
            if bad:
                result.failed[sub_id] = bad
                continue  # leave the row untouched: every field or none
            if rotated + encrypted == 0:
                continue
            conn.execute(update(subs).where(subs.c.id == sub_id).values(config=config))
            audit.record(
                conn,
                Principal.operator(row.merchant_id),
                "secrets.rotated",
                "subscription",
                sub_id,
                datetime.now(UTC),
                fields=sorted(names),
            )
            result.subscriptions += 1
            result.rotated += rotated
            result.encrypted += encrypted
    _rotate_offline_keys(engine, ring, result)
    log.info(
        "secrets.rotated",
        subscriptions=result.subscriptions,
        rotated=result.rotated,
        encrypted=result.encrypted,
        failed=sorted(result.failed),
    )
    return result


def _rotate_offline_keys(engine: Engine, ring: Keyring, result: Rotation) -> None:
    """The offline signing keys' private keys (hub.services.offline_keys), re-encrypted
    with the first key, each in its own short transaction; one no key opens is left as
    it is and reported by its key id."""
    with engine.connect() as conn:
        kids = list(conn.execute(select(osk.c.id).order_by(osk.c.id)).scalars())
    for kid in kids:
        with write_conn(engine) as conn:
            stored = conn.execute(select(osk.c.private_key).where(osk.c.id == kid)).scalar()
            try:
                rotated = ring.rotate(stored)
            except InvalidToken:
                result.offline_keys_failed.append(kid)
                continue
            conn.execute(update(osk).where(osk.c.id == kid).values(private_key=rotated))
            result.offline_keys += 1


__all__ = ["Rotation", "probe", "rotate_all"]
