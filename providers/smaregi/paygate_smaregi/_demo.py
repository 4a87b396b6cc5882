"""``paygate demo`` for Smaregi: the first sale creates the app payment method, then the
sale is voided through a refund."""

from __future__ import annotations

from typing import Any

from paygate import ChargeStatus, Money, PosLine, PosSale

__all__ = ["demo"]


def demo(d: Any) -> None:
    """Register a sale in the sandbox's store, read it, void it (a `paygate.cli.Demo`
    drives it: ``d.gateway``, ``d.account``, ``d.step``).

    Offered by `SmaregiProvider.demo_script`; run with ``paygate demo``.
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
    charge = d.step(
        "register sale",
        lambda: gateway.charge(
            account, amount=Money.jpy(1005), method=sale, idempotency_key="demo-smaregi-1"
        ),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    d.step(
        "app payment method again (cached: no request)",
        lambda: gateway.extension(account, "ensure_payment_method"),
    )
    d.step("status", lambda: gateway.status(account, charge.id))
    d.step(
        "refund (voids the sale)",
        lambda: gateway.refund(account, charge.id, idempotency_key="demo-smaregi-1-refund"),
    )
    d.step(
        "status after the void",
        lambda: gateway.status(account, charge.id),
        expect=lambda c: c.status is ChargeStatus.REFUNDED,
    )
