"""Through `paygate.Gateway` / `AsyncGateway` over real HTTP against the local sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    ChargeStatus,
    Money,
    NotSupported,
    OutcomeUnknown,
    PermissionDenied,
    PosLine,
    PosSale,
    ProviderUnavailable,
    RateLimited,
)
from paygate_smaregi import AppPaymentMethod

DRIVERS = ["sync", "async"]


def sale(amount: int = 1200, **kw: Any) -> PosSale:
    return PosSale(
        store_id="1",
        terminal_id="1",
        lines=(
            PosLine(product_id="8000001", unit_price=500, quantity=2),
            PosLine(name="袋", unit_price=amount - 1000),
        ),
        **kw,
    )


def charge(gw: Any, key: str, amount: int = 1200, **kw: Any) -> Any:
    return gw.charge(
        "pos", amount=Money.jpy(amount), method=sale(amount, **kw), idempotency_key=key
    )


def stats(sandbox: Any) -> dict[str, int]:
    return sandbox.control("smaregi", "stats")  # type: ignore[no-any-return]


def sales(sandbox: Any) -> list[Any]:
    return list(sandbox.ledger()["smaregi"])


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, make_gateway: Callable[..., Any]) -> Any:
    return make_gateway(driver=request.param)


def test_first_sale_creates_the_method_once(gw: Any, sandbox: Any) -> None:
    first = charge(gw, "s-1", slip_number="S-1", card_company="VISA")
    second = charge(gw, "s-2")
    assert first.status is ChargeStatus.SUCCEEDED
    assert first.provider == "smaregi"
    assert first.account == "pos"
    assert second.provider_ref != first.provider_ref
    counts = stats(sandbox)
    assert counts["app_payment_methods_created"] == 1
    assert counts["app_payment_method_posts"] == 1
    assert counts["token_requests"] == 1
    assert counts["transactions_created"] == 2
    assert first.raw["depositOthers"][0]["paymentMethodId"] == "101"


def test_ensure_payment_method_as_an_extension(gw: Any, sandbox: Any) -> None:
    pm = gw.extension("pos", "ensure_payment_method")
    assert isinstance(pm, AppPaymentMethod)
    assert pm.payment_method_id == "101"
    assert pm.name == "paygate sandbox app"
    assert gw.extension("pos", "ensure_payment_method") == pm
    assert stats(sandbox)["app_payment_method_posts"] == 1


def test_replay_after_restart_sends_nothing(
    make_gateway: Callable[..., Any], sandbox: Any, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'paygate.db'}"
    first = charge(make_gateway(store=store), "order-1")
    again = charge(make_gateway(store=store, driver="async"), "order-1")
    assert again.id == first.id
    assert again.provider_ref == first.provider_ref
    assert len(sales(sandbox)) == 1


def test_lost_response_is_found_not_resent(gw: Any, sandbox: Any) -> None:
    charge(gw, "warm-up")
    sandbox.fault("smaregi", "drop_after_commit", path="/pos/transactions$", method="POST")
    found = charge(gw, "lost-1")
    assert found.status is ChargeStatus.SUCCEEDED
    assert len(sales(sandbox)) == 2  # registered once, although the answer was lost
    assert gw.status("pos", found.id).provider_ref == found.provider_ref


def test_server_error_then_retry_registers_once(gw: Any, sandbox: Any) -> None:
    sandbox.fault("smaregi", "status", path="/pos/transactions$", method="POST", status=503)
    with pytest.raises(ProviderUnavailable) as info:
        charge(gw, "flaky-1")
    assert info.value.provider_message == "サーバーが一時的に応答できません。"
    assert info.value.http_status == 503
    again = charge(gw, "flaky-1")  # same key: looked up (absent), then sent
    assert again.status is ChargeStatus.SUCCEEDED
    assert len(sales(sandbox)) == 1


def test_lost_response_and_failed_lookup_is_unknown(gw: Any, sandbox: Any) -> None:
    charge(gw, "warm-up")
    sandbox.fault("smaregi", "drop_after_commit", path="/pos/transactions$", method="POST")
    sandbox.fault(
        "smaregi", "status", path="/pos/transactions$", method="GET", status=500, count=10
    )
    with pytest.raises(OutcomeUnknown):
        charge(gw, "lost-2")
    sandbox.clear_faults()
    recovered = charge(gw, "lost-2")  # the lookup now finds it
    assert recovered.status is ChargeStatus.SUCCEEDED
    assert len(sales(sandbox)) == 2


def test_throttled_create_is_retried(gw: Any, sandbox: Any) -> None:
    sandbox.fault("smaregi", "rate_limit", path="/pos/transactions$", method="POST", retry_after=0)
    assert charge(gw, "busy-1").status is ChargeStatus.SUCCEEDED
    assert len(sales(sandbox)) == 1


def test_throttling_that_outlasts_the_retries(gw: Any, sandbox: Any) -> None:
    charge(gw, "warm-up")
    sandbox.fault(
        "smaregi", "rate_limit", path="/pos/transactions$", method="POST", count=50, retry_after=3
    )
    with pytest.raises(RateLimited) as info:
        charge(gw, "busy-2")
    assert info.value.retry_after == 3.0
    assert info.value.http_status == 429
    assert len(sales(sandbox)) == 1
    sandbox.clear_faults()
    assert charge(gw, "busy-2").status is ChargeStatus.SUCCEEDED  # nothing happened before
    assert len(sales(sandbox)) == 2


def test_expired_tokens_are_refreshed(gw: Any, sandbox: Any) -> None:
    charge(gw, "t-1")
    sandbox.control("smaregi", "expire_tokens")
    charge(gw, "t-2")
    assert stats(sandbox)["token_requests"] == 2


def test_deleted_method_is_recreated(gw: Any, sandbox: Any) -> None:
    first = charge(gw, "d-1")
    deleted = sandbox.control("smaregi", "delete_payment_method")
    assert deleted["deleted"] is True
    second = charge(gw, "d-2")
    old = first.raw["depositOthers"][0]["paymentMethodId"]
    assert second.raw["depositOthers"][0]["paymentMethodId"] != old
    assert stats(sandbox)["app_payment_methods_created"] == 2


def test_status_refund_and_cancel(gw: Any, sandbox: Any) -> None:
    one = charge(gw, "r-1")
    sandbox.control("smaregi", "void_transaction", transaction_head_id=one.provider_ref)
    voided = gw.status("pos", one.id)
    assert voided.status is ChargeStatus.REFUNDED
    assert voided.amount_refunded == one.amount

    two = charge(gw, "r-2")
    with pytest.raises(NotSupported):
        gw.refund("pos", two.id, amount=Money.jpy(100), idempotency_key="r-2-part")
    refund = gw.refund("pos", two.id, idempotency_key="r-2-full")
    assert refund.amount == Money.jpy(1200)
    assert gw.status("pos", two.id).status is ChargeStatus.REFUNDED

    three = charge(gw, "r-3")
    assert gw.cancel("pos", three.id).status is ChargeStatus.REFUNDED
    entries = {e.id: e for e in sales(sandbox)}
    assert entries[three.provider_ref].refunded == 1200


def test_lost_answer_of_a_refund_is_resent_harmlessly(gw: Any, sandbox: Any) -> None:
    sold = charge(gw, "lost-refund-1")
    sandbox.fault("smaregi", "drop_after_commit", path="/cancel$", method="POST")
    refund = gw.refund("pos", sold.id, idempotency_key="lost-refund-1-r")
    assert refund.amount == Money.jpy(1200)
    assert gw.status("pos", sold.id).status is ChargeStatus.REFUNDED
    [entry] = sales(sandbox)
    assert entry.refunded == 1200


def test_missing_scope_is_permission_denied(
    make_gateway: Callable[..., Any], paygate_accounts: dict[str, Any], sandbox: Any
) -> None:
    accounts = {"pos": {**paygate_accounts["pos"], "scopes": ["pos.transactions:read"]}}
    gw = make_gateway(accounts=accounts)
    with pytest.raises(PermissionDenied) as info:
        charge(gw, "scope-1")
    assert "pos.transactions:write" in (info.value.provider_message or "")
    assert sales(sandbox) == []


# --------------------------------------------------------------------------------- races


def test_threads_racing_ensure_end_with_one_method(
    make_gateway: Callable[..., Any], sandbox: Any, tmp_path: Path
) -> None:
    """Two gateways (as two processes would), no shared cache: both GET "absent" (the
    answers are delivered late so the reads overlap), both POST; Smaregi keeps one and
    the loser's 403 makes it read the winner's."""
    sandbox.control("smaregi", "slow_reads", seconds=1.0, count=2)
    gateways = [make_gateway(), make_gateway(driver="async")]
    barrier = threading.Barrier(len(gateways))
    results: list[Any] = [None] * len(gateways)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = gateways[i].extension("pos", "ensure_payment_method")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(gateways))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] is not None
    assert results[0] == results[1]
    counts = stats(sandbox)
    assert counts["app_payment_methods_created"] == 1
    assert counts["app_payment_method_posts"] == 2  # the loser's POST got the 403


_WORKER = """
import json, sys
from paygate import Gateway
from paygate._retry import RetryPolicy
config = json.loads(sys.argv[1])
with Gateway.from_config(config, retry=RetryPolicy.no_wait()) as gw:
    print(gw.extension("pos", "ensure_payment_method").payment_method_id)
"""


def test_processes_racing_ensure_end_with_one_method(
    paygate_accounts: dict[str, Any], sandbox: Any, tmp_path: Path
) -> None:
    """Two processes sharing one SQLite store race on first use."""
    # Interpreter start-up times differ, so the overlap is likely, not certain.
    sandbox.control("smaregi", "slow_reads", seconds=1.5, count=2)
    config = json.dumps(
        {
            "store": f"sqlite:///{tmp_path / 'shared.db'}",
            "accounts": {"pos": paygate_accounts["pos"]},
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, config],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    ids = {out.strip() for out, _ in outputs}
    assert len(ids) == 1
    counts = stats(sandbox)
    assert counts["app_payment_methods_created"] == 1
    assert counts["app_payment_method_posts"] == 1  # the shared store's claim: one POST


def test_threads_sharing_a_store_post_once(
    make_gateway: Callable[..., Any], sandbox: Any, tmp_path: Path
) -> None:
    """Two gateways on one SQLite store (two app instances of one deployment): the
    creation is claimed in the store, so exactly one POST reaches Smaregi."""
    sandbox.control("smaregi", "slow_reads", seconds=0.5, count=2)
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    gateways = [make_gateway(store=store), make_gateway(driver="async", store=store)]
    barrier = threading.Barrier(len(gateways))
    results: list[Any] = [None] * len(gateways)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = gateways[i].extension("pos", "ensure_payment_method")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(gateways))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] is not None
    assert results[0] == results[1]
    counts = stats(sandbox)
    assert counts["app_payment_methods_created"] == 1
    assert counts["app_payment_method_posts"] == 1
