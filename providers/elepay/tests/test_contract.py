"""elepay passes paygate's provider conformance suite, on both drivers."""

from __future__ import annotations

from typing import Any

from paygate import Charge, QRCode
from paygate.testing import ProviderContract


class TestElepayContract(ProviderContract):
    provider = "elepay"

    def payment_method(self) -> QRCode:
        return QRCode()

    def complete_payment(self, sandbox: Any, charge: Charge) -> None:
        # The payer scans the EasyQR code and pays with a wallet brand.
        code_id = charge.provider_ref.partition(":")[2]
        sandbox.control("elepay", "pay_code", code_id=code_id, payment_method="paypay")
