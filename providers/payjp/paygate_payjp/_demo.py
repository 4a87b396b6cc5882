"""``paygate demo`` for PAY.JP: the real flows against the sandbox's PAY.JP emulator."""

from __future__ import annotations

from typing import Any

from paygate import Card, ChargeStatus

__all__ = ["demo"]

_CARD = "tok_success"


def demo(d: Any) -> None:
    """A card charge refunded in two parts, an authorisation captured in part, a 3-D
    Secure charge, a void, then a closing run and the payout balance.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`)::

        paygate demo --provider payjp
    """
    s = ChargeStatus
    paid = d.charge(
        "charge 12,000 JPY (tok_success)",
        Card(token=_CARD),
        amount=12_000,
        key="order-1",
        expect=s.SUCCEEDED,
    )
    d.refund("refund 1,000 JPY", paid, amount=1_000, key="r1")
    d.refund("refund the rest", paid, key="r2")
    d.status(paid, s.REFUNDED)
    auth = d.charge(
        "authorise 3,000 JPY",
        Card(token=_CARD, capture=False),
        amount=3_000,
        key="order-2",
        expect=s.AUTHORIZED,
    )
    d.capture("capture 2,500 JPY", auth, amount=2_500, key="cap")
    tds = d.charge(
        "charge with 3-D Secure",
        Card(token=_CARD, three_d_secure=True),
        amount=8_000,
        key="order-3",
        expect=s.REQUIRES_ACTION,
    )
    d.act("customer passes 3-D Secure", "tds", charge=tds.provider_ref)
    d.status(tds, s.SUCCEEDED, operation="status (tds_finish)")
    void = d.charge(
        "authorise 1,500 JPY", Card(token=_CARD, capture=False), amount=1_500, key="order-4"
    )
    d.cancel("cancel (void the authorisation)", void, key="void")
    d.act("closing run (close_term)", "close_term")
    d.payout_balance(expect=lambda b: b.scheduled.amount > 0)
