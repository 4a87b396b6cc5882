"""Cassette replay of every UnivaPay flow, failures included (network blocked).

Replay: ``uv run pytest providers/univapay/tests/test_cassettes.py``.
Re-record against the sandbox: add ``--record-mode=rewrite``. Against UnivaPay's test
mode: see ``docs/providers/univapay.md`` (flows that need the customer, the sandbox
clock or the sandbox's test card tokens are skipped there).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    Card,
    ChargeStatus,
    Gateway,
    IdempotencyConflict,
    Konbini,
    KonbiniSlip,
    Money,
    NotSupported,
    PaymentDeclined,
    ProviderRejected,
    RefundStatus,
)
from paygate._retry import RetryPolicy
from paygate_univapay._emulator import SEED_CARD_TOKENS

pytestmark = [pytest.mark.vcr, pytest.mark.block_network]

ACCOUNT = "univapay"


def gateway(env: Any, **overrides: Any) -> Gateway:
    settings = {**env.account("univapay"), **overrides}
    gw = Gateway.from_config(
        {"store": "memory://", "accounts": {ACCOUNT: settings}},
        store="memory://",
        retry=RetryPolicy.no_wait(),
    )
    env._gateways.append(gw)
    return gw


def slip(gw: Gateway, key: str, *, amount: int = 1200, **kw: Any) -> Any:
    method = Konbini(
        store=kw.pop("store", "family_mart"),
        customer_name="テスト 太郎",
        phone="0364413400",
        email="demo@example.com",
        expires_in=kw.pop("expires_in", None),
    )
    return gw.charge(ACCOUNT, amount=Money.jpy(amount), method=method, idempotency_key=key)


def pay(env: Any, charge: Any) -> None:
    env.control("univapay", "pay_konbini", charge_id=charge.provider_ref)


def sandbox_cards(env: Any) -> None:
    if env.real is not None:
        pytest.skip("the card flows use the sandbox's test tokens")


def test_konbini_charge_issues_a_slip(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-1", store="seven_eleven", expires_in=timedelta(days=7))
    assert created.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(created.next_action, KonbiniSlip)
    assert created.next_action.issued
    assert created.next_action.payment_number
    assert created.next_action.url
    assert created.next_action.expires_at is not None
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.REQUIRES_ACTION


def test_status_after_the_customer_pays(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-2")
    pay(paygate_cassette, created)
    paid = gw.status(ACCOUNT, created.id)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.amount_captured == Money.jpy(1200)


def test_slip_expires(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-3", expires_in=timedelta(days=1))
    paygate_cassette.advance(2 * 86400)
    expired = gw.status(ACCOUNT, created.id)
    assert expired.status is ChargeStatus.EXPIRED


def test_cancel_unpaid_slip_and_cancel_again(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-4")
    assert gw.cancel(ACCOUNT, created.id).status is ChargeStatus.CANCELED
    with pytest.raises(ProviderRejected) as again:
        gw.cancel(ACCOUNT, created.id, idempotency_key="cas-4-cancel-2")
    assert again.value.provider_code == "CANCEL_NOT_ALLOWED"


def test_cancel_after_payment_is_refused(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-5")
    pay(paygate_cassette, created)
    with pytest.raises(ProviderRejected) as info:
        gw.cancel(ACCOUNT, created.id)
    assert info.value.provider_code == "CANCEL_NOT_ALLOWED"
    with pytest.raises(NotSupported):
        gw.refund(ACCOUNT, created.id, idempotency_key="cas-5-r1")


def test_same_key_other_amount_conflicts_at_univapay(paygate_cassette: Any) -> None:
    slip(gateway(paygate_cassette), "cas-univapay-6")
    # A second deployment (empty store) reuses the key for another amount: UnivaPay
    # replays the token and refuses the charge.
    with pytest.raises(IdempotencyConflict) as info:
        slip(gateway(paygate_cassette), "cas-univapay-6", amount=1300)
    assert info.value.provider_code == "IDEMPOTENCY_KEY_CONFLICT"


def test_rate_limit_is_retried(paygate_cassette: Any) -> None:
    if paygate_cassette.real is not None:
        pytest.skip("the 429 is a sandbox fault")
    gw = gateway(paygate_cassette)
    if paygate_cassette.sandbox is not None:
        paygate_cassette.sandbox.fault("univapay", "rate_limit", path="^/tokens$")
    created = slip(gw, "cas-univapay-7")
    assert created.status is ChargeStatus.REQUIRES_ACTION


def test_wrong_secret(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette, secret="not_the_right_secret")
    with pytest.raises(AuthenticationError) as info:
        slip(gw, "cas-univapay-8")
    assert info.value.provider_code == "INVALID_CREDENTIALS"


def test_webhook_of_a_paid_slip(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-9")
    pay(paygate_cassette, created)
    paid = gw.status(ACCOUNT, created.id)
    body = json.dumps(
        {"id": "ev-cassette-9", "event": "charge_finished", "data": dict(paid.raw)}
    ).encode()
    token = paygate_cassette.account("univapay")["webhook_auth_token"]
    (event,) = gw.webhooks.handle(ACCOUNT, {"Authorization": token}, body)
    assert event.type == "charge.succeeded"
    assert event.charge_id == created.id


def test_payout_balance(paygate_cassette: Any) -> None:
    gw = gateway(paygate_cassette)
    created = slip(gw, "cas-univapay-10", amount=2500)
    pay(paygate_cassette, created)
    paygate_cassette.control("univapay", "run_transfer")
    balance = gw.payout_balance(ACCOUNT)
    assert balance.scheduled == Money.jpy(2500)
    assert [i.amount.amount for i in balance.items] == [2500]


def test_card_partial_then_full_refund(paygate_cassette: Any) -> None:
    sandbox_cards(paygate_cassette)
    gw = gateway(paygate_cassette)
    created = gw.charge(
        ACCOUNT,
        amount=Money.jpy(5000),
        method=Card(token=SEED_CARD_TOKENS["success"]),
        idempotency_key="cas-univapay-11",
    )
    assert created.status is ChargeStatus.SUCCEEDED
    part = gw.refund(ACCOUNT, created.id, amount=Money.jpy(1500), idempotency_key="cas-11-r1")
    assert (part.amount, part.status) == (Money.jpy(1500), RefundStatus.SUCCEEDED)
    rest = gw.refund(ACCOUNT, created.id, idempotency_key="cas-11-r2")
    assert rest.amount == Money.jpy(3500)
    assert gw.status(ACCOUNT, created.id).status is ChargeStatus.REFUNDED


def test_card_authorise_capture(paygate_cassette: Any) -> None:
    sandbox_cards(paygate_cassette)
    gw = gateway(paygate_cassette)
    held = gw.charge(
        ACCOUNT,
        amount=Money.jpy(3000),
        method=Card(token=SEED_CARD_TOKENS["success"], capture=False),
        idempotency_key="cas-univapay-12",
    )
    assert held.status is ChargeStatus.AUTHORIZED
    assert gw.capture(ACCOUNT, held.id).status is ChargeStatus.SUCCEEDED


def test_card_decline(paygate_cassette: Any) -> None:
    sandbox_cards(paygate_cassette)
    gw = gateway(paygate_cassette)
    with pytest.raises(PaymentDeclined) as info:
        gw.charge(
            ACCOUNT,
            amount=Money.jpy(500),
            method=Card(token=SEED_CARD_TOKENS["declined"]),
            idempotency_key="cas-univapay-13",
        )
    assert info.value.provider_code == "CARD_REJECTED"
