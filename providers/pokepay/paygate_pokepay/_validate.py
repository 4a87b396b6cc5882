"""What Pokepay would refuse, checked before any request (pure: no I/O).

The gateway calls `PokepayProvider.validate_charge` and
`PokepayProvider.validate_refund` once, before the key is recorded; the flows do not
check again.

>>> from paygate import Money, QRCode
>>> from paygate.adapter import ChargeRequest
>>> validate_charge(ChargeRequest(Money.jpy(500), QRCode()))
>>> try:
...     validate_charge(ChargeRequest(Money.jpy(0), QRCode()))
... except InvalidRequest as refused:
...     print(refused.param)
amount
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from paygate import InvalidRequest, QRCode, Wallet
from paygate.adapter import ChargeRequest, RefundRequest, only_method, whole_refunds_only

from ._errors import PROVIDER

__all__ = [
    "MAX_AMOUNT",
    "MAX_DESCRIPTION",
    "MIN_AMOUNT",
    "invalid",
    "is_uuid",
    "partial_refund",
    "validate_charge",
    "validate_refund",
]

MIN_AMOUNT = 1
# Not documented. Each private money has its own transfer_limit, answered with
# account_transfer_limit_exceeded; this bound only keeps absurd amounts off the wire.
MAX_AMOUNT = 99_999_999
MAX_DESCRIPTION = 200
MAX_PRODUCT_NAME = 256
MAX_PRODUCT_CODE = 64


def is_uuid(value: object) -> bool:
    """True for a string Python reads as a UUID.

    >>> is_uuid("e78337d7-5aae-5629-b261-b8f63de20cb7"), is_uuid("customer-1")
    (True, False)
    """
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def invalid(message: str, param: str) -> InvalidRequest:
    """An `InvalidRequest` naming ``param``, attributed to Pokepay."""
    return InvalidRequest(message, param=param, provider=PROVIDER)


#: The refusal of a refund of less than the whole transaction.
partial_refund = functools.partial(
    whole_refunds_only,
    provider=PROVIDER,
    reason="Pokepay refunds whole transactions only",
    alternative="refund the whole charge (amount=None), then charge the remainder",
)


def validate_charge(req: ChargeRequest) -> None:
    """Refuse what Pokepay would refuse.

    JPY only, 1 to 99,999,999 yen, description up to 200 characters, flat string
    metadata, the customer's id (a UUID) and the product lines of a `Wallet`; for a
    `QRCode` (a Cashtray): no metadata, no product lines, and an ``expires_in`` of a
    second or more.
    """
    method = only_method(
        req,
        Wallet,
        QRCode,
        provider=PROVIDER,
        alternative="Wallet (a customer's wallet) or QRCode (a Cashtray)",
    )
    if req.amount.currency != "JPY":
        raise invalid("Pokepay charges JPY only", "amount")
    if not MIN_AMOUNT <= req.amount.amount <= MAX_AMOUNT:
        raise invalid(f"amount must be between {MIN_AMOUNT} and {MAX_AMOUNT} JPY", "amount")
    if req.description is not None:
        if not isinstance(req.description, str):
            raise invalid("description must be a string", "description")
        if len(req.description) > MAX_DESCRIPTION:
            raise invalid(f"description is longer than {MAX_DESCRIPTION} characters", "description")
    _validate_metadata(req.metadata)
    if isinstance(method, Wallet):
        _validate_wallet(method)
        return
    if req.metadata:
        raise invalid("a Cashtray carries no metadata (use description)", "metadata")
    if method.products:
        raise invalid("a Cashtray carries no product lines (use description)", "method.products")
    if method.expires_in is not None and method.expires_in < timedelta(seconds=1):
        raise invalid("expires_in must be at least one second", "method.expires_in")


def validate_refund(req: RefundRequest) -> None:
    """Refuse a refund Pokepay would refuse: JPY only, the whole charge when its amount
    is known, a reason of at most 200 characters.

    A partial refund of a charge whose amount paygate does not know is refused by the
    refund flow once it has read the transaction.
    """
    whole = req.charge.amount
    if req.amount is not None:
        if req.amount.currency != "JPY":
            raise invalid("Pokepay refunds JPY only", "amount")
        if whole is not None and req.amount != whole:
            raise partial_refund()
    if req.reason is not None and len(req.reason) > MAX_DESCRIPTION:
        raise invalid(f"reason is longer than {MAX_DESCRIPTION} characters", "reason")


def _validate_metadata(metadata: Any) -> None:
    if not isinstance(metadata, Mapping):
        raise invalid("metadata must be a flat mapping of strings", "metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise invalid("metadata keys must be non-empty strings", "metadata")
        if not isinstance(value, str):
            raise invalid("metadata values must be strings (flat, no nesting)", "metadata")


def _validate_wallet(method: Wallet) -> None:
    if not method.customer_id:
        raise invalid("the customer's id is required", "method.customer_id")
    if not is_uuid(method.customer_id):
        raise invalid("the customer's id must be a UUID", "method.customer_id")
    if method.private_money_id is not None and not is_uuid(method.private_money_id):
        raise invalid("private_money_id must be a UUID", "method.private_money_id")
    for i, product in enumerate(method.products):
        where = f"method.products[{i}]"
        if len(product.name) > MAX_PRODUCT_NAME:
            raise invalid(f"name longer than {MAX_PRODUCT_NAME} characters", f"{where}.name")
        if product.code is not None and len(product.code) > MAX_PRODUCT_CODE:
            raise invalid(f"code longer than {MAX_PRODUCT_CODE} characters", f"{where}.code")
        if product.unit_price < 0:
            raise invalid("unit_price must not be negative", f"{where}.unit_price")
        if product.quantity < 1:
            raise invalid("quantity must be at least 1", f"{where}.quantity")
