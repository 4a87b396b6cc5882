"""Bad input is refused with a typed error before any request is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from paygate import (
    Card,
    ConfigurationError,
    InvalidRequest,
    Konbini,
    Money,
    NotSupported,
    Product,
    QRCode,
)
from paygate.adapter import ChargeRef, ChargeRequest, RefundRequest, drive
from paygate_elepay import ElepayProvider, ElepaySettings
from paygate_elepay._api import code_body

YEN_1200 = Money.jpy(1200)


def req(amount=YEN_1200, method=None, **kw):
    return ChargeRequest(amount=amount, method=method or QRCode(), **kw)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (req(amount=Money(1200, "USD")), "amount"),
        (req(amount=Money.jpy(0)), "amount"),
        (req(amount=Money.jpy(-5)), "amount"),
        (req(amount=Money.jpy(2_147_483_648)), "amount"),
        (req(description="x" * 256), "description"),
        (req(metadata={f"k{i}": "v" for i in range(21)}), "metadata"),
        (req(metadata={"routeCode": "a"}), "metadata"),
        (req(metadata={"__internal": "a"}), "metadata"),
        (req(metadata={"k": "あ" * 86}), "metadata"),  # 258 bytes
        (req(metadata={"k": {"nested": "no"}}), "metadata"),
        (req(metadata={"k": 3}), "metadata"),
        (req(metadata={"": "empty key"}), "metadata"),
        (req(method=QRCode(expires_in=timedelta(minutes=2))), "method.expires_in"),
        (req(method=QRCode(expires_in=timedelta(minutes=31))), "method.expires_in"),
        (req(method=QRCode(expires_in=timedelta(minutes=5, seconds=30))), "method.expires_in"),
        (req(method=QRCode(return_url="ftp://shop.example.com/")), "method.return_url"),
        (req(method=QRCode(return_url="javascript:alert(1)")), "method.return_url"),
    ],
)
def test_charge_input_is_refused_before_io(provider, make_gateway, sandbox, request_, param):
    with pytest.raises(InvalidRequest) as info:
        provider.validate_charge(request_)
    assert info.value.param == param
    # The gateway asks the hook before anything is sent: elepay sees no code.
    with pytest.raises(InvalidRequest):
        make_gateway().charge(
            "elepay",
            amount=request_.amount,
            method=request_.method,
            description=request_.description,
            metadata=dict(request_.metadata),
            idempotency_key="order-refused",
        )
    assert not sandbox.host.emulators["elepay"].codes


def test_limits_that_pass(provider):
    provider.validate_charge(req(amount=Money.jpy(1)))
    provider.validate_charge(req(amount=Money.jpy(2_147_483_647)))
    provider.validate_charge(req(description="x" * 255))
    provider.validate_charge(req(metadata={f"k{i}": "v" * 255 for i in range(20)}))
    provider.validate_charge(req(method=QRCode(expires_in=timedelta(minutes=3))))
    provider.validate_charge(req(method=QRCode(expires_in=timedelta(minutes=30))))


def test_a_lower_configured_maximum_is_enforced(settings, make_ctx, no_io):
    provider = ElepayProvider(settings.model_copy(update={"max_amount": 50_000}), account="qr")
    assert provider.capabilities().max_amount == 50_000
    with pytest.raises(InvalidRequest):
        provider.validate_charge(req(amount=Money.jpy(50_001)))


@pytest.mark.parametrize(
    "method",
    [
        Card(token="tok_1"),
        Konbini(store="lawson", customer_name="テスト 太郎", phone="0364413400"),
    ],
)
def test_other_methods_are_not_supported(provider, method):
    with pytest.raises(NotSupported) as info:
        provider.validate_charge(req(method=method))
    assert info.value.alternative == "QRCode()"
    assert "テスト" not in str(info.value)


def test_charge_needs_an_idempotency_key(provider, make_ctx, no_io):
    with pytest.raises(InvalidRequest) as info:
        drive(provider.charge(req(), make_ctx(None)), no_io)
    assert info.value.param == "idempotency_key"


def test_items_from_products_are_checked(provider):
    class WithProducts(QRCode):
        products: tuple[Product, ...] = ()

    good = WithProducts(products=(Product(name="Latte", unit_price=600, quantity=2),))
    provider.validate_charge(req(method=good))
    body = code_body(req(method=good), "order", provider.settings)
    assert body["items"] == [{"name": "Latte", "price": 600, "count": 2}]
    for bad in (
        Product(name="x" * 256, unit_price=1),
        Product(name="Latte", unit_price=-1),
        Product(name="Latte", unit_price=1, quantity=0),
    ):
        with pytest.raises(InvalidRequest) as info:
            provider.validate_charge(req(method=WithProducts(products=(bad,))))
        assert info.value.param == "method.products"


@pytest.mark.parametrize(
    ("amount", "reason"),
    [(Money(100, "USD"), None), (Money.jpy(0), None), (Money.jpy(100), "x" * 256)],
)
def test_refund_input_is_refused_before_io(provider, amount, reason):
    ref = ChargeRef(charge_id="c", provider_ref="code:cd_1", method="qr")
    with pytest.raises(InvalidRequest):
        provider.validate_refund(RefundRequest(charge=ref, amount=amount, reason=reason))


def test_settings_refuse_plain_http_and_bad_urls():
    with pytest.raises(ConfigurationError):
        ElepaySettings(base_url="http://api.elepay.io", secret_key="sk_test_x")
    with pytest.raises(ValidationError):
        ElepaySettings(secret_key="sk_test_x", front_url="not a url")
    with pytest.raises(ValidationError):
        ElepaySettings(secret_key="  ")
    with pytest.raises(ValidationError):
        ElepaySettings(secret_key="sk_test_x", expiry_minutes=31)
    with pytest.raises(ValidationError):
        ElepaySettings(secret_key="sk_test_x", unknown_key=1)
    default = ElepaySettings(secret_key="sk_test_x")
    assert default.base_url == "https://api.elepay.io"
    assert default.verify_webhooks_by_refetch is True
    assert "sk_test_x" not in repr(default)


def test_settings_for_location_and_revoke():
    default = ElepaySettings(secret_key="sk_test_x")
    assert default.location_id is None
    assert default.revoke_paid is False
    with pytest.raises(ValidationError):
        ElepaySettings(secret_key="sk_test_x", location_id="")
    with pytest.raises(ValidationError, match="signs no webhook"):
        ElepaySettings(secret_key="sk_test_x", verify_webhooks_by_refetch=False)
