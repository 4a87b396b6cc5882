"""The ``paygate demo`` script of Pokepay (offered by `PokepayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import ChargeStatus, QRCode, Wallet

from ._emulator import SANDBOX

__all__ = ["demo"]


def demo(d: Any) -> None:
    """``paygate demo``: a wallet payment refunded, a Cashtray paid by a scan, a second
    Cashtray cancelled, and the shop wallet's balance.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`)::

        paygate demo --provider pokepay
    """
    s = ChargeStatus
    customer = SANDBOX.customers["funded"][0]
    paid = d.charge(
        "charge (wallet)",
        Wallet(customer_id=customer),
        amount=1200,
        key="order-1",
        metadata={"order": "demo-1"},
        expect=s.SUCCEEDED,
    )
    d.refund("refund (whole)", paid, key="r1")
    d.status(paid, s.REFUNDED)
    tray = d.charge(
        "charge (Cashtray QR)",
        QRCode(expires_in=timedelta(minutes=5)),
        amount=1500,
        key="order-2",
        expect=s.REQUIRES_ACTION,
    )
    d.act("customer scans the QR", "scan_cashtray", token=tray.next_action.url)
    d.status(tray, s.SUCCEEDED)
    other = d.charge("charge (second Cashtray)", QRCode(), amount=800, key="order-3")
    d.cancel("cancel (CancelCashtray)", other)
    d.payout_balance("payout balance (shop wallet)")
