"""The PostgreSQL store from four processes on one database, same-key storms included.

Four worker processes (``python -m bench.pgmulti --worker``) open the same store (one
schema) and start together (they wait for a start time handed to them):

* ``distinct keys``: each process runs ``begin`` + ``complete_charge``-like cycles
  (`Store.begin` then `Store.complete`) on fresh keys from 4 threads;
* ``same-key storm``: every thread of every process walks the same list of fresh keys
  (16 contenders per key); for each key exactly one must be told to start it, the
  others that it is in progress or, once completed, its stored result. The run checks
  that: more than one start for a key would be a double charge.

Figures: store decisions per second over all four processes, median latency per call,
and the outcomes counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from . import ROOT
from .stores import RESULT, begin

__all__ = ["PgMultiRow", "measure_pg_multi"]

PROCESSES = 4
THREADS = 4


@dataclass(frozen=True)
class PgMultiRow:
    """One workload over four processes."""

    workload: str
    processes: int
    threads: int
    decisions: int
    rate: float  # decisions per second, all processes
    p50_us: float
    p90_us: float
    outcomes: dict[str, int]
    double_starts: int  # keys started more than once (must be 0)


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    from paygate._stores import BeginOutcome, new_owner, open_store

    store = open_store(spec["url"])
    try:
        # Connections and statements warm before the start.
        owner = new_owner()
        for _ in range(20):
            key = f"warm\x1f{uuid.uuid4().hex}"
            begin(store, key, owner)
            store.complete(key, owner, RESULT, provider_ref="ch_bench")
        while time.time() < spec["start_at"]:
            time.sleep(0.001)
        samples: list[list[float]] = [[] for _ in range(THREADS)]
        outcomes: list[dict[str, int]] = [{} for _ in range(THREADS)]
        started: list[list[str]] = [[] for _ in range(THREADS)]
        spans: list[tuple[float, float]] = []
        storm = spec["workload"] == "storm"
        keys = spec["keys"]

        def work(i: int) -> None:
            mine = new_owner()
            began = time.perf_counter()
            todo = keys if storm else [f"bench\x1f{uuid.uuid4().hex}" for _ in keys]
            for key in todo:
                t0 = time.perf_counter_ns()
                outcome = begin(store, key, mine)
                if outcome is BeginOutcome.STARTED:
                    store.complete(key, mine, RESULT, provider_ref="ch_bench")
                    started[i].append(key)
                samples[i].append((time.perf_counter_ns() - t0) / 1000)
                outcomes[i][outcome.value] = outcomes[i].get(outcome.value, 0) + 1
            spans.append((began, time.perf_counter()))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        merged: dict[str, int] = {}
        for o in outcomes:
            for k, v in o.items():
                merged[k] = merged.get(k, 0) + v
        return {
            "samples": [x for s in samples for x in s],
            "outcomes": merged,
            "started": [k for s in started for k in s] if storm else [],
            "wall_begin": time.time() - (time.perf_counter() - min(a for a, _ in spans)),
            "wall_end": time.time() - (time.perf_counter() - max(b for _, b in spans)),
        }
    finally:
        store.close()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure_pg_multi(postgres_url: str, *, keys: int = 300) -> list[PgMultiRow]:
    """Both workloads, four processes each, on one fresh schema."""
    schema = f"paygate_multi_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}schema={schema}&pool_max_size={THREADS + 1}"
    from paygate._stores import open_store

    open_store(url).close()  # create the schema once, before the workers race for it
    rows: list[PgMultiRow] = []
    for workload in ("distinct", "storm"):
        key_list = [f"storm\x1f{uuid.uuid4().hex}" for _ in range(keys)]
        spec = {
            "url": url,
            "workload": workload,
            "keys": key_list,
            "start_at": time.time() + 4.0,
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.pgmulti", "--worker"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        results = []
        for proc in procs:
            out, _ = proc.communicate(json.dumps(spec), timeout=600)
            if proc.returncode != 0:
                raise RuntimeError("a PostgreSQL worker process failed")
            results.append(json.loads(out.strip().splitlines()[-1]))
        samples = [x for r in results for x in r["samples"]]
        elapsed = max(r["wall_end"] for r in results) - min(r["wall_begin"] for r in results)
        outcomes: dict[str, int] = {}
        for r in results:
            for k, v in r["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v
        starts: dict[str, int] = {}
        for r in results:
            for k in r["started"]:
                starts[k] = starts.get(k, 0) + 1
        rows.append(
            PgMultiRow(
                workload="distinct keys" if workload == "distinct" else "same-key storm",
                processes=PROCESSES,
                threads=THREADS,
                decisions=len(samples),
                rate=len(samples) / elapsed,
                p50_us=_quantile(samples, 0.5),
                p90_us=_quantile(samples, 0.9),
                outcomes=outcomes,
                double_starts=sum(1 for n in starts.values() if n > 1),
            )
        )
    _drop(postgres_url, schema)
    return rows


def _drop(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        print(json.dumps(_worker(json.loads(sys.stdin.read()))), flush=True)
    else:
        from paygate._embedded_pg import embedded_postgres

        with embedded_postgres() as server:
            for row in measure_pg_multi(server.url, keys=int(sys.argv[1]) if sys.argv[1:] else 300):
                print(row)
