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
    try:
        return make_engine(database_url(db))
    except ValueError as exc:  # a bad HUB_DB_POOL_* setting names itself
        raise click.ClickException(str(exc)) from None


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
    from hub.logs import configure_logging

    configure_logging()  # logs on stderr: stdout carries the commands' output


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
@click.option(
    "--role", type=click.Choice(["admin", "store", "integrator", "analyst"]), required=True
)
@click.option("--store", "store_code", default=None, help="store code (role store)")
@click.option("--stores", default=None, help="analyst keys: comma-separated store codes")
@click.option("--expires-in-days", type=click.IntRange(min=1, max=36500), default=None)
@click.option("--name", default="", help="a label for the key")
def keys_create(
    db: str | None,
    merchant_id: str | None,
    role: str,
    store_code: str | None,
    stores: str | None,
    expires_in_days: int | None,
    name: str,
) -> None:
    """Create an API key; the key is printed once and only its hash is kept."""
    from datetime import timedelta

    from hub.services.keys import create_key

    engine = _engine(db)
    operator = _admin(engine, merchant_id)
    merchant_id = operator.merchant_id
    now = _now()
    expires = now + timedelta(days=expires_in_days) if expires_in_days else None
    store_codes = [c.strip() for c in stores.split(",") if c.strip()] if stores else None
    try:
        key = create_key(
            engine,
            merchant_id,
            role,
            now,
            store_code=store_code,
            name=name,
            store_codes=store_codes,
            expires_at=expires,
            created_by=operator,
        )
    except DomainError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    click.echo(
        json.dumps(
            {
                "id": key.id,
                "key": key.token,
                "role": key.role,
                "store": key.store,
                "stores": list(key.stores) if key.stores is not None else None,
                "expires_at": expires.isoformat() if expires else None,
                "merchant_id": merchant_id,
            }
        )
    )


@keys.command("list")
@db_option
@click.option("--merchant", "merchant_id", default=None)
def keys_list(db: str | None, merchant_id: str | None) -> None:
    """The merchant's keys: role, store(s), status, expiry, last use (never the tokens)."""
    from hub.services.keys import list_keys

    engine = _engine(db)
    _print_json(list_keys(engine, _admin(engine, merchant_id), _now()))


@keys.command("revoke")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.argument("key_id")
def keys_revoke(db: str | None, merchant_id: str | None, key_id: str) -> None:
    """Revoke a key; every process stops accepting it within seconds."""
    from hub.services.keys import revoke_key

    engine = _engine(db)
    _print_json(_run(revoke_key, engine, _admin(engine, merchant_id), key_id, _now()))


@main.group()
def merchants() -> None:
    """Merchants."""


@merchants.command("create")
@db_option
@click.option("--name", required=True)
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
def merchants_create(db: str | None, name: str, timezone: str) -> None:
    """Create a merchant and its first admin key (printed once)."""
    from hub.services.catalog import create_merchant
    from hub.services.keys import create_key

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


def _admin(engine: Engine, merchant_id: str | None) -> Any:
    """An admin principal of the merchant (the only/first one by default), for CLI use."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from hub.db.schema import merchants
    from hub.seeding import first_merchant
    from hub.services.principal import Principal

    merchant_id = merchant_id or first_merchant(engine)
    if merchant_id is None:
        raise click.ClickException("no merchant yet: run `hub merchants create` first")
    with engine.connect() as conn:
        tz = conn.execute(
            select(merchants.c.timezone).where(merchants.c.id == merchant_id)
        ).scalar()
    if tz is None:
        raise click.ClickException(f"no merchant {merchant_id}")
    return Principal.operator(merchant_id, ZoneInfo(tz))


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from hub.secrets import SecretKeyError

    try:
        return fn(*args, **kwargs)
    except DomainError as err:
        raise click.ClickException(f"{err.code}: {err.message}") from None
    except SecretKeyError as err:
        raise click.ClickException(f"secret key: {err}") from None


def _check_secret_key(engine: Engine) -> None:
    """Load the connector-secret key(s) now: a malformed HUB_SECRET_KEY stops the start,
    the warning about a key file comes at start, and so does an error when the keys do
    not open stored secrets (deliveries to those subscriptions fail until fixed)."""
    from hub.secrets import probe

    tried, failed = _run(probe, engine)
    if failed:
        structlog.get_logger("hub.secrets").error(
            "secrets.undecryptable",
            message=f"the configured keys cannot decrypt the secrets of {len(failed)} "
            "subscription(s): their deliveries fail until HUB_SECRET_KEY holds the key "
            "they were stored with (or their secrets are sent again)",
            subscriptions=failed[:20],
            checked=tried,
        )


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


merchant_option = click.option(
    "--merchant", "merchant_id", default=None, help="merchant id (default: the only/first merchant)"
)


@main.group()
def subscriptions() -> None:
    """Subscriptions: connectors that receive events."""


@subscriptions.command("create")
@db_option
@merchant_option
@click.option("--connector", required=True, help="e.g. webhook")
@click.option("--config", "config_json", required=True, help="connector config as JSON")
@click.option("--events", required=True, help="comma-separated event types, or *")
@click.option("--stores", default="", help="comma-separated store codes to filter on")
@click.option("--templates", default="", help="comma-separated template ids to filter on")
@click.option("--retry-schedule", default="", help="comma-separated seconds, e.g. 5,30,120")
def subscriptions_create(
    db: str | None,
    merchant_id: str | None,
    connector: str,
    config_json: str,
    events: str,
    stores: str,
    templates: str,
    retry_schedule: str,
) -> None:
    """Create a subscription (secrets in the config are never shown again)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    try:
        config = json.loads(config_json)
    except ValueError as exc:
        raise click.ClickException(f"--config is not JSON: {exc}") from None
    _print_json(
        _run(
            svc.create,
            engine,
            _admin(engine, merchant_id),
            connector=connector,
            config=config,
            events=[e for e in events.split(",") if e],
            flt={
                "stores": [x for x in stores.split(",") if x],
                "templates": [x for x in templates.split(",") if x],
            },
            retry_schedule=[int(x) for x in retry_schedule.split(",") if x] or None,
            description=None,
            now=_now(),
        )
    )


@subscriptions.command("list")
@db_option
@merchant_option
def subscriptions_list(db: str | None, merchant_id: str | None) -> None:
    """List subscriptions."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    _print_json(_run(svc.list_all, engine, _admin(engine, merchant_id)))


@subscriptions.command("update")
@db_option
@merchant_option
@click.argument("subscription_id")
@click.option(
    "--config",
    "config_json",
    default=None,
    help="new config as JSON (secret fields left out are kept)",
)
@click.option("--events", default=None, help="comma-separated event types")
def subscriptions_update(
    db: str | None,
    merchant_id: str | None,
    subscription_id: str,
    config_json: str | None,
    events: str | None,
) -> None:
    """Change a subscription's config or event types."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    config = json.loads(config_json) if config_json else None
    _print_json(
        _run(
            svc.update_subscription,
            engine,
            _admin(engine, merchant_id),
            subscription_id,
            config=config,
            events=events.split(",") if events else None,
            flt=None,
            retry_schedule=None,
            description=None,
            now=_now(),
            fields_set=set(),
        )
    )


@subscriptions.command("pause")
@db_option
@merchant_option
@click.argument("subscription_id")
def subscriptions_pause(db: str | None, merchant_id: str | None, subscription_id: str) -> None:
    """Pause deliveries to a subscription."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    _print_json(
        _run(svc.set_status, engine, _admin(engine, merchant_id), subscription_id, "paused", _now())
    )


@subscriptions.command("resume")
@db_option
@merchant_option
@click.argument("subscription_id")
def subscriptions_resume(db: str | None, merchant_id: str | None, subscription_id: str) -> None:
    """Resume deliveries (also closes an open circuit)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    _print_json(
        _run(svc.set_status, engine, _admin(engine, merchant_id), subscription_id, "active", _now())
    )


@subscriptions.command("delete")
@db_option
@merchant_option
@click.argument("subscription_id")
def subscriptions_delete(db: str | None, merchant_id: str | None, subscription_id: str) -> None:
    """Delete a subscription."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    _print_json(
        _run(
            svc.set_status, engine, _admin(engine, merchant_id), subscription_id, "deleted", _now()
        )
    )


@main.group()
def deliveries() -> None:
    """Deliveries: the dead-letter list and replays."""


@deliveries.command("list")
@db_option
@merchant_option
@click.option("--subscription", default=None)
@click.option("--status", default=None, help="pending|delivering|succeeded|retrying|dead")
@click.option("--event-type", default=None)
@click.option("--limit", default=100, show_default=True, type=int)
def deliveries_list(
    db: str | None,
    merchant_id: str | None,
    subscription: str | None,
    status: str | None,
    event_type: str | None,
    limit: int,
) -> None:
    """List deliveries, newest first (e.g. --status dead)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    _print_json(
        _run(
            svc.list_deliveries,
            engine,
            _admin(engine, merchant_id),
            subscription=subscription,
            status=status,
            event_type=event_type,
            since=None,
            until=None,
            limit=limit,
            cursor=None,
        )
    )


@deliveries.command("replay")
@db_option
@merchant_option
@click.argument("delivery_id", required=False)
@click.option("--subscription", default=None, help="replay every dead delivery of it")
def deliveries_replay(
    db: str | None, merchant_id: str | None, delivery_id: str | None, subscription: str | None
) -> None:
    """Replay one delivery, or all dead deliveries of --subscription. The running
    workers pick them up (the event id stays the same)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    p = _admin(engine, merchant_id)
    if (delivery_id is None) == (subscription is None):
        raise click.ClickException("give a DELIVERY_ID or --subscription")
    if subscription is not None:
        _print_json(_run(svc.replay_dead, engine, p, subscription, _now()))
    else:
        _print_json(_run(svc.replay, engine, p, delivery_id, _now()))


@main.group("secrets")
def secrets_group() -> None:
    """Connector secrets at rest (encrypted with HUB_SECRET_KEY)."""


@secrets_group.command("rotate")
@db_option
def secrets_rotate(db: str | None) -> None:
    """Re-encrypt every subscription secret with the first key of HUB_SECRET_KEY (and
    encrypt any stored before encryption). Afterwards the older keys can be removed."""
    from hub.secrets import rotate_all

    engine = _engine(db)
    upgrade(engine)
    done = _run(rotate_all, engine)
    click.echo(
        f"re-encrypted {done.rotated} secrets and encrypted {done.encrypted} plaintext ones "
        f"in {done.subscriptions} subscriptions"
    )
    for sub_id, connector in sorted(done.unknown_connector.items()):
        click.echo(
            f"{sub_id}: connector {connector} is not installed; only its encrypted fields "
            "were rotated",
            err=True,
        )
    if done.failed:
        for sub_id, fields in sorted(done.failed.items()):
            click.echo(
                f"{sub_id}: cannot decrypt {', '.join(fields)} with any configured key; "
                "left unchanged (add the old key to HUB_SECRET_KEY, or send the secret again)",
                err=True,
            )
        raise SystemExit(1)


@secrets_group.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key for HUB_SECRET_KEY (put it first, keep the old ones after it
    until `hub secrets rotate` has run)."""
    from hub.secrets import generate_key

    click.echo(generate_key())


@main.group()
def connectors() -> None:
    """Installed connector plugins (entry-point group hub.connectors)."""


@connectors.command("list")
def connectors_list() -> None:
    """Every installed connector, and every one that failed to load (with why)."""
    from hub.connectors import broken_connectors, load_connectors

    for name, c in sorted(load_connectors().items()):
        does = ", ".join(c.consumes) if c.consumes else ", ".join(c.operations)
        verb = "consumes" if c.consumes else "serves"
        click.echo(f"{name:<24} {c.kind:<8} {c.version:<8} {verb} {does}")
        for variant in c.variants():
            impl = c.variant(variant)
            click.echo(
                f"{impl.name:<24} {impl.kind:<8} {impl.version:<8} serves "
                f"{', '.join(impl.operations)}"
            )
        for where, why in sorted(c.problems().items()):
            click.echo(f"{name + ':':<24} BROKEN {where}: {why}")
    for name, why in sorted(broken_connectors().items()):
        click.echo(f"{name:<24} UNAVAILABLE  {why}")


@connectors.command("about")
@click.argument("name")
def connectors_about(name: str) -> None:
    """A connector's kind, capabilities, events or operations, secret fields and config schema."""
    from hub.connectors import broken_connectors, get_connector

    broken = broken_connectors()
    if name in broken:
        raise click.ClickException(f"connector {name} failed to load: {broken[name]}")
    c = _run(get_connector, name)
    _print_json(c.describe())


@connectors.command("check")
@click.argument("name")
@click.option(
    "--config",
    "config_file",
    type=click.File("r"),
    required=True,
    help="JSON file with the connector's configuration (- for stdin)",
)
def connectors_check(name: str, config_file: Any) -> None:
    """Check a configuration: its schema, then connectivity and credentials."""
    from hub.connectors import Delivered, get_connector
    from hub.delivery.attempt import http_transport
    from hub.delivery.exchange import check_connection
    from hub.delivery.runtime import delivery_client

    try:
        config = json.load(config_file)
    except ValueError as exc:
        raise click.ClickException(f"--config is not JSON: {exc}") from None
    c = _run(get_connector, name)
    _run(c.check_config, config)
    with delivery_client() as client:
        outcome, trace = check_connection(c, config, transport=http_transport(client))
    steps = [
        f"{req.method} {req.url} -> {resp.status if resp else trace.error}"
        for req, resp in trace.steps
    ]
    _print_json(
        {
            "connector": name,
            "ok": isinstance(outcome, Delivered),
            "outcome": type(outcome).__name__.lower(),
            "reason": getattr(outcome, "reason", None),
            "requests": steps,
        }
    )
    if not isinstance(outcome, Delivered):
        raise SystemExit(1)


def _demo_facts(engine: Engine, base_url: str, demo_file: Path) -> dict[str, Any] | None:
    """Seed an empty database, or refresh the demo facts of an existing one."""
    from hub.seeding import demo_codes, first_merchant, is_empty, store_codes
    from hub.seeding import seed as do_seed
    from hub.services.keys import create_key

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
    from hub.services.guard import prune as prune_guard
    from hub.services.housekeeping import expire_coupons, purge_idempotency

    log = structlog.get_logger("hub.housekeeping")
    while not stop.wait(PURGE_EVERY_SECONDS):
        try:
            expire_coupons(engine, _now())
            purge_idempotency(engine, _now())
            prune_guard(engine, _now())  # failed-attempt rows no window can see any more
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping.failed")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-demo", is_flag=True, help="do not load demo data into an empty database")
@click.option("--demo-file", default=DEMO_FILE, show_default=True, type=click.Path())
@click.option(
    "--with-worker",
    is_flag=True,
    help="also run a delivery worker in this process when HUB_BROKER_URL is set",
)
def serve(
    db: str | None, host: str, port: int, no_demo: bool, demo_file: str, with_worker: bool
) -> None:
    """Run the hub: migrations applied, demo data on an empty database, API on HOST:PORT."""
    import uvicorn

    from hub.api.app import create_app
    from hub.api.hardening import MAX_REQUEST_HEAD
    from hub.logs import configure_logging
    from hub.services.housekeeping import expire_coupons, purge_idempotency

    configure_logging()
    engine = _engine(db)
    upgrade(engine)
    _check_secret_key(engine)
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
    from hub.delivery.queue import broker_url
    from hub.delivery.runtime import Runtime

    embedded = broker_url() is None
    runtime = Runtime(engine)
    runtime.start(worker=embedded or with_worker)
    mode = "in-process delivery worker" if embedded or with_worker else "deliveries enqueued"
    click.echo(f"Redemption Hub on {base_url}  (API docs: {base_url}/schema; {mode})", err=True)
    stop = threading.Event()
    threading.Thread(target=_housekeeping_loop, args=(engine, stop), daemon=True).start()
    try:
        uvicorn.run(
            create_app(engine),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD,  # request line + headers
        )
    finally:
        stop.set()
        runtime.stop()


@main.command()
@db_option
@click.option(
    "--threads", default=8, show_default=True, type=int, help="delivery threads in this process"
)
def worker(db: str | None, threads: int) -> None:
    """Run a delivery worker: consumes HUB_BROKER_URL (redis://… or amqp://…) and sweeps
    the database for due deliveries. Run as many as you like."""
    import signal

    from hub.delivery.queue import broker_url
    from hub.delivery.runtime import Runtime
    from hub.logs import configure_logging

    configure_logging()
    engine = _engine(db)
    upgrade(engine)
    _check_secret_key(engine)
    runtime = Runtime(engine)
    runtime.start(worker=True, threads=threads)
    click.echo(
        f"hub worker: broker {broker_url() or 'none (database polling only)'}, {threads} threads",
        err=True,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    runtime.stop()


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
