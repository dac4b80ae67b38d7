"""Helpers of the chaos test (test_chaos.py): POS-like tills, the faults' windows, and
what the run tells afterwards.

A *sale* is one logical redeem: a code, an Idempotency-Key and a body that never change
however often the till sends it. A till (an asyncio task on its own keep-alive
connection) sends a sale until it gets an answer that ends it, the way a POS terminal
does:

* no answer within ``timeout`` (or the connection breaks): drop the connection, open a
  new one, send the same key and body again;
* 409 ``idempotency_key_in_flight`` (the first send still runs) or any 5xx: wait a
  moment (``Retry-After`` when given, at most 1 s) and send again;
* any other answer ends the sale, except that a few sales *lose* their first answer on
  purpose (read, then dropped as if the network had eaten it) and send again: that
  retry must replay the first answer byte for byte.

The tills run in a process of their own (``spawn``), so that the test process, which
also runs the webhook receiver and kills and restarts processes, does not slow them
down and cause timeouts of its own making; they report progress through a shared
counter and write every sale with every attempt to a pickle file at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.suite import TICK, Sampler
from tests.delivery.multiproc import PREEXEC, Proc, free_port, wait_until
from tests.support import alive, children, listening_children

HUB = str(Path(sys.executable).with_name("hub"))
BANNER = "hub worker: broker"  # said by a worker once it consumes
OUTSIDE = "outside"
RETRY_CODES = frozenset({"idempotency_key_in_flight"})
IMPATIENT = 0.005  # a till that gives up at once: the first send still runs in the hub
SALE_DEADLINE = 120.0  # seconds a till keeps trying one sale before it gives up


@dataclass
class Attempt:
    sent: float  # time.time() when the request was written
    done: float  # when the answer was read, or the till gave up waiting
    status: int  # 0: no answer (see ``error``)
    error: str = ""  # "timeout" | "closed" (the connection broke) | ""
    replayed: bool = False  # Idempotent-Replayed: true
    body: bytes = b""
    lost: bool = False  # read, then dropped on purpose

    @property
    def code(self) -> str:
        """The problem code of a refusal ("" for a success or no answer)."""
        if self.status < 400 or not self.body:
            return ""
        try:
            return str(json.loads(self.body).get("code", ""))
        except (ValueError, AttributeError):
            return "?"


@dataclass
class Sale:
    key: str
    code: str
    kind: str  # "fresh" | "again" (the code once more, after it was redeemed) | "race"
    order_id: str
    lose_answer: bool = False
    impatient: bool = False  # the first send waits only IMPATIENT seconds for its answer
    after: str | None = None  # the key of the sale that must end before this one starts
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt | None:
        """The answer that ended the sale (``None``: the till gave up)."""
        for a in reversed(self.attempts):
            if a.status and not a.lost and not _transient(a):
                return a
        return None

    def answers(self) -> list[Attempt]:
        """Every answer that a till would act on (lost ones included)."""
        return [a for a in self.attempts if a.status and not _transient(a)]


def _transient(a: Attempt) -> bool:
    return a.status >= 500 or (a.status == 409 and a.code in RETRY_CODES)


def plan(codes: list[str], *, fresh: int, again: int, races: int, lose_every: int,
         impatient_every: int, seed: int = 11) -> list[Sale]:  # fmt: skip
    """``fresh`` sales of new codes; ``again`` of them presented once more later (a new
    key: expected 409 ``coupon_already_redeemed``); ``races`` codes presented by two
    tills at once (two keys: one redeems, the other is refused). Every ``lose_every``-th
    sale loses its first answer; every ``impatient_every``-th gives up on its first send
    at once (so retries after a timeout happen however fast the machine). Returns the
    sales in the order the tills take them."""
    rnd = random.Random(seed)
    assert len(codes) >= fresh + races
    sales = [Sale(f"k-{i}", c, "fresh", f"O-{i}") for i, c in enumerate(codes[:fresh])]
    for i, s in enumerate(sales):
        s.lose_answer = i % lose_every == 0
        s.impatient = i % impatient_every == impatient_every // 2
    agains = [
        Sale(f"again-{j}", s.code, "again", f"A-{j}", after=s.key, lose_answer=j % 7 == 0)
        for j, s in enumerate(rnd.sample(sales, again))
    ]
    pairs = [
        [Sale(f"race-{j}-{t}", c, "race", f"R-{j}-{t}") for t in "ab"]
        for j, c in enumerate(codes[fresh : fresh + races])
    ]
    # a code comes back some hundreds of sales after its first presentation
    order: list[Sale] = list(sales)
    for s in agains:
        first = next(i for i, x in enumerate(order) if x.key == s.after)
        order.insert(min(len(order), first + rnd.randint(200, 600)), s)
    for pair in pairs:
        at = rnd.randint(0, len(order))
        order[at:at] = pair
    return order


# --- the tills ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    port: int
    token: str
    tills: int
    timeout: float  # seconds a till waits for an answer before sending again
    out: str  # the pickle file the sales are written to
    deadline: float = 300.0  # seconds after which the tills take no new sale or attempt


class _Conn:
    """One keep-alive HTTP/1.1 connection; reads status, headers and body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(spec: LoadSpec, sale: Sale) -> bytes:
    body = json.dumps({"code": sale.code, "order": {"id": sale.order_id, "amount": 12800}}).encode()
    head = (
        f"POST /v1/redemptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {spec.token}\r\nIdempotency-Key: {sale.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _sell(spec: LoadSpec, conn: _Conn, sale: Sale, stop_at: float) -> None:
    request = _request(spec, sale)
    stop_at = min(stop_at, time.monotonic() + SALE_DEADLINE)
    lost = False
    while time.monotonic() < stop_at:
        a = Attempt(sent=time.time(), done=0.0, status=0)
        timeout = IMPATIENT if sale.impatient and not sale.attempts else spec.timeout
        sale.attempts.append(a)
        try:
            status, headers, body = await asyncio.wait_for(conn.exchange(request), timeout)
        except TimeoutError:
            a.error = "timeout"
        except (OSError, asyncio.IncompleteReadError, ValueError):
            a.error = "closed"
        else:
            a.status, a.body = status, body
            a.replayed = headers.get(b"idempotent-replayed", b"").lower() == b"true"
        a.done = time.time()
        if not a.status:
            conn.close()  # a till gives up on the connection, not on the sale
            await asyncio.sleep(0.05)
            continue
        if _transient(a):
            retry_after = headers.get(b"retry-after", b"")
            await asyncio.sleep(min(1.0, float(retry_after)) if retry_after.isdigit() else 0.2)
            continue
        if sale.lose_answer and not lost:
            a.lost = lost = True
            conn.close()
            continue
        return


async def _tills(spec: LoadSpec, sales: list[Sale], progress: Any) -> None:
    ended = {s.key: asyncio.Event() for s in sales}
    queue: Iterator[Sale] = iter(sales)
    stop_at = time.monotonic() + spec.deadline

    async def till() -> None:
        conn = _Conn(spec.port)
        try:
            for sale in queue:
                if time.monotonic() >= stop_at:
                    return  # the sales left have no attempt: the test says so
                if sale.after is not None:
                    await ended[sale.after].wait()
                await _sell(spec, conn, sale, stop_at)
                ended[sale.key].set()
                with progress.get_lock():
                    progress.value += 1
        finally:
            conn.close()

    await asyncio.gather(*(till() for _ in range(spec.tills)))


def drive(spec: LoadSpec, sales: list[Sale], progress: Any) -> None:  # pragma: no cover
    """The body of the load process: run the tills, then write the sales to ``out``."""
    if PREEXEC is not None:
        PREEXEC()  # dies with the test process, whatever happens to it
    asyncio.run(_tills(spec, sales, progress))
    Path(spec.out).write_bytes(pickle.dumps(sales))


# --- the faults and what the run tells ----------------------------------------------


@dataclass
class Window:
    """A process was down (or being replaced) from ``start`` to ``end`` (time.time())."""

    what: str
    how: str
    start: float
    end: float = 0.0

    def covers(self, a: Attempt, grace: float) -> bool:
        return a.sent <= self.end + grace and a.done >= self.start


class Phases:
    """How long each part of the test took (the budget is the whole test)."""

    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()
        self.spent: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.spent[name] = now - self.last
        self.last = now

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.spent.items())
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        return (
            f"chaos: {time.monotonic() - self.t0:.1f} s in all ({parts}); "
            f"load average {load:.1f} on {os.cpu_count()} cores"
        )


class CpuSampler(Sampler):
    """CPU time of the test's process tree (the test, the tills, every hub process,
    redis-server) and of the database's backends, polled once a second (cheap enough
    to leave on): on an idle machine the test needs at least their sum divided by the
    number of cores."""

    roles: dict[int, str]

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._poll()

    def _poll(self, initial: bool = False) -> None:
        super()._poll(initial)
        roles = self.__dict__.setdefault("roles", {})
        for pid in self.last["hub"].keys() - roles.keys():
            roles[pid] = _role(pid, self.hub_pid)

    def seconds(self, group: str) -> float:
        return (self.cpu_ms(group, 1) or 0.0) / 1000

    def by_role(self) -> dict[str, float]:
        spent: Counter[str] = Counter()
        for pid, ticks in self.last["hub"].items():
            spent[self.roles.get(pid, "?")] += (ticks - self.first["hub"].get(pid, 0)) / TICK
        return dict(spent.most_common())

    def line(self) -> str:
        ours, db = self.seconds("hub"), self.seconds("db")
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.by_role().items())
        return (
            f"chaos: CPU {ours:.1f} s ({parts}) + PostgreSQL {db:.1f} s = at least "
            f"{(ours + db) / cores:.1f} s of wall time on {cores} idle cores"
        )


def _role(pid: int, test_pid: int | None) -> str:
    if pid == test_pid:
        return "test"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = b" ".join(argv).decode(errors="replace")
    if "multiprocessing" in text:  # a spawned process: the tills, or an API process
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return "?"
        if "resource_tracker" in text:
            return "other"
        return "tills" if int(stat.rpartition(")")[2].split()[1]) == test_pid else "API"
    for needle, role in (("redis-server", "redis"), (" serve ", "hub serve"),
                         (" worker ", "hub worker")):  # fmt: skip
        if needle in text:
            return role
    return "other"


@dataclass
class Summary:
    sales: int
    requests: int
    retries: int
    timeouts: int
    broken: int
    in_flight: int
    replays: int
    lost_answers: int
    statuses: Counter[int]
    five_xx: dict[str, int]  # per window (its ``what``), OUTSIDE for none
    broken_by_window: dict[str, int]  # connections that broke before an answer
    windows: list[Window]
    seconds: float
    deliveries: str = ""

    def lines(self) -> list[str]:
        out = [
            f"chaos: {self.sales} sales in {self.seconds:.1f} s, {self.requests} requests "
            f"({self.retries} retries: {self.timeouts} after a timeout, {self.broken} after a "
            f"broken connection, {self.in_flight} after 409 in flight, {self.lost_answers} "
            f"after an answer lost on purpose); {self.replays} answered as replays",
            "chaos: statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "chaos: 5xx " + _per_window(self.five_xx),
            "chaos: connections broken before the answer " + _per_window(self.broken_by_window),
        ]
        for w in self.windows:
            out.append(f"chaos: {w.what} down {w.end - w.start:.1f} s ({w.how})")
        if self.deliveries:
            out.append("chaos: " + self.deliveries)
        return out


def _per_window(counts: dict[str, int]) -> str:
    said = [f"{v} {'outside every window' if k == OUTSIDE else f'while {k} was down'}"
            for k, v in counts.items()]  # fmt: skip
    return ", ".join(said) or "none"


def summarise(sales: list[Sale], windows: list[Window], seconds: float,
              grace: float) -> Summary:  # fmt: skip
    attempts = [a for s in sales for a in s.attempts]
    five_xx: Counter[str] = Counter()
    broken: Counter[str] = Counter()
    for a in attempts:
        if a.status >= 500 or a.error == "closed":
            where = [w.what for w in windows if w.covers(a, grace)]
            (five_xx if a.status else broken)[where[0] if where else OUTSIDE] += 1
    retried = [a for s in sales for a in s.attempts[:-1]]  # each followed by a retry
    return Summary(
        sales=len(sales),
        requests=len(attempts),
        retries=len(attempts) - len(sales),
        timeouts=sum(a.error == "timeout" for a in retried),
        broken=sum(a.error == "closed" for a in retried),
        in_flight=sum(a.code in RETRY_CODES for a in retried),
        replays=sum(a.replayed for a in attempts),
        lost_answers=sum(a.lost for a in attempts),
        statuses=Counter(a.status for a in attempts),
        five_xx=dict(five_xx),
        broken_by_window=dict(broken),
        windows=windows,
        seconds=seconds,
    )


# --- the hub's processes ------------------------------------------------------------


class Services:
    """``hub serve --workers 2`` and ``hub worker``s on one PostgreSQL database and one
    broker, as the README's production layout runs them (subprocesses of the test, each
    stopped by :meth:`close` whatever the outcome)."""

    def __init__(self, db_url: str, broker_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.db_url = db_url
        self.broker_url = broker_url
        self.workdir = workdir
        self.extra_env = env
        self.port = free_port()
        self.api: Proc | None = None
        self.workers: dict[str, Proc] = {}
        self._all: list[Proc] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(
            HUB_SECRET_KEY=os.environ["HUB_SECRET_KEY"],  # the test's: it made the secrets
            HUB_BROKER_URL=self.broker_url,
            HUB_LOG_LEVEL="WARNING",
            HUB_EGRESS_ALLOW="127.0.0.0/8",
            PYTHONUNBUFFERED="1",
            **self.extra_env,
        )
        return env

    def _spawn(self, name: str, args: list[str]) -> Proc:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                [HUB, *args, "--db", self.db_url], stdout=fh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self._env(), cwd=self.workdir,
                preexec_fn=PREEXEC,
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self._all.append(proc)
        return proc

    def start_api(self, processes: int, *, wait: bool = True) -> Proc:
        self.api = self._spawn(
            "api", ["serve", "--no-demo", "--port", str(self.port), "--workers", str(processes)]
        )
        if wait:
            self.wait_api(processes)
        return self.api

    def wait_api(self, processes: int) -> None:
        api = self.api
        assert api is not None

        def up() -> bool:
            if not api.alive():
                raise RuntimeError(f"hub serve exited:\n{api.tail()}")
            return len(self.api_processes()) == processes

        wait_until(up, 90, 0.1, "hub serve: its API processes listening")

    def api_processes(self) -> set[int]:
        assert self.api is not None
        return listening_children(self.api.popen.pid, self.port)

    def start_worker(self, name: str, threads: int, *, wait: bool = True) -> Proc:
        said = self._banners(name)  # the log is appended to: a restart says it again
        proc = self.workers[name] = self._spawn(name, ["worker", "--threads", str(threads)])
        if wait:
            self.wait_worker(name, said + 1)
        return proc

    def _banners(self, name: str) -> int:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace").count(BANNER)
        except OSError:
            return 0

    def wait_worker(self, name: str, banners: int = 1) -> None:
        proc = self.workers[name]

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"hub worker exited:\n{proc.tail()}")
            return self._banners(name) >= banners

        wait_until(ready, 60, 0.1, f"{name} consuming")

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self._all)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        orphans = children(self.api.popen.pid) if self.api is not None else set()
        for proc in self._all:
            if proc.alive():
                proc.popen.terminate()
        deadline = time.monotonic() + 30
        for proc in self._all:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)
        for pid in orphans:  # API processes the parent could not stop
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
