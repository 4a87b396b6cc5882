"""paygate's provider conformance suite, on both drivers, against the sandbox."""

from __future__ import annotations

from paygate import Card
from paygate.testing import ProviderContract


class TestPayjpContract(ProviderContract):
    provider = "payjp"

    def payment_method(self) -> Card:
        return Card(token="tok_success")

    def declined_method(self) -> Card:
        return Card(token="tok_card_declined")

    def cancelable_method(self) -> Card:
        # PAY.JP cancels by voiding an authorisation; a captured charge is refunded.
        return Card(token="tok_success", capture=False)
