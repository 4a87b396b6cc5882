"""The ``paygate demo`` script of elepay (offered by `ElepayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import ChargeStatus, Money, QRCode

__all__ = ["demo"]


def demo(demo: Any) -> None:
    """``paygate demo``: an EasyQR code paid with PayPay, refunded in two parts, and a
    second code closed unpaid.

    ``demo`` is a `paygate.cli.Demo`: ``demo.gateway`` has an account named after the
    provider on the sandbox, ``demo.sandbox`` drives the payer's side::

        paygate demo -p elepay
    """
    gw, account = demo.gateway, demo.account
    charge = demo.step(
        "charge (EasyQR code)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(1200),
            method=QRCode(expires_in=timedelta(minutes=5)),
            idempotency_key="demo-elepay-order-1",
        ),
        expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
    )
    code_id = charge.provider_ref.partition(":")[2]
    demo.step(
        "payer scans, pays with PayPay",
        lambda: demo.sandbox.control(
            "elepay", "pay_code", code_id=code_id, payment_method="paypay"
        ),
    )
    demo.step(
        "status",
        lambda: gw.status(account, charge.id),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    demo.step(
        "refund 200 JPY",
        lambda: gw.refund(
            account, charge.id, amount=Money.jpy(200), idempotency_key="demo-elepay-r1"
        ),
    )
    demo.step(
        "refund the rest",
        lambda: gw.refund(account, charge.id, idempotency_key="demo-elepay-r2"),
    )
    demo.step(
        "status",
        lambda: gw.status(account, charge.id),
        expect=lambda c: c.status is ChargeStatus.REFUNDED,
    )
    other = demo.step(
        "charge (second code)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(800),
            method=QRCode(),
            idempotency_key="demo-elepay-order-2",
        ),
    )
    demo.step(
        "cancel (close the code)",
        lambda: gw.cancel(account, other.id),
        expect=lambda c: c.status is ChargeStatus.CANCELED,
    )
