"""The ``paygate demo`` script of UnivaPay (offered by `UnivapayProvider.demo_script`)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from paygate import ChargeStatus, Konbini, Money, NotSupported

__all__ = ["demo"]


def demo(d: Any) -> None:
    """``paygate demo``: a FamilyMart slip paid by the customer, the refund UnivaPay
    cannot do, a second slip cancelled unpaid, and the payout that follows.

    ``d`` is the ``paygate demo`` driver (`paygate.cli._demo.Demo`)::

        paygate demo --provider univapay
    """
    s = ChargeStatus
    slip = Konbini(
        store="family_mart",
        customer_name="テスト 太郎",
        phone="03-6441-3400",
        email="demo@example.com",
        expires_in=timedelta(days=7),
    )

    def refund_refused() -> Any:
        try:
            d.gateway.refund(d.account, charge.id, idempotency_key=d.key("r1"))
        except NotSupported as exc:
            return SimpleNamespace(status=f"not supported; {exc.alternative}")
        raise AssertionError("a konbini refund must be refused")

    charge = d.charge(
        "charge (konbini slip)", slip, amount=1200, key="order-1", expect=s.REQUIRES_ACTION
    )
    d.act("customer pays at FamilyMart", "pay_konbini", charge_id=charge.provider_ref)
    d.status(charge, s.SUCCEEDED)
    d.step("refund (konbini)", refund_refused)
    other = d.charge(
        "charge (second slip)", slip, amount=800, key="order-2", expect=s.REQUIRES_ACTION
    )
    d.cancel("cancel the unpaid slip", other)
    d.act("transfer created", "run_transfer")
    d.payout_balance(expect=lambda b: b.scheduled == Money.jpy(1200))
