"""UnivaPay passes paygate's provider conformance suite, on both drivers.

Two runs: konbini slips (the customer pays through the sandbox) and cards (the
emulator's reusable seed tokens).
"""

from __future__ import annotations

from typing import Any

from paygate import Card, Charge, Konbini
from paygate.testing import ProviderContract
from paygate_univapay._emulator import SEED_CARD_TOKENS


class TestUnivapayKonbiniContract(ProviderContract):
    provider = "univapay"

    def payment_method(self) -> Konbini:
        return Konbini(
            store="family_mart",
            customer_name="テスト 太郎",
            phone="0364413400",
            email="demo@example.com",
        )

    def complete_payment(self, sandbox: Any, charge: Charge) -> None:
        # The customer pays the slip at the store.
        if not charge.paid:
            sandbox.control("univapay", "pay_konbini", charge_id=charge.provider_ref)


class TestUnivapayCardContract(ProviderContract):
    provider = "univapay"

    def payment_method(self) -> Card:
        return Card(token=SEED_CARD_TOKENS["success"])

    def declined_method(self) -> Card:
        return Card(token=SEED_CARD_TOKENS["declined"])

    def cancelable_method(self) -> Card:
        # UnivaPay voids an authorisation; a captured card charge is refunded instead.
        return Card(token=SEED_CARD_TOKENS["success"], capture=False)
