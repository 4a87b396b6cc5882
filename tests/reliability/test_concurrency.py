"""Same-key storms across real adapters: several processes (app instances) charge and
refund with one key at once, on SQLite and on PostgreSQL. Exactly one provider object
per key; every other worker replays it or is told to wait.

``tests/core/test_concurrency.py`` covers the fake provider; this covers the adapters,
whose create paths differ (two POSTs for a UnivaPay konbini slip, Smaregi's token and
payment-method bootstrap, Pokepay's encrypted envelope, elepay's order number).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from reliability._workers import charge_from_spec, charge_spec, refund_spec, storm_worker
from reliability.chaos import provider_key

from paygate import Card, Gateway, Konbini, Money, PosLine, PosSale, QRCode, RetryPolicy, Wallet

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
    sandbox: Any, paygate_accounts: dict[str, Any], postgres_url: str | None
) -> None:
    if postgres_url is None:
        pytest.skip("PAYGATE_TEST_POSTGRES_URL not set: no PostgreSQL server for this run")
    import uuid

    # A fresh key prefix: the PostgreSQL store outlives the test.
    _run(sandbox, paygate_accounts, postgres_url, f"storm-pg-{uuid.uuid4().hex[:8]}")
