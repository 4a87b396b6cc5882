"""A small shop's payment code: the only module that talks to paygate.

Which provider serves each account ("konbini", "card", "qr") is configuration
(``paygate.toml``), not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from paygate import Card, DisplayQR, Gateway, Konbini, KonbiniSlip, Money, QRCode


@dataclass(frozen=True)
class Customer:
    name: str
    phone: str
    email: str


def konbini_order(
    gw: Gateway, order_id: str, amount_yen: int, customer: Customer
) -> tuple[str, KonbiniSlip]:
    """Issue a konbini payment slip for an order (the same slip if called again); returns
    (charge id, the slip to show the customer)."""
    charge = gw.charge(
        "konbini",
        amount=Money.jpy(amount_yen),
        method=Konbini(
            store="family_mart",
            customer_name=customer.name,
            phone=customer.phone,
            email=customer.email,
            expires_in=timedelta(days=3),
        ),
        idempotency_key=f"order-{order_id}",
    )
    if not isinstance(charge.next_action, KonbiniSlip):
        raise RuntimeError(f"expected a payment slip, got {charge.next_action!r}")
    return charge.id, charge.next_action


def card_order(gw: Gateway, order_id: str, amount_yen: int, token: str) -> str:
    """Charge a card token for an order; returns the charge id."""
    charge = gw.charge(
        "card",
        amount=Money.jpy(amount_yen),
        method=Card(token=token),
        idempotency_key=f"order-{order_id}",
    )
    return charge.id


def refund_part(gw: Gateway, charge_id: str, amount_yen: int, request_id: str) -> None:
    """Give back part of a card payment."""
    gw.refund("card", charge_id, amount=Money.jpy(amount_yen), idempotency_key=request_id)


def start_qr_checkout(gw: Gateway, order_id: str, amount_yen: int) -> tuple[str, str]:
    """Create the QR payment for an order; returns (charge id, URL to show as a QR code)."""
    charge = gw.charge(
        "qr",
        amount=Money.jpy(amount_yen),
        method=QRCode(expires_in=timedelta(minutes=10)),
        idempotency_key=f"order-{order_id}",
        description=f"Order {order_id}",
        metadata={"order_id": order_id},
    )
    if not isinstance(charge.next_action, DisplayQR):
        raise RuntimeError(f"expected a QR code to show, got {charge.next_action!r}")
    return charge.id, charge.next_action.url


def is_paid(gw: Gateway, account: str, charge_id: str) -> bool:
    """Whether the customer has paid (asks the provider)."""
    return gw.status(account, charge_id).paid
