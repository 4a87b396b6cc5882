"""Public models, errors and the public surface."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import paygate
from paygate import (
    Card,
    Charge,
    ChargeStatus,
    InvalidRequest,
    Konbini,
    Money,
    NotSupported,
    PaygateError,
    PaymentDeclined,
    Wallet,
)

PUBLIC = {
    "AsyncGateway", "AuthenticationError", "Capabilities", "Card", "Charge", "ChargeStatus",
    "ChargeTransition", "ConfigurationError", "DisplayQR", "Event", "EventName", "EventType",
    "Failure", "Gateway", "IdempotencyConflict", "IdempotencyInProgress", "InvalidRequest",
    "Konbini", "KonbiniSlip", "MalformedResponse", "MethodCapabilities", "Money", "NextAction",
    "NotFound", "NotSupported", "OutcomeUnknown", "Page", "PaygateError", "PaymentDeclined",
    "PaymentMethod", "PayoutBalance", "PayoutItem", "PermissionDenied", "PosLine", "PosSale",
    "Product", "ProviderError", "ProviderRejected", "ProviderUnavailable", "QRCode",
    "RateLimited", "ReconcileRow", "Redirect", "Refund", "RefundStatus", "RetryPolicy",
    "Wallet", "WebhookVerificationError", "__version__", "load_config", "reconcile",
}  # fmt: skip


def test_public_surface_is_guarded() -> None:
    assert set(paygate.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(paygate, name)


def test_money_is_integer_and_single_currency() -> None:
    assert Money.jpy(1200) + Money.jpy(300) == Money.jpy(1500)
    assert Money.jpy(1) < Money.jpy(2)
    assert str(Money(1234, "USD")) == "12.34 USD"
    with pytest.raises(InvalidRequest):
        Money(12.5, "JPY")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        Money.jpy(1) + Money(1, "USD")
    with pytest.raises(InvalidRequest):
        _ = Money.jpy(1) < Money(1, "USD")


@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12))
def test_money_arithmetic_is_exact(a: int, b: int) -> None:
    assert (Money.jpy(a) + Money.jpy(b)).amount == a + b
    assert (Money.jpy(a) - Money.jpy(b)) + Money.jpy(b) == Money.jpy(a)


@given(st.sampled_from(list(ChargeStatus)), st.sampled_from(list(ChargeStatus)))
def test_terminal_statuses_never_move(old: ChargeStatus, new: ChargeStatus) -> None:
    if old.is_terminal:
        assert not old.can_become(new)
    if old.can_become(new) and new.can_become(old):
        pytest.fail("a transition and its reverse are both allowed")


def test_personal_data_never_in_reprs() -> None:
    method = Konbini(
        store="seven_eleven",
        customer_name="山田 太郎",
        phone="09012345678",
        email="taro@example.com",
    )
    wallet = Wallet(customer_id="cust-secret-id")
    card = Card(token="tok_abcdef")
    for obj in (method, wallet, card):
        text = repr(obj) + str(obj)
        for secret in ("山田", "09012345678", "taro@example.com", "cust-secret-id", "tok_abcdef"):
            assert secret not in text


def test_charge_raw_is_not_in_repr() -> None:
    charge = Charge(
        id="ch_1",
        account="a",
        provider="p",
        provider_ref="r",
        method="konbini",
        status=ChargeStatus.PENDING,
        amount=Money.jpy(1),
        amount_refunded=Money.jpy(0),
        created_at=datetime.now(UTC),
        raw={"customer_name": "山田 太郎"},
    )
    assert "山田" not in repr(charge)


def test_errors_keep_provider_words_but_redact_personal_data() -> None:
    err = PaymentDeclined(
        "declined for taro@example.com",
        provider="payjp",
        provider_code="card_declined",
        provider_message="カードが拒否されました (090-1234-5678)",
        http_status=402,
    )
    text = str(err) + repr(err)
    assert "taro@example.com" not in text
    assert "090-1234-5678" not in text
    assert "card_declined" in text
    assert "カードが拒否されました" in text
    again = PaygateError.from_dict(err.to_dict())
    assert isinstance(again, PaymentDeclined)
    assert again.provider_code == "card_declined"


def test_not_supported_names_the_alternative() -> None:
    err = NotSupported(
        "refund of a konbini charge", provider="univapay", alternative="cancel it while unpaid"
    )
    assert "cancel it while unpaid" in str(err)
    assert err.alternative == "cancel it while unpaid"
