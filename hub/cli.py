"""``hub``: serve, migrate, seed, keys, merchants, idempotency housekeeping."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import structlog
from sqlalchemy import Engine

from hub.db.engine import DEFAULT_SQLITE_PATH, make_engine
from hub.db.migrate import upgrade
from hub.domain.errors import DomainError

DEMO_FILE = "hub-demo.json"
PURGE_EVERY_SECONDS = 600


def database_url(db: str | None) -> str:
    """``--db`` (a path or URL) wins, then ``HUB_DATABASE_URL``, then ``./hub.db``."""
    return db or os.environ.get("HUB_DATABASE_URL") or DEFAULT_SQLITE_PATH


def _engine(db: str | None) -> Engine:
    return make_engine(database_url(db))


def _now() -> datetime:
    return datetime.now(UTC)


db_option = click.option(
    "--db",
    default=None,
    metavar="PATH|URL",
    help="SQLite file or database URL (default: $HUB_DATABASE_URL, else ./hub.db)",
)


@click.group()
def main() -> None:
    """Redemption Hub: coupon redemption (核销) middleware."""


@main.command()
@db_option
def migrate(db: str | None) -> None:
    """Apply database migrations."""
    upgrade(_engine(db))
    click.echo("migrations applied")


@main.command()
@db_option
def seed(db: str | None) -> None:
    """Load the demo data from seeds/ (into an empty database)."""
    from hub.seeding import is_empty
    from hub.seeding import seed as do_seed

    engine = _engine(db)
    upgrade(engine)
    if not is_empty(engine):
        raise click.ClickException("the database already has data; seed only an empty one")
    facts = do_seed(engine)
    click.echo(json.dumps(facts, ensure_ascii=False, indent=2))


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@db_option
@click.option(
    "--merchant", "merchant_id", default=None, help="merchant id (default: the only/first merchant)"
)
@click.option("--role", type=click.Choice(["admin", "store"]), required=True)
@click.option("--store", "store_code", default=None, help="store code (role store)")
@click.option("--name", default="", help="a label for the key")
def keys_create(
    db: str | None, merchant_id: str | None, role: str, store_code: str | None, name: str
) -> None:
    """Create an API key; the key is printed once and only its hash is kept."""
    from hub.seeding import first_merchant
    from hub.services.catalog import create_key

    engine = _engine(db)
    merchant_id = merchant_id or first_merchant(engine)
    if merchant_id is None:
        raise click.ClickException("no merchant yet: run `hub merchants create` first")
    try:
        key = create_key(engine, merchant_id, role, _now(), store_code=store_code, name=name)
    except DomainError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(
        json.dumps(
            {
                "id": key.id,
                "key": key.token,
                "role": key.role,
                "store": key.store,
                "merchant_id": merchant_id,
            }
        )
    )


@main.group()
def merchants() -> None:
    """Merchants."""


@merchants.command("create")
@db_option
@click.option("--name", required=True)
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
def merchants_create(db: str | None, name: str, timezone: str) -> None:
    """Create a merchant and its first admin key (printed once)."""
    from hub.services.catalog import create_key, create_merchant

    engine = _engine(db)
    upgrade(engine)
    try:
        merchant_id = create_merchant(engine, name, timezone, _now())
    except DomainError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    key = create_key(engine, merchant_id, "admin", _now(), name="first admin")
    click.echo(json.dumps({"merchant_id": merchant_id, "admin_key": key.token}))


@main.group()
def idempotency() -> None:
    """Idempotency-Key records."""


@idempotency.command("purge")
@db_option
def idempotency_purge(db: str | None) -> None:
    """Delete expired Idempotency-Key records (kept 24 h)."""
    from hub.services.housekeeping import purge_idempotency

    click.echo(f"purged {purge_idempotency(_engine(db), _now())} expired records")


@main.group()
def coupons() -> None:
    """Coupons."""


@coupons.command("expire")
@db_option
def coupons_expire(db: str | None) -> None:
    """Mark issued coupons past their validity window as expired (with events)."""
    from hub.services.housekeeping import expire_coupons

    click.echo(f"expired {expire_coupons(_engine(db), _now())} coupons")


def _demo_facts(engine: Engine, base_url: str, demo_file: Path) -> dict[str, Any] | None:
    """Seed an empty database, or refresh the demo facts of an existing one."""
    from hub.seeding import demo_codes, first_merchant, is_empty, store_codes
    from hub.seeding import seed as do_seed
    from hub.services.catalog import create_key

    now = _now()
    if is_empty(engine):
        facts = do_seed(engine, now=now)
    else:
        merchant_id = first_merchant(engine)
        if merchant_id is None:
            return None
        previous: dict[str, Any] = {}
        if demo_file.exists():
            try:
                previous = json.loads(demo_file.read_text(encoding="utf-8"))
            except ValueError:
                previous = {}
        if previous.get("merchant_id") == merchant_id and previous.get("admin_key"):
            facts = {k: previous[k] for k in ("merchant_id", "admin_key", "store_keys")}
        else:  # keys are stored hashed: mint fresh demo keys rather than guess
            facts = {
                "merchant_id": merchant_id,
                "admin_key": create_key(engine, merchant_id, "admin", now, name="demo admin").token,
                "store_keys": {
                    c: create_key(
                        engine, merchant_id, "store", now, store_code=c, name=f"demo {c} POS"
                    ).token
                    for c in store_codes(engine, merchant_id)
                },
            }
    facts["codes"] = demo_codes(engine, facts["merchant_id"], now)
    return {"base_url": base_url, **facts}


def _housekeeping_loop(engine: Engine, stop: threading.Event) -> None:
    from hub.services.housekeeping import expire_coupons, purge_idempotency

    log = structlog.get_logger("hub.housekeeping")
    while not stop.wait(PURGE_EVERY_SECONDS):
        try:
            expire_coupons(engine, _now())
            purge_idempotency(engine, _now())
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping.failed")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-demo", is_flag=True, help="do not load demo data into an empty database")
@click.option("--demo-file", default=DEMO_FILE, show_default=True, type=click.Path())
def serve(db: str | None, host: str, port: int, no_demo: bool, demo_file: str) -> None:
    """Run the hub: migrations applied, demo data on an empty database, API on HOST:PORT."""
    import uvicorn

    from hub.api.app import create_app
    from hub.logs import configure_logging
    from hub.services.housekeeping import expire_coupons, purge_idempotency

    configure_logging()
    engine = _engine(db)
    upgrade(engine)
    purge_idempotency(engine, _now())
    expire_coupons(engine, _now())
    base_url = f"http://{host}:{port}"
    if not no_demo:
        facts = _demo_facts(engine, base_url, Path(demo_file))
        if facts is not None:
            Path(demo_file).write_text(
                json.dumps(facts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
            )
            _print_banner(facts, demo_file)
    click.echo(f"Redemption Hub on {base_url}  (API docs: {base_url}/schema)", err=True)
    stop = threading.Event()
    threading.Thread(target=_housekeeping_loop, args=(engine, stop), daemon=True).start()
    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()


def _print_banner(facts: dict[str, Any], demo_file: str) -> None:
    lines = [
        "",
        f"  Redemption Hub demo — {facts['base_url']}",
        f"  API docs (OpenAPI):  {facts['base_url']}/schema",
        f"  admin key:           {facts['admin_key']}",
    ]
    for code, key in facts["store_keys"].items():
        lines.append(f"  store key {code}:  {key}")
    for kind, codes in facts["codes"].items():
        lines.append(f"  {kind:<10} codes:   {', '.join(codes[:3])}")
    lines.append(f"  (the same as JSON in {demo_file})")
    lines.append("")
    click.echo("\n".join(lines), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
