"""``python -m bench``: run the benchmarks, write bench/results.md and docs/bench.png.

uv run --group bench python -m bench            # full run, a few minutes
uv run --group bench python -m bench --quick    # smoke run, well under a minute
uv run python -m bench --only overhead,startup --providers fakepay,payjp
uv run --group bench python -m bench --only latency,pgmulti   # TLS + provider latency
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import ROOT
from ._machine import describe, git_commit, load
from ._sandbox import sandbox
from ._scenarios import SCENARIOS
from .latency import CONCURRENCIES, latency_server, measure_latency
from .memory import measure_memory
from .overhead import measure_provider
from .pgmulti import measure_pg_multi
from .report import Results, targets, write_markdown, write_plot
from .startup import import_profile, measure_startup
from .stores import measure_store
from .throughput import measure_throughput

SECTIONS = ("overhead", "throughput", "latency", "stores", "pgmulti", "startup", "memory")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples: a smoke run")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run ({', '.join(SECTIONS)})"
    )
    parser.add_argument(
        "--providers",
        default="",
        help="providers to measure (default: every installed one that works, and fakepay)",
    )
    parser.add_argument(
        "--sandbox",
        choices=("process", "thread"),
        default="process",
        help="serve the sandbox in a child process (default) or a thread of this one",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("PAYGATE_TEST_POSTGRES_URL", ""),
        help="PostgreSQL for the store benchmark (default: $PAYGATE_TEST_POSTGRES_URL, else a "
        "throwaway embedded server)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="provider latency (latency section)"
    )
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="± uniform jitter on the latency"
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCIES)),
        help="concurrencies of the latency section",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench.png")
    parser.add_argument("--no-plot", action="store_true", help="do not draw docs/bench.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and write the results."""
    args = _args(argv)
    quick = args.quick
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s): {', '.join(sorted(unknown))}")
    command = "uv run --group bench python -m bench" + (" --quick" if quick else "")
    started = time.perf_counter()
    results = Results(
        command=command,
        quick=quick,
        sandbox_mode=args.sandbox,
        machine=describe(),
        commit=git_commit(ROOT),
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_start=load(),
    )
    _log(f"load average {results.load_start}")

    if "startup" in sections:
        # First, while nothing else of ours is running.
        _log("start-up times")
        results.startup = measure_startup(runs=3 if quick else 15)
        results.imports = import_profile(runs=1 if quick else 5)

    with contextlib.ExitStack() as stack:
        postgres_url = ""
        if {"stores", "latency", "pgmulti"} & set(sections):
            postgres_url = args.postgres_url or _embedded_postgres(stack, results)
        _run(args, sections, results, postgres_url)

    results.load_end = load()
    results.duration_s = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(results, args.out)
    _log(f"wrote {args.out}")
    if not args.no_plot:
        if write_plot(results, args.plot):
            _log(f"wrote {args.plot}")
        else:
            _log("matplotlib not installed: no plot (run with `uv run --group bench ...`)")
    for t in targets(results):
        _log(f"{'MET ' if t.met else 'MISS' if t.met is False else '----'} {t.name}: {t.measured}")
    return 0


def _run(
    args: argparse.Namespace, sections: list[str], results: Results, postgres_url: str
) -> None:
    quick = args.quick
    if "stores" in sections:
        kinds = ["memory", "sqlite"] + (["postgres"] if postgres_url else [])
        for kind in kinds:
            _log(f"store {kind}")
            try:
                results.stores += measure_store(
                    kind,
                    n=100 if quick else 2000,
                    rounds=10 if quick else 200,
                    postgres_url=postgres_url or None,
                )
            except Exception as exc:  # a missing server must not sink the run
                results.skipped[f"{kind} store"] = f"{type(exc).__name__}: {exc}"

    if "pgmulti" in sections and postgres_url:
        _log("PostgreSQL store, four processes")
        try:
            results.pg_multi = measure_pg_multi(postgres_url, keys=100 if quick else 1000)
        except Exception as exc:
            results.skipped["PostgreSQL four processes"] = f"{type(exc).__name__}: {exc}"

    if "latency" in sections:
        wanted = [p for p in args.providers.split(",") if p] or ["payjp", "elepay", "univapay"]
        if quick and not args.providers:
            wanted = ["payjp"]
        _log(f"latency server ({args.latency_ms:g} ms ± {args.jitter_ms:g} ms, TLS)")
        with latency_server(args.latency_ms, args.jitter_ms) as server:
            results.latency_setup = (
                f"Server: `bench._latency_server` in a child process, HTTPS (a CA and "
                f"certificates made at start-up; every client trusts that CA only), "
                f"{args.latency_ms:g} ms ± {args.jitter_ms:g} ms per answer "
                "(`asyncio.sleep`), answers replayed from the emulators (see docs/bench.md). "
                f"Window of {1.5 if quick else 4:g} s (longer, up to 4×, until min(c, 200) "
                f"charges have completed in it) after a warm-up of at least "
                f"{1 if quick else 2:g} s and one charge per worker."
            )
            results.latency = measure_latency(
                server,
                providers=[p for p in wanted if p in ("payjp", "elepay", "univapay")],
                concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
                warmup=1.0 if quick else 2.0,
                window=1.5 if quick else 4.0,
                postgres_url=postgres_url or None,
                calls={"univapay": 3},
                log=_log,
                skipped=results.skipped,
                repeats=1 if quick else 3,
            )

    if {"overhead", "throughput", "memory"} & set(sections):
        with sandbox(args.sandbox) as served:
            sb = served.client
            accounts = sb.accounts()
            credentials = sb.credentials()
            wanted = [p for p in args.providers.split(",") if p] or list(SCENARIOS)
            providers = [p for p in wanted if p in SCENARIOS and p in accounts]
            for p in wanted:
                if p not in providers:
                    results.skipped[p] = "not installed (no emulator in the sandbox)"

            if "overhead" in sections:
                for provider in list(providers):
                    _log(f"overhead {provider}")
                    try:
                        results.overhead += measure_provider(
                            provider,
                            accounts[provider],
                            rounds=15 if quick else 300,
                            warmup=3 if quick else 30,
                        )
                    except Exception as exc:
                        results.skipped[f"{provider} overhead"] = f"{type(exc).__name__}: {exc}"
                        providers.remove(provider)

            if "throughput" in sections:
                calls = {
                    row.provider: row.calls for row in results.overhead if row.operation == "charge"
                }
                for provider in providers:
                    scenario = SCENARIOS[provider]
                    if scenario.sdk is None and provider != "fakepay":
                        continue
                    _log(f"throughput {provider}")
                    try:
                        results.throughput += measure_throughput(
                            provider,
                            accounts[provider],
                            url=sb.url,
                            credentials=credentials.get(provider, {}),
                            rounds=1 if quick else 3,
                            warmup=0.1 if quick else 0.3,
                            window=0.3 if quick else 1.0,
                            sqlite=provider == "fakepay",
                            calls=calls.get(provider, 1),
                            server_cpu=served.cpu,
                        )
                    except Exception as exc:
                        results.skipped[f"{provider} throughput"] = f"{type(exc).__name__}: {exc}"

            if "memory" in sections:
                target = "fakepay" if "fakepay" in providers else (providers or [None])[0]
                if target is None:
                    results.skipped["memory"] = "no provider to charge"
                else:
                    _log(f"memory ({target})")
                    results.memory = measure_memory(
                        target,
                        accounts[target],
                        charges=1_000 if quick else 10_000,
                        batch=200 if quick else 1_000,
                    )


def _embedded_postgres(stack: contextlib.ExitStack, results: Results) -> str:
    """A throwaway server for the PostgreSQL rows when no URL is given ("" when none)."""
    from paygate._embedded_pg import EmbeddedPostgresError, embedded_postgres

    try:
        server = stack.enter_context(embedded_postgres())
    except EmbeddedPostgresError as exc:
        results.skipped["PostgreSQL store"] = f"no --postgres-url, and no embedded server: {exc}"
        return ""
    results.machine["PostgreSQL"] = (
        f"{server.version}, a throwaway embedded server on loopback TCP (fsync off)"
    )
    _log(f"PostgreSQL {server.version}: an embedded server at {server.url}")
    return server.url


if __name__ == "__main__":
    raise SystemExit(main())
