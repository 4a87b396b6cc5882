"""A merchant's QR checkout.

The same two functions take a QR payment whichever provider serves the account "qr":
elepay EasyQR or Pokepay Cashtray. Which one is configuration (``paygate.toml``), not code.

    [accounts.qr]
    provider = "elepay"          # or "pokepay", with its own credentials
"""

from __future__ import annotations

from datetime import timedelta

from paygate import DisplayQR, Gateway, Money, QRCode


def start_qr_checkout(gw: Gateway, order_id: str, amount_yen: int) -> tuple[str, str]:
    """Create the QR payment for an order; returns (charge id, URL to show as a QR code).

    Calling it again for the same order returns the same payment (idempotency key).
    """
    charge = gw.charge(
        "qr",
        amount=Money.jpy(amount_yen),
        method=QRCode(expires_in=timedelta(minutes=10)),
        idempotency_key=f"order-{order_id}",
        description=f"Order {order_id}",
        # Kept by the provider where it can (elepay), by paygate where it cannot (a
        # Pokepay Cashtray): charge.metadata is the same either way.
        metadata={"order_id": order_id},
    )
    if not isinstance(charge.next_action, DisplayQR):
        raise RuntimeError(f"expected a QR code to show, got {charge.next_action!r}")
    return charge.id, charge.next_action.url


def is_paid(gw: Gateway, charge_id: str) -> bool:
    """Whether the customer has paid (asks the provider)."""
    return gw.status("qr", charge_id).paid
