"""Cassette replay of the fake provider's flows: the reference for adapter cassette tests.

Replay: ``uv run pytest tests/core/test_cassettes.py`` (network blocked).
Re-record: ``uv run pytest tests/core/test_cassettes.py --record-mode=rewrite``.
"""

from __future__ import annotations

from typing import Any

import pytest

from paygate import Card, ChargeStatus, Money, PaymentDeclined, QRCode

paygate_cassette_provider = "fakepay"

pytestmark = [pytest.mark.vcr, pytest.mark.block_network]


def test_card_charge_refund_and_status(paygate_cassette: Any) -> None:
    gw = paygate_cassette.gateway("fakepay")
    charge = gw.charge(
        "fakepay", amount=Money.jpy(1500), method=Card(token="tok"), idempotency_key="cas-1"
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    gw.refund("fakepay", charge.id, amount=Money.jpy(500), idempotency_key="cas-1-r")
    assert gw.status("fakepay", charge.id).status is ChargeStatus.PARTIALLY_REFUNDED


def test_qr_paid_by_the_customer(paygate_cassette: Any) -> None:
    gw = paygate_cassette.gateway("fakepay")
    charge = gw.charge("fakepay", amount=Money.jpy(800), method=QRCode(), idempotency_key="cas-2")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    paygate_cassette.control("fakepay", "pay", id=charge.provider_ref)
    assert gw.status("fakepay", charge.id).status is ChargeStatus.SUCCEEDED


def test_decline(paygate_cassette: Any) -> None:
    gw = paygate_cassette.gateway("fakepay")
    with pytest.raises(PaymentDeclined) as exc:
        gw.charge(
            "fakepay", amount=Money.jpy(666), method=Card(token="tok"), idempotency_key="cas-3"
        )
    assert exc.value.provider_code == "card_declined"
