"""The provider conformance suite, on both drivers, against the sandbox: once for wallet
payments and once for Cashtray QR codes."""

from __future__ import annotations

from typing import Any

from paygate import Charge, PaymentMethod, QRCode, Wallet
from paygate.testing import ProviderContract
from paygate_pokepay import SANDBOX


class TestWalletContract(ProviderContract):
    provider = "pokepay"

    def payment_method(self) -> PaymentMethod:
        return Wallet(customer_id=SANDBOX.customers["funded"][0])

    def declined_method(self) -> PaymentMethod | None:
        # ¥1,200 from a wallet holding ¥300: account_balance_not_enough.
        return Wallet(customer_id=SANDBOX.customers["low_balance"][0])


class TestCashtrayContract(ProviderContract):
    provider = "pokepay"

    def payment_method(self) -> PaymentMethod:
        return QRCode()

    def complete_payment(self, sandbox: Any, charge: Charge) -> None:
        assert charge.next_action is not None
        sandbox.control("pokepay", "scan_cashtray", token=charge.next_action.url)
