"""Same-key storms across real adapters: several processes (app instances) charge and
refund with one key at once, on SQLite and on PostgreSQL. Exactly one provider object
per key; every other worker replays it or is told to wait.

``tests/core/test_concurrency.py`` covers the fake provider; this covers the adapters,
whose create paths differ (two POSTs for a UnivaPay konbini slip, Smaregi's token and
payment-method bootstrap, Pokepay's encrypted envelope, elepay's order number).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability._workers import (
    METHOD,
    charge_from_spec,
    charge_spec,
    refund_spec,
    storm_worker,
)
from reliability.chaos import provider_key

from paygate import (
    AsyncGateway,
    Card,
    Gateway,
    IdempotencyInProgress,
    Konbini,
    Money,
    PosLine,
    PosSale,
    QRCode,
    RetryPolicy,
    Wallet,
)

WORKERS = 4
# The create call of each provider: slowed down so that the first worker holds the key
# while the others arrive.
CREATE_PATHS = {
    "payjp": "^/v1/charges$",
    "univapay": "charges$",
    "elepay": "^/codes$",
    "pokepay": "^/transactions/payment$",
    "smaregi": "/pos/transactions$",
}


def _specs(sandbox: Any, prefix: str) -> list[dict[str, Any]]:
    customer = sandbox.credentials()["pokepay"]["customers"]["funded"]
    konbini = Konbini(
        store="family_mart", customer_name="並行 花子", phone="0364413400", email="a@example.com"
    )
    sale = PosSale(store_id="1", terminal_id="1", lines=(PosLine(name="storm", unit_price=900),))
    return [
        charge_spec("payjp", f"{prefix}-payjp", 1200, Card(token="tok_success")),
        charge_spec("univapay", f"{prefix}-univapay", 1300, konbini),
        charge_spec("elepay", f"{prefix}-elepay", 1400, QRCode()),
        charge_spec("pokepay", f"{prefix}-pokepay", 500, Wallet(customer_id=customer)),
        charge_spec("smaregi", f"{prefix}-smaregi", 900, sale),
    ]


def _storm(config: dict[str, Any], store: str, specs: list[dict[str, Any]]) -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=storm_worker, args=(config, store, specs, ready, start, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=60)  # every instance is up before the storm starts
        start.set()
        results = [out.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * WORKERS
    return results


def _objects(sandbox: Any, account: str, key: str) -> int:
    """How many provider objects the sandbox holds for this charge key."""
    wanted = provider_key(account, key)
    if account == "elepay":  # a code reaches the ledger only once paid
        codes = sandbox.host.emulators["elepay"].codes.values()
        return sum(1 for code in codes if code.order_no == wanted)
    kind = {"pokepay": "payment", "smaregi": "transaction"}.get(account, "charge")
    return sum(1 for e in sandbox.ledger()[account] if e.kind == kind and e.key == wanted)


def _check(sandbox: Any, specs: list[dict[str, Any]], results: list[list[str]]) -> None:
    for i, spec in enumerate(specs):
        answers = [worker[i] for worker in results]
        refs = {a for a in answers if a != "in_progress"}
        assert len(refs) == 1, (spec["account"], answers)
        (ref,) = refs
        assert not ref.startswith(("error:", "unknown")), (spec["account"], answers)
        assert _objects(sandbox, spec["account"], spec["key"]) == 1, spec["account"]


def _run(sandbox: Any, accounts: dict[str, Any], store: str, prefix: str) -> None:
    tables = {name: accounts[name] for name in CREATE_PATHS}
    config = {"store": "memory://", "accounts": tables}
    for provider, path in CREATE_PATHS.items():
        sandbox.fault(provider, "latency", path=path, method="POST", latency_ms=400, count=1)
    specs = _specs(sandbox, prefix)
    results = _storm(config, store, specs)
    _check(sandbox, specs, results)
    # The storm was one: instances found keys held by another.
    assert any(answer == "in_progress" for worker in results for answer in worker)
    # A later retry of every key (another instance) replays; nothing new is created.
    with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
        again = [charge_from_spec(gw, spec) for spec in specs]
        first = [next(a for a in col if a != "in_progress") for col in zip(*results, strict=True)]
        assert again == first
        # Refund storm: one refund per key, however many instances send it.
        charge = gw.charge(
            "payjp",
            amount=Money.jpy(2000),
            method=Card(token="tok_success"),
            idempotency_key=f"{prefix}-refunded",
        )
    sandbox.fault("payjp", "latency", path="/refund$", method="POST", latency_ms=400, count=1)
    refunds = [refund_spec("payjp", charge.id, f"{prefix}-refund-1", 700)]
    results = _storm(config, store, refunds)
    answers = Counter(worker[0] for worker in results)
    assert len([a for a in answers if a != "in_progress"]) == 1, answers
    (entry,) = [e for e in sandbox.ledger()["payjp"] if e.id == charge.provider_ref]
    assert entry.refunded == 700


def test_processes_one_key_each_provider_sqlite(
    sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Path
) -> None:
    _run(sandbox, paygate_accounts, f"sqlite:///{tmp_path / 'storm.db'}", "storm-sqlite")


@pytest.mark.postgres
def test_instances_one_key_each_provider_postgres(
    sandbox: Any, paygate_accounts: dict[str, Any], postgres_url: str
) -> None:
    import uuid

    # A fresh key prefix: the PostgreSQL store outlives the test.
    _run(sandbox, paygate_accounts, postgres_url, f"storm-pg-{uuid.uuid4().hex[:8]}")


# -- asyncio: tasks of one AsyncGateway -------------------------------------------------------


class _Cancel(httpx.AsyncBaseTransport):
    """Cancels the task once the provider has answered a create (its work is done)."""

    def __init__(self, path: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = path
        self.armed = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.method == "POST" and request.url.path.endswith(self.path):
            self.armed = False
            await response.aread()
            raise asyncio.CancelledError
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_asyncio_tasks_one_key_each_provider(
    sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Path
) -> None:
    """Eight tasks per key on one AsyncGateway (SQLite), every provider at once."""
    tables = {name: paygate_accounts[name] for name in CREATE_PATHS}
    for provider, path in CREATE_PATHS.items():
        sandbox.fault(provider, "latency", path=path, method="POST", latency_ms=200, count=1)
    specs = _specs(sandbox, "storm-async")

    async def storm() -> list[list[str]]:
        async with AsyncGateway.from_config(
            {"store": "memory://", "accounts": tables},
            store=f"sqlite:///{tmp_path / 'async.db'}",
            retry=RetryPolicy.no_wait(),
        ) as gw:

            async def one(spec: dict[str, Any]) -> str:
                try:
                    charge = await gw.charge(
                        spec["account"],
                        amount=Money.jpy(spec["amount"]),
                        method=METHOD.validate_python(spec["method"]),
                        idempotency_key=spec["key"],
                    )
                except IdempotencyInProgress:
                    return "in_progress"
                return charge.provider_ref

            rounds = [[one(spec) for spec in specs] for _ in range(8)]
            answers = await asyncio.gather(*(c for r in rounds for c in r))
            return [answers[i * len(specs) : (i + 1) * len(specs)] for i in range(8)]

    results = asyncio.run(storm())
    _check(sandbox, specs, results)
    assert any(answer == "in_progress" for worker in results for answer in worker)


def test_cancelled_task_recovers_after_the_lease(
    sandbox: Any, paygate_accounts: dict[str, Any], tmp_path: Path
) -> None:
    """A task cancelled right after PAY.JP charged: the key is held for the lease, then
    a retry with the same key finds the same charge (nothing is charged twice)."""
    offset = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    unraisable: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    store = f"sqlite:///{tmp_path / 'cancel.db'}"
    config = {"store": "memory://", "accounts": {"payjp": paygate_accounts["payjp"]}}

    async def scenario() -> tuple[Any, Any]:
        cancel = _Cancel("/v1/charges")
        async with AsyncGateway.from_config(
            config,
            store=store,
            retry=RetryPolicy.no_wait(),
            clock=clock,
            lease=timedelta(seconds=30),
            transport=cancel,
        ) as gw:
            args = {
                "amount": Money.jpy(1800),
                "method": Card(token="tok_success"),
                "idempotency_key": "cancelled-1",
            }
            with pytest.raises(asyncio.CancelledError):
                await gw.charge("payjp", **args)
            gc.collect()  # the abandoned flow is finalised here
            with pytest.raises(IdempotencyInProgress):
                await gw.charge("payjp", **args)
            offset[0] = timedelta(seconds=31)  # the lease runs out
            first = await gw.charge("payjp", **args)
            again = await gw.charge("payjp", **args)
            return first, again

    try:
        first, again = asyncio.run(scenario())
    finally:
        sys.unraisablehook = previous
    assert first == again
    wanted = provider_key("payjp", "cancelled-1")
    assert [e.id for e in sandbox.ledger()["payjp"] if e.key == wanted] == [first.provider_ref]
    assert not unraisable, [u.exc_value for u in unraisable]
