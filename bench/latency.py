"""Performance as in production: TLS, 100 ms of provider latency, up to 1,024 in flight.

The server is `bench._latency_server` (a child process): HTTPS with a CA made at start,
every answer held back ``latency`` (``asyncio.sleep``, no CPU), answers replayed from
the real emulators so the server stays cheap and the client is what is measured.

Every cell (one contender at one concurrency) runs in a fresh interpreter
(``python -m bench.latency --cell``), so the figures are the contender's alone:

* charges/s over the window, after a warm-up that lasts at least until every worker
  has finished one charge (all connections made);
* client CPU per charge: ``getrusage`` user + system time of the process over the
  window divided by the charges completed in it (all threads included; robust to other
  processes competing for the cores, unlike wall time);
* peak RSS: ``ru_maxrss`` of the cell's process at its end (interpreter and imports
  included: every contender pays those);
* TLS handshakes: new TLS connections the server accepted during the window (the
  clients resume no sessions, so each is a full handshake), per 1,000 charges, and the
  connections the client holds open at the window's end.

Contenders: `AsyncGateway` (memory store; SQLite and PostgreSQL stores on PAY.JP; and on
PAY.JP ``paygate+again``, the same contender a second time, whose gap to the first shows
the cell-to-cell spread), raw httpx async (one shared ``AsyncClient``, and one
single-connection client per request in flight as paygate's driver sends:
``raw+lanes``), and each official SDK in a thread pool as large as the concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import ROOT

__all__ = ["LatencyRow", "LatencyServer", "latency_server", "measure_latency"]

CONCURRENCIES = (1, 16, 256, 1024)
# Contenders whose cells run `repeats` times (the row is the median by CPU per charge):
# a cell's CPU per charge moves ±15% between runs of the same code, as much as the
# margins the targets judge. The SDK cells are slow and far from the margins: once.
REPEATED = frozenset({"paygate", "raw", "raw+lanes"})
PROVIDERS = {"payjp": "payjp", "elepay": "elepay", "univapay": "univapayclientsdk"}


@dataclass(frozen=True)
class LatencyRow:
    """One contender at one concurrency, with provider latency over TLS."""

    provider: str
    contender: str  # paygate, paygate+sqlite, paygate+postgres, raw, raw+lanes, or an SDK
    concurrency: int
    calls: int  # HTTP calls per charge
    latency_ms: float
    rate: float  # charges per second over the window
    cpu_us: float  # client CPU per charge (user + system, all threads)
    rss_mb: float  # peak RSS of the client process
    rss_base_mb: float  # its RSS once set up, before the workers start
    handshakes: int  # TLS handshakes during the window
    charges: int  # charges completed during the window
    held: int  # connections the client held open at the end of the window
    errors: int
    client_busy: float  # client CPU / wall time over the window (1.0 = one core)
    server_busy: float | None  # the latency server's, likewise
    p50_ms: float  # median time per charge
    # CPU µs per charge of every repeat of the cell (the row is the median one's)
    cpu_samples: tuple[float, ...] = ()

    @property
    def handshakes_per_1000(self) -> float:
        return 1000 * self.handshakes / self.charges if self.charges else float("nan")

    @property
    def latency_bound(self) -> float:
        """Charges/s the latency allows: concurrency / (calls × latency)."""
        return self.concurrency / (self.calls * self.latency_ms / 1000)

    @property
    def cpu_bound(self) -> float:
        """Charges/s one core of client CPU allows at this CPU per charge."""
        return 1e6 / self.cpu_us if self.cpu_us > 0 else float("inf")


@dataclass
class LatencyServer:
    """The running latency server."""

    url: str
    ca_file: str
    accounts: dict[str, Any]
    credentials: dict[str, Any]
    pid: int
    latency_ms: float
    jitter_ms: float


@contextmanager
def latency_server(latency_ms: float = 100.0, jitter_ms: float = 0.0) -> Iterator[LatencyServer]:
    """Start `bench._latency_server` in a child process for the block."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench._latency_server",
            "--latency-ms",
            str(latency_ms),
            "--jitter-ms",
            str(jitter_ms),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError("the latency server did not start")
        info = json.loads(line)
        yield LatencyServer(
            info["url"],
            info["ca_file"],
            info["accounts"],
            info["credentials"],
            proc.pid,
            latency_ms,
            jitter_ms,
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- one cell


def _process_cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_now_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Probe:
    """Server counters (over a connection of its own) and CPU clocks."""

    def __init__(self, url: str, ca_file: str, server_pid: int | None) -> None:
        import ssl

        import httpx

        self.client = httpx.Client(
            base_url=url, verify=ssl.create_default_context(cafile=ca_file), timeout=30
        )
        self.server_pid = server_pid
        self.stats()  # make the probe's own connection now

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = self.client.get("/_bench/stats").json()
        return data

    def snapshot(self) -> tuple[float, float, float | None, dict[str, int]]:
        return time.perf_counter(), _cpu(), _process_cpu(self.server_pid), self.stats()


class _Tally:
    def __init__(self) -> None:
        self.done = 0
        self.errors = 0
        self.counting = False
        self.durations: list[float] = []
        self.first_error: str | None = None
        self.lock = threading.Lock()

    def ok(self, took: float) -> None:
        self.done += 1
        if self.counting:
            self.durations.append(took)

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


def _result(
    spec: Mapping[str, Any],
    tally: _Tally,
    before: tuple[float, float, float | None, dict[str, int]],
    after: tuple[float, float, float | None, dict[str, int]],
    counted: int,
) -> dict[str, Any]:
    wall = after[0] - before[0]
    cpu = after[1] - before[1]
    server = None if before[2] is None or after[2] is None else (after[2] - before[2]) / wall
    durations = sorted(tally.durations)
    return {
        "rate": counted / wall,
        "cpu_us": 1e6 * cpu / counted if counted else float("nan"),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_base_mb": spec.get("rss_base_mb", float("nan")),
        "handshakes": after[3]["connections"] - before[3]["connections"],
        "charges": counted,
        "held": max(0, after[3]["open"] - 1),  # less the probe's own connection
        "errors": tally.errors,
        "first_error": tally.first_error,
        "client_busy": cpu / wall,
        "server_busy": server,
        "p50_ms": 1000 * durations[len(durations) // 2] if durations else float("nan"),
    }


async def _async_cell(
    spec: Mapping[str, Any], op: Callable[[], Awaitable[Any]], probe: _Probe
) -> dict[str, Any]:
    concurrency = spec["concurrency"]
    spec = {**spec, "rss_base_mb": _rss_now_mb()}
    tally = _Tally()
    stop = False

    async def worker() -> None:
        while not stop:
            start = time.perf_counter()
            try:
                await op()
            except Exception as exc:
                tally.failed(exc)
                if tally.errors > 1000:
                    raise
                await asyncio.sleep(0.01)
                continue
            tally.ok(time.perf_counter() - start)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await _warm(spec, tally)
    before = await asyncio.to_thread(probe.snapshot)
    base = tally.done
    tally.counting = True
    await _window(spec, lambda: tally.done - base)
    counted = tally.done - base
    after = await asyncio.to_thread(probe.snapshot)
    tally.counting = False
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return _result(spec, tally, before, after, counted)


async def _window(spec: Mapping[str, Any], counted: Callable[[], int]) -> None:
    # `window` seconds, longer (up to 4 windows) until min(concurrency, 200) charges
    # have completed in it: at 1,024 in flight a charge may take longer than a window.
    start = time.perf_counter()
    want = min(spec["concurrency"], 200)
    while True:
        await asyncio.sleep(0.05)
        waited = time.perf_counter() - start
        if waited >= spec["window"] and (counted() >= want or waited >= 4 * spec["window"]):
            return


async def _warm(spec: Mapping[str, Any], tally: _Tally) -> None:
    # At least `warmup` seconds, and until every worker has finished a charge (or 30 s).
    start = time.perf_counter()
    while True:
        await asyncio.sleep(0.05)
        waited = time.perf_counter() - start
        if waited >= 30 or (waited >= spec["warmup"] and tally.done >= spec["concurrency"]):
            return


def _thread_cell(
    spec: Mapping[str, Any], op: Callable[[str], Any], probe: _Probe, new_key: Callable[[], str]
) -> dict[str, Any]:
    concurrency = spec["concurrency"]
    spec = {**spec, "rss_base_mb": _rss_now_mb()}
    tally = _Tally()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                op(new_key())
            except Exception as exc:
                with tally.lock:
                    tally.failed(exc)
                time.sleep(0.01)
                continue
            took = time.perf_counter() - start
            with tally.lock:
                tally.ok(took)

    threading.stack_size(512 * 1024)  # what a server app with many threads would set
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        asyncio.run(_warm(spec, tally))
        before = probe.snapshot()
        with tally.lock:
            base = tally.done
            tally.counting = True
        asyncio.run(_window(spec, lambda: tally.done - base))
        with tally.lock:
            counted = tally.done - base
        after = probe.snapshot()
        tally.counting = False
        stop.set()
        for future in futures:
            future.result()
    return _result(spec, tally, before, after, counted)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _cell(spec: dict[str, Any]) -> dict[str, Any]:
    _raise_fd_limit()
    os.environ["REQUESTS_CA_BUNDLE"] = spec["ca_file"]  # the SDKs trust the bench CA only
    os.environ["SSL_CERT_FILE"] = spec["ca_file"]
    probe = _Probe(spec["url"], spec["ca_file"], spec.get("server_pid"))
    contender = spec["contender"]
    if contender.startswith("paygate"):
        return asyncio.run(_paygate_cell(spec, probe))
    if contender.startswith("raw"):
        return asyncio.run(_raw_cell(spec, probe))
    from ._scenarios import new_key
    from ._sdks import sdk_charge

    op = sdk_charge(contender, spec["sdk_url"], spec["credentials"], ca_file=spec["ca_file"])
    if op is None:
        raise RuntimeError(f"{contender} is not installed")
    return _thread_cell(spec, op, probe, new_key)


async def _paygate_cell(spec: Mapping[str, Any], probe: _Probe) -> dict[str, Any]:
    from paygate import AsyncGateway, Money

    from ._scenarios import SCENARIOS, new_key

    provider = spec["provider"]
    scenario = SCENARIOS[provider]
    amount = Money.jpy(scenario.amount)
    if spec["contender"] == "paygate+keepall":
        # Experiment, not the shipped driver: keep every lane idle (keep = limit), so
        # a burst of answers never closes connections that queued requests then reopen.
        from paygate import _http

        defaults = _http.AsyncSender.__init__.__kwdefaults__
        assert defaults is not None
        defaults["keep"] = defaults["limit"]
    gw = AsyncGateway.from_config(
        {"store": spec["store"], "accounts": {provider: dict(spec["account"])}}
    )
    try:

        async def op() -> Any:
            return await gw.charge(
                provider, amount=amount, method=scenario.method(), idempotency_key=new_key()
            )

        return await _async_cell(spec, op, probe)
    finally:
        await gw.aclose()


async def _raw_cell(spec: Mapping[str, Any], probe: _Probe) -> dict[str, Any]:
    from paygate import AsyncGateway

    from ._scenarios import SCENARIOS, AsyncRaw, async_client, charge_request, new_key

    provider = spec["provider"]
    scenario = SCENARIOS[provider]
    gw = AsyncGateway.from_config(
        {"store": "memory://", "accounts": {provider: dict(spec["account"])}}
    )
    adapter = gw.provider(provider)
    raw = AsyncRaw(adapter, async_client(adapter), per_connection=spec["contender"] == "raw+lanes")
    try:
        for _ in range(2):
            await raw.learn("charge", raw.charge_flow(charge_request(scenario), new_key()))

        async def op() -> Any:
            return await raw.run("charge", raw.charge_flow(charge_request(scenario), new_key()))

        return await _async_cell(spec, op, probe)
    finally:
        await raw.aclose()
        await gw.aclose()


# --------------------------------------------------------------------------- the run


def _run_cell(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.latency", "--cell", json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"did not finish in {timeout:.0f} s (warm-up, window and shutdown)"
        ) from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"cell {spec['provider']} {spec['contender']} c={spec['concurrency']} failed: "
            + (proc.stderr.strip().splitlines() or ["no output"])[-1]
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def contenders_for(provider: str, postgres_url: str | None) -> list[tuple[str, str]]:
    """``(contender, store URL or "")`` measured for ``provider``."""
    out = [("paygate", "memory://")]
    if provider == "payjp":
        out.append(("paygate+again", "memory://"))
        out.append(("paygate+sqlite", "sqlite"))
        if postgres_url:
            out.append(("paygate+postgres", "postgres"))
    out += [("raw", ""), ("raw+lanes", "")]
    out.append((PROVIDERS[provider], ""))
    return out


def measure_latency(
    server: LatencyServer,
    *,
    providers: list[str],
    concurrencies: tuple[int, ...] = CONCURRENCIES,
    warmup: float = 2.0,
    window: float = 5.0,
    postgres_url: str | None = None,
    calls: Mapping[str, int] | None = None,
    log: Callable[[str], None] = lambda message: None,
    skipped: dict[str, str] | None = None,
    only: set[str] | None = None,
    repeats: int = 3,
) -> list[LatencyRow]:
    """Every contender of every provider at every concurrency, one process per cell;
    the `REPEATED` contenders' cells ``repeats`` times, keeping the median one."""
    from ._sdks import SDK_CALLS

    rows: list[LatencyRow] = []
    with tempfile.TemporaryDirectory(prefix="paygate-bench-latency-") as tmp:
        for provider in providers:
            if provider not in server.accounts:
                continue
            for concurrency in concurrencies:
                for contender, kind in contenders_for(provider, postgres_url):
                    store = kind
                    if only and contender not in only:
                        continue
                    if store == "sqlite":
                        store = f"sqlite:///{Path(tmp) / f'{uuid.uuid4().hex}.db'}"
                    elif store == "postgres" and postgres_url:
                        sep = "&" if "?" in postgres_url else "?"
                        schema = f"paygate_lat_{uuid.uuid4().hex[:8]}"
                        store = f"{postgres_url}{sep}schema={schema}"
                    spec = {
                        "provider": provider,
                        "contender": contender,
                        "concurrency": concurrency,
                        "store": store,
                        "account": server.accounts[provider],
                        "credentials": server.credentials.get(provider, {}),
                        "sdk_url": server.url,
                        "url": server.url,
                        "ca_file": server.ca_file,
                        "server_pid": server.pid,
                        "warmup": warmup,
                        "window": window,
                    }
                    log(f"latency {provider} {contender} c={concurrency}")
                    runs = max(1, repeats) if contender in REPEATED else 1
                    try:
                        cells = [
                            _run_cell(spec, timeout=150 + 4 * (warmup + window))
                            for _ in range(runs)
                        ]
                    except Exception as exc:
                        if skipped is not None:
                            skipped[f"latency {provider} {contender} c={concurrency}"] = str(exc)[
                                :300
                            ]
                        continue
                    cells.sort(key=lambda cell: cell["cpu_us"])
                    got = cells[len(cells) // 2]
                    n_calls = (
                        SDK_CALLS[contender]
                        if contender in SDK_CALLS
                        else (calls or {}).get(provider, 1)
                    )
                    if got.get("first_error") and skipped is not None:
                        skipped[f"latency {provider} {contender} c={concurrency} errors"] = (
                            f"{got['errors']} failed charges; first: {got['first_error']}"
                        )
                    rows.append(
                        LatencyRow(
                            provider=provider,
                            contender=contender,
                            concurrency=concurrency,
                            calls=n_calls,
                            latency_ms=server.latency_ms,
                            rate=got["rate"],
                            cpu_us=got["cpu_us"],
                            rss_mb=got["rss_mb"],
                            rss_base_mb=got["rss_base_mb"],
                            handshakes=got["handshakes"],
                            charges=got["charges"],
                            held=got["held"],
                            errors=got["errors"],
                            client_busy=got["client_busy"],
                            server_busy=got["server_busy"],
                            p50_ms=got["p50_ms"],
                            cpu_samples=tuple(cell["cpu_us"] for cell in cells),
                        )
                    )
    return rows


def main(argv: list[str] | None = None) -> int:
    """``--cell SPEC``: run one cell and print its figures as JSON; else a small run."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--cell", help="(internal) one cell, as JSON")
    parser.add_argument("--providers", default="payjp")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)))
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--contenders", default="", help="only these contenders")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each paygate / raw httpx cell (median)"
    )
    args = parser.parse_args(argv)
    if args.cell:
        from ._fake import fake_classes

        fake_classes()
        print(json.dumps(_cell(json.loads(args.cell))), flush=True)
        return 0
    with latency_server(args.latency_ms, args.jitter_ms) as server:
        rows = measure_latency(
            server,
            providers=args.providers.split(","),
            concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
            warmup=args.warmup,
            window=args.window,
            calls={"univapay": 3},
            log=lambda m: print(m, file=sys.stderr, flush=True),
            skipped=(skipped := {}),
            only=set(filter(None, args.contenders.split(","))),
            repeats=args.repeats,
        )
    for row in rows:
        print(json.dumps(asdict(row)))
    for key, value in skipped.items():
        print(f"skipped {key}: {value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
