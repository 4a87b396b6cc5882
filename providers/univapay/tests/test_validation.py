"""Bad input is refused with `InvalidRequest` (or `NotSupported`) before any call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from paygate import InvalidRequest, Konbini, Money, NotSupported, QRCode
from paygate._models import Card
from paygate.adapter import ChargeRequest, OpContext
from paygate_univapay import UnivapayProvider, UnivapaySettings
from paygate_univapay._validate import normalize_phone
from paygate_univapay._wire import iso_duration, normalize_store, parse_duration

STORE = "11f0c0de-5702-4000-8000-70617967a7e0"


@pytest.fixture
def prov() -> UnivapayProvider:
    return UnivapayProvider(
        UnivapaySettings(store_id=STORE, secret="validation_secret", jwt="a.b.c"), account="k"
    )


def ctx() -> OpContext:
    return OpContext(account="k", provider="univapay", idempotency_key="order-1")


def konbini(**kw: Any) -> Konbini:
    values: dict[str, Any] = {
        "store": "family_mart",
        "customer_name": "テスト 太郎",
        "phone": "0364413400",
    }
    values.update(kw)
    return Konbini(**values)


def refuses(prov: UnivapayProvider, req: ChargeRequest) -> InvalidRequest:
    """Assert validate_charge (which the gateway calls before any request) refuses ``req``."""
    with pytest.raises(InvalidRequest) as info:
        prov.validate_charge(req)
    return info.value


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"store": "bogus_mart"}, "method.store"),
        ({"store": ""}, "method.store"),
        ({"customer_name": "   "}, "method.customer_name"),
        ({"customer_name": "x" * 256}, "method.customer_name"),
        ({"customer_name": "太郎\x00"}, "method.customer_name"),
        ({"phone": "12345"}, "method.phone"),
        ({"phone": "+1 415 555 0100"}, "method.phone"),
        ({"phone": "03-6441-340a"}, "method.phone"),
        ({"phone": "0364413400123"}, "method.phone"),
        ({"email": "not-an-email"}, "method.email"),
        ({"email": "a@b.c" + "x" * 260}, "method.email"),
        ({"expires_in": timedelta(seconds=30)}, "method.expires_in"),
        ({"expires_in": timedelta(days=61)}, "method.expires_in"),
        ({"expires_in": timedelta(days=-1)}, "method.expires_in"),
        ({"expires_in": timedelta(days=1, microseconds=5)}, "method.expires_in"),
    ],
)
def test_konbini_fields(prov: UnivapayProvider, kw: dict[str, Any], param: str) -> None:
    err = refuses(prov, ChargeRequest(amount=Money.jpy(1200), method=konbini(**kw)))
    assert err.param == param


def test_messages_never_echo_personal_data(prov: UnivapayProvider) -> None:
    err = refuses(
        prov, ChargeRequest(amount=Money.jpy(1200), method=konbini(phone="+1 415 555 0100"))
    )
    assert "415" not in str(err)
    err = refuses(prov, ChargeRequest(amount=Money.jpy(1200), method=konbini(email="taro@x")))
    assert "taro" not in str(err)


@pytest.mark.parametrize(
    ("amount", "param"),
    [
        (Money.jpy(0), "amount"),
        (Money.jpy(-5), "amount"),
        (Money.jpy(300_000), "amount"),
        (Money(1200, "USD"), "currency"),
    ],
)
def test_amounts(prov: UnivapayProvider, amount: Money, param: str) -> None:
    err = refuses(prov, ChargeRequest(amount=amount, method=konbini()))
    assert err.param == param


def test_limits_accept_edges(prov: UnivapayProvider) -> None:
    prov.validate_charge(ChargeRequest(amount=Money.jpy(1), method=konbini()))
    prov.validate_charge(ChargeRequest(amount=Money.jpy(299_999), method=konbini()))
    prov.validate_charge(
        ChargeRequest(amount=Money.jpy(100), method=konbini(expires_in=timedelta(days=60)))
    )
    prov.validate_charge(
        ChargeRequest(amount=Money.jpy(100), method=konbini(expires_in=timedelta(minutes=1)))
    )


@pytest.mark.parametrize(
    ("metadata", "description"),
    [
        ({"k": {"nested": "x"}}, None),
        ({"k": ["a"]}, None),
        ({"k" * 65: "v"}, None),
        ({"k": "v" * 501}, None),
        ({}, "d" * 256),
        ({}, " "),
    ],
)
def test_metadata_and_description(
    prov: UnivapayProvider, metadata: dict[str, Any], description: str | None
) -> None:
    req = ChargeRequest(
        amount=Money.jpy(1200), method=konbini(), metadata=metadata, description=description
    )
    err = refuses(prov, req)
    assert err.param == ("description" if description is not None else "metadata")


def test_other_methods_not_supported(prov: UnivapayProvider) -> None:
    with pytest.raises(NotSupported):
        prov.validate_charge(ChargeRequest(amount=Money.jpy(100), method=QRCode()))
    with pytest.raises(NotSupported):
        prov.validate_charge(ChargeRequest(amount=Money.jpy(100), method=Card(customer="cus_1")))
    with pytest.raises(NotSupported):
        prov.validate_charge(
            ChargeRequest(amount=Money.jpy(100), method=Card(token="t", three_d_secure=True))
        )
    err = refuses(prov, ChargeRequest(amount=Money.jpy(100), method=Card(token="  ")))
    assert err.param == "method.token"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("family_mart", "family_mart"),
        ("FamilyMart", "family_mart"),
        ("7-Eleven", "seven_eleven"),
        ("seven eleven", "seven_eleven"),
        ("MINISTOP", "mini_stop"),
        ("Seicomart", "seico_mart"),
        ("pay-easy", "pay_easy"),
        ("circle_k", "circle_k"),
        ("yamazaki_daily_store", "yamazaki_daily_store"),
        ("daily yamazaki", "daily_yamazaki"),
        ("walmart", None),
    ],
)
def test_store_normalisation(given: str, expected: str | None) -> None:
    assert normalize_store(given) == expected


@pytest.mark.parametrize(
    ("phone", "local"),
    [
        ("0364413400", "0364413400"),
        ("03-6441-3400", "0364413400"),
        ("090 1234 5678", "09012345678"),
        ("+81-90-1234-5678", "09012345678"),
        ("+81 (0)3 6441 3400", "0364413400"),
        ("0081364413400", "0364413400"),
        ("０３６４４１３４００", "0364413400"),
    ],
)
def test_phone_normalisation(phone: str, local: str) -> None:
    assert normalize_phone(phone) == ("81", local)


def test_durations_round_trip() -> None:
    for delta in (timedelta(days=7), timedelta(hours=5), timedelta(days=2, minutes=3, seconds=4)):
        assert parse_duration(iso_duration(delta)) == delta
    assert parse_duration("P") is None
    assert parse_duration("7 days") is None
    assert parse_duration("P1W") == timedelta(days=7)
