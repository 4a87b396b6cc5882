"""Memory held per 10,000 charges: does anything grow with the history of the process?

Charges run through `paygate.AsyncGateway` (16 at a time, fresh keys) against the fake
provider. After every batch (and a garbage collection) the run records the number of
live Python memory blocks (``sys.getallocatedblocks``: exact and cheap, unlike tracing
every allocation) and the resident set size; the peak RSS comes from ``getrusage``.
With the SQLite store the records live on disk and nothing should grow; the memory store
keeps every record in the process by design, so its growth is the store's contents
(one idempotency record and one tracked charge per charge).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paygate import AsyncGateway, Money

from ._scenarios import SCENARIOS, new_key

__all__ = ["MemoryRow", "measure_memory"]


@dataclass(frozen=True)
class MemoryRow:
    """Heap after each batch of charges with one store."""

    provider: str
    store: str
    charges: int
    checkpoints: list[tuple[int, int, int | None]]  # (charges so far, blocks, RSS bytes)
    peak_rss: int | None  # peak resident set size of the process, bytes

    @property
    def per_charge(self) -> float:
        """Growth in live memory blocks per charge (least-squares slope)."""
        return self._slope(1)

    @property
    def rss_per_charge(self) -> float:
        """Growth of the resident set in bytes per charge (least-squares slope)."""
        return self._slope(2)

    def _slope(self, column: int) -> float:
        points = [(p[0], p[column]) for p in self.checkpoints if p[column] is not None]
        xs = [float(x) for x, _ in points]
        ys = [float(y) for _, y in points if y is not None]
        n = len(xs)
        if n < 2:
            return 0.0
        mx, my = sum(xs) / n, sum(ys) / n
        var = sum((x - mx) ** 2 for x in xs)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def _peak_rss() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    # Linux reports kilobytes, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


async def _run(
    provider: str, account: Mapping[str, Any], store: str, charges: int, batch: int
) -> MemoryRow:
    scenario = SCENARIOS[provider]
    amount = Money.jpy(scenario.amount)
    gw = AsyncGateway.from_config({"store": store, "accounts": {provider: dict(account)}})
    sem = asyncio.Semaphore(16)

    async def one() -> None:
        async with sem:
            await gw.charge(
                provider, amount=amount, method=scenario.method(), idempotency_key=new_key()
            )

    try:
        await asyncio.gather(*(one() for _ in range(min(200, batch))))  # warm-up
        gc.collect()
        checkpoints: list[tuple[int, int, int | None]] = [(0, sys.getallocatedblocks(), _rss())]
        done = 0
        while done < charges:
            await asyncio.gather(*(one() for _ in range(batch)))
            done += batch
            gc.collect()
            checkpoints.append((done, sys.getallocatedblocks(), _rss()))
        kind = store.split(":", 1)[0]
        return MemoryRow(provider, kind, done, checkpoints, _peak_rss())
    finally:
        await gw.aclose()


def measure_memory(
    provider: str, account: Mapping[str, Any], *, charges: int = 10_000, batch: int = 1_000
) -> list[MemoryRow]:
    """Run ``charges`` charges with the memory store, then with the SQLite store."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
        for store in ("memory://", f"sqlite:///{Path(tmp) / 'memory.db'}"):
            rows.append(asyncio.run(_run(provider, account, store, charges, batch)))
    return rows
