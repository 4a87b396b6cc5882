"""`ProviderContract`: the conformance suite every adapter passes, on both drivers.

Subclass it in the adapter's tests, name the provider and say how to pay::

    class TestPayjpContract(ProviderContract):
        provider = "payjp"

        def payment_method(self):
            return Card(token="tok_success")

        def declined_method(self):
            return Card(token="tok_card_declined")

Every test runs once with the blocking driver and once with the asyncio driver, against
the sandbox (``paygate_sandbox``).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest

from .._errors import IdempotencyConflict, InvalidRequest, NotSupported, PaymentDeclined
from .._models import Charge, ChargeStatus, PaymentMethod, PayoutBalance, Refund
from .._money import Money

__all__ = ["ProviderContract"]

_keys = itertools.count(1)


class ProviderContract:
    """Base class of the provider conformance suite (see module docs)."""

    #: Provider (and sandbox emulator) name.
    provider: ClassVar[str]
    #: An amount the provider accepts.
    amount: ClassVar[Money] = Money.jpy(1200)

    # -- hooks ------------------------------------------------------------------

    def payment_method(self) -> PaymentMethod:
        """A payment method that succeeds (possibly after `complete_payment`)."""
        raise NotImplementedError

    def method_for(self, amount: Money) -> PaymentMethod:
        """The payment method for a charge of ``amount`` (default: `payment_method`).

        Override when the method depends on the amount (a POS sale's lines add up to it).
        """
        return self.payment_method()

    def declined_method(self) -> PaymentMethod | None:
        """A payment method the provider declines at charge time (None: not applicable)."""
        return None

    def complete_payment(self, sandbox: Any, charge: Charge) -> None:
        """Do the customer's part so that ``charge`` gets paid (scan, pay a slip, ...)."""

    def cancelable_method(self) -> PaymentMethod | None:
        """A payment method whose fresh charge can be cancelled (default: payment_method)."""
        return self.payment_method()

    # -- fixtures -----------------------------------------------------------------

    @pytest.fixture(params=["sync", "async"])
    def gateway(self, request: pytest.FixtureRequest, make_gateway: Any) -> Any:
        """A gateway on the sandbox, once per driver."""
        return make_gateway(driver=request.param)

    def key(self, label: str) -> str:
        """A fresh idempotency key."""
        return f"contract-{self.provider}-{label}-{next(_keys)}"

    def charge(self, gateway: Any, key: str | None = None, amount: Money | None = None) -> Charge:
        amount = amount or self.amount
        return gateway.charge(  # type: ignore[no-any-return]
            self.provider,
            amount=amount,
            method=self.method_for(amount),
            idempotency_key=key or self.key("charge"),
        )

    def paid_charge(self, gateway: Any, sandbox: Any) -> Charge:
        charge = self.charge(gateway)
        if not charge.paid:
            self.complete_payment(sandbox, charge)
            charge = gateway.status(self.provider, charge.id)
        return charge

    # -- the contract -----------------------------------------------------------------

    def test_capabilities_describe_the_method(self, gateway: Any) -> None:
        caps = gateway.capabilities(self.provider)
        assert caps.provider == self.provider
        assert self.payment_method().type in caps.methods

    def test_charge_then_status(self, gateway: Any, sandbox: Any) -> None:
        charge = self.charge(gateway)
        assert charge.provider == self.provider
        assert charge.amount == self.amount
        assert charge.status in {
            ChargeStatus.PENDING,
            ChargeStatus.REQUIRES_ACTION,
            ChargeStatus.AUTHORIZED,
            ChargeStatus.SUCCEEDED,
        }
        self.complete_payment(sandbox, charge)
        fresh = gateway.status(self.provider, charge.id)
        assert fresh.id == charge.id
        assert fresh.provider_ref == charge.provider_ref or fresh.provider_ref
        assert fresh.status in {ChargeStatus.SUCCEEDED, ChargeStatus.AUTHORIZED}

    def test_same_key_replays_the_same_charge(self, gateway: Any) -> None:
        key = self.key("replay")
        first = self.charge(gateway, key)
        again = self.charge(gateway, key)
        assert again.id == first.id
        assert again.provider_ref == first.provider_ref

    def test_same_key_other_request_conflicts(self, gateway: Any) -> None:
        key = self.key("conflict")
        self.charge(gateway, key)
        with pytest.raises(IdempotencyConflict):
            self.charge(gateway, key, amount=self.amount + Money(1, self.amount.currency))

    def test_bad_input_is_refused_before_any_request(self, gateway: Any, sandbox: Any) -> None:
        before = sandbox.host.request_count
        with pytest.raises(InvalidRequest):
            self.charge(
                gateway,
                amount=Money(100, "USD") if self.amount.currency != "USD" else Money(0, "USD"),
            )
        with pytest.raises(InvalidRequest):
            gateway.charge(
                self.provider,
                amount=self.amount,
                method=self.method_for(self.amount),
                idempotency_key="",
            )
        assert sandbox.host.request_count == before

    def test_refund_or_cancel(self, gateway: Any, sandbox: Any) -> None:
        caps = gateway.capabilities(self.provider).methods[self.payment_method().type]
        if caps.refund != "none":
            charge = self.paid_charge(gateway, sandbox)
            refund = gateway.refund(self.provider, charge.id, idempotency_key=self.key("refund"))
            assert isinstance(refund, Refund)
            assert refund.amount == charge.amount
            after = gateway.status(self.provider, charge.id)
            assert after.status is ChargeStatus.REFUNDED
        else:
            charge = self.paid_charge(gateway, sandbox)
            with pytest.raises(NotSupported):
                gateway.refund(self.provider, charge.id, idempotency_key=self.key("refund"))
        method = self.cancelable_method()
        if caps.cancel and method is not None:
            fresh = gateway.charge(
                self.provider, amount=self.amount, method=method, idempotency_key=self.key("cancel")
            )
            canceled = gateway.cancel(self.provider, fresh.id)
            assert canceled.status in {ChargeStatus.CANCELED, ChargeStatus.REFUNDED}
            again = gateway.status(self.provider, fresh.id)
            assert again.status == canceled.status

    def test_payout_balance_or_not_supported(self, gateway: Any) -> None:
        caps = gateway.capabilities(self.provider)
        if caps.payout_balance:
            balance = gateway.payout_balance(self.provider)
            assert isinstance(balance, PayoutBalance)
            assert balance.account == self.provider
        else:
            with pytest.raises(NotSupported):
                gateway.payout_balance(self.provider)

    def test_declined_payment_keeps_the_provider_code(self, gateway: Any) -> None:
        method = self.declined_method()
        if method is None:
            pytest.skip(f"{self.provider} has no decline at charge time")
        key = self.key("declined")
        with pytest.raises(PaymentDeclined) as first:
            gateway.charge(self.provider, amount=self.amount, method=method, idempotency_key=key)
        assert first.value.provider_code
        assert first.value.provider == self.provider
        with pytest.raises(PaymentDeclined) as replay:
            gateway.charge(self.provider, amount=self.amount, method=method, idempotency_key=key)
        assert replay.value.provider_code == first.value.provider_code

    def test_unknown_charge_id_is_refused(self, gateway: Any) -> None:
        with pytest.raises(InvalidRequest):
            gateway.status(self.provider, "ch_doesnotexist")
