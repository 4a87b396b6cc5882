"""What elepay would refuse, checked before anything is sent (pure).

The gateway calls these once, through `ElepayProvider.validate_charge` and
`ElepayProvider.validate_refund`, before any request; the flows do not check again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate import InvalidRequest, Money, QRCode
from paygate.adapter import ChargeRequest, RefundRequest, only_method

from ._charges import NAME
from ._settings import ElepaySettings
from ._wire import (
    EXPIRY_MINUTES_MAX,
    EXPIRY_MINUTES_MIN,
    FRONT_URL_PATTERN,
    METADATA_MAX_KEYS,
    METADATA_RESERVED_PREFIXES,
    METADATA_VALUE_MAX_BYTES,
    TEXT_MAX,
)

__all__ = ["check_charge", "check_refund"]


def check_charge(req: ChargeRequest, settings: ElepaySettings) -> None:
    """Refuse a charge elepay would refuse.

    A `QRCode` method; JPY from 1 to ``settings.max_amount``; description at most 255
    characters; at most 20 flat metadata entries of at most 255 bytes, no ``route…`` or
    ``__…`` keys; an expiry of 3 to 30 whole minutes; an http(s) return URL; items
    (when the method carries products) named, priced and counted.

    >>> settings = ElepaySettings(secret_key="sk_test_x")
    >>> check_charge(ChargeRequest(amount=Money.jpy(1200), method=QRCode()), settings)
    >>> try:
    ...     check_charge(ChargeRequest(amount=Money.jpy(0), method=QRCode()), settings)
    ... except InvalidRequest as exc:
    ...     exc.param
    'amount'
    """
    method = only_method(
        req, QRCode, provider=NAME, reason="elepay serves EasyQR codes only", alternative="QRCode()"
    )
    _check_amount(req.amount, settings.max_amount)
    if req.description is not None:
        _check_text(req.description, "description")
    _check_metadata(req.metadata)
    if method.expires_in is not None:
        minutes, rest = divmod(method.expires_in.total_seconds(), 60)
        if rest or not EXPIRY_MINUTES_MIN <= minutes <= EXPIRY_MINUTES_MAX:
            raise InvalidRequest(
                f"elepay codes expire after {EXPIRY_MINUTES_MIN} to {EXPIRY_MINUTES_MAX} "
                "whole minutes",
                param="method.expires_in",
            )
    front = method.return_url or settings.front_url
    if front is not None and not FRONT_URL_PATTERN.fullmatch(front):
        raise InvalidRequest("return_url must be an http(s) URL", param="method.return_url")
    _check_items(method)


def check_refund(req: RefundRequest, settings: ElepaySettings) -> None:
    """Refuse a refund elepay would refuse: JPY up to ``settings.max_amount``, a reason
    of at most 255 characters.

    >>> from paygate.adapter import ChargeRef
    >>> ref = ChargeRef(charge_id="c", provider_ref="code:cd_1", method="qr")
    >>> try:
    ...     check_refund(RefundRequest(charge=ref, reason="x" * 256),
    ...                  ElepaySettings(secret_key="sk_test_x"))
    ... except InvalidRequest as exc:
    ...     exc.param
    'reason'
    """
    if req.amount is not None:
        _check_amount(req.amount, settings.max_amount)
    if req.reason is not None:
        _check_text(req.reason, "reason")


def _check_amount(amount: Money, maximum: int) -> None:
    if amount.currency != "JPY":
        raise InvalidRequest("elepay EasyQR charges are in JPY only", param="amount")
    if not 1 <= amount.amount <= maximum:
        raise InvalidRequest(f"amount must be between 1 and {maximum} JPY", param="amount")


def _check_text(value: str, param: str) -> None:
    if len(value) > TEXT_MAX:
        raise InvalidRequest(f"{param} is limited to {TEXT_MAX} characters", param=param)


def _check_metadata(metadata: Mapping[Any, Any]) -> None:
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidRequest(
            f"elepay keeps at most {METADATA_MAX_KEYS} metadata entries", param="metadata"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidRequest("metadata keys must be non-empty strings", param="metadata")
        if key.startswith(METADATA_RESERVED_PREFIXES):
            raise InvalidRequest(
                "metadata keys starting with 'route' or '__' are reserved by elepay",
                param="metadata",
            )
        if not isinstance(value, str):
            raise InvalidRequest("metadata must be flat: string values only", param="metadata")
        if len(value.encode("utf-8")) > METADATA_VALUE_MAX_BYTES:
            raise InvalidRequest(
                f"metadata values are limited to {METADATA_VALUE_MAX_BYTES} bytes",
                param="metadata",
            )


def _check_items(method: QRCode) -> None:
    """The method's products, when the model carries any, as elepay ``items`` allow."""
    for product in getattr(method, "products", None) or ():
        name = getattr(product, "name", None)
        price = getattr(product, "unit_price", None)
        count = getattr(product, "quantity", None)
        if not isinstance(name, str) or not name or len(name) > TEXT_MAX:
            raise InvalidRequest("item names are 1 to 255 characters", param="method.products")
        if not isinstance(price, int) or price < 0:
            raise InvalidRequest("item prices are whole JPY, 0 or more", param="method.products")
        if not isinstance(count, int) or count < 1:
            raise InvalidRequest("item quantities are 1 or more", param="method.products")
