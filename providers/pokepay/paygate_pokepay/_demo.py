"""The ``paygate demo`` script of Pokepay (offered by `PokepayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import ChargeStatus, Money, QRCode, Wallet

from ._emulator import SANDBOX

__all__ = ["demo"]


def demo(demo: Any) -> None:
    """``paygate demo``: a wallet payment refunded, a Cashtray paid by a scan, a second
    Cashtray cancelled, and the shop wallet's balance.

    ``demo`` is a `paygate.cli.Demo`: ``demo.gateway`` has an account named after the
    provider on the sandbox, ``demo.sandbox`` drives the customer's side::

        paygate demo --provider pokepay
    """
    gw, account = demo.gateway, demo.account
    customer = SANDBOX.customers["funded"][0]
    paid = demo.step(
        "charge (wallet)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(1200),
            method=Wallet(customer_id=customer),
            metadata={"order": "demo-1"},
            idempotency_key="demo-pokepay-order-1",
        ),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    demo.step(
        "refund (whole)",
        lambda: gw.refund(account, paid.id, idempotency_key="demo-pokepay-r1"),
    )
    demo.step(
        "status",
        lambda: gw.status(account, paid.id),
        expect=lambda c: c.status is ChargeStatus.REFUNDED,
    )
    tray = demo.step(
        "charge (Cashtray QR)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(1500),
            method=QRCode(expires_in=timedelta(minutes=5)),
            idempotency_key="demo-pokepay-order-2",
        ),
        expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
    )
    demo.step(
        "customer scans the QR",
        lambda: demo.sandbox.control("pokepay", "scan_cashtray", token=tray.next_action.url),
    )
    demo.step(
        "status",
        lambda: gw.status(account, tray.id),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    other = demo.step(
        "charge (second Cashtray)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(800),
            method=QRCode(),
            idempotency_key="demo-pokepay-order-3",
        ),
    )
    demo.step(
        "cancel (CancelCashtray)",
        lambda: gw.cancel(account, other.id),
        expect=lambda c: c.status is ChargeStatus.CANCELED,
    )
    demo.step("payout balance (shop wallet)", lambda: gw.payout_balance(account))
