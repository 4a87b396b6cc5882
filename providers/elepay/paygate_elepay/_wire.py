"""elepay wire facts shared by the adapter and the emulator.

elepay speaks JSON with camelCase keys and insists on the media type
``application/json;charset=utf-8`` written exactly so (the official Python SDK looks the
response content type up as an exact string). Timestamps (``createTime``, ``paidTime``,
``expiryTime``, the ``from``/``to`` filters of the charge list) are taken as epoch
milliseconds: OpenAPI 1.2.5 calls them "UTC timestamps" (int64) without a unit,
elepay's list pages on developer.elepay.io say "エポックミリ秒" for ``from``/``to``, and
``expiryPeriod`` is documented as the milliseconds left. The adapter still reads values
that look like epoch seconds.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "CHARGE_STATUSES",
    "CODE_STATUSES",
    "CONTENT_TYPE",
    "DEFAULT_BASE_URL",
    "EXPIRY_MINUTES_DEFAULT",
    "EXPIRY_MINUTES_MAX",
    "EXPIRY_MINUTES_MIN",
    "FRONT_URL_PATTERN",
    "MAX_AMOUNT",
    "METADATA_MAX_KEYS",
    "METADATA_RESERVED_PREFIXES",
    "METADATA_VALUE_MAX_BYTES",
    "ORDER_NO_MAX",
    "PAYMENT_METHODS",
    "REFUND_KEY_FIELD",
    "REFUND_STATUSES",
    "TEXT_MAX",
    "dumps",
    "from_millis",
    "to_millis",
]

DEFAULT_BASE_URL: Final = "https://api.elepay.io"
CONTENT_TYPE: Final = "application/json;charset=utf-8"

ORDER_NO_MAX: Final = 50
TEXT_MAX: Final = 255  # description, reason, item names (OpenAPI maxLength)
# ``amount`` is an OpenAPI ``integer`` without format; elepay's Java backend reads it
# as a 32-bit int. Per-method limits are enforced by elepay and come back as M-codes.
MAX_AMOUNT: Final = 2_147_483_647
EXPIRY_MINUTES_MIN: Final = 3
EXPIRY_MINUTES_MAX: Final = 30
EXPIRY_MINUTES_DEFAULT: Final = 10
METADATA_MAX_KEYS: Final = 20
METADATA_VALUE_MAX_BYTES: Final = 255
METADATA_RESERVED_PREFIXES: Final = ("route", "__")
# The pattern elepay's OpenAPI gives for ``frontUrl`` and item images.
FRONT_URL_PATTERN: Final = re.compile(
    r"https?://[-A-Za-z0-9+&@#/%?=~_|!:,.;]+[-A-Za-z0-9+&@#/%=~_|]"
)
# Refund metadata entry that carries the derived idempotency key, so that a refund whose
# answer was lost can be found again in the charge's refund list.
REFUND_KEY_FIELD: Final = "paygateRefundKey"

CODE_STATUSES: Final = ("pending", "captured", "closed")
CHARGE_STATUSES: Final = (
    "pending",
    "uncaptured",
    "captured",
    "partially_refunded",
    "refunded",
    "revoked",
)
REFUND_STATUSES: Final = ("pending", "refunded")
# ``paymentMethod`` values of OpenAPI 1.2.0 (the official Python SDK 1.2.0 rejects
# others, and the emulator must stay readable by it); elepay's current reference lists
# more (konbini, banktransfer, smartcode, aeonpay, felica, clicktopay, ...). Only the
# emulator uses this list. ``auto`` is for customer-presented codes only.
PAYMENT_METHODS: Final = (
    "alipay",
    "alipayhk",
    "alipayplus",
    "amazonpay",
    "applepay",
    "applepay_cn",
    "atone",
    "aupay",
    "creditcard",
    "dana",
    "docomopay",
    "ezlink",
    "felica_id",
    "felica_quickpay",
    "felica_transport_ic",
    "gcash",
    "ginkopay",
    "googlepay",
    "jcoinpay",
    "jkopay",
    "kakaopay",
    "linepay",
    "merpay",
    "origamipay",
    "paidy",
    "paypal",
    "paypay",
    "rakutenpay",
    "tng",
    "truemoney",
    "unionpay",
    "wechatpay",
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Values above this are milliseconds (it is 2286-11-20 in seconds).
_SECONDS_CEILING: Final = 10_000_000_000


def to_millis(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return (when - _EPOCH) // timedelta(milliseconds=1)


def from_millis(value: Any) -> datetime | None:
    """An aware UTC datetime from an elepay timestamp (None when absent or unreadable).

    >>> from_millis(1700000000000).isoformat()
    '2023-11-14T22:13:20+00:00'
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    millis = int(value) if value >= _SECONDS_CEILING else int(value) * 1000
    return _EPOCH + timedelta(milliseconds=millis)


def dumps(body: Any) -> bytes:
    """Compact, deterministic UTF-8 JSON (cassettes replay byte for byte)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
