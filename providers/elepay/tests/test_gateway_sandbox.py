"""elepay through `Gateway` and `AsyncGateway`, over real loopback HTTP to the sandbox.

Time only moves on the sandbox clock: ``wait``'s backoff sleeps are turned into sandbox
clock advances (the ``virtual_time`` fixture of paygate's pytest plugin), so nothing here
sleeps for real.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate import (
    ChargeStatus,
    DisplayQR,
    Money,
    ProviderRejected,
    QRCode,
    RateLimited,
    RefundStatus,
)
from paygate.sandbox import serve_app
from paygate.testing import DRIVERS
from paygate_elepay._wire import from_millis

ACCOUNT = "elepay"


@pytest.fixture(params=DRIVERS)
def gw(request, make_gateway):
    return make_gateway(driver=request.param)


def emulator(sandbox):
    return sandbox.host.emulators["elepay"]


def code_id(charge) -> str:
    return charge.provider_ref.partition(":")[2]


def pay(sandbox, charge, method="paypay") -> dict[str, Any]:
    return sandbox.control("elepay", "pay_code", code_id=code_id(charge), payment_method=method)


def new_charge(gw, key, amount=1200, **method):
    return gw.charge(
        ACCOUNT, amount=Money.jpy(amount), method=QRCode(**method), idempotency_key=key
    )


# ----------------------------------------------------------------------------- time


# ------------------------------------------------------------------------- the flows


def test_qr_charge_pay_and_refund_in_parts(gw, sandbox):
    charge = new_charge(gw, "order-1", expires_in=timedelta(minutes=5))
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, DisplayQR)
    assert charge.next_action.url.startswith(f"{sandbox.url}/elepay/easyqr/cd_")
    assert charge.next_action.expires_at == from_millis(charge.raw["expiryTime"])
    assert charge.raw["expiryTime"] - charge.raw["createTime"] == 5 * 60 * 1000
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.REQUIRES_ACTION

    pay(sandbox, charge, "linepay")
    paid = gw.status(ACCOUNT, charge.id)
    assert paid.id == charge.id
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.raw["charge"]["paymentMethod"] == "linepay"

    first = gw.refund(ACCOUNT, charge.id, amount=Money.jpy(200), idempotency_key="order-1-r1")
    assert (first.amount, first.status) == (Money.jpy(200), RefundStatus.SUCCEEDED)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.PARTIALLY_REFUNDED
    rest = gw.refund(ACCOUNT, charge.id, idempotency_key="order-1-r2")
    assert rest.amount == Money.jpy(1000)
    done = gw.status(ACCOUNT, charge.id)
    assert done.status is ChargeStatus.REFUNDED
    assert done.amount_refunded == Money.jpy(1200)
    # Replays answer from the store: no second refund reaches elepay.
    assert gw.refund(ACCOUNT, charge.id, idempotency_key="order-1-r2").id == rest.id

    (entry,) = [e for e in sandbox.ledger()["elepay"] if e.kind == "charge"]
    assert (entry.amount, entry.refunded, entry.status) == (1200, 1200, "refunded")
    refunds = sorted(e.key for e in sandbox.ledger()["elepay"] if e.kind == "refund")
    assert refunds == ["pg-refund-order-1-r1", "pg-refund-order-1-r2"]


def test_cancel_closes_the_code(gw, sandbox):
    charge = new_charge(gw, "order-2")
    canceled = gw.cancel(ACCOUNT, charge.id)
    assert canceled.status is ChargeStatus.CANCELED
    assert gw.cancel(ACCOUNT, charge.id).status is ChargeStatus.CANCELED  # replayed
    # Another key: elepay answers M006003 and the flow reads the closed code back.
    again = gw.cancel(ACCOUNT, charge.id, idempotency_key="order-2-cancel-again")
    assert again.status is ChargeStatus.CANCELED
    assert emulator(sandbox).codes[code_id(charge)].status == "closed"


def test_cancel_after_payment_is_refused_with_elepays_code(gw, sandbox):
    charge = new_charge(gw, "order-3")
    pay(sandbox, charge)
    with pytest.raises(ProviderRejected) as info:
        gw.cancel(ACCOUNT, charge.id)
    assert info.value.provider_code == "M006003"
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.SUCCEEDED


def test_the_code_expires_on_the_sandbox_clock(gw, sandbox):
    charge = new_charge(gw, "order-4", expires_in=timedelta(minutes=3))
    sandbox.advance(timedelta(minutes=3))
    expired = gw.status(ACCOUNT, charge.id)
    assert expired.status is ChargeStatus.EXPIRED
    assert expired.next_action is None


def test_already_paid_order_is_recovered_with_a_lost_store(make_gateway, sandbox):
    first = make_gateway()
    charge = new_charge(first, "order-5")
    pay(sandbox, charge)
    # A second deployment with an empty store (and entity cache) retries the same key:
    # elepay answers M002007 and the charge is found in the charge list.
    second = make_gateway(driver="async")
    recovered = new_charge(second, "order-5")
    assert recovered.status is ChargeStatus.SUCCEEDED
    assert recovered.provider_ref.startswith("charge:ch_")
    assert recovered.raw["orderNo"] == "pg-code-order-5"
    refund = second.refund(ACCOUNT, recovered.id, idempotency_key="order-5-r1")
    assert refund.amount == Money.jpy(1200)
    assert second.status(ACCOUNT, recovered.id).status is ChargeStatus.REFUNDED


# -------------------------------------------------------------------------- polling


def test_wait_polls_with_backoff_until_the_code_expires(gw, sandbox, virtual_time):
    charge = new_charge(gw, "order-6", expires_in=timedelta(minutes=3))
    # A failed attempt changes nothing and sends nothing: only expiry ends the wait.
    sandbox.control("elepay", "fail_payment", code_id=code_id(charge))
    result = gw.wait(ACCOUNT, charge.id, timeout=600)
    assert result.status is ChargeStatus.EXPIRED
    assert virtual_time.sleeps[:5] == [1.0, 2.0, 4.0, 8.0, 15.0]
    assert set(virtual_time.sleeps[4:]) == {15.0}
    assert 180 <= virtual_time.elapsed < 180 + 15
    assert [a for a in sandbox.webhook_log() if a.provider == "elepay"] == []


def test_wait_ends_when_the_payer_pays(gw, sandbox, virtual_time):
    charge = new_charge(gw, "order-7")

    def payer(sleeps: int) -> None:
        if sleeps == 3:
            pay(sandbox, charge, "merpay")

    virtual_time.on_sleep = payer
    result = gw.wait(ACCOUNT, charge.id, timeout=600)
    assert result.status is ChargeStatus.SUCCEEDED
    assert virtual_time.sleeps == [1.0, 2.0, 4.0]


def test_wait_gives_up_at_the_timeout(gw, sandbox, virtual_time):
    charge = new_charge(gw, "order-8")
    result = gw.wait(ACCOUNT, charge.id, timeout=20)
    assert result.status is ChargeStatus.REQUIRES_ACTION
    assert virtual_time.elapsed == pytest.approx(20)


# ------------------------------------------------------------------------- webhooks


@pytest.fixture
def receiver(sandbox):
    """A webhook endpoint that records bodies and answers with ``status``."""
    state: dict[str, Any] = {"bodies": [], "status": 200}

    async def hook(request: Request) -> Response:
        state["bodies"].append(await request.body())
        return Response(status_code=state["status"])

    with serve_app(Starlette(routes=[Route("/hooks", hook, methods=["POST"])])) as url:
        sandbox.set_webhook_url(f"{url}/hooks", provider="elepay")
        yield state
    sandbox.set_webhook_url(None, provider="elepay")


def test_webhooks_are_refetched_recorded_and_deduplicated(gw, sandbox, receiver):
    events: list[Any] = []
    gw.webhooks.on("*")(events.append)
    charge = new_charge(gw, "order-9")
    pay(sandbox, charge)
    sandbox.flush_webhooks()
    (body,) = receiver["bodies"]
    headers = {"Content-Type": "application/json;charset=utf-8"}
    before = sandbox.host.request_count
    (event,) = gw.webhooks.handle(ACCOUNT, headers, body)
    assert sandbox.host.request_count == before + 1  # the refetch
    assert event.type == "charge.succeeded"
    assert event.charge_id == charge.id
    assert event.status is ChargeStatus.SUCCEEDED
    # The dedup identity is the re-fetched state (elepay signs nothing).
    charge_id = json.loads(body)["data"]["object"]["id"]
    assert event.provider_event_id == f"{charge_id}:captured:"
    assert not event.duplicate
    (again,) = gw.webhooks.handle(ACCOUNT, headers, body)
    assert again.duplicate
    assert len(events) == 1  # handlers ran once

    gw.refund(ACCOUNT, charge.id, amount=Money.jpy(100), idempotency_key="order-9-r1")
    sandbox.flush_webhooks()
    (refund_event,) = gw.webhooks.handle(ACCOUNT, headers, receiver["bodies"][-1])
    assert refund_event.type == "refund.succeeded"
    assert refund_event.status is ChargeStatus.PARTIALLY_REFUNDED


def test_forged_webhooks_never_run_handlers_again(gw, sandbox, receiver):
    # Issue #26, through the gateway: a re-posted charge.succeeded under a new id, a paid
    # charge re-typed as charge.revoked and a refund with a forged amount reach no
    # handler a second time, and nothing forged is recorded.
    from paygate import WebhookVerificationError

    events: list[Any] = []
    gw.webhooks.on("*")(events.append)
    charge = new_charge(gw, "order-10", amount=5000)
    pay(sandbox, charge)
    sandbox.flush_webhooks()
    real = json.loads(receiver["bodies"][0])
    gw.webhooks.handle(ACCOUNT, {}, json.dumps(real).encode())
    assert [e.type for e in events] == ["charge.succeeded"]

    replay = {**real, "id": "evt_forged_new_id"}
    (again,) = gw.webhooks.handle(ACCOUNT, {}, json.dumps(replay).encode())
    assert again.duplicate
    retyped = {**real, "id": "evt_forged_revoked", "type": "charge.revoked"}
    retyped["data"] = {"object": {**real["data"]["object"], "status": "revoked"}}
    (revoked,) = gw.webhooks.handle(ACCOUNT, {}, json.dumps(retyped).encode())
    assert revoked.duplicate
    assert revoked.type == "charge.succeeded"
    assert len(events) == 1
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.SUCCEEDED

    gw.refund(ACCOUNT, charge.id, amount=Money.jpy(100), idempotency_key="order-10-r1")
    sandbox.flush_webhooks()
    refund_body = json.loads(receiver["bodies"][-1])
    (refunded,) = gw.webhooks.handle(ACCOUNT, {}, json.dumps(refund_body).encode())
    assert refunded.amount == Money.jpy(100)
    inflated = {**refund_body, "id": "evt_forged_amount"}
    inflated["data"] = {"object": {**refund_body["data"]["object"], "amount": 4900}}
    (forged,) = gw.webhooks.handle(ACCOUNT, {}, json.dumps(inflated).encode())
    assert forged.duplicate
    assert [e.type for e in events] == ["charge.succeeded", "refund.succeeded"]
    assert events[-1].amount == Money.jpy(100)
    assert gw.status(ACCOUNT, charge.id).amount_refunded == Money.jpy(100)

    unknown = {**real, "id": "evt_forged_charge"}
    unknown["data"] = {"object": {**real["data"]["object"], "id": "ch_invented"}}
    with pytest.raises(WebhookVerificationError):
        gw.webhooks.handle(ACCOUNT, {}, json.dumps(unknown).encode())


def test_failed_deliveries_follow_elepays_retry_schedule(make_gateway, sandbox, receiver):
    gw = make_gateway()
    receiver["status"] = 500
    charge = new_charge(gw, "order-11")
    pay(sandbox, charge)
    sandbox.flush_webhooks()
    for step in (1, 1, 1, 10, 10, 10):
        sandbox.advance(timedelta(minutes=step))
        sandbox.flush_webhooks()
    attempts = [a for a in sandbox.webhook_log() if a.provider == "elepay"]
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5, 6, 7]
    gaps = [round((b.at - a.at).total_seconds() / 60) for a, b in itertools.pairwise(attempts)]
    assert gaps == [1, 1, 1, 10, 10, 10]
    assert attempts[-1].outcome == "failed"
    assert len(receiver["bodies"]) == 7


# --------------------------------------------------------------------------- faults


def test_lost_create_answer_is_resolved(gw, sandbox):
    # Server FAQ: elepay refuses (M002007) the orderNo of a code that is still valid, so
    # the lost answer is not re-sent under it: the next derived orderNo makes a code the
    # payer can pay; the one nobody saw stays unpaid and expires.
    sandbox.fault("elepay", "drop_after_commit", path="^/codes$", method="POST")
    charge = new_charge(gw, "order-12")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    codes = {c.order_no: c for c in emulator(sandbox).codes.values()}
    assert set(codes) == {"pg-code-order-12", "pg-code2-order-12"}
    assert code_id(charge) == codes["pg-code2-order-12"].id
    pay(sandbox, charge)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.SUCCEEDED
    assert new_charge(gw, "order-12").id == charge.id  # the key replays that code


def test_lost_create_answers_in_a_row_still_end_in_a_payable_code(gw, sandbox):
    sandbox.fault("elepay", "drop_after_commit", path="^/codes$", method="POST", count=3)
    charge = new_charge(gw, "order-12b")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, DisplayQR)
    pay(sandbox, charge)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.SUCCEEDED
    orders = sorted(c.order_no for c in emulator(sandbox).codes.values())
    assert len(orders) == 4
    assert len(set(orders)) == 4


def test_elepay_5xx_on_create_goes_on_under_the_next_order_number(gw, sandbox):
    sandbox.fault("elepay", "status", status=503, path="^/codes$", method="POST", count=1)
    charge = new_charge(gw, "order-12c")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert emulator(sandbox).codes[code_id(charge)].order_no == "pg-code2-order-12c"


def test_m006001_leaves_the_cancel_key_retryable(gw, sandbox):
    # "Another operation is in progress" did nothing: the default cancel key must reach
    # elepay again instead of replaying the refusal.
    charge = new_charge(gw, "order-12d")
    sandbox.control("elepay", "busy", count=1)
    with pytest.raises(ProviderRejected) as info:
        gw.cancel(ACCOUNT, charge.id)
    assert info.value.provider_code == "M006001"
    assert gw.cancel(ACCOUNT, charge.id).status is ChargeStatus.CANCELED


def test_m006001_leaves_the_refund_key_retryable(gw, sandbox):
    charge = new_charge(gw, "order-12e")
    pay(sandbox, charge)
    sandbox.control("elepay", "busy", count=1)
    with pytest.raises(ProviderRejected) as info:
        gw.refund(ACCOUNT, charge.id, amount=Money.jpy(100), idempotency_key="order-12e-r1")
    assert info.value.provider_code == "M006001"
    refund = gw.refund(ACCOUNT, charge.id, amount=Money.jpy(100), idempotency_key="order-12e-r1")
    assert refund.amount == Money.jpy(100)


@pytest.mark.parametrize("meaning", ["ran_out", "invalid"])
def test_cancel_and_expiry_under_each_reading_of_the_expired_flag(gw, sandbox, meaning):
    sandbox.control("elepay", "expired_flag", meaning=meaning)
    closed = new_charge(gw, f"order-12f-{meaning}")
    assert gw.cancel(ACCOUNT, closed.id).status is ChargeStatus.CANCELED
    assert gw.status(ACCOUNT, closed.id).status is ChargeStatus.CANCELED
    ran_out = new_charge(gw, f"order-12g-{meaning}", expires_in=timedelta(minutes=3))
    sandbox.advance(timedelta(minutes=4))
    assert gw.status(ACCOUNT, ran_out.id).status is ChargeStatus.EXPIRED


def test_lost_refund_answer_never_refunds_twice(gw, sandbox):
    charge = new_charge(gw, "order-13")
    pay(sandbox, charge)
    sandbox.fault("elepay", "drop_after_commit", path="/refunds$", method="POST")
    refund = gw.refund(ACCOUNT, charge.id, amount=Money.jpy(500), idempotency_key="order-13-r1")
    assert refund.amount == Money.jpy(500)
    refunds = [e for e in sandbox.ledger()["elepay"] if e.kind == "refund"]
    assert len(refunds) == 1
    assert gw.status(ACCOUNT, charge.id).amount_refunded == Money.jpy(500)


def test_rate_limit_is_retried(gw, sandbox):
    charge = new_charge(gw, "order-14")
    rule = sandbox.fault("elepay", "rate_limit", path="^/codes/", method="GET", count=2)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.REQUIRES_ACTION
    (state,) = [f for f in sandbox.faults() if f["id"] == rule["id"]]
    assert state["fired"] == 2


def test_rate_limit_that_persists_keeps_elepays_code(gw, sandbox):
    charge = new_charge(gw, "order-15")
    sandbox.fault("elepay", "rate_limit", path="^/codes/", method="GET", count=50)
    with pytest.raises(RateLimited) as info:
        gw.status(ACCOUNT, charge.id)
    assert info.value.provider_code == "M005000"
    assert info.value.http_status == 400


def test_server_errors_are_retried(gw, sandbox):
    charge = new_charge(gw, "order-16")
    sandbox.fault("elepay", "status", status=503, path="^/codes/", method="GET", count=1)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.REQUIRES_ACTION


def test_a_key_with_every_answer_lost_is_unknown_then_reconciled(sandbox, make_gateway):
    # Six lost answers in a row: paygate never got a code, and says so (unknown, never a
    # refusal). Reconcile finds nothing paid under any of the key's orderNos, reads the
    # charge list back to the first send, and releases the key.
    from paygate import OutcomeUnknown
    from paygate._reconcile import reconcile

    gw = make_gateway()
    sandbox.fault("elepay", "drop_after_commit", path="^/codes$", method="POST", count=6)
    with pytest.raises(OutcomeUnknown):
        new_charge(gw, "order-12h")
    orders = {c.order_no for c in emulator(sandbox).codes.values()}
    assert len(orders) == 6
    assert all(c.status == "pending" for c in emulator(sandbox).codes.values())
    (row,) = [r for r in reconcile(gw) if r.account == ACCOUNT]
    assert (row.after, row.action) == ("not created", "released: a retry creates it")
