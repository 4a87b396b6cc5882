"""The shop's payment flows, recorded once against the sandbox and replayed offline.

Record:  pytest --record-mode=rewrite
Replay:  pytest tests/test_orders.py tests/test_cassettes_clean.py --block-network
"""

from __future__ import annotations

from typing import Any

import pytest
import shop

from paygate import ChargeStatus

pytestmark = pytest.mark.vcr


def test_konbini_order_paid_at_the_store(paygate_cassette: Any, customer: shop.Customer) -> None:
    gw = paygate_cassette.gateway("univapay", account="konbini")
    charge_id, slip = shop.konbini_order(gw, "1001", 1200, customer)
    assert slip.payment_number
    assert shop.konbini_order(gw, "1001", 1200, customer) == (charge_id, slip)
    ref = gw.status("konbini", charge_id).provider_ref
    paygate_cassette.control("univapay", "pay_konbini", charge_id=ref)
    assert shop.is_paid(gw, "konbini", charge_id)


def test_card_order_and_partial_refund(paygate_cassette: Any) -> None:
    gw = paygate_cassette.gateway("payjp", account="card")
    charge_id = shop.card_order(gw, "1002", 3000, "tok_success")
    shop.refund_part(gw, charge_id, 1000, "refund-1002-1")
    assert gw.status("card", charge_id).status is ChargeStatus.PARTIALLY_REFUNDED


def test_qr_order_paid_with_paypay(paygate_cassette: Any) -> None:
    gw = paygate_cassette.gateway("elepay", account="qr")
    charge_id, url = shop.start_qr_checkout(gw, "1003", 800)
    assert url
    assert not shop.is_paid(gw, "qr", charge_id)
    code = gw.status("qr", charge_id).provider_ref.partition(":")[2]  # "code:<id>"
    paygate_cassette.control("elepay", "pay_code", code_id=code, payment_method="paypay")
    assert shop.is_paid(gw, "qr", charge_id)
