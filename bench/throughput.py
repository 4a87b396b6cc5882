"""Charges per second at fixed concurrency: AsyncGateway, raw httpx async, official SDKs.

Each contender runs ``concurrency`` workers that charge back to back (fresh key each)
for a warm-up, then completions are counted over a fixed window. Contenders alternate
window by window, so slow phases of the machine hit them alike; the figure is the
median window with the slowest and fastest windows as the spread.

* paygate: `paygate.AsyncGateway` with the memory store (and the SQLite store where
  asked), the default retry policy, on one event loop;
* raw: the same requests on a bare ``httpx.AsyncClient`` (`bench._scenarios.AsyncRaw`),
  as most code would send them: one client, its pool shared by every request;
* raw+lanes: the same, with one single-connection client per request in flight, the
  way paygate's async driver spreads concurrent requests (httpcore's pool assigns every
  queued request to the first idle connection and lets all but one retry, so one busy
  client slows down as concurrency grows);
* SDK: the provider's official (blocking) SDK in a pool of ``concurrency`` threads.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paygate import AsyncGateway, Money

from ._scenarios import SCENARIOS, AsyncRaw, async_client, charge_request, new_key
from ._sdks import SDK_CALLS, sdk_charge
from ._stats import Summary, summarize

__all__ = ["ThroughputRow", "measure_throughput"]


@dataclass(frozen=True)
class ThroughputRow:
    """Charges per second of one contender at one concurrency."""

    provider: str
    contender: str  # "paygate", "paygate+sqlite", "raw", or the SDK's module name
    concurrency: int
    calls: int  # HTTP calls per charge
    rate: Summary  # charges per second over the windows
    windows: tuple[float, ...]  # each window's rate
    errors: int
    client_busy: float | None = None  # CPU of this process / wall time, median window
    server_busy: float | None = None  # CPU of the sandbox process / wall time


Probe = Callable[[], tuple[float, float | None]]  # (client CPU s, server CPU s or None)
Window = tuple[float, int, float | None, float | None]  # rate, errors, client, server busy


def _busy(
    before: tuple[float, float | None], after: tuple[float, float | None], wall: float
) -> tuple[float | None, float | None]:
    client = (after[0] - before[0]) / wall
    server = None if before[1] is None or after[1] is None else (after[1] - before[1]) / wall
    return client, server


async def _async_window(
    op: Callable[[], Awaitable[Any]], concurrency: int, warmup: float, window: float, probe: Probe
) -> Window:
    stop = False
    counting = False
    done = 0
    errors = 0

    async def worker() -> None:
        nonlocal done, errors
        while not stop:
            try:
                await op()
            except Exception:
                errors += 1
                if errors > 50:
                    raise
                continue
            if counting:
                done += 1

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    counting = True
    before = probe()
    start = time.perf_counter()
    await asyncio.sleep(window)
    counting = False
    elapsed = time.perf_counter() - start
    after = probe()
    stop = True
    await asyncio.gather(*tasks)
    return (done / elapsed, errors, *_busy(before, after, elapsed))


def _thread_window(
    op: Callable[[], Any], concurrency: int, warmup: float, window: float, probe: Probe
) -> Window:
    stop = threading.Event()
    counting = threading.Event()
    lock = threading.Lock()
    tally = {"done": 0, "errors": 0}

    def worker() -> None:
        while not stop.is_set():
            try:
                op()
            except Exception:
                with lock:
                    tally["errors"] += 1
                    if tally["errors"] > 50:
                        raise
                continue
            if counting.is_set():
                with lock:
                    tally["done"] += 1

    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        time.sleep(warmup)
        counting.set()
        before = probe()
        start = time.perf_counter()
        time.sleep(window)
        counting.clear()
        elapsed = time.perf_counter() - start
        after = probe()
        stop.set()
        for future in futures:
            future.result()
    return (tally["done"] / elapsed, tally["errors"], *_busy(before, after, elapsed))


async def _paygate_window(
    provider: str,
    account: Mapping[str, Any],
    store: str,
    concurrency: int,
    warmup: float,
    window: float,
    probe: Probe,
) -> Window:
    scenario = SCENARIOS[provider]
    amount = Money.jpy(scenario.amount)
    gw = AsyncGateway.from_config({"store": store, "accounts": {provider: dict(account)}})
    try:

        async def op() -> Any:
            return await gw.charge(
                provider, amount=amount, method=scenario.method(), idempotency_key=new_key()
            )

        return await _async_window(op, concurrency, warmup, window, probe)
    finally:
        await gw.aclose()


async def _raw_window(
    provider: str,
    account: Mapping[str, Any],
    concurrency: int,
    warmup: float,
    window: float,
    per_connection: bool,
    probe: Probe,
) -> tuple[Window, int]:
    scenario = SCENARIOS[provider]
    gw = AsyncGateway.from_config({"store": "memory://", "accounts": {provider: dict(account)}})
    adapter = gw.provider(provider)
    client = async_client(adapter)
    raw = AsyncRaw(adapter, client, per_connection=per_connection)
    try:
        for _ in range(2):
            await raw.learn("charge", raw.charge_flow(charge_request(scenario), new_key()))

        async def op() -> Any:
            return await raw.run("charge", raw.charge_flow(charge_request(scenario), new_key()))

        result = await _async_window(op, concurrency, warmup, window, probe)
        return result, raw.calls["charge"]
    finally:
        await raw.aclose()
        await gw.aclose()


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def measure_throughput(
    provider: str,
    account: Mapping[str, Any],
    *,
    url: str,
    credentials: Mapping[str, Any],
    concurrencies: tuple[int, ...] = (1, 16, 64),
    rounds: int = 3,
    warmup: float = 0.3,
    window: float = 1.0,
    sqlite: bool = False,
    sdk: bool = True,
    calls: int = 1,
    server_cpu: Callable[[], float | None] = lambda: None,
) -> list[ThroughputRow]:
    """Measure one provider at each concurrency; ``calls``: HTTP calls per paygate charge."""
    scenario = SCENARIOS[provider]

    def probe() -> tuple[float, float | None]:
        return time.process_time(), server_cpu()

    sdk_name = scenario.sdk if sdk else None
    sdk_op = sdk_charge(sdk_name, url, credentials) if sdk_name else None
    rows: list[ThroughputRow] = []
    with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'throughput.db'}"
        for concurrency in concurrencies:
            rates: dict[str, list[float]] = {}
            busy: dict[str, list[tuple[float | None, float | None]]] = {}
            errors: dict[str, int] = {}
            raw_calls = calls
            contenders: list[str] = ["paygate", "raw", "raw+lanes"]
            if sqlite:
                contenders.insert(1, "paygate+sqlite")
            if sdk_op is not None and sdk_name is not None:
                contenders.append(sdk_name)
            for i in range(rounds):
                shift = i % len(contenders)
                for name in contenders[shift:] + contenders[:shift]:
                    result: Window
                    if name in ("paygate", "paygate+sqlite"):
                        store = "memory://" if name == "paygate" else db
                        result = asyncio.run(
                            _paygate_window(
                                provider, account, store, concurrency, warmup, window, probe
                            )
                        )
                    elif name in ("raw", "raw+lanes"):
                        result, raw_calls = asyncio.run(
                            _raw_window(
                                provider,
                                account,
                                concurrency,
                                warmup,
                                window,
                                per_connection=name == "raw+lanes",
                                probe=probe,
                            )
                        )
                    else:
                        assert sdk_op is not None
                        op = sdk_op
                        result = _thread_window(
                            lambda op=op: op(new_key()), concurrency, warmup, window, probe
                        )
                    rate, err, client_busy, server_busy = result
                    rates.setdefault(name, []).append(rate)
                    busy.setdefault(name, []).append((client_busy, server_busy))
                    errors[name] = errors.get(name, 0) + err
            for name in contenders:
                if name in ("paygate", "paygate+sqlite"):
                    n_calls = calls
                elif name in ("raw", "raw+lanes"):
                    n_calls = raw_calls
                else:
                    n_calls = SDK_CALLS[name]
                rows.append(
                    ThroughputRow(
                        provider=provider,
                        contender=name,
                        concurrency=concurrency,
                        calls=n_calls,
                        rate=summarize(rates[name]),
                        windows=tuple(rates[name]),
                        errors=errors[name],
                        client_busy=_median([b[0] for b in busy[name]]),
                        server_busy=_median([b[1] for b in busy[name]]),
                    )
                )
    return rows
