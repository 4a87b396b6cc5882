"""``paygate demo`` for PAY.JP: the real flows against the sandbox's PAY.JP emulator."""

from __future__ import annotations

from typing import Any

from paygate import Card, ChargeStatus, Money

__all__ = ["demo"]

PROVIDER = "payjp"
_DEMO_CARD = "tok_success"


def demo(d: Any) -> None:
    """A card charge refunded in two parts, an authorisation captured in part, a 3-D
    Secure charge, a void, then a closing run and the payout balance.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`): ``d.gateway``,
    ``d.sandbox`` and ``d.step(operation, fn, expect=...)``::

        PayjpProvider.demo_script()(d)
    """
    gw, account = d.gateway, d.account
    charge = d.step(
        "charge 12,000 JPY (tok_success)",
        lambda: gw.charge(
            account,
            amount=Money.jpy(12_000),
            method=Card(token=_DEMO_CARD),
            idempotency_key="demo-payjp-order-1",
        ),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    d.step(
        "refund 1,000 JPY",
        lambda: gw.refund(
            account, charge.id, amount=Money.jpy(1_000), idempotency_key="demo-payjp-r1"
        ),
    )
    d.step(
        "refund the rest",
        lambda: gw.refund(account, charge.id, idempotency_key="demo-payjp-r2"),
    )
    d.step(
        "status",
        lambda: gw.status(account, charge.id),
        expect=lambda c: c.status is ChargeStatus.REFUNDED,
    )
    auth = d.step(
        "authorise 3,000 JPY",
        lambda: gw.charge(
            account,
            amount=Money.jpy(3_000),
            method=Card(token=_DEMO_CARD, capture=False),
            idempotency_key="demo-payjp-order-2",
        ),
        expect=lambda c: c.status is ChargeStatus.AUTHORIZED,
    )
    d.step(
        "capture 2,500 JPY",
        lambda: gw.capture(
            account, auth.id, amount=Money.jpy(2_500), idempotency_key="demo-payjp-cap"
        ),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    tds = d.step(
        "charge with 3-D Secure",
        lambda: gw.charge(
            account,
            amount=Money.jpy(8_000),
            method=Card(token=_DEMO_CARD, three_d_secure=True),
            idempotency_key="demo-payjp-order-3",
        ),
        expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
    )
    d.step(
        "customer passes 3-D Secure",
        lambda: d.sandbox.control(PROVIDER, "tds", charge=tds.provider_ref),
    )
    d.step(
        "status (tds_finish)",
        lambda: gw.status(account, tds.id),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    void = d.step(
        "authorise 1,500 JPY",
        lambda: gw.charge(
            account,
            amount=Money.jpy(1_500),
            method=Card(token=_DEMO_CARD, capture=False),
            idempotency_key="demo-payjp-order-4",
        ),
    )
    d.step(
        "cancel (void the authorisation)",
        lambda: gw.cancel(account, void.id, idempotency_key="demo-payjp-void"),
        expect=lambda c: c.status is ChargeStatus.CANCELED,
    )
    d.step("closing run (close_term)", lambda: d.sandbox.control(PROVIDER, "close_term"))
    d.step(
        "payout balance",
        lambda: gw.payout_balance(account),
        expect=lambda b: b.scheduled.amount > 0,
    )
