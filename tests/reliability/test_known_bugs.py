"""Deterministic reproductions of the bugs the reliability runs found (see
docs/reliability.md for the list).

Each test states the correct behaviour. While a bug is open its test is a strict xfail;
the fix turns it into an unexpected pass and the marker goes, leaving a regression
test. B1 to B16 are fixed (B10 to B14 sit with the hostile input and secrets tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from paygate import (
    Card,
    Gateway,
    IdempotencyInProgress,
    Money,
    OutcomeUnknown,
    PaygateError,
    PosLine,
    PosSale,
    ProviderUnavailable,
    RetryPolicy,
    Wallet,
)
from paygate import _operations as ops
from paygate._adapter import ChargeRequest
from paygate._flow import StoreCall
from paygate._stores import open_store

ONE_ATTEMPT = RetryPolicy.no_wait(attempts=1)


@pytest.fixture
def gw(sandbox: Any, paygate_accounts: dict[str, Any]) -> Iterator[Gateway]:
    gateway = Gateway.from_config(
        {"store": "memory://", "accounts": paygate_accounts}, retry=ONE_ATTEMPT
    )
    yield gateway
    gateway.close()


def test_b1_error_of_the_resend_does_not_lock_the_key(gw: Gateway, sandbox: Any) -> None:
    sandbox.fault("fakepay", "reset", path="^/charges$", method="POST", count=1)
    sandbox.fault("fakepay", "status", status=503, path="^/charges$", method="POST", count=1)
    with pytest.raises(ProviderUnavailable):
        gw.charge("fakepay", amount=Money.jpy(100), method=Card(token="t"), idempotency_key="b1")
    try:
        charge = gw.charge(
            "fakepay", amount=Money.jpy(100), method=Card(token="t"), idempotency_key="b1"
        )
    except IdempotencyInProgress:
        pytest.fail("the key is locked although no attempt is running")
    assert charge.provider_ref


def test_b2_refund_retried_after_unknown_outcome_recovers(gw: Gateway, sandbox: Any) -> None:
    charge = gw.charge(
        "fakepay", amount=Money.jpy(1000), method=Card(token="t"), idempotency_key="b2"
    )
    # The refund reaches the provider twice (first send and the keyed re-send); both
    # answers are lost.
    sandbox.fault("fakepay", "drop_after_commit", path="/refunds$", method="POST", count=2)
    with pytest.raises(OutcomeUnknown):
        gw.refund("fakepay", charge.id, idempotency_key="b2-r1")
    gw.status("fakepay", charge.id)  # paygate learns the charge is refunded
    refund = gw.refund("fakepay", charge.id, idempotency_key="b2-r1")
    assert refund.amount == Money.jpy(1000)


def test_b3_refund_webhook_records_the_refunded_amount(
    gw: Gateway, sandbox: Any, serve: Any
) -> None:
    with serve(gw.webhooks.asgi()) as url:
        sandbox.set_webhook_url(f"{url}/payjp", "payjp")
        try:
            charge = gw.charge(
                "payjp",
                amount=Money.jpy(1000),
                method=Card(token="tok_success"),
                idempotency_key="b3",
            )
            sandbox.advance(timedelta(seconds=5))
            # Refunded outside paygate (the PAY.JP dashboard); PAY.JP sends a webhook.
            creds = sandbox.credentials()["payjp"]
            answer = httpx.post(
                f"{creds['base_url']}/v1/charges/{charge.provider_ref}/refund",
                auth=(creds["secret_key"], ""),
            )
            assert answer.status_code == 200
            sandbox.flush_webhooks()
        finally:
            sandbox.set_webhook_url(None)
    fresh = gw.status("payjp", charge.id)
    assert fresh.amount_refunded == Money.jpy(1000)


def test_b4_smaregi_refund_retry_after_lost_answer(gw: Gateway, sandbox: Any) -> None:
    """B4, fixed: a Smaregi void whose answers were lost completes. Since the void has a
    lookup (the sale's state at the POS), the first call already finds it done; the retry
    with the key replays it."""
    sale = PosSale(store_id="1", terminal_id="1", lines=(PosLine(name="b4", unit_price=500),))
    charge = gw.charge("smaregi", amount=Money.jpy(500), method=sale, idempotency_key="b4")
    sandbox.fault("smaregi", "drop_after_commit", path="/cancel$", method="POST", count=2)
    refund = gw.refund("smaregi", charge.id, idempotency_key="b4-r1")
    assert (refund.amount, refund.kind) == (Money.jpy(500), "void")
    assert gw.refund("smaregi", charge.id, idempotency_key="b4-r1") == refund


def test_b5_abandoned_flow_closes_cleanly(gw: Gateway) -> None:
    provider = gw.provider("fakepay")
    store = open_store("memory://")
    req = ChargeRequest(amount=Money.jpy(100), method=Card(token="t"))
    flow = ops.charge(provider, gw._env, req, "b5")
    effect = next(flow)
    while isinstance(effect, StoreCall):
        effect = flow.send(effect.apply(store))
    # The provider call is in flight when the task is cancelled: the flow is closed.
    flow.close()


def test_b6_payjp_full_refund_after_lost_answer_reports_its_amount(
    gw: Gateway, sandbox: Any
) -> None:
    charge = gw.charge(
        "payjp", amount=Money.jpy(1000), method=Card(token="tok_success"), idempotency_key="b6"
    )
    gw.refund("payjp", charge.id, amount=Money.jpy(600), idempotency_key="b6-r1")
    sandbox.fault("payjp", "drop_after_commit", path="/refund$", method="POST", count=1)
    rest = gw.refund("payjp", charge.id, idempotency_key="b6-r2")
    assert rest.amount == Money.jpy(400)


def test_b7_pokepay_two_lost_answers_do_not_fail_a_paid_charge(
    sandbox: Any, paygate_accounts: dict[str, Any]
) -> None:
    customer = sandbox.credentials()["pokepay"]["customers"]["funded"]
    # Seed 3 hits the 1st and 3rd matching calls: the payment, then the fresh envelope
    # sent after the driver's identical re-send was refused as already done.
    sandbox.fault(
        "pokepay",
        "drop_after_commit",
        path="^/transactions/payment$",
        probability=0.5,
        seed=3,
        count=2,
    )
    with Gateway.from_config(
        {"store": "memory://", "accounts": paygate_accounts}, retry=RetryPolicy.no_wait()
    ) as gw:
        try:
            charge = gw.charge(
                "pokepay",
                amount=Money.jpy(500),
                method=Wallet(customer_id=customer),
                idempotency_key="b7",
            )
        except PaygateError as exc:
            payments = [e for e in sandbox.ledger()["pokepay"] if e.kind == "payment"]
            pytest.fail(f"{exc.code} although the provider holds {len(payments)} payment")
    assert charge.paid


def test_b8_recovered_refund_is_counted_once(gw: Gateway, sandbox: Any) -> None:
    charge = gw.charge(
        "fakepay", amount=Money.jpy(1000), method=Card(token="t"), idempotency_key="b8"
    )
    sandbox.fault("fakepay", "drop_after_commit", path="/refunds$", method="POST", count=2)
    with pytest.raises(OutcomeUnknown):
        gw.refund("fakepay", charge.id, amount=Money.jpy(300), idempotency_key="b8-r1")
    assert gw.status("fakepay", charge.id).amount_refunded == Money.jpy(300)
    gw.refund("fakepay", charge.id, amount=Money.jpy(300), idempotency_key="b8-r1")
    assert gw.status("fakepay", charge.id).amount_refunded == Money.jpy(300)


def test_b9_reconcile_resolves_a_lost_smaregi_sale(gw: Gateway, sandbox: Any) -> None:
    from paygate._reconcile import reconcile

    sale = PosSale(store_id="1", terminal_id="1", lines=(PosLine(name="b9", unit_price=500),))
    # The sale is registered but its answer is lost, and the lookup fails too.
    sandbox.fault("smaregi", "drop_after_commit", path="/pos/transactions$", method="POST")
    sandbox.fault("smaregi", "status", status=503, path="/pos/transactions$", method="GET")
    with pytest.raises(OutcomeUnknown):
        gw.charge("smaregi", amount=Money.jpy(500), method=sale, idempotency_key="b9")
    rows = reconcile(gw)
    assert [row.action.split(" ")[0] for row in rows] == ["found"]


def test_b15_univapay_full_refund_after_lost_answer(gw: Gateway, sandbox: Any) -> None:
    token = sandbox.control("univapay", "card_token", card="success")["id"]
    charge = gw.charge(
        "univapay", amount=Money.jpy(1000), method=Card(token=token), idempotency_key="b15"
    )
    sandbox.fault("univapay", "drop_after_commit", path="/refunds$", method="POST", count=1)
    refund = gw.refund("univapay", charge.id, idempotency_key="b15-r")
    assert refund.amount == Money.jpy(1000)


def test_b16_rate_limited_resend_keeps_the_key(gw: Gateway, sandbox: Any) -> None:
    charge = gw.charge(
        "payjp", amount=Money.jpy(1000), method=Card(token="tok_success"), idempotency_key="b16"
    )
    sandbox.fault("payjp", "drop_after_commit", path="/refund$", method="POST", count=1)
    sandbox.fault("payjp", "rate_limit", path="/refund$", method="POST", count=1)
    # PAY.JP refunds are no longer re-sent after a lost answer: the charge is read first
    # (lookup_refund), finds the refund, and the rate-limited re-send never happens.
    refund = gw.refund("payjp", charge.id, idempotency_key="b16-r")
    assert refund.amount == Money.jpy(1000)
    refund = gw.refund("payjp", charge.id, idempotency_key="b16-r")
    assert refund.amount == Money.jpy(1000)
    (entry,) = sandbox.ledger()["payjp"]
    assert entry.refunded == 1000


def test_b16_on_a_keyed_provider_the_refused_resend_keeps_the_key(
    gw: Gateway, sandbox: Any
) -> None:
    """B16's core path, on fakepay (keyed refunds, no lookup): the refund's answer is lost,
    the keyed re-send is throttled; the key stays unknown (never released), and the retry
    recovers the refund that did happen instead of refusing it."""
    charge = gw.charge(
        "fakepay", amount=Money.jpy(1000), method=Card(token="t"), idempotency_key="b16f"
    )
    sandbox.fault("fakepay", "drop_after_commit", path="/refunds$", method="POST", count=1)
    sandbox.fault("fakepay", "rate_limit", path="/refunds$", method="POST", count=1)
    with pytest.raises(PaygateError) as info:
        gw.refund("fakepay", charge.id, idempotency_key="b16f-r")
    assert info.value.retryable
    gw.status("fakepay", charge.id)  # paygate learns the charge is refunded
    refund = gw.refund("fakepay", charge.id, idempotency_key="b16f-r")
    assert refund.amount == Money.jpy(1000)
    (entry,) = [e for e in sandbox.ledger()["fakepay"] if e.id == charge.provider_ref]
    assert entry.refunded == 1000
