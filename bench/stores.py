"""Idempotency store throughput and latency: memory, SQLite and PostgreSQL.

Four workloads per store, each on the store's public interface (`Store.begin` then
`Store.complete`, what every charge does):

* ``1 thread``: begin + complete on fresh keys, one after another;
* ``8 threads``: the same on fresh keys from 8 threads at once (no shared key);
* ``8 threads, 1 key``: 8 threads race for one fresh key per round (a barrier lines
  them up); one starts it, the others are told it is in progress; the winner completes;
* ``8 threads, replay``: 8 threads ask for one completed key (the stored result).

Latency is per store call (begin, or begin + complete for a cycle), in microseconds;
throughput counts store decisions per second.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paygate._stores import BeginOutcome, Store, new_owner, open_store

from ._stats import Summary, summarize

__all__ = ["StoreRow", "measure_store", "open_bench_store"]

THREADS = 8
LEASE = timedelta(minutes=5)
#: The result every benchmark key completes with.
RESULT = {"id": "ch_bench", "status": "succeeded", "amount": {"amount": 1200, "currency": "JPY"}}


@dataclass(frozen=True)
class StoreRow:
    """One store under one workload."""

    store: str
    workload: str
    latency: Summary  # microseconds per measured call
    throughput: float  # decisions per second
    outcomes: dict[str, int]


def begin(store: Store, key: str, owner: str) -> BeginOutcome:
    """``store.begin`` of a benchmark charge key (the same fingerprint every time)."""
    return store.begin(
        key,
        account="bench",
        operation="charge",
        fingerprint="f" * 64,
        owner=owner,
        lease=LEASE,
        now=datetime.now(UTC),
        charge_id=f"ch_{key[-32:]}",
    ).outcome


def _key() -> str:
    return f"bench\x1fcharge\x1f{uuid.uuid4().hex}"


def _cycle(store: Store, owner: str) -> float:
    key = _key()
    start = time.perf_counter_ns()
    begin(store, key, owner)
    store.complete(key, owner, RESULT, provider_ref="ch_bench")
    return (time.perf_counter_ns() - start) / 1000.0


def _run_threads(work: Callable[[int], None], barrier: threading.Barrier) -> None:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()


def _elapsed(spans: list[tuple[float, float]]) -> float:
    # From the first thread's start to the last one's end: measured inside the threads,
    # since the main thread may only be scheduled again after they are done.
    return max(end for _, end in spans) - min(start for start, _ in spans)


def _sequential(store: Store, n: int) -> tuple[list[float], float]:
    owner = new_owner()
    start = time.perf_counter()
    samples = [_cycle(store, owner) for _ in range(n)]
    return samples, n / (time.perf_counter() - start)


def _parallel(store: Store, n: int) -> tuple[list[float], float]:
    per = max(1, n // THREADS)
    samples: list[list[float]] = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)

    spans: list[tuple[float, float]] = []

    def work(i: int) -> None:
        owner = new_owner()
        barrier.wait()
        start = time.perf_counter()
        samples[i].extend(_cycle(store, owner) for _ in range(per))
        spans.append((start, time.perf_counter()))

    _run_threads(work, barrier)
    flat = [x for s in samples for x in s]
    return flat, len(flat) / _elapsed(spans)


def _race(store: Store, rounds: int) -> tuple[list[float], float, dict[str, int]]:
    """THREADS threads begin the same fresh key each round; the winner completes it."""
    keys = [_key() for _ in range(rounds)]
    samples: list[list[float]] = [[] for _ in range(THREADS)]
    outcomes: list[dict[str, int]] = [{} for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    spans: list[tuple[float, float]] = []

    def work(i: int) -> None:
        owner = new_owner()
        began = time.perf_counter()
        for key in keys:
            barrier.wait()
            start = time.perf_counter_ns()
            outcome = begin(store, key, owner)
            samples[i].append((time.perf_counter_ns() - start) / 1000.0)
            outcomes[i][outcome.value] = outcomes[i].get(outcome.value, 0) + 1
            if outcome is BeginOutcome.STARTED:
                store.complete(key, owner, RESULT, provider_ref="ch_bench")
        spans.append((began, time.perf_counter()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = _elapsed(spans)
    merged: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.items():
            merged[k] = merged.get(k, 0) + v
    flat = [x for s in samples for x in s]
    return flat, len(flat) / elapsed, merged


def _replay(store: Store, n: int) -> tuple[list[float], float, dict[str, int]]:
    owner = new_owner()
    key = _key()
    begin(store, key, owner)
    store.complete(key, owner, RESULT, provider_ref="ch_bench")
    per = max(1, n // THREADS)
    samples: list[list[float]] = [[] for _ in range(THREADS)]
    outcomes: list[dict[str, int]] = [{} for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)

    spans: list[tuple[float, float]] = []

    def work(i: int) -> None:
        mine = new_owner()
        barrier.wait()
        began = time.perf_counter()
        for _ in range(per):
            start = time.perf_counter_ns()
            outcome = begin(store, key, mine)
            samples[i].append((time.perf_counter_ns() - start) / 1000.0)
            outcomes[i][outcome.value] = outcomes[i].get(outcome.value, 0) + 1
        spans.append((began, time.perf_counter()))

    _run_threads(work, barrier)
    elapsed = _elapsed(spans)
    merged: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.items():
            merged[k] = merged.get(k, 0) + v
    flat = [x for s in samples for x in s]
    return flat, len(flat) / elapsed, merged


@contextlib.contextmanager
def open_bench_store(kind: str, postgres_url: str | None = None) -> Iterator[Store]:
    """A fresh store of ``kind`` (memory, sqlite, postgres) for the run."""
    if kind == "memory":
        store = open_store("memory://")
        try:
            yield store
        finally:
            store.close()
        return
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
            store = open_store(f"sqlite:///{Path(tmp) / 'stores.db'}")
            try:
                yield store
            finally:
                store.close()
        return
    if kind == "postgres":
        if not postgres_url:
            raise ValueError("no PostgreSQL URL")
        schema = f"paygate_bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in postgres_url else "?"
        store = open_store(f"{postgres_url}{sep}schema={schema}&pool_max_size={THREADS + 2}")
        try:
            yield store
        finally:
            store.close()
            _drop_schema(postgres_url, schema)
        return
    raise ValueError(kind)


def _drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def measure_store(
    kind: str, *, n: int, rounds: int, postgres_url: str | None = None
) -> list[StoreRow]:
    """All four workloads on a fresh store of ``kind``."""
    rows: list[StoreRow] = []
    with open_bench_store(kind, postgres_url) as store:
        _sequential(store, max(10, n // 10))  # warm-up: connections, statement caches
        runs: list[tuple[str, Callable[[], tuple[list[float], float, dict[str, int]]]]] = [
            ("1 thread", lambda: (*_sequential(store, n), {})),
            (f"{THREADS} threads", lambda: (*_parallel(store, n), {})),
            (f"{THREADS} threads, 1 key", lambda: _race(store, rounds)),
            (f"{THREADS} threads, replay", lambda: _replay(store, n)),
        ]
        for workload, run in runs:
            samples, rate, outcomes = run()
            rows.append(StoreRow(kind, workload, summarize(samples), rate, outcomes))
    return rows
