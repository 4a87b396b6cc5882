"""Per-call overhead of `Gateway.charge` / `Gateway.status` over raw httpx.

For each provider three contenders run interleaved, one call each per round in a
rotating order, so drift (CPU frequency, other load, the emulator's growing state) hits
them alike: the raw client, the gateway with the memory store, the gateway with the
durable SQLite store. Every charge uses a fresh idempotency key; status reads one charge
made during warm-up. Overhead is the median of the per-round differences.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paygate import Charge, Gateway, Money
from paygate._adapter import ChargeRef

from ._scenarios import SCENARIOS, SyncRaw, charge_request, new_key, sync_client
from ._stats import Summary, summarize

__all__ = ["OverheadRow", "measure_provider"]


@dataclass(frozen=True)
class OverheadRow:
    """One provider, operation and store: raw and gateway latency in microseconds."""

    provider: str
    operation: str
    store: str
    calls: int  # HTTP calls per operation
    raw: Summary
    gateway: Summary
    overhead: Summary  # per-round gateway - raw
    cpu_raw: Summary | None = None  # client CPU time per call
    cpu_gateway: Summary | None = None
    added: Summary | None = None  # per-round this store - memory store (wall)
    added_cpu: Summary | None = None  # the same in client CPU time

    @property
    def ratio(self) -> float:
        """Gateway median over raw median."""
        return self.gateway.median / self.raw.median


def _ref(charge: Charge) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method=charge.method,
        amount=charge.amount,
        created_at=charge.created_at,
        raw=charge.raw,
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU time of one call, in microseconds."""
    cpu = time.thread_time_ns()
    start = time.perf_counter_ns()
    fn()
    wall = time.perf_counter_ns() - start
    return wall / 1000.0, (time.thread_time_ns() - cpu) / 1000.0


def measure_provider(
    provider: str,
    account: Mapping[str, Any],
    *,
    rounds: int,
    warmup: int,
    stores: tuple[str, ...] = ("memory", "sqlite"),
    operations: tuple[str, ...] = ("charge", "status"),
) -> list[OverheadRow]:
    """Measure one provider; ``account`` is its table from the sandbox."""
    scenario = SCENARIOS[provider]
    amount = Money.jpy(scenario.amount)
    with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        gateways = {
            store: Gateway.from_config(
                {"store": urls[store], "accounts": {provider: dict(account)}}
            )
            for store in stores
        }
        first = next(iter(gateways.values()))
        adapter = first.provider(provider)
        client = sync_client(adapter)
        raw = SyncRaw(adapter, client)
        try:
            return _measure(provider, scenario, amount, gateways, raw, rounds, warmup, operations)
        finally:
            client.close()
            for gw in gateways.values():
                gw.close()


def _measure(
    provider: str,
    scenario: Any,
    amount: Money,
    gateways: dict[str, Gateway],
    raw: SyncRaw,
    rounds: int,
    warmup: int,
    operations: tuple[str, ...],
) -> list[OverheadRow]:
    def pg_charge(gw: Gateway) -> Callable[[], Any]:
        return lambda: gw.charge(
            provider, amount=amount, method=scenario.method(), idempotency_key=new_key()
        )

    def raw_charge() -> Any:
        return raw.run("charge", raw.charge_flow(charge_request(scenario), new_key()))

    # One charge per gateway to read back, and the raw client learns the call counts.
    seeds = {store: pg_charge(gw)() for store, gw in gateways.items()}
    for _ in range(2):  # the second run shows the steady state (tokens cached, ...)
        raw.learn("charge", raw.charge_flow(charge_request(scenario), new_key()))
    ref = _ref(next(iter(seeds.values())))
    raw.learn("status", raw.status_flow(ref))

    contenders: dict[str, dict[str, Callable[[], Any]]] = {"charge": {}, "status": {}}
    contenders["charge"]["raw"] = raw_charge
    contenders["status"]["raw"] = lambda: raw.run("status", raw.status_flow(ref))
    for store, gw in gateways.items():
        contenders["charge"][store] = pg_charge(gw)
        charge_id = seeds[store].id
        contenders["status"][store] = lambda gw=gw, charge_id=charge_id: gw.status(
            provider, charge_id
        )

    rows: list[OverheadRow] = []
    for operation in operations:
        fns = contenders[operation]
        names = list(fns)
        for _ in range(warmup):
            for name in names:
                fns[name]()
        samples: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        gc.collect()
        for i in range(rounds):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                wall, used = _timed(fns[name])
                samples[name].append(wall)
                cpu[name].append(used)
        calls = raw.calls[operation]
        raw_summary = summarize(samples["raw"])
        for store in gateways:
            diffs = [g - r for g, r in zip(samples[store], samples["raw"], strict=True)]
            added = added_cpu = None
            if store != "memory" and "memory" in gateways:
                added = summarize(
                    [a - b for a, b in zip(samples[store], samples["memory"], strict=True)]
                )
                added_cpu = summarize(
                    [a - b for a, b in zip(cpu[store], cpu["memory"], strict=True)]
                )
            rows.append(
                OverheadRow(
                    provider=provider,
                    operation=operation,
                    store=store,
                    calls=calls,
                    raw=raw_summary,
                    gateway=summarize(samples[store]),
                    overhead=summarize(diffs),
                    cpu_raw=summarize(cpu["raw"]),
                    cpu_gateway=summarize(cpu[store]),
                    added=added,
                    added_cpu=added_cpu,
                )
            )
    return rows
