"""Bad input is refused with `InvalidRequest` (naming the parameter) before any I/O."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from paygate import (
    ConfigurationError,
    InvalidRequest,
    Money,
    NotSupported,
    PosLine,
    PosSale,
    QRCode,
)
from paygate.adapter import ChargeRequest
from paygate_smaregi import SmaregiProvider, SmaregiSettings

SETTINGS: dict[str, Any] = {
    "client_id": "cid",
    "client_secret": "s3cr3t-value",
    "contract_id": "c1",
    "base_url": "https://api.smaregi.dev",
    "id_base_url": "https://id.smaregi.dev",
}


def provider(**kw: Any) -> SmaregiProvider:
    return SmaregiProvider(SmaregiSettings(**{**SETTINGS, **kw}), account="pos")


def request(amount: int = 1000, currency: str = "JPY", **kw: Any) -> ChargeRequest:
    description = kw.pop("description", None)
    metadata = kw.pop("metadata", {})
    fields: dict[str, Any] = {
        "store_id": "1",
        "terminal_id": "1",
        "lines": (PosLine(product_id="8000001", unit_price=500, quantity=2),),
    }
    fields.update(kw)
    return ChargeRequest(
        amount=Money(amount, currency),
        method=PosSale(**fields),
        description=description,
        metadata=metadata,
    )


def refused(req: ChargeRequest, p: SmaregiProvider | None = None) -> InvalidRequest:
    target = p or provider()
    # The gateway runs the check once, before any I/O; the flows do not check again.
    with pytest.raises(InvalidRequest) as info:
        target.validate_charge(req)
    return info.value


def test_valid_sale_passes() -> None:
    provider().validate_charge(request())


def test_currency_must_be_jpy() -> None:
    assert refused(request(currency="USD", amount=1000)).param == "amount.currency"


@pytest.mark.parametrize("amount", [0, 1_000_000_000])
def test_amount_range(amount: int) -> None:
    line = PosLine(product_id="1", unit_price=amount, quantity=1)
    assert refused(request(amount=amount, lines=(line,))).param == "amount"


def test_lines_must_sum_to_amount() -> None:
    err = refused(request(amount=1200))
    assert err.param == "method.lines"
    assert "1000" in str(err)
    assert "1200" in str(err)


@pytest.mark.parametrize("store_id", ["", "abc", "1234567890", "1-2"])
def test_store_id_format(store_id: str) -> None:
    assert refused(request(store_id=store_id)).param == "method.store_id"


@pytest.mark.parametrize("terminal_id", ["", "0", "01", "1234567890", "x"])
def test_terminal_id_format(terminal_id: str) -> None:
    assert refused(request(terminal_id=terminal_id)).param == "method.terminal_id"


def test_store_and_terminal_default_from_settings() -> None:
    p = provider(store_id="3", terminal_id="7")
    p.validate_charge(request(store_id="", terminal_id=""))


def test_memo_length() -> None:
    assert refused(request(memo="x" * 1001)).param == "method.memo"
    provider().validate_charge(request(memo="x" * 1000))


def test_description_used_as_memo_is_checked() -> None:
    assert refused(request(description="x" * 1001)).param == "description"


def test_line_needs_product_or_name() -> None:
    line = PosLine(unit_price=1000, quantity=1)
    assert refused(request(lines=(line,))).param == "method.lines[0]"
    provider().validate_charge(request(lines=(PosLine(name="コーヒー", unit_price=1000),)))


def test_product_id_numeric() -> None:
    line = PosLine(product_id="ABC", unit_price=1000)
    assert refused(request(lines=(line,))).param == "method.lines[0].product_id"


def test_product_name_length() -> None:
    line = PosLine(name="あ" * 86, unit_price=1000)
    assert refused(request(lines=(line,))).param == "method.lines[0].name"


def test_quantity_positive() -> None:
    lines = (
        PosLine(product_id="1", unit_price=1000, quantity=1),
        PosLine(product_id="2", unit_price=500, quantity=0),
    )
    assert refused(request(lines=lines)).param == "method.lines[1].quantity"


def test_slip_number_and_card_company() -> None:
    assert refused(request(slip_number="x" * 21)).param == "method.slip_number"
    assert refused(request(slip_number="伝票")).param == "method.slip_number"
    assert refused(request(card_company="C" * 21)).param == "method.card_company"
    provider().validate_charge(request(slip_number="A-0001", card_company="JCB"))


def test_metadata_must_be_flat() -> None:
    assert refused(request(metadata={"order": {"id": 1}})).param == "metadata"


def test_other_methods_not_supported() -> None:
    req = ChargeRequest(amount=Money.jpy(1000), method=QRCode())
    with pytest.raises(NotSupported):
        provider().validate_charge(req)


# --------------------------------------------------------------------------- settings


def test_settings_refuse_plain_http() -> None:
    with pytest.raises(ConfigurationError) as info:
        SmaregiSettings(**{**SETTINGS, "id_base_url": "http://id.smaregi.dev"})
    assert info.value.key == "id_base_url"
    SmaregiSettings(**{**SETTINGS, "base_url": "http://127.0.0.1:9/smaregi/api"})


def test_settings_defaults_are_production() -> None:
    data = {k: v for k, v in SETTINGS.items() if not k.endswith("base_url")}
    s = SmaregiSettings(**data)
    assert s.base_url == "https://api.smaregi.jp"
    assert s.id_base_url == "https://id.smaregi.jp"
    assert s.scope == "pos.transactions:read pos.transactions:write"
    # The documented path (forum 539), the app's own name, nothing invented.
    assert s.app_payment_method_path == "app_payment_method"
    assert s.payment_method_name == "paygate"
    assert s.app_payment_code is None
    assert s.virtual_terminal is True
    assert s.denomination_code is None


@pytest.mark.parametrize(
    "change",
    [
        {"scopes": ()},
        {"scopes": ("everything",)},
        {"contract_id": "c/1"},
        {"store_id": "x"},
        {"terminal_id": "0"},
        {"app_payment_method_path": "../x"},
        {"payment_method_name": ""},
        {"payment_method_name": None},
        {"denomination_code": ""},
        {"unknown": 1},
    ],
)
def test_settings_validation(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SmaregiSettings(**{**SETTINGS, **change})


def test_settings_repr_hides_secret() -> None:
    assert "s3cr3t-value" not in repr(SmaregiSettings(**SETTINGS))


def test_at_most_999_lines() -> None:
    """transactionDetailId is 1..999: a 1000-line sale is refused before any request."""
    line = PosLine(name="x", unit_price=1)
    assert refused(request(amount=1000, lines=(line,) * 1000)).param == "method.lines"
    provider().validate_charge(request(amount=999, lines=(line,) * 999))
