"""A real Tryton server on loopback for connector tests, and the REST recipe to drive it.

Verified against trytond 8.2.1 + trytond-stock 8.2.1 (modules ir, res, country, currency,
party, company, product, stock) on Python 3.11 with SQLite. Nothing here leaves 127.0.0.1.

Start-up
========
``start_tryton(tmp_path)`` returns a running :class:`TrytonServer` (also a context manager):

1. Once per process, ``trytond-admin -c <conf> -d tryton_test -u stock --activate-dependencies``
   builds a *template* SQLite database (about 11 s). The admin password comes from
   ``TRYTONPASSFILE``; the interactive e-mail prompt is answered with an empty line on stdin,
   so no e-mail address is set or validated. Every later start copies the template file
   (2.8 MB), so only the first server of a test session pays for ``trytond-admin``.
2. ``trytond -c <conf> -d tryton_test`` is started in its own process group on
   ``127.0.0.1:<free port>``. ``-d`` makes it load the module pool *before* it listens, so
   "port answers" means "ready" (about 1 s).
3. Bootstrap over HTTP: JSON-RPC login as ``admin`` (``POST /<db>/rpc/``), then
   ``model.res.user.application.create`` with ``{"user": <uid>, "application": "rest"}``.
   A record created this way is already ``state='validated'`` (the default); its ``key`` is
   the REST API key (stored in clear, compared by equality in
   ``res.user.application.check(key, 'rest')``). Then, through REST, a currency, a party and
   the company "Hub Test Co" are created and set as the admin user's ``companies``/``company``
   (stock moves need a company, and the company record rule needs the user to be in it).

The admin password is only used for that bootstrap; everything else uses the app key.
``TrytonServer.stop()`` sends SIGTERM to the process group, then SIGKILL after 5 s.

REST API basics (trytond >= 7.4)
================================
Base: ``http://127.0.0.1:<port>/<database>/rest``. Headers on every call::

    Authorization: Bearer <app_key>         # "Basic base64(<anything>:<app_key>)" also works
    Content-Type: application/json          # for bodies
    X-Tryton-Context: <base64url(JSON)>     # optional, e.g. {"locations": [3]}

* ``GET  /model/<model>?d=<b64 domain>&f=<field>&f=<field>&s=<limit>&p=<offset>`` -> list of
  dicts. ``d`` is base64url(JSON) of a Tryton domain, e.g. ``[["code", "=", "SKU-GIFT-1"]]``;
  ``f`` may be dotted (``moves.state``): the nested record comes back as a dict.
* ``GET  /model/<model>/<id>?f=...`` -> dict (404 if missing or not readable).
* ``POST /model/<model>`` body = values of ONE record -> the created record read back
  (``id``, ``__name__`` + the ``f`` fields, default ``rec_name``).
* ``PUT  /model/<model>/<id>`` body = values -> the record read back.
* ``POST /model/<model>/<id>/<method>`` body = keyword arguments (or nothing) -> the result,
  or the record read back when the method returns None (buttons such as ``do``/``wait``).
  Only methods in the model's ``__rpc__`` are allowed (else 403); buttons are also refused
  (400 "You can not call ...") when their ``readonly``/``invisible`` states are true.
* Errors: 401 bad/missing key; 400 ``{"status": 400, "message": ..., "description": ...}``
  for user errors (validation, access rules, refused buttons); 404 unknown record;
  500 HTML page for malformed values (e.g. a free-text Reference).
* Values use Tryton's JSON: Decimal ``{"__class__": "Decimal", "decimal": "0"}``, date
  ``{"__class__": "date", "year": 2026, "month": 1, "day": 31}``; quantities are floats;
  Many2One = id; Reference = ``"model,id"``; One2Many writes ``[["create", [{...}]]]``.

Locations after installing ``stock`` (ids in a fresh DB, but look them up by code/type):
warehouse ``WH`` (5) with ``storage_location`` ``STO`` (3), ``input_location`` ``IN`` (1),
``output_location`` ``OUT`` (2); ``Customer`` ``CUS`` (7); ``Supplier`` ``SUP`` (6);
``Lost and Found`` (type ``lost_found``, no code, 4). Unit of measure "Unit" is id 1.

Recipe: quantity on hand
------------------------
``GET /model/product.product/<product_id>?f=quantity`` with
``X-Tryton-Context: base64url({"locations": [<storage_id>]})`` -> ``{"quantity": 100.0, ...}``
(done moves up to today; add ``"with_childs": true`` to include child locations;
``forecast_quantity`` also counts draft/assigned moves). ``GET /model/stock.location/<id>?
f=quantity`` with context ``{"product": <product_id>}`` gives the same number.

Recipe: decrement stock of product P at storage location S by N (idempotent)
----------------------------------------------------------------------------
A bare ``stock.move`` out of a storage location can NOT be done over REST: ``do`` is refused
while the move is ``draft`` and needs assignment (``assignation_required``), and
``stock.move`` exposes no ``assign``/``assign_try`` RPC. So the decrement is an *internal
shipment* from S to the Lost and Found location L; its free-text ``reference`` carries the
idempotency key (``stock.move`` itself has no free-text field: ``origin`` is a Reference
restricted to ``stock.move``/``stock.inventory.line``; a free-text ``origin`` gives HTTP 500,
another model gives 400 "not one of the allowed options"). C = company id, U = unit id.

0. Idempotency check: ``GET /model/stock.shipment.internal?d=b64([["reference", "=", KEY],
   ["state", "!=", "cancelled"]])&f=state`` -> ``[]`` (go on with 1.) or
   ``[{"id": SH, "state": ...}]``: ``done`` = already applied; ``draft``/``waiting``/
   ``assigned`` = a run died half-way, resume at step 2/3/4.
1. ``POST /model/stock.shipment.internal?f=state&f=moves`` with body::

       {"company": C, "from_location": S, "to_location": L, "reference": KEY,
        "moves": [["create", [{"product": P, "unit": U, "quantity": N,
                               "from_location": S, "to_location": L, "company": C}]]]}

   -> ``{"id": SH, "state": "draft", "moves": [M], ...}``
2. ``POST /model/stock.shipment.internal/SH/wait`` -> 200 ``{"id": SH, "rec_name": ...}``
3. ``POST /model/stock.shipment.internal/SH/assign_try`` -> 200 (record, not a boolean).
   ``GET /model/stock.shipment.internal/SH?f=state``: ``"assigned"`` = stock reserved.
   Still ``"waiting"`` = not enough stock; Tryton then *splits* the move and reserves what
   it can, so release it with ``POST /model/stock.shipment.internal/SH/cancel``.
4. ``POST /model/stock.shipment.internal/SH/do`` -> 200; state ``done``, moves ``done`` with
   ``effective_date`` = today; quantity on hand drops by N.

Recipe: put it back (reverse move, idempotent)
----------------------------------------------
For each done move M of SH (``GET /model/stock.shipment.internal/SH?f=moves.product&
f=moves.unit&f=moves.quantity&f=moves.state``):

0. Idempotency check: ``GET /model/stock.move?d=b64([["origin", "=", "stock.move,M"],
   ["state", "=", "done"]])&f=id`` -> ``[]`` (go on) or the earlier reverse move.
1. ``POST /model/stock.move?f=state`` body::

       {"product": P, "unit": U, "quantity": N, "from_location": L, "to_location": S,
        "company": C, "origin": "stock.move,M"}

   -> ``{"id": R, "state": "draft", ...}``
2. ``POST /model/stock.move/R/do`` -> 200 (allowed straight from draft: a move out of
   Lost and Found needs no assignment). Quantity on hand is back.

Alternative undo: ``POST /model/stock.shipment.internal/SH/cancel`` on the *done* shipment
cancels its moves and restores the quantity (admin, or group "Stock Cancellation", only;
verified too). The reverse move keeps an audit trail, so it is the recipe used here.

A move from storage straight to the Customer location needs ``unit_price`` (Decimal) and
``currency``, and hits the same assignment wall; a ``stock.shipment.out`` would be the
customer-facing equivalent but also needs a customer party with an address.

Fragile points
==============
* Start ``trytond`` with ``-d <db>``: in 8.2.1 a JSON-RPC ``common.db.login`` sent to a server
  whose pool is not loaded yet fails with ``KeyError: 'res.user'`` (returned as a JSON-RPC
  error). REST calls load the pool lazily and are not affected.
* JSON-RPC lives at ``/<db>/rpc/`` (not ``/<db>/``) and login returns
  ``[user_id, session, bus_url]``.
* ``[web] hostname`` is pinned to 127.0.0.1 so trytond never calls ``socket.getfqdn()``; the
  e-mail URI points at a closed loopback port. The HTTP clients use ``trust_env=False`` so no
  proxy variable can route loopback traffic elsewhere.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

DATABASE = "tryton_test"
ADMIN_LOGIN = "admin"
COMPANY_NAME = "Hub Test Co"
MODULES = ("stock",)
START_TIMEOUT = 60.0
ADMIN_TIMEOUT = 300.0

JSON = Any


class TrytonError(RuntimeError):
    """The Tryton server could not be started or answered unexpectedly."""


class InsufficientStock(TrytonError):
    """assign_try could not reserve the whole quantity; the shipment was cancelled."""


def b64json(value: JSON) -> str:
    """base64url(JSON) as used by the ``d``/``o`` query args and ``X-Tryton-Context``."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _bin(name: str) -> str:
    """A console script of the running interpreter's environment (the venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise TrytonError(f"{name} not found; install trytond and trytond-stock")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus every TRYTOND_* override, so only our config file counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND")}
    env.pop("TRYTONPASSFILE", None)
    env.update(extra or {})
    return env


def _write_config(directory: Path, port: int) -> Path:
    db_dir = directory / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    conf = directory / "trytond.conf"
    conf.write_text(
        "[database]\n"
        "uri = sqlite://\n"
        f"path = {db_dir}\n"
        "list = False\n"
        "\n"
        "[web]\n"
        f"listen = 127.0.0.1:{port}\n"
        "hostname = 127.0.0.1\n"
        "\n"
        "[email]\n"
        "# never used by these tests; pinned to a closed loopback port\n"
        "uri = smtp://127.0.0.1:1\n"
    )
    return conf


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


# --------------------------------------------------------------------------- template DB

_template_lock = threading.Lock()
_template: tuple[Path, str] | None = None  # (sqlite file, admin password)


def _build_template() -> tuple[Path, str]:
    directory = Path(tempfile.mkdtemp(prefix="tryton-template-"))
    atexit.register(shutil.rmtree, directory, True)
    conf = _write_config(directory, _free_port())  # port unused by trytond-admin
    db_file = directory / "db" / f"{DATABASE}.sqlite"
    db_file.touch()  # the SQLite backend refuses to open a missing file
    password = secrets.token_urlsafe(16)
    passfile = directory / "admin.pass"
    passfile.write_text(password + "\n")
    log = directory / "trytond-admin.log"
    cmd = [
        _bin("trytond-admin"),
        "-c",
        str(conf),
        "-d",
        DATABASE,
        "-u",
        *MODULES,
        "--activate-dependencies",
    ]
    with log.open("wb") as out:
        proc = subprocess.run(
            cmd,
            input=b"\n",  # answers the "email for admin" prompt with "none"
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_clean_env({"TRYTONPASSFILE": str(passfile)}),
            timeout=ADMIN_TIMEOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise TrytonError(f"trytond-admin failed ({proc.returncode}):\n{_tail(log)}")
    return db_file, password


def template_database() -> tuple[Path, str]:
    """Build (once per process) and return the template SQLite file and admin password."""
    global _template
    with _template_lock:
        if _template is None:
            _template = _build_template()
        return _template


# --------------------------------------------------------------------------- server


@dataclass
class TrytonServer:
    """A running ``trytond`` subprocess with a validated REST key for the admin user."""

    url: str  # http://127.0.0.1:<port>
    database: str
    app_key: str
    company_id: int
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float = 0.0
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    @property
    def rest_url(self) -> str:
        return f"{self.url}/{self.database}/rest"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app_key}"}

    def client(self) -> httpx.Client:
        """The shared httpx client on the REST base URL with the app key (closed by stop)."""
        if not self._clients:
            self._clients.append(
                httpx.Client(
                    base_url=self.rest_url, headers=self.headers, timeout=30.0, trust_env=False
                )
            )
        return self._clients[0]

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s) and close clients."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        _kill(self.process)

    def __enter__(self) -> TrytonServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # The server runs in its own session: its pgid is its pid, so this only
    # reaches the trytond process we started (and any child it forked).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    body = {"id": 0, "method": "common.server.version", "params": []}
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise TrytonError(f"trytond exited ({process.returncode}):\n{_tail(log)}")
            try:
                if http.post(f"{url}/rpc/", json=body).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise TrytonError(f"trytond did not answer within {START_TIMEOUT} s:\n{_tail(log)}")


def _spawn(directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start trytond on a free port; retry with another port if it loses the race."""
    last_error: TrytonError | None = None
    for attempt in range(3):
        port = _free_port()
        conf = _write_config(directory, port)
        log = directory / f"trytond-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [_bin("trytond"), "-c", str(conf), "-d", DATABASE],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, url, log)
        except TrytonError as exc:
            _kill(process)
            last_error = exc
            if "Address already in use" in _tail(log):
                continue
            raise
        return process, url, log
    assert last_error is not None
    raise last_error


def _jsonrpc(
    http: httpx.Client, url: str, method: str, params: list[JSON], auth: str | None = None
) -> JSON:
    headers = {"Authorization": auth} if auth else {}
    resp = http.post(url, json={"id": 1, "method": method, "params": params}, headers=headers)
    resp.raise_for_status()
    payload = resp.json()
    if "error" in payload:
        raise TrytonError(f"JSON-RPC {method} failed: {payload['error']}")
    return payload["result"]


def _create_app_key(url: str, password: str) -> str:
    """JSON-RPC login as admin and create a validated 'rest' user application."""
    rpc = f"{url}/{DATABASE}/rpc/"
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        user_id, session, _bus = _jsonrpc(
            http, rpc, "common.db.login", [ADMIN_LOGIN, {"password": password}, "en"]
        )
        token = base64.b64encode(f"{ADMIN_LOGIN}:{user_id}:{session}".encode()).decode()
        auth = f"Session {token}"
        (app_id,) = _jsonrpc(
            http,
            rpc,
            "model.res.user.application.create",
            [[{"user": user_id, "application": "rest"}], {}],
            auth,
        )
        (app,) = _jsonrpc(
            http,
            rpc,
            "model.res.user.application.read",
            [[app_id], ["key", "state"], {}],
            auth,
        )
        _jsonrpc(http, rpc, "common.db.logout", [], auth)
    if app["state"] != "validated":
        raise TrytonError(f"user application not validated: {app['state']}")
    key: str = app["key"]
    return key


def _check(resp: httpx.Response) -> JSON:
    if resp.status_code >= 400:
        raise TrytonError(
            f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: "
            f"{resp.text[:500]}"
        )
    if resp.status_code == 204 or not resp.content:
        return None
    return resp.json()


def _setup_company(rest: httpx.Client) -> int:
    """Create currency, party and company, and make it the admin user's company."""
    currency = _check(
        rest.post("/model/currency.currency", json={"name": "Euro", "code": "EUR", "symbol": "€"})
    )
    party = _check(rest.post("/model/party.party", json={"name": COMPANY_NAME}))
    company = _check(
        rest.post("/model/company.company", json={"party": party["id"], "currency": currency["id"]})
    )
    company_id: int = company["id"]
    (user,) = _check(
        rest.get("/model/res.user", params={"d": b64json([["login", "=", ADMIN_LOGIN]])})
    )
    _check(
        rest.put(
            f"/model/res.user/{user['id']}",
            json={"companies": [["add", [company_id]]], "company": company_id},
        )
    )
    return company_id


def start_tryton(tmp_path: Path) -> TrytonServer:
    """Start a Tryton server with ``stock`` on a copy of the template DB in ``tmp_path``.

    Returns a :class:`TrytonServer` (use ``stop()`` or ``with``). The first call of a
    process also builds the template database with ``trytond-admin``.
    """
    started = time.monotonic()
    template, password = template_database()
    directory = tmp_path / "tryton"
    db_dir = directory / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = template.with_name(template.name + suffix)
        if src.exists():
            shutil.copy2(src, db_dir / src.name)
    process, url, log = _spawn(directory)
    try:
        key = _create_app_key(url, password)
        with httpx.Client(
            base_url=f"{url}/{DATABASE}/rest",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
            trust_env=False,
        ) as rest:
            company_id = _setup_company(rest)
    except BaseException:
        _kill(process)
        raise
    return TrytonServer(
        url=url,
        database=DATABASE,
        app_key=key,
        company_id=company_id,
        process=process,
        log_path=log,
        startup_seconds=time.monotonic() - started,
    )


@contextlib.contextmanager
def running_tryton(tmp_path: Path) -> Iterator[TrytonServer]:
    """``with running_tryton(tmp_path) as server:`` — stops the server on exit."""
    server = start_tryton(tmp_path)
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- data helpers


@dataclass(frozen=True)
class WarehouseLocations:
    warehouse: int
    storage: int
    input: int
    output: int
    lost_found: int
    customer: int
    supplier: int


def warehouse_locations(server: TrytonServer, warehouse_code: str = "WH") -> WarehouseLocations:
    """Ids of the demo warehouse, its storage/input/output zones and the special locations."""
    rest = server.client()
    fields = ["code", "storage_location", "input_location", "output_location"]
    (wh,) = _check(
        rest.get(
            "/model/stock.location",
            params={
                "d": b64json([["code", "=", warehouse_code], ["type", "=", "warehouse"]]),
                "f": fields,
            },
        )
    )

    def one(domain: list[JSON]) -> int:
        found = _check(rest.get("/model/stock.location", params={"d": b64json(domain), "s": 1}))
        if not found:
            raise TrytonError(f"no stock.location matches {domain}")
        location_id: int = found[0]["id"]
        return location_id

    return WarehouseLocations(
        warehouse=wh["id"],
        storage=wh["storage_location"],
        input=wh["input_location"],
        output=wh["output_location"],
        lost_found=one([["type", "=", "lost_found"]]),
        customer=one([["type", "=", "customer"]]),
        supplier=one([["type", "=", "supplier"]]),
    )


def unit_id(server: TrytonServer, name: str = "Unit") -> int:
    (unit,) = _check(
        server.client().get("/model/product.uom", params={"d": b64json([["name", "=", name]])})
    )
    uid: int = unit["id"]
    return uid


def create_product(
    server: TrytonServer, code: str, name: str = "Gift card", unit: str = "Unit"
) -> int:
    """Create a goods product (template + one variant whose ``code`` is ``code``)."""
    body = {
        "name": name,
        "type": "goods",
        "default_uom": unit_id(server, unit),
        "products": [["create", [{"suffix_code": code}]]],
    }
    template = _check(
        server.client().post("/model/product.template", json=body, params={"f": ["products.code"]})
    )
    (product,) = template["products"]
    if product["code"] != code:
        raise TrytonError(f"product code is {product['code']!r}, expected {code!r}")
    product_id: int = product["id"]
    return product_id


def product_by_code(server: TrytonServer, code: str) -> dict[str, JSON]:
    """``{"id", "code", "default_uom", ...}`` of the variant with this code."""
    found = _check(
        server.client().get(
            "/model/product.product",
            params={
                "d": b64json([["code", "=", code]]),
                "f": ["code", "default_uom"],
            },
        )
    )
    if len(found) != 1:
        raise TrytonError(f"{len(found)} products with code {code!r}")
    product: dict[str, JSON] = found[0]
    return product


def _do_move(server: TrytonServer, values: dict[str, JSON]) -> int:
    rest = server.client()
    move = _check(rest.post("/model/stock.move", json=values, params={"f": ["state"]}))
    _check(rest.post(f"/model/stock.move/{move['id']}/do"))
    done = _check(rest.get(f"/model/stock.move/{move['id']}", params={"f": ["state"]}))
    if done["state"] != "done":
        raise TrytonError(f"stock.move {move['id']} is {done['state']}, not done")
    move_id: int = move["id"]
    return move_id


def add_initial_stock(
    server: TrytonServer, product_code: str, location_id: int, quantity: float
) -> int:
    """Put ``quantity`` into ``location_id`` with a done move from Lost and Found."""
    product = product_by_code(server, product_code)
    locations = warehouse_locations(server)
    return _do_move(
        server,
        {
            "product": product["id"],
            "unit": product["default_uom"],
            "quantity": quantity,
            "from_location": locations.lost_found,
            "to_location": location_id,
            "company": server.company_id,
        },
    )


def quantity_on_hand(server: TrytonServer, product_code: str, location_id: int) -> Decimal:
    """Done stock of the product at the location (``quantity`` with a ``locations`` context)."""
    product = product_by_code(server, product_code)
    record = _check(
        server.client().get(
            f"/model/product.product/{product['id']}",
            params={"f": ["quantity"]},
            headers={"X-Tryton-Context": b64json({"locations": [location_id]})},
        )
    )
    return Decimal(str(record["quantity"]))


def find_decrement(server: TrytonServer, reference: str) -> dict[str, JSON] | None:
    """The non-cancelled internal shipment carrying this idempotency key (``id``, ``state``)."""
    found = _check(
        server.client().get(
            "/model/stock.shipment.internal",
            params={
                "d": b64json([["reference", "=", reference], ["state", "!=", "cancelled"]]),
                "f": ["state", "reference"],
            },
        )
    )
    return found[0] if found else None


def decrement_stock(
    server: TrytonServer, product_code: str, location_id: int, quantity: float, reference: str
) -> int:
    """The REST recipe: internal shipment S -> Lost and Found, wait, assign_try, do.

    Idempotent on ``reference``: a done shipment with it is returned as is, one left
    half-way (draft/waiting/assigned, e.g. after a crash) is driven on to done. Raises
    :class:`InsufficientStock` after cancelling the shipment if the stock is short; a
    cancelled shipment is ignored by the lookup, so the same key may be retried later.
    """
    rest = server.client()
    existing = find_decrement(server, reference)
    if existing is None:
        product = product_by_code(server, product_code)
        lost_found = warehouse_locations(server).lost_found
        move = {
            "product": product["id"],
            "unit": product["default_uom"],
            "quantity": quantity,
            "from_location": location_id,
            "to_location": lost_found,
            "company": server.company_id,
        }
        existing = _check(
            rest.post(
                "/model/stock.shipment.internal",
                params={"f": ["state"]},
                json={
                    "company": server.company_id,
                    "from_location": location_id,
                    "to_location": lost_found,
                    "reference": reference,
                    "moves": [["create", [move]]],
                },
            )
        )
    shipment_id: int = existing["id"]
    path = f"/model/stock.shipment.internal/{shipment_id}"
    state: str = existing["state"]
    if state == "draft":
        _check(rest.post(f"{path}/wait"))
        state = "waiting"
    if state == "waiting":
        _check(rest.post(f"{path}/assign_try"))
        state = _check(rest.get(path, params={"f": ["state"]}))["state"]
        if state != "assigned":
            _check(rest.post(f"{path}/cancel"))
            raise InsufficientStock(f"not enough {product_code} at location {location_id}")
    if state == "assigned":
        _check(rest.post(f"{path}/do"))
        state = _check(rest.get(path, params={"f": ["state"]}))["state"]
    if state != "done":
        raise TrytonError(f"shipment {shipment_id} for {reference!r} is {state}")
    return shipment_id


def reverse_decrement(server: TrytonServer, shipment_id: int) -> list[int]:
    """Put a decrement back: one done reverse ``stock.move`` per move, ``origin`` = that move.

    Idempotent: a move that already has a done reverse move is skipped (its id is returned).
    """
    rest = server.client()
    shipment = _check(
        rest.get(
            f"/model/stock.shipment.internal/{shipment_id}",
            params={
                "f": [
                    "state",
                    "company",
                    "moves.product",
                    "moves.unit",
                    "moves.quantity",
                    "moves.state",
                    "moves.from_location",
                    "moves.to_location",
                ]
            },
        )
    )
    if shipment["state"] != "done":
        raise TrytonError(f"shipment {shipment_id} is {shipment['state']}, not done")
    reversed_ids: list[int] = []
    for move in shipment["moves"]:
        origin = f"stock.move,{move['id']}"
        earlier = _check(
            rest.get(
                "/model/stock.move",
                params={
                    "d": b64json([["origin", "=", origin], ["state", "=", "done"]]),
                },
            )
        )
        if earlier:
            reversed_ids.append(earlier[0]["id"])
            continue
        reversed_ids.append(
            _do_move(
                server,
                {
                    "product": move["product"],
                    "unit": move["unit"],
                    "quantity": move["quantity"],
                    "from_location": move["to_location"],
                    "to_location": move["from_location"],
                    "company": shipment["company"],
                    "origin": origin,
                },
            )
        )
    return reversed_ids
