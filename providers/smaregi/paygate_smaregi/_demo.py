"""``paygate demo`` for Smaregi: the first sale creates the app payment method, then the
sale is voided through a refund."""

from __future__ import annotations

from typing import Any

from paygate import ChargeStatus, PosLine, PosSale

__all__ = ["demo"]


def demo(d: Any) -> None:
    """Register a sale in the sandbox's store, read it, void it.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`)::

        paygate demo --provider smaregi
    """
    from ._emulator import SmaregiEmulator

    gateway, account = d.gateway, d.account
    d.step(
        "app payment method (created on first use)",
        lambda: gateway.extension(account, "ensure_payment_method"),
    )
    sale = PosSale(
        store_id=SmaregiEmulator.STORE_ID,
        terminal_id=SmaregiEmulator.TERMINAL_ID,
        lines=(
            PosLine(product_id="8000001", unit_price=500, quantity=2),
            PosLine(name="レジ袋", unit_price=5),
        ),
        slip_number="DEMO-0001",
    )
    charge = d.charge("register sale", sale, amount=1005, key="1", expect=ChargeStatus.SUCCEEDED)
    d.step(
        "app payment method again (cached: no request)",
        lambda: gateway.extension(account, "ensure_payment_method"),
    )
    d.status(charge)
    d.refund("refund (voids the sale)", charge, key="1-refund")
    d.status(charge, ChargeStatus.REFUNDED, operation="status after the void")
