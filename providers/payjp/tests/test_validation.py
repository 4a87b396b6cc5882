"""Bad input is refused before any request; settings and secrets are handled safely."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from paygate import Card, ConfigurationError, InvalidRequest, Money, NotSupported, QRCode
from paygate.adapter import ChargeRef, ChargeRequest, RefundRequest
from paygate_payjp import PayjpProvider, PayjpSettings


def charge(**changes: Any) -> ChargeRequest:
    data: dict[str, Any] = {"amount": Money.jpy(1000), "method": Card(token="tok_success")}
    data.update(changes)
    return ChargeRequest(**data)


REF = ChargeRef(charge_id="pg_1", provider_ref="ch_1", method="card", amount=Money.jpy(1000))


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (charge(amount=Money.jpy(49)), "amount"),
        (charge(amount=Money.jpy(10_000_000)), "amount"),
        (charge(amount=Money(1000, "USD")), "amount.currency"),
        (charge(description="x" * 256), "description"),
        (charge(metadata={f"k{i}": "v" for i in range(21)}), "metadata"),
        (charge(metadata={"k" * 41: "v"}), "metadata"),
        (charge(metadata={"": "v"}), "metadata"),
        (charge(metadata={"a[b]": "v"}), "metadata"),
        (charge(metadata={"k": "v" * 501}), "metadata.k"),
        (charge(metadata={"k": {"nested": "no"}}), "metadata.k"),
        (charge(metadata={"k": 5}), "metadata.k"),
    ],
)
def test_charge_is_refused_before_io(
    provider: PayjpProvider, request_: ChargeRequest, param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.validate_charge(request_)
    assert info.value.param == param


def test_limits_are_inclusive(provider: PayjpProvider) -> None:
    provider.validate_charge(charge(amount=Money.jpy(50)))
    provider.validate_charge(charge(amount=Money.jpy(9_999_999)))
    provider.validate_charge(charge(metadata={f"k{i}": "v" * 500 for i in range(20)}))
    provider.validate_charge(charge(description="x" * 255))


def test_other_methods_are_not_supported(provider: PayjpProvider) -> None:
    with pytest.raises(NotSupported):
        provider.validate_charge(charge(method=QRCode()))


def test_three_d_secure_needs_the_public_key(settings_factory: Any) -> None:
    provider = PayjpProvider(settings_factory(public_key=None), account="card")
    req = charge(method=Card(token="tok_success", three_d_secure=True))
    with pytest.raises(InvalidRequest) as info:
        provider.validate_charge(req)
    assert info.value.param == "method.three_d_secure"


def test_charge_needs_an_idempotency_key(provider: PayjpProvider, make_ctx: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.charge(charge(), make_ctx(key=None))
    assert info.value.param == "idempotency_key"


@pytest.mark.parametrize(
    ("amount", "reason", "param"),
    [
        (Money.jpy(0), None, "amount"),
        (Money.jpy(10_000_000), None, "amount"),
        (Money(100, "EUR"), None, "amount.currency"),
        (Money.jpy(100), "x" * 256, "reason"),
    ],
)
def test_refund_is_refused_before_io(
    provider: PayjpProvider, amount: Money, reason: str | None, param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        provider.validate_refund(RefundRequest(charge=REF, amount=amount, reason=reason))
    assert info.value.param == param


def test_public_key_is_refused_as_secret_key(settings_factory: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        PayjpProvider(settings_factory(secret_key="pk_test_abcdef"), account="card")
    assert info.value.key == "secret_key"
    assert "pk_test_abcdef" not in str(info.value)


def test_secret_key_as_public_key_is_refused_silently(settings_factory: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        PayjpProvider(settings_factory(public_key="sk_test_misplaced01"), account="card")
    assert info.value.key == "public_key"
    assert "sk_test_misplaced01" not in str(info.value)


def test_base_url_rules() -> None:
    assert PayjpSettings(secret_key="sk_test_1").base_url == "https://api.pay.jp"
    settings = PayjpSettings(secret_key="sk_test_1", base_url="https://api.pay.jp/v1/")
    assert settings.base_url == "https://api.pay.jp"
    loopback = PayjpSettings(secret_key="sk_test_1", base_url="http://127.0.0.1:8080/payjp")
    assert loopback.base_url == "http://127.0.0.1:8080/payjp"
    with pytest.raises(ConfigurationError) as info:
        PayjpSettings(secret_key="sk_test_1", base_url="http://api.pay.jp")
    assert info.value.key == "base_url"
    with pytest.raises(ValidationError):
        PayjpSettings(secret_key="sk_test_1", unknown=True)  # type: ignore[call-arg]


def test_secrets_never_show(settings_factory: Any) -> None:
    secret = "sk_test_verysecret0123456789"
    token = "whook_verysecret0123456789"
    settings = settings_factory(secret_key=secret, webhook_token=token)
    provider = PayjpProvider(settings, account="card")
    assert secret not in repr(settings)
    assert token not in repr(settings)
    assert secret not in repr(provider)
    err = InvalidRequest(f"echo {secret} {token}")
    assert secret not in str(err)
    assert token not in str(err)
    call = provider.api.get("/v1/charges", step="charges.list")
    assert secret not in repr(call)
    auth = call.headers["Authorization"].split()[1]
    assert auth not in str(InvalidRequest(f"header was {auth}"))
