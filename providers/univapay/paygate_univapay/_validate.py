"""Checks run before anything is sent to UnivaPay (pure; `InvalidRequest` with ``param``).

Limits that UnivaPay does not publish are paygate's assumptions and say so:

* konbini amounts: 1 to 299,999 JPY. Japanese convenience stores collect less than
  ¥300,000 per slip; UnivaPay's own ceiling is not documented.
* konbini ``expires_in``: 1 minute to 60 days, in whole seconds. UnivaPay's default is
  30 days; its maximum is not documented.
* customer name: at most 255 characters, no control characters.
* metadata: flat, string keys of at most 64 characters and scalar values of at most
  500 characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from paygate._errors import InvalidRequest, NotSupported
from paygate._models import Card, Konbini
from paygate._money import Money
from paygate.adapter import ChargeRequest

from ._errors import PROVIDER
from ._wire import CONVENIENCE_STORES, normalize_store

__all__ = [
    "KONBINI_MAX_AMOUNT",
    "KONBINI_MAX_EXPIRY",
    "KONBINI_MIN_EXPIRY",
    "normalize_phone",
    "validate_charge_request",
]

KONBINI_MAX_AMOUNT = 299_999
KONBINI_MIN_EXPIRY = timedelta(minutes=1)
KONBINI_MAX_EXPIRY = timedelta(days=60)
NAME_MAX = 255
EMAIL_MAX = 254
DESCRIPTION_MAX = 255
META_KEY_MAX = 64
META_VALUE_MAX = 500
CURRENCIES = ("JPY",)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_JUNK = re.compile(r"[\s\-()‐-―−ー.]")


def normalize_phone(phone: str) -> tuple[str, str]:
    """``(country_code, local_number)`` of a Japanese phone number.

    UnivaPay's own example sends ``{"country_code": "81", "local_number":
    "0364413400"}``: the local number keeps its leading zero.

    >>> normalize_phone("03-6441-3400")
    ('81', '0364413400')
    >>> normalize_phone("+81 90 1234 5678")
    ('81', '09012345678')
    """
    text = _PHONE_JUNK.sub("", unicodedata.normalize("NFKC", phone))
    if text.startswith("+81"):
        text = "0" + text[3:].lstrip("0")
    elif text.startswith("0081"):
        text = "0" + text[4:].lstrip("0")
    elif text.startswith("+"):
        raise InvalidRequest("konbini payments need a Japanese phone number", param="method.phone")
    if not text.isascii() or not text.isdigit() or not text.startswith("0"):
        raise InvalidRequest(
            "phone must be a Japanese number of 10 or 11 digits", param="method.phone"
        )
    if not 10 <= len(text) <= 11:
        raise InvalidRequest(
            "phone must be a Japanese number of 10 or 11 digits", param="method.phone"
        )
    return "81", text


def _check_amount(amount: Money, *, maximum: int | None) -> None:
    if amount.currency not in CURRENCIES:
        raise InvalidRequest(
            f"UnivaPay accounts here charge JPY only, not {amount.currency}", param="currency"
        )
    if amount.amount < 1:
        raise InvalidRequest("amount must be at least 1", param="amount")
    if maximum is not None and amount.amount > maximum:
        raise InvalidRequest(f"amount must be at most {maximum:,}", param="amount")


def _check_text(value: str, *, param: str, maximum: int, what: str) -> None:
    if not value.strip():
        raise InvalidRequest(f"{what} must not be blank", param=param)
    if len(value) > maximum:
        raise InvalidRequest(f"{what} must be at most {maximum} characters", param=param)
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidRequest(f"{what} must not contain control characters", param=param)


def _check_metadata(metadata: Mapping[Any, Any]) -> None:
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > META_KEY_MAX:
            raise InvalidRequest(
                f"metadata keys must be strings of 1 to {META_KEY_MAX} characters",
                param="metadata",
            )
        if isinstance(value, Mapping | list | tuple | set) or value is None:
            raise InvalidRequest("metadata must be flat: scalar values only", param="metadata")
        if len(str(value)) > META_VALUE_MAX:
            raise InvalidRequest(
                f"metadata values must be at most {META_VALUE_MAX} characters", param="metadata"
            )


def _check_konbini(method: Konbini) -> None:
    if normalize_store(method.store) is None:
        raise InvalidRequest(
            "unknown convenience store; expected one of " + ", ".join(sorted(CONVENIENCE_STORES)),
            param="method.store",
        )
    _check_text(method.customer_name, param="method.customer_name", maximum=NAME_MAX, what="name")
    normalize_phone(method.phone)
    if method.email is not None and (
        len(method.email) > EMAIL_MAX or not _EMAIL.match(method.email)
    ):
        raise InvalidRequest("email is not a valid address", param="method.email")
    if method.expires_in is not None:
        expires = method.expires_in
        if expires.microseconds:
            raise InvalidRequest("expires_in must be whole seconds", param="method.expires_in")
        if not KONBINI_MIN_EXPIRY <= expires <= KONBINI_MAX_EXPIRY:
            raise InvalidRequest(
                "expires_in must be between 1 minute and 60 days", param="method.expires_in"
            )


def validate_charge_request(req: ChargeRequest) -> None:
    """Raise `InvalidRequest` (or `NotSupported`) when UnivaPay would refuse ``req``."""
    method = req.method
    if isinstance(method, Konbini):
        _check_amount(req.amount, maximum=KONBINI_MAX_AMOUNT)
        _check_konbini(method)
    elif isinstance(method, Card):
        _check_amount(req.amount, maximum=None)
        if method.customer is not None:
            raise NotSupported(
                "card.customer",
                provider=PROVIDER,
                reason="UnivaPay charges a transaction token",
                alternative="pass the transaction token id from the UnivaPay widget as token",
            )
        if method.three_d_secure:
            raise NotSupported(
                "card.three_d_secure",
                provider=PROVIDER,
                alternative="run 3-D Secure in the UnivaPay widget when creating the token",
            )
        if not method.token or not method.token.strip():
            raise InvalidRequest("card token must not be blank", param="method.token")
    else:
        raise NotSupported(f"method {method.type}", provider=PROVIDER)
    if req.description is not None:
        _check_text(
            req.description, param="description", maximum=DESCRIPTION_MAX, what="description"
        )
    _check_metadata(req.metadata)
