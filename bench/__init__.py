"""paygate's benchmarks: the gateway against raw httpx and the official SDKs.

Run ``uv run --group bench python -m bench`` from the repository root (``--quick`` for a
smoke run). It starts the sandbox once, in a process of its own, and measures

* `bench.overhead`: per-call cost of `paygate.Gateway` over raw httpx, per provider,
  with the memory and the SQLite store;
* `bench.throughput`: `paygate.AsyncGateway` charges per second at concurrency 1, 16
  and 64 against raw httpx async and the official SDKs in a thread pool;
* `bench.stores`: the idempotency stores, with and without contention on one key;
* `bench.startup`: ``import paygate`` and ``paygate --help``;
* `bench.memory`: the heap over 10,000 charges.

Results go to ``bench/results.md`` and ``docs/bench.png``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT"]
