"""The adapter kit's usual refusals, capabilities keyed by method, pattern validators."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from paygate import Card, Money, NotSupported, PosSale, QRCode, Wallet
from paygate._models import MethodCapabilities
from paygate.adapter import (
    ChargeRequest,
    capabilities_of,
    matching,
    only_method,
    whole_refunds_only,
)


def _req(method: Card | QRCode | Wallet) -> ChargeRequest:
    return ChargeRequest(amount=Money.jpy(500), method=method)


def test_only_method_returns_the_method_of_an_accepted_kind() -> None:
    method = QRCode()
    assert only_method(_req(method), QRCode, provider="toypay") is method
    assert only_method(_req(method), Wallet, QRCode, provider="toypay") is method


def test_only_method_refuses_other_kinds_with_reason_and_alternative() -> None:
    with pytest.raises(NotSupported) as info:
        only_method(
            _req(Card(token="tok_1")),
            PosSale,
            provider="toypay",
            reason="toypay registers POS sales only",
            alternative="PosSale",
        )
    error = info.value
    assert error.capability == "method 'card'"
    assert error.provider == "toypay"
    assert error.reason == "toypay registers POS sales only"
    assert error.alternative == "PosSale"


def test_only_method_without_reason_or_alternative() -> None:
    with pytest.raises(NotSupported) as info:
        only_method(_req(QRCode()), Card, provider="toypay")
    assert info.value.reason is None
    assert info.value.alternative is None


def test_whole_refunds_only_is_a_fresh_refusal_each_time() -> None:
    first = whole_refunds_only(provider="toypay", reason="whole only", alternative="amount=None")
    second = whole_refunds_only(provider="toypay", reason="whole only", alternative="amount=None")
    assert first is not second
    assert isinstance(first, NotSupported)
    assert (first.capability, first.provider) == ("partial refund", "toypay")
    assert (first.reason, first.alternative) == ("whole only", "amount=None")


def test_capabilities_keys_methods_by_their_name() -> None:
    card = MethodCapabilities(method="card", refund="partial", capture=True)
    qr = MethodCapabilities(method="qr", refund="full")
    caps = capabilities_of("toypay", card, qr, min_amount=1, webhooks=True)
    assert list(caps.methods) == ["card", "qr"]
    assert caps.methods["card"] is card
    assert (caps.provider, caps.min_amount, caps.webhooks) == ("toypay", 1, True)
    assert caps.currencies == ("JPY",)


class _Toy(BaseModel):
    store_id: str | None = None
    code: str = "a"
    _store = field_validator("store_id")(matching(re.compile(r"[0-9]{1,9}"), "1-9 digits"))
    _code = field_validator("code")(matching(re.compile(r"[a-z]+"), "lower-case letters"))


def test_matching_passes_none_and_whole_matches() -> None:
    assert _Toy().store_id is None
    assert _Toy(store_id="123456789", code="abc").store_id == "123456789"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"store_id": "1234567890"}, "1-9 digits"),
        ({"store_id": "12a"}, "1-9 digits"),
        ({"store_id": "12\n"}, "1-9 digits"),
        ({"code": "abc1"}, "lower-case letters"),
        ({"code": ""}, "lower-case letters"),
    ],
)
def test_matching_refuses_what_does_not_match_as_a_whole(
    fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _Toy(**fields)
    assert info.value.errors()[0]["msg"] == f"Value error, {message}"
