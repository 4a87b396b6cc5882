"""paygate's provider conformance suite, on both drivers, against the sandbox."""

from __future__ import annotations

from typing import Any

from paygate import Charge, Money, PosLine, PosSale
from paygate.testing import ProviderContract


def sale_for(amount: Money) -> PosSale:
    """A sale whose one line sums to ``amount`` (Smaregi checks lines against the total)."""
    return PosSale(
        store_id="1",
        terminal_id="1",
        lines=(PosLine(product_id="8000001", unit_price=amount.amount),),
    )


class TestSmaregiContract(ProviderContract):
    provider = "smaregi"

    def payment_method(self) -> PosSale:
        return sale_for(self.amount)

    def charge(self, gateway: Any, key: str | None = None, amount: Money | None = None) -> Charge:
        # The base helper reuses one method for any amount; a Smaregi sale's lines must
        # add up to the amount, so the sale follows the amount (the request still
        # differs, which is what the conflict test needs).
        amount = amount or self.amount
        result: Charge = gateway.charge(
            self.provider,
            amount=amount,
            method=sale_for(amount),
            idempotency_key=key or self.key("charge"),
        )
        return result
