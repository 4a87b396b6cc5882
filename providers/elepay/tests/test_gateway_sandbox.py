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
from paygate_elepay._wire import from_millis

ACCOUNT = "elepay"


@pytest.fixture(params=["sync", "async"])
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
    assert event.provider_event_id == json.loads(body)["id"]
    assert not event.duplicate
    (again,) = gw.webhooks.handle(ACCOUNT, headers, body)
    assert again.duplicate
    assert len(events) == 1  # handlers ran once

    gw.refund(ACCOUNT, charge.id, amount=Money.jpy(100), idempotency_key="order-9-r1")
    sandbox.flush_webhooks()
    (refund_event,) = gw.webhooks.handle(ACCOUNT, headers, receiver["bodies"][-1])
    assert refund_event.type == "refund.succeeded"
    assert refund_event.status is ChargeStatus.PARTIALLY_REFUNDED


def test_a_forged_webhook_is_refused(gw, sandbox, receiver):
    from paygate import WebhookVerificationError

    charge = new_charge(gw, "order-10")
    pay(sandbox, charge)
    sandbox.flush_webhooks()
    forged = json.loads(receiver["bodies"][0])
    forged["id"] = "evt_forged"
    forged["data"]["object"]["amount"] = 1
    with pytest.raises(WebhookVerificationError):
        gw.webhooks.handle(ACCOUNT, {}, json.dumps(forged).encode())


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
    sandbox.fault("elepay", "drop_after_commit", path="^/codes$", method="POST")
    charge = new_charge(gw, "order-12")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    codes = [c for c in emulator(sandbox).codes.values() if c.order_no == "pg-code-order-12"]
    # elepay cannot list unpaid codes: the unanswered one stays behind, unpaid, and
    # expires; both carry the same order number, so only one can ever be paid.
    assert len(codes) == 2
    pay(sandbox, charge)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.SUCCEEDED


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
