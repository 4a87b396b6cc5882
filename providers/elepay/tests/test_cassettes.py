"""Cassette replay of every elepay flow, failures included (network blocked).

Replay: ``uv run pytest providers/elepay/tests/test_cassettes.py``.
Re-record against the sandbox: add ``--record-mode=rewrite``. Against elepay's test mode:
see ``docs/providers/elepay.md`` (flows that need the payer are skipped there).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    ChargeStatus,
    Gateway,
    Money,
    ProviderRejected,
    QRCode,
    RefundStatus,
)
from paygate._retry import RetryPolicy

pytestmark = [pytest.mark.vcr, pytest.mark.block_network]

ACCOUNT = "elepay"
# The gateway's clock is pinned so that the charge list's ``from`` filter (part of the
# matched query) is the same when recording and replaying.
PINNED = datetime(2026, 1, 1, tzinfo=UTC)


def gateway(env: Any, *, pinned: datetime = PINNED, **overrides: Any) -> Gateway:
    settings = {**env.account("elepay"), **overrides}
    gw = Gateway.from_config(
        {"store": "memory://", "accounts": {ACCOUNT: settings}},
        store="memory://",
        retry=RetryPolicy.no_wait(),
        clock=lambda: pinned,
    )
    env._gateways.append(gw)
    return gw


def charge(gw: Gateway, key: str, amount: int = 1200):
    return gw.charge(ACCOUNT, amount=Money.jpy(amount), method=QRCode(), idempotency_key=key)


def pay(env: Any, charge_: Any, method: str = "paypay") -> None:
    code_id = charge_.provider_ref.partition(":")[2]
    env.control("elepay", "pay_code", code_id=code_id, payment_method=method)


def test_charge_creates_a_code(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-1")
    assert created.status is ChargeStatus.REQUIRES_ACTION
    assert created.next_action is not None
    assert created.provider_ref.startswith("code:")
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.REQUIRES_ACTION


def test_status_after_the_payer_pays(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-2")
    pay(paygate_cassette, created, "linepay")
    paid = gw.status(ACCOUNT, created.id)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.amount_captured == Money.jpy(1200)


def test_partial_then_full_refund(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-3")
    pay(paygate_cassette, created)
    part = gw.refund(ACCOUNT, created.id, amount=Money.jpy(300), idempotency_key="cas-3-r1")
    assert (part.amount, part.status) == (Money.jpy(300), RefundStatus.SUCCEEDED)
    rest = gw.refund(ACCOUNT, created.id, idempotency_key="cas-3-r2")
    assert rest.amount == Money.jpy(900)
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.REFUNDED


def test_cancel_and_cancel_again(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-4")
    assert gw.cancel(ACCOUNT, created.id).status is ChargeStatus.CANCELED
    again = gw.cancel(ACCOUNT, created.id, idempotency_key="cas-4-cancel-2")
    assert again.status is ChargeStatus.CANCELED


def test_cancel_after_payment_is_refused(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-5")
    pay(paygate_cassette, created)
    with pytest.raises(ProviderRejected) as info:
        gw.cancel(ACCOUNT, created.id)
    assert info.value.provider_code == "M006003"


def test_already_paid_order_is_recovered(paygate_cassette):
    first = gateway(paygate_cassette)
    created = charge(first, "cas-elepay-6")
    pay(paygate_cassette, created)
    # A gateway with an empty store sends the key's orderNo again: M002007 (paid, or a
    # code still valid), then the charge list finds the payment.
    recovered = charge(gateway(paygate_cassette), "cas-elepay-6")
    assert recovered.status is ChargeStatus.SUCCEEDED
    assert recovered.provider_ref.startswith("charge:")


def test_code_expires(paygate_cassette):
    # paygate tells an expiry from a deletion partly by its own clock against the
    # code's expiryTime: pinned past any recorded expiry here.
    gw = gateway(paygate_cassette, pinned=datetime(2036, 1, 1, tzinfo=UTC))
    created = gw.charge(
        ACCOUNT,
        amount=Money.jpy(500),
        method=QRCode(expires_in=timedelta(minutes=3)),
        idempotency_key="cas-elepay-7",
    )
    paygate_cassette.advance(180)
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.EXPIRED


def test_rate_limit_is_retried(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-8")
    paygate_cassette.control("elepay", "rate_limit", count=1)
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.REQUIRES_ACTION


def test_webhook_is_refetched(paygate_cassette):
    gw = gateway(paygate_cassette)
    created = charge(gw, "cas-elepay-9")
    pay(paygate_cassette, created)
    paid = gw.status(ACCOUNT, created.id)
    body = json.dumps(
        {
            "id": "evt_cassette_9",
            "object": "event",
            "type": "charge.succeeded",
            "data": {"object": paid.raw["charge"]},
        }
    ).encode()
    (event,) = gw.webhooks.handle(ACCOUNT, {}, body)
    assert event.charge_id == created.id
    assert event.status is ChargeStatus.SUCCEEDED
    assert event.provider_event_id == f"{paid.raw['charge']['id']}:captured:"


def test_wrong_secret_key(paygate_cassette):
    gw = gateway(paygate_cassette, secret_key="sk_test_not_the_right_key_0000")
    with pytest.raises(AuthenticationError) as info:
        charge(gw, "cas-elepay-10")
    assert info.value.provider_code == "M004001"
