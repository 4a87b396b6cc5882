"""The ``paygate demo`` script of elepay (offered by `ElepayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import ChargeStatus, QRCode

__all__ = ["demo"]


def demo(d: Any) -> None:
    """``paygate demo``: an EasyQR code paid with PayPay, refunded in two parts, and a
    second code closed unpaid.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`)::

        paygate demo --provider elepay
    """
    s = ChargeStatus
    charge = d.charge(
        "charge (EasyQR code)",
        QRCode(expires_in=timedelta(minutes=5)),
        amount=1200,
        key="order-1",
        expect=s.REQUIRES_ACTION,
    )
    code_id = charge.provider_ref.partition(":")[2]
    d.act("payer scans, pays with PayPay", "pay_code", code_id=code_id, payment_method="paypay")
    d.status(charge, s.SUCCEEDED)
    d.refund("refund 200 JPY", charge, amount=200, key="r1")
    d.refund("refund the rest", charge, key="r2")
    d.status(charge, s.REFUNDED)
    other = d.charge("charge (second code)", QRCode(), amount=800, key="order-2")
    d.cancel("cancel (close the code)", other)
