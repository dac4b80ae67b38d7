"""``hub``: serve, migrate, seed, keys, merchants, idempotency housekeeping.

Operator mistakes (no database, a bad broker URL, a port in use …) end with one line on
stderr and an exit code from :data:`EXIT_CODES`, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import structlog
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from hub.db.engine import DEFAULT_SQLITE_PATH, make_engine, normalize_url
from hub.db.migrate import upgrade
from hub.domain.errors import DomainError
from hub.settings import env

DEMO_FILE = "hub-demo.json"
PURGE_EVERY_SECONDS = 600

# Exit codes (README, "Command line"): 0 done, 1 the command was refused or found a
# problem, 2 wrong usage (click), then one per thing the operator has to fix.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_BROKER = 4
EXIT_LISTEN = 5
EXIT_CODES = {
    0: "done",
    EXIT_FAILED: "refused or failed (the message says why); `hub connectors list`: "
    "something is broken",
    EXIT_USAGE: "wrong usage: unknown command or option, missing or invalid argument",
    EXIT_DATABASE: "database missing, unreachable, not a hub database, or not configured",
    EXIT_BROKER: "HUB_BROKER_URL is not a broker URL, or the broker does not answer",
    EXIT_LISTEN: "cannot listen on HOST:PORT (port in use, address not available)",
}


class OperatorError(click.ClickException):
    """Something the operator has to fix: one line on stderr and a documented exit code."""


class DatabaseProblem(OperatorError):
    exit_code = EXIT_DATABASE


class BrokerProblem(OperatorError):
    exit_code = EXIT_BROKER


class ListenProblem(OperatorError):
    exit_code = EXIT_LISTEN


def database_url(db: str | None) -> str:
    """``--db`` (a path or URL) wins, then ``HUB_DATABASE_URL``, then ``./hub.db``."""
    return db or env("HUB_DATABASE_URL") or DEFAULT_SQLITE_PATH


_shown_url: list[str] = []  # the database the command works on, for error messages


def _shown(url: str) -> str:
    """The database URL as given, without its password (a file path as it is)."""
    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return "<unparsable URL>"


def _engine(db: str | None, *, create: bool = False, serving: bool = False) -> Engine:
    """The command's engine: a small pool for one-shot commands, the engine's own pool
    settings for ``serve`` and ``worker`` (``serving``).

    A SQLite file must exist unless the command makes databases (``create``): a typo in
    ``--db`` must not quietly start an empty hub next to the real one."""
    url = database_url(db)
    _shown_url[:] = [_shown(url)]
    try:
        parsed = make_url(normalize_url(url))
        pool: dict[str, int] = {} if serving else {"pool_size": 2, "max_overflow": 2}
        engine = make_engine(url, **pool)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ValueError) as exc:
        if "HUB_DB_" in str(exc):  # a bad HUB_DB_POOL_* setting names itself
            raise click.ClickException(str(exc)) from None
        raise DatabaseProblem(
            f"{_shown(url)} is not a database URL (give a SQLite file path, sqlite:///PATH "
            f"or postgresql://USER@HOST/DB): {_one_line(exc)}"
        ) from None
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:"):
        where = Path(path)
        if not create and not where.exists():
            raise DatabaseProblem(
                f"no database at {path}: give --db or HUB_DATABASE_URL, or create it "
                "with `hub migrate` (`hub serve` creates and seeds one)"
            )
        if not where.parent.is_dir():
            raise DatabaseProblem(f"cannot create the database {path}: no directory {where.parent}")
    return engine


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _database_error(exc: Exception) -> NoReturn:
    """Translate a driver error reaching the top of a command into one line."""
    orig = getattr(exc, "orig", None) or exc
    reason = _one_line(orig)
    where = _shown_url[0] if _shown_url else "the database"
    lowered = reason.lower()
    if "no such table" in lowered or type(orig).__name__ == "UndefinedTable":
        raise DatabaseProblem(
            f"{where} is not a hub database yet ({reason}): run `hub migrate` first"
        ) from None
    if "not a database" in lowered:
        raise DatabaseProblem(f"{where} is not a database file ({reason})") from None
    raise DatabaseProblem(f"cannot use the database {where}: {reason}") from None


def _summary(cmd: click.Command) -> str:
    """A command's line in its group's list: its ``short_help``, else the whole first
    paragraph of its help (click would stop at the first "." and cut long ones off)."""
    if cmd.short_help:
        return " ".join(cmd.short_help.split())
    first = (cmd.help or "").strip().split("\n\n")[0]
    return " ".join(first.split())


class HubGroup(click.Group):
    """The ``hub`` command groups: full one-line help in command lists (wrapped, never
    cut off with "..."), and database trouble reported as one line (exit 3)."""

    group_class = type  # subgroups are HubGroups too

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            rows.append((name, _summary(cmd)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from alembic.util.exc import CommandError

        try:
            return super().invoke(ctx)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            _database_error(exc)
        except (sa_exc.ProgrammingError, sa_exc.DatabaseError) as exc:
            text = str(getattr(exc, "orig", exc)).lower()
            if (
                "no such table" in text
                or "not a database" in text
                or (type(getattr(exc, "orig", None)).__name__ == "UndefinedTable")
            ):
                _database_error(exc)
            raise
        except CommandError as exc:  # e.g. a database migrated by a newer hub
            where = _shown_url[0] if _shown_url else "the database"
            raise DatabaseProblem(f"cannot migrate {where}: {_one_line(exc)}") from None


def _now() -> datetime:
    return datetime.now(UTC)


db_option = click.option(
    "--db",
    default=None,
    metavar="PATH|URL",
    help="SQLite file or database URL (default: $HUB_DATABASE_URL, else ./hub.db)",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="print JSON (for scripts) instead of a table"
)


@click.group(cls=HubGroup, context_settings={"max_content_width": 100})
@click.version_option(
    package_name="redemption-hub", prog_name="hub", message="%(prog)s %(version)s"
)
def main() -> None:
    """Redemption Hub: coupon redemption (核销) middleware."""
    from hub.logs import configure_logging

    configure_logging()  # logs on stderr: stdout carries the commands' output


@main.command()
@db_option
def migrate(db: str | None) -> None:
    """Apply database migrations."""
    upgrade(_engine(db, create=True))
    click.echo("migrations applied")


@main.command()
@db_option
def seed(db: str | None) -> None:
    """Load the demo data from seeds/ (into an empty database), with a few weeks of
    history ending now (HUB_DEMO_HISTORY_DAYS days, default 42; 0: none)."""
    from hub.seeding import history_days_from_env, is_empty, seed_history
    from hub.seeding import seed as do_seed

    engine = _engine(db, create=True)
    upgrade(engine)
    if not is_empty(engine):
        raise click.ClickException("the database already has data; seed only an empty one")
    now = _now()
    facts = do_seed(engine, now=now)
    history = seed_history(engine, facts["merchant_id"], now, days=history_days_from_env())
    if history:
        facts["history"] = history
    click.echo(json.dumps(facts, ensure_ascii=False, indent=2))


@main.group()
def keys() -> None:
    """API keys."""


@keys.group("offline")
def keys_offline() -> None:
    """Offline signing keys (the coupon tokens tills verify offline) and offline rules."""


@keys_offline.command("rotate")
@db_option
@click.option("--merchant", "merchant_id", default=None)
def keys_offline_rotate(db: str | None, merchant_id: str | None) -> None:
    """A new active signing key; the active one is retired (its tokens still verify, and
    it stays published while coupons it may have signed are valid)."""
    from hub.services.offline_keys import rotate

    engine = _engine(db)
    _print_json(_run(rotate, engine, _admin(engine, merchant_id), _now()))


@keys_offline.command("list")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@json_option
def keys_offline_list(db: str | None, merchant_id: str | None, as_json: bool) -> None:
    """The merchant's signing keys, newest first (public parts only)."""
    from hub.services.offline_keys import list_keys

    engine = _engine(db)
    rows = list_keys(engine, _admin(engine, merchant_id))
    if as_json:
        _print_json(rows)
        return
    _print_table(
        rows,
        [("KID", "kid"), ("STATUS", "status"), ("CREATED", "created_at"),
         ("RETIRED", "retired_at"), ("PUBLIC KEY", "x")],
        empty="no offline keys yet (the first is made on first use)",
    )  # fmt: skip


@keys_offline.command("rules")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.option("--max-count", type=int, default=None, help="offline redemptions per terminal")
@click.option("--max-discount", type=int, default=None, help="offline discount per terminal, fen")
@click.option("--max-offline-seconds", type=int, default=None, help="longest time offline")
@click.option("--reset", is_flag=True, help="back to the defaults")
def keys_offline_rules(
    db: str | None,
    merchant_id: str | None,
    max_count: int | None,
    max_discount: int | None,
    max_offline_seconds: int | None,
    reset: bool,
) -> None:
    """Show the offline rules, or change them (members not given keep their value;
    --reset: the defaults)."""
    from hub.services.offline_keys import get_rules, update_rules

    engine = _engine(db)
    operator = _admin(engine, merchant_id)
    given = {
        "max_count": max_count,
        "max_discount": max_discount,
        "max_offline_seconds": max_offline_seconds,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes and not reset:
        _print_json(get_rules(engine, operator))
        return
    current = {} if reset else get_rules(engine, operator)["rules"]
    _print_json(_run(update_rules, engine, operator, {**current, **changes}, _now()))


@keys.command("create")
@db_option
@click.option(
    "--merchant", "merchant_id", default=None, help="merchant id (default: the only/first merchant)"
)
@click.option(
    "--role", type=click.Choice(["admin", "store", "integrator", "analyst", "app"]), required=True
)
@click.option("--store", "store_code", default=None, help="store code (role store)")
@click.option("--stores", default=None, help="analyst keys: comma-separated store codes")
@click.option("--channels", default=None, help="app keys: comma-separated channels")
@click.option("--expires-in-days", type=click.IntRange(min=1, max=36500), default=None)
@click.option("--name", default="", help="a label for the key")
def keys_create(
    db: str | None,
    merchant_id: str | None,
    role: str,
    store_code: str | None,
    stores: str | None,
    channels: str | None,
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
            channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None,
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
                "channels": list(key.channels) if key.channels is not None else None,
                "expires_at": expires.isoformat() if expires else None,
                "merchant_id": merchant_id,
            }
        )
    )


@keys.command("list")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@json_option
def keys_list(db: str | None, merchant_id: str | None, as_json: bool) -> None:
    """The merchant's keys: role, store(s), channels, status, expiry, last use (never the
    tokens)."""
    from hub.services.keys import list_keys

    engine = _engine(db)
    rows = list_keys(engine, _admin(engine, merchant_id), _now())
    if as_json:
        _print_json(rows)
        return
    _print_table(
        rows,
        [
            ("ID", "id"),
            ("ROLE", "role"),
            ("STORES", lambda r: r["store"] or ",".join(r["stores"] or []) or "all"),
            ("CHANNELS", _key_channels),
            ("STATUS", "status"),
            ("EXPIRES", "expires_at"),
            ("LAST USED", "last_used_at"),
            ("NAME", "name"),
        ],
        empty="no keys",
    )


def _key_channels(row: dict[str, Any]) -> str | None:
    """An app key's channels (``all`` when it is not limited); other roles have none."""
    if row["role"] != "app":
        return None
    return ",".join(row["channels"] or []) or "all"


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
def staff() -> None:
    """Staff members who redeem on a phone: add, list, disable, enable, sign-in codes."""


@staff.command("add")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.option("--store", "store_code", required=True, help="the store they work at")
@click.option("--name", required=True, help="their name, as answers and events show it")
@click.option("--external-id", default=None, help="the merchant's own id for them (unique)")
def staff_add(
    db: str | None, merchant_id: str | None, store_code: str, name: str, external_id: str | None
) -> None:
    """Add a staff member to a store (prints it as JSON, with its id)."""
    from hub.services.staff import create_staff

    engine = _engine(db)
    operator = _admin(engine, merchant_id)
    _print_json(_run(create_staff, engine, operator, store_code, name, _now(), external_id))


@staff.command("list")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.option("--store", "store_code", required=True)
@json_option
def staff_list(db: str | None, merchant_id: str | None, store_code: str, as_json: bool) -> None:
    """A store's staff members and their status."""
    from hub.services.staff import list_staff

    engine = _engine(db)
    rows = _run(list_staff, engine, _admin(engine, merchant_id), store_code)
    if as_json:
        _print_json(rows)
        return
    _print_table(
        rows,
        [
            ("ID", "id"),
            ("NAME", "name"),
            ("EXTERNAL ID", "external_id"),
            ("STATUS", "status"),
            ("CREATED", "created_at"),
        ],
        empty="no staff",
    )


@staff.command("disable")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.argument("staff_id")
def staff_disable(db: str | None, merchant_id: str | None, staff_id: str) -> None:
    """Disable a staff member (a lost phone): their sessions end; a running hub stops
    accepting them within its auth cache time (5 s)."""
    from hub.services.staff import disable_staff

    engine = _engine(db)
    _print_json(_run(disable_staff, engine, _admin(engine, merchant_id), staff_id, _now()))


@staff.command("enable")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.argument("staff_id")
def staff_enable(db: str | None, merchant_id: str | None, staff_id: str) -> None:
    """Enable a disabled staff member again (they sign in with a new code)."""
    from hub.services.staff import enable_staff

    engine = _engine(db)
    _print_json(_run(enable_staff, engine, _admin(engine, merchant_id), staff_id, _now()))


@staff.command("sign-in-code")
@db_option
@click.option("--merchant", "merchant_id", default=None)
@click.argument("staff_id")
def staff_sign_in_code(db: str | None, merchant_id: str | None, staff_id: str) -> None:
    """A single-use sign-in code for a staff member, valid 10 minutes (printed once)."""
    from hub.services.staff import create_sign_in_code

    engine = _engine(db)
    _print_json(
        _run(create_sign_in_code, engine, _admin(engine, merchant_id), staff_id, _now())
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
    from hub.services.catalog import create_merchant
    from hub.services.keys import create_key

    engine = _engine(db, create=True)
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


@main.group()
def reminders() -> None:
    """Expiry reminders (coupon.expiring)."""


@reminders.command("run-once")
@db_option
def reminders_run_once(db: str | None) -> None:
    """Send the expiry reminders due now (what every worker does every 30 s)."""
    from hub.services.reminders import send_due_reminders

    click.echo(f"sent {send_due_reminders(_engine(db), _now())} reminders")


@main.group()
def analytics() -> None:
    """Analytics rollups."""


@analytics.command("rebuild")
@db_option
@click.option("--merchant", "merchant_id", default=None, help="Only this merchant (default: all).")
def analytics_rebuild(db: str | None, merchant_id: str | None) -> None:
    """Recompute the analytics rollups from coupons, redemptions and sales (after a bulk
    load or a repair); the consumer then goes on from the events not yet counted."""
    from hub.services.rollup import rebuild_rollups

    mark = rebuild_rollups(_engine(db), merchant_id, _now())
    click.echo(f"rebuilt analytics rollups (events up to seq {mark} counted)")


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
    from hub.services.secret_rotation import probe

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


Column = tuple[str, str | Callable[[dict[str, Any]], Any]]


def _clip(value: Any, width: int) -> Any:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str) -> None:
    """Rows as an aligned table with a header (``-`` for no value)."""
    if not rows:
        click.echo(f"({empty})")
        return

    def cell(row: dict[str, Any], get: str | Callable[[dict[str, Any]], Any]) -> str:
        value = get(row) if callable(get) else row.get(get)
        return "-" if value is None or value == "" else str(value)

    table = [[title for title, _ in columns]]
    table += [[cell(row, get) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


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
@json_option
def subscriptions_list(db: str | None, merchant_id: str | None, as_json: bool) -> None:
    """List subscriptions (secrets redacted)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    rows = _run(svc.list_all, engine, _admin(engine, merchant_id))
    if as_json:
        _print_json(rows)
        return
    _print_table(
        rows,
        [
            ("ID", "id"),
            ("CONNECTOR", "connector"),
            ("STATUS", "status"),
            ("EVENTS", lambda r: ",".join(r["events"])),
            ("STORES", lambda r: ",".join(r["filter"].get("stores") or []) or "all"),
            ("FAILURES", "consecutive_failures"),
            ("DESCRIPTION", "description"),
        ],
        empty="no subscriptions",
    )


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
@json_option
def deliveries_list(
    db: str | None,
    merchant_id: str | None,
    subscription: str | None,
    status: str | None,
    event_type: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List deliveries, newest first (e.g. --status dead)."""
    from hub.services import subscriptions as svc

    engine = _engine(db)
    page = _run(
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
    if as_json:
        _print_json(page)
        return
    _print_table(
        page["items"],
        [
            ("ID", "id"),
            ("SUBSCRIPTION", "subscription_id"),
            ("EVENT TYPE", "event_type"),
            ("STATUS", "status"),
            ("ATTEMPTS", "attempts"),
            ("NEXT ATTEMPT", "next_attempt_at"),
            ("LAST ERROR", lambda r: _clip(r["last_error"] or r["last_status"], 60)),
        ],
        empty="no deliveries",
    )
    if page.get("next_cursor"):
        click.echo(f"(more than {limit}: raise --limit, or use --json)", err=True)


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
    from hub.services.secret_rotation import rotate_all

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
@json_option
def connectors_list(as_json: bool) -> None:
    """Every installed connector, and every one that failed to load (with why).

    Exits with 1 when a connector failed to load or a connector reports a problem
    (e.g. a broken mapping file), so a deployment check can use it."""
    from hub.connectors import (
        AnyConnector,
        InboundConnector,
        OutboundConnector,
        broken_connectors,
        get_connector,
        load_connectors,
    )

    def entry(name: str, c: AnyConnector) -> dict[str, Any]:
        return {
            "name": name,
            "kind": c.kind,
            "version": c.version,
            "consumes": list(c.consumes) if isinstance(c, OutboundConnector) else [],
            "serves": list(c.operations) if isinstance(c, InboundConnector) else [],
        }

    listed: list[dict[str, Any]] = []
    problems: list[dict[str, str]] = []
    for name, c in sorted(load_connectors().items()):
        listed.append(entry(name, c))
        for variant in c.variants():
            impl = get_connector(f"{name}.{variant}")
            listed.append({**entry(impl.name, impl), "consumes": []})
        for where, why in sorted(c.problems().items()):
            problems.append({"connector": name, "status": "broken", "where": where, "why": why})
    for name, why in sorted(broken_connectors().items()):
        problems.append({"connector": name, "status": "unavailable", "where": name, "why": why})
    if as_json:
        _print_json({"connectors": listed, "problems": problems})
    else:
        for row in listed:
            verb, does = (
                ("consumes", row["consumes"]) if row["consumes"] else ("serves", row["serves"])
            )
            head = f"{row['name']:<24} {row['kind']:<8} {row['version']:<8}"
            click.echo(f"{head} {verb} {', '.join(does)}".rstrip())
        for problem in problems:
            if problem["status"] == "broken":
                click.echo(
                    f"{problem['connector'] + ':':<24} BROKEN {problem['where']}: {problem['why']}"
                )
            else:
                why = " ".join(problem["why"].split())  # one line per connector
                click.echo(f"{problem['connector']:<24} UNAVAILABLE  {why}")
    if problems:
        click.echo(f"{len(problems)} problem(s): see BROKEN/UNAVAILABLE above", err=True)
        raise SystemExit(EXIT_FAILED)


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
    from hub.delivery.exchange import check_connection
    from hub.delivery.transport import delivery_client, http_transport
    from hub.egress import check_config_urls
    from hub.secrets import hidden_strings, scrub

    try:
        config = json.load(config_file)
    except ValueError as exc:
        raise click.ClickException(f"--config is not JSON: {exc}") from None
    c = _run(get_connector, name)
    if not isinstance(config, dict):
        raise click.ClickException("--config must hold a JSON object")
    _run(check_config_urls, c, config)
    _run(c.check_config, config)
    with delivery_client() as client:
        outcome, trace = check_connection(c, config, transport=http_transport(client))
    hidden = hidden_strings(config, c.secret_fields, (req for req, _ in trace.steps))
    steps = [
        scrub(f"{req.method} {req.url} -> {resp.status if resp else trace.error}", hidden, 500)
        for req, resp in trace.steps
    ]
    reason = getattr(outcome, "reason", None)
    _print_json(
        {
            "connector": name,
            "ok": isinstance(outcome, Delivered),
            "outcome": type(outcome).__name__.lower(),
            "reason": scrub(reason, hidden, 500) if reason is not None else None,
            "requests": steps,
        }
    )
    if not isinstance(outcome, Delivered):
        raise SystemExit(1)


def _demo_facts(engine: Engine, base_url: str, demo_file: Path) -> dict[str, Any] | None:
    """The demo facts to show at start, or ``None``.

    Keys are minted only when this very start seeds an empty database. A database that
    already has data gets its facts back from the demo file written when it was seeded
    (same merchant) and never new keys: a lost or moved demo file must not hand out
    fresh admin credentials on every restart."""
    from hub.seeding import (
        demo_codes,
        first_merchant,
        history_days_from_env,
        is_empty,
        seed_history,
    )
    from hub.seeding import seed as do_seed

    now = _now()
    if is_empty(engine):
        facts = do_seed(engine, now=now)
        # a few weeks of history ending now (HUB_DEMO_HISTORY_DAYS; 0: none), so the
        # dashboard and the recommendations show something at the first start
        history = seed_history(engine, facts["merchant_id"], now, days=history_days_from_env())
        if history:
            facts["history"] = history
    else:
        merchant_id = first_merchant(engine)
        previous = _read_demo_file(demo_file)
        if (
            merchant_id is None
            or previous.get("merchant_id") != merchant_id
            or not isinstance(previous.get("admin_key"), str)
        ):
            return None
        facts = {
            k: previous.get(k)
            for k in ("merchant_id", "admin_key", "store_keys", "app_key", "campaign_ids")
        }
        if isinstance(previous.get("history"), dict):
            facts["history"] = previous["history"]
        facts["store_keys"] = facts["store_keys"] if isinstance(facts["store_keys"], dict) else {}
    facts["codes"] = demo_codes(engine, facts["merchant_id"], now)
    return {"base_url": base_url, **facts}


def _read_demo_file(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (0600), atomically: the file is created
    with that mode (never chmod-ed afterwards) and then renamed over the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def _check_broker() -> None:
    """With ``HUB_BROKER_URL`` set: refuse a URL that is not a broker's, and a broker
    that does not answer now (exit 4)."""
    from hub.delivery.queue import broker_url, check_broker, shown_url

    url = broker_url()
    if url is None:
        return
    try:
        check_broker()
    except ValueError as exc:
        raise BrokerProblem(_one_line(exc)) from None
    except Exception as exc:
        kind, reason = type(exc).__name__, _one_line(exc)
        raise BrokerProblem(
            f"the broker {shown_url(url)} (HUB_BROKER_URL) does not answer: "
            + (kind if reason in (kind, "") else f"{kind}: {reason}")
        ) from None


def _listen(host: str, port: int) -> socket.socket:
    """Bind HOST:PORT now, before anything is printed or seeded (exit 5 if impossible)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenProblem(f"cannot listen on {where}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            reason = "the port is in use by another process (stop it, or pick another --port)"
        else:
            reason = exc.strerror or str(exc)
        raise ListenProblem(f"cannot listen on {where}: {reason}") from None
    return sock


class Supervisor:
    """Keeps N child processes running (spawned: no thread, engine or connection of the
    parent is inherited) until SIGTERM/SIGINT; then sends each child SIGTERM, waits for
    them to finish what they are doing, and says whether all ended cleanly.

    A child that dies is started again; one that dies within ``QUICK_DEATH`` seconds of
    its start ``MAX_QUICK_DEATHS`` times in a row stops the whole (a crash loop)."""

    QUICK_DEATH = 5.0
    MAX_QUICK_DEATHS = 5

    def __init__(
        self,
        name: str,
        n: int,
        target: Callable[..., None],
        args: tuple[Any, ...],
        on_stop: Callable[[], None] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        import multiprocessing

        self.name = name
        self.n = n
        self.target = target
        self.args = args
        self.on_stop = on_stop  # called once when the stop begins (e.g. close the socket)
        self.ctx = multiprocessing.get_context("spawn")
        self.stopping = stopping or threading.Event()
        self.children: list[Any] = []
        self.started_at: list[float] = []
        self.quick_deaths = 0

    def _start(self) -> Any:
        child = self.ctx.Process(target=self.target, args=self.args, name=self.name)
        child.start()
        return child

    def run(self) -> bool:
        """Supervise until told to stop; ``True`` when every child ended with 0."""
        import signal
        import time

        log = structlog.get_logger("hub.supervisor")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        if self.stopping.is_set():
            return True  # told to stop before anything was started
        for _ in range(self.n):
            self.children.append(self._start())
            self.started_at.append(time.monotonic())
        crashed = False
        while not self.stopping.wait(0.2):
            for i, child in enumerate(self.children):
                if child.is_alive():
                    continue
                quick = time.monotonic() - self.started_at[i] < self.QUICK_DEATH
                self.quick_deaths = self.quick_deaths + 1 if quick else 0
                log.warning(f"{self.name}.died", pid=child.pid, exitcode=child.exitcode)
                if self.quick_deaths >= self.MAX_QUICK_DEATHS:
                    log.error(f"{self.name}.crash_loop", deaths=self.quick_deaths)
                    crashed = True
                    self.stopping.set()
                    break
                self.children[i] = self._start()
                self.started_at[i] = time.monotonic()
                log.info(f"{self.name}.restarted", pid=self.children[i].pid)
        if self.on_stop is not None:
            self.on_stop()
        for child in self.children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in self.children:
            child.join()
        # -SIGTERM: a child stopped before it could install its handlers (nothing in flight)
        return not crashed and all(c.exitcode in (0, -signal.SIGTERM) for c in self.children)


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-demo", is_flag=True, help="do not load demo data into an empty database")
@click.option("--demo-file", default=DEMO_FILE, show_default=True, type=click.Path())
@click.option(
    "--with-worker",
    is_flag=True,
    help="also run a delivery worker in this process when HUB_BROKER_URL is set",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API processes sharing the port (more than 1 needs PostgreSQL)",
)
@click.option(
    "--drain-seconds",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="after SIGTERM, keep serving this long with /ready answering 503 draining "
    "(for a load balancer to notice) before no longer accepting connections",
)
@click.option(
    "--graceful-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="after SIGTERM, seconds the requests in flight may take to finish",
)
def serve(
    db: str | None,
    host: str,
    port: int,
    no_demo: bool,
    demo_file: str,
    with_worker: bool,
    workers: int,
    drain_seconds: float,
    graceful_timeout: float,
) -> None:
    """Run the hub: migrations applied, demo data on an empty database, API on HOST:PORT.

    Demo data and its keys are created only in an empty database (the keys are shown
    once and kept in --demo-file, readable by you only); a database with data is never
    given new keys: make them with `hub keys create`.

    --workers N runs N API processes on the one port (PostgreSQL only); this process
    then migrates, seeds, runs housekeeping and (without HUB_BROKER_URL, or with
    --with-worker) the delivery worker, once. SIGTERM drains: /ready answers 503, the
    requests and deliveries in flight finish, then the exit status is 0."""
    from hub.api.ops import DRAINING
    from hub.api.serving import (
        ApiProcess,
        drain_on_signals,
        run_api_process,
        shared_metrics_dir,
    )
    from hub.api.serving import serve as serve_app
    from hub.logs import configure_logging
    from hub.services.housekeeping import expire_coupons, purge_idempotency

    configure_logging()
    engine = _engine(db, create=True, serving=True)
    if workers > 1 and engine.dialect.name == "sqlite":
        raise click.BadParameter(
            "more than one API process needs PostgreSQL (HUB_DATABASE_URL=postgresql://…): "
            "SQLite takes one writer at a time, so more processes would only queue on its "
            "lock",
            param_hint="'--workers'",
        )
    _check_broker()
    sock = _listen(host, port)
    try:
        upgrade(engine)
        _check_secret_key(engine)
        purge_idempotency(engine, _now())
        expire_coupons(engine, _now())
        base_url = f"http://{host}:{sock.getsockname()[1]}"
        if not no_demo:
            facts = _demo_facts(engine, base_url, Path(demo_file))
            if facts is not None:
                write_private(
                    Path(demo_file), json.dumps(facts, ensure_ascii=False, indent=2) + "\n"
                )
                _print_banner(facts, demo_file)
            else:
                click.echo(
                    f"The database already has data, so no demo keys are made for it; "
                    f"{demo_file} (written when it was seeded) is missing or is another "
                    "database's. Create a key with `hub keys create --role admin`.",
                    err=True,
                )
        from hub.delivery.queue import broker_url
        from hub.delivery.runtime import Runtime

        embedded = broker_url() is None
        runtime = Runtime(engine)
        runtime.start(worker=embedded or with_worker)
        mode = "in-process delivery worker" if embedded or with_worker else "deliveries enqueued"
        procs = f"{workers} API processes, " if workers > 1 else ""
        click.echo(
            f"Redemption Hub on {base_url}  (API docs: {base_url}/schema; dashboard: "
            f"{base_url}/dashboard; staff page: {base_url}/staff; {procs}{mode})",
            err=True,
        )
        stop = threading.Event()
        threading.Thread(target=_housekeeping_loop, args=(engine, stop), daemon=True).start()
        drain_on_signals()  # from here on a signal drains, whenever it comes
        clean = True
        try:
            if workers == 1:
                from hub.api.app import create_app

                serve_app(
                    create_app(engine),
                    sock,
                    drain_seconds=drain_seconds,
                    graceful_timeout=graceful_timeout,
                )
            else:
                spec = ApiProcess(
                    db_url=database_url(db),
                    drain_seconds=drain_seconds,
                    graceful_timeout=graceful_timeout,
                )
                with shared_metrics_dir(workers):
                    clean = Supervisor(
                        "api",
                        workers,
                        run_api_process,
                        (spec, sock),
                        on_stop=sock.close,
                        stopping=DRAINING,
                    ).run()
        finally:
            stop.set()
            runtime.stop()  # the deliveries in flight finish first
        if not clean:
            raise SystemExit(EXIT_FAILED)
    finally:
        sock.close()


def run_worker_process(db_url: str, threads: int, banner: str) -> None:  # pragma: no cover
    """One delivery worker process (``hub worker``, or a child of ``--processes M``):
    say ``banner`` once consuming, consume until SIGTERM/SIGINT, then finish the
    deliveries in flight and return."""
    import signal

    from hub.api.serving import stop_with_parent
    from hub.delivery.runtime import Runtime
    from hub.logs import configure_logging

    configure_logging()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    stop_with_parent()
    engine = make_engine(db_url)
    runtime = Runtime(engine)
    runtime.start(worker=True, threads=threads)
    click.echo(banner, err=True)  # after the start: the broker's watch is in place
    done.wait()
    runtime.stop()  # dramatiq lets each worker thread finish its message
    engine.dispose()


@main.command()
@db_option
@click.option(
    "--threads", default=8, show_default=True, type=int, help="delivery threads per process"
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="worker processes (each with its threads, its pool and its sweeper)",
)
def worker(db: str | None, threads: int, processes: int) -> None:
    """Run a delivery worker on the API's database and HUB_BROKER_URL.

    It consumes the broker (redis://… or amqp://…; none: database polling only) and
    sweeps the database for due deliveries; run as many as you like. The database must
    be given (--db or HUB_DATABASE_URL) and exist: a worker never creates one. While the
    broker is down it backs off (1 s doubling to 60 s) and says so once per backoff step.
    SIGTERM: the deliveries in flight finish, then the exit status is 0."""
    from hub.delivery.queue import broker_url, shown_url
    from hub.logs import configure_logging

    configure_logging()
    if db is None and not env("HUB_DATABASE_URL"):
        raise DatabaseProblem(
            "hub worker needs the API's database: give --db or set HUB_DATABASE_URL "
            "(a worker never creates a database)"
        )
    engine = _engine(db, serving=True)
    _check_broker()
    upgrade(engine)
    _check_secret_key(engine)
    engine.dispose()
    url = broker_url()
    banner = (
        f"hub worker: broker {shown_url(url) if url else 'none (database polling only)'}, "
        + (f"{processes} processes × " if processes > 1 else "")
        + f"{threads} threads"
    )  # said by each process once it consumes
    if processes == 1:
        run_worker_process(database_url(db), threads, banner)
        return
    args = (database_url(db), threads, banner)
    if not Supervisor("worker", processes, run_worker_process, args).run():
        raise SystemExit(EXIT_FAILED)


def _print_banner(facts: dict[str, Any], demo_file: str) -> None:
    lines = [
        "",
        f"  Redemption Hub demo — {facts['base_url']}",
        f"  API docs (OpenAPI):  {facts['base_url']}/schema",
        f"  dashboard:           {facts['base_url']}/dashboard  (sign in with a key below)",
        f"  staff phone page:    {facts['base_url']}/staff  (code: hub staff sign-in-code ID)",
        f"  admin key:           {facts['admin_key']}",
    ]
    for code, key in facts["store_keys"].items():
        lines.append(f"  store key {code}:  {key}")
    if facts.get("app_key"):
        lines.append(f"  app key (mini_program, h5): {facts['app_key']}")
    for campaign_id in facts.get("campaign_ids") or []:
        lines.append(f"  campaign:            {campaign_id}")
    for kind, codes in facts["codes"].items():
        lines.append(f"  {kind:<10} codes:   {', '.join(codes[:3])}")
    history = facts.get("history")
    if isinstance(history, dict) and history.get("days"):
        lines.append(
            f"  history:             {history.get('days')} days, "
            f"{history.get('redemptions')} redemptions, {history.get('sales')} sales"
        )
    lines.append(f"  (the same as JSON in {demo_file}, readable by you only)")
    lines.append("")
    click.echo("\n".join(lines), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
