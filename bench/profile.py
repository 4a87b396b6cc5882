"""Profile the client side of one operation: where paygate's CPU time goes.

    uv run python -m bench.profile fakepay charge            # memory store
    uv run python -m bench.profile payjp status --store sqlite --calls 3000 --top 30

The sandbox runs in a child process, so the profile (cProfile on this thread's CPU
clock) holds only client work. The same number of raw httpx calls (the requests the
adapter builds, sent on a bare client) are profiled beside it; the report gives the CPU
per call of both, paygate's time by package, and the functions paygate spends most in.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paygate import Gateway, Money

from ._sandbox import sandbox
from ._scenarios import SCENARIOS, SyncRaw, charge_request, new_key, sync_client
from .overhead import _ref


def _package(filename: str) -> str:
    if "/paygate_" in filename:
        return "paygate_" + filename.split("/paygate_", 1)[1].split("/", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            top = rest.split("/", 2)[1 if marker.startswith("/lib") else 0]
            return top.removesuffix(".py")
    if "/paygate/" in filename:
        return "paygate"
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    return Path(filename).name


def _profile(fn: Callable[[], Any], calls: int) -> tuple[float, pstats.Stats]:
    prof = cProfile.Profile()  # wall clock: cheap to read; socket waits show as recv/poll
    start = time.perf_counter()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    per_call = (time.perf_counter() - start) / calls * 1e6
    return per_call, pstats.Stats(prof)


def _by_package(stats: pstats.Stats) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[_package(filename)] += row[2]  # tottime
    return totals


def main(argv: list[str] | None = None) -> int:
    """Profile ``provider`` ``operation`` and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("provider", choices=sorted(SCENARIOS))
    parser.add_argument("operation", choices=("charge", "status"))
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--mine", type=int, default=0, help="also list paygate's own functions by cumulative time"
    )
    parser.add_argument(
        "--callers", default="", help="also print who calls functions matching this regex"
    )
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.provider]
    amount = Money.jpy(scenario.amount)

    with sandbox() as served, tempfile.TemporaryDirectory() as tmp:
        served.client.reset()
        account = dict(served.client.accounts()[args.provider])
        url = "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'p.db'}"
        gw = Gateway.from_config({"store": url, "accounts": {args.provider: account}})
        adapter = gw.provider(args.provider)
        client = sync_client(adapter)
        raw = SyncRaw(adapter, client)
        seed = gw.charge(
            args.provider, amount=amount, method=scenario.method(), idempotency_key=new_key()
        )
        for _ in range(2):
            raw.learn("charge", raw.charge_flow(charge_request(scenario), new_key()))
        ref = _ref(seed)
        raw.learn("status", raw.status_flow(ref))
        if args.operation == "charge":

            def paygate_call() -> Any:
                return gw.charge(
                    args.provider,
                    amount=amount,
                    method=scenario.method(),
                    idempotency_key=new_key(),
                )

            def raw_call() -> Any:
                return raw.run("charge", raw.charge_flow(charge_request(scenario), new_key()))
        else:

            def paygate_call() -> Any:
                return gw.status(args.provider, seed.id)

            def raw_call() -> Any:
                return raw.run("status", raw.status_flow(ref))

        for _ in range(200):
            paygate_call()
            raw_call()
        raw_cpu, raw_stats = _profile(raw_call, args.calls)
        pg_cpu, stats = _profile(paygate_call, args.calls)
        raw_plain, pg_plain = _plain(raw_call, paygate_call, args.calls)
        client.close()
        gw.close()

    print(f"{args.provider} {args.operation} ({args.store} store), {args.calls} calls")
    print(f"  CPU per call, unprofiled: raw httpx {raw_plain:,.0f} µs, paygate {pg_plain:,.0f} µs")
    print(f"  ratio {pg_plain / raw_plain:.3f}, difference {pg_plain - raw_plain:,.0f} µs")
    print(f"  wall per call, profiled:  raw httpx {raw_cpu:,.0f} µs, paygate {pg_cpu:,.0f} µs")
    print("\n  profiled time by package, µs per call (the profiler inflates every figure):")
    print(f"    {'package':<28} {'raw':>8} {'paygate':>8} {'extra':>8}")
    totals = _by_package(stats)
    raw_totals = _by_package(raw_stats)
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:20]:
        mine = seconds / args.calls * 1e6
        theirs = raw_totals.get(name, 0.0) / args.calls * 1e6
        print(f"    {name:<28} {theirs:8.1f} {mine:8.1f} {mine - theirs:8.1f}")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    if args.mine:
        stats.sort_stats("cumulative").print_stats(r"/paygate", args.mine)
    if args.callers:
        stats.print_callers(args.callers)
    return 0


def _plain(raw: Callable[[], Any], paygate: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median CPU µs per call of each, over interleaved batches of 50."""
    batch = 50
    samples: dict[int, list[float]] = {0: [], 1: []}
    for i in range(max(2, calls // batch)):
        for which in (i % 2, 1 - i % 2):
            fn = (raw, paygate)[which]
            start = time.thread_time()
            for _ in range(batch):
                fn()
            samples[which].append((time.thread_time() - start) / batch * 1e6)
    return statistics.median(samples[0]), statistics.median(samples[1])


if __name__ == "__main__":
    raise SystemExit(main())
