"""The ``paygate demo`` script of UnivaPay (offered by `UnivapayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from paygate import ChargeStatus, Konbini, Money, NotSupported

__all__ = ["demo"]


def demo(demo: Any) -> None:
    """``paygate demo``: a FamilyMart slip paid by the customer, the refund UnivaPay
    cannot do, a second slip cancelled unpaid, and the payout that follows.

    ``demo`` is a `paygate.cli.Demo`: ``demo.gateway`` has an account named after the
    provider on the sandbox, ``demo.sandbox`` drives the customer's side::

        paygate demo univapay
    """
    gw, account = demo.gateway, demo.account

    def slip(key: str, amount: int) -> Any:
        method = Konbini(
            store="family_mart",
            customer_name="テスト 太郎",
            phone="03-6441-3400",
            email="demo@example.com",
            expires_in=timedelta(days=7),
        )
        return gw.charge(account, amount=Money.jpy(amount), method=method, idempotency_key=key)

    def refund_refused() -> Any:
        try:
            gw.refund(account, charge.id, idempotency_key="demo-univapay-r1")
        except NotSupported as exc:
            return SimpleNamespace(status=f"not supported; {exc.alternative}")
        raise AssertionError("a konbini refund must be refused")

    charge = demo.step(
        "charge (konbini slip)",
        lambda: slip("demo-univapay-order-1", 1200),
        expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
    )
    demo.step(
        "customer pays at FamilyMart",
        lambda: demo.sandbox.control("univapay", "pay_konbini", charge_id=charge.provider_ref),
    )
    demo.step(
        "status",
        lambda: gw.status(account, charge.id),
        expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
    )
    demo.step("refund (konbini)", refund_refused)
    other = demo.step(
        "charge (second slip)",
        lambda: slip("demo-univapay-order-2", 800),
        expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
    )
    demo.step(
        "cancel the unpaid slip",
        lambda: gw.cancel(account, other.id),
        expect=lambda c: c.status is ChargeStatus.CANCELED,
    )
    demo.step("transfer created", lambda: demo.sandbox.control("univapay", "run_transfer"))
    demo.step(
        "payout balance",
        lambda: gw.payout_balance(account),
        expect=lambda b: b.scheduled == Money.jpy(1200),
    )
