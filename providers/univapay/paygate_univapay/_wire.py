"""UnivaPay wire vocabulary: store names, payment error names, slip keys, times.

Everything here is pure. The readers of charge objects (status, slip, failure) are in
`paygate_univapay._charges`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

__all__ = [
    "CONVENIENCE_STORES",
    "DEFAULT_KONBINI_PERIOD",
    "META_KONBINI_DEADLINE",
    "PAYMENT_ERROR_NAMES",
    "PAY_EASY_INSTITUTION_NUMBER",
    "SLIP_PAYMENT_NUMBER_KEY",
    "SLIP_URL_KEY",
    "iso_duration",
    "konbini_deadline",
    "normalize_store",
    "parse_duration",
    "parse_time",
    "whole_days",
]

# The convenience_store enum of the Node and Java SDKs. The OpenAPI document (and the
# Python SDK generated from it) omits circle_k and sunkus; both chains were merged into
# FamilyMart, and the live API may refuse them with a VALIDATION_ERROR, which paygate
# then reports with UnivaPay's own code.
CONVENIENCE_STORES: frozenset[str] = frozenset(
    {
        "seven_eleven",
        "family_mart",
        "lawson",
        "mini_stop",
        "seico_mart",
        "pay_easy",
        "circle_k",
        "sunkus",
        "daily_yamazaki",
        "yamazaki_daily_store",
    }
)

# Spellings merchants commonly use for the same chains.
_STORE_ALIASES: dict[str, str] = {
    "7_eleven": "seven_eleven",
    "711": "seven_eleven",
    "seven": "seven_eleven",
    "sej": "seven_eleven",
    "familymart": "family_mart",
    "famima": "family_mart",
    "ministop": "mini_stop",
    "seicomart": "seico_mart",
    "seico": "seico_mart",
    "payeasy": "pay_easy",
    "circlek": "circle_k",
    "circle_k_sunkus": "circle_k",
    "dailyyamazaki": "daily_yamazaki",
}

# Numeric payment error codes carried in a charge's ``error.code`` (univapay-node
# errors/parser.ts). Only the names are used, to keep UnivaPay's own vocabulary.
PAYMENT_ERROR_NAMES: dict[int, str] = {
    301: "CARD_NUMBER_NOT_VALID",
    302: "CARD_EXPIRATION_MONTH_INVALID",
    303: "CARD_EXPIRATION_YEAR_INVALID",
    304: "CARD_EXPIRED",
    305: "CARD_CVV_INVALID",
    306: "CARD_REJECTED",
    307: "CARD_INVALID",
    308: "CHARGE_INVALID_DATA",
    309: "PROCESSING_ERROR",
    310: "INVALID_USER_DATA",
    311: "TOO_MANY_CHARGE_REQUESTS",
    312: "CANCEL_UNAVAILABLE",
    313: "CHARGE_EXPIRED",
    314: "SEIZE_CARD",
    315: "CONTACT_BANK",
    316: "LAST_NAME_REQUIRED",
    317: "PARTIAL_CAPTURE_NOT_SUPPORTED",
    318: "PARTIAL_REFUND_NOT_SUPPORTED",
    319: "FRAUD_SUSPECTED",
    320: "BANK_SYSTEM_FAILURE",
    321: "DYNAMIC_DESCRIPTOR_NOT_SUPPORTED",
    322: "PAYMENT_CODE_INVALID",
    323: "PAYMENT_CODE_EXPIRED",
    324: "PAYMENT_CODE_ALREADY_USED",
    325: "PAYMENT_CODE_STILL_IN_USE",
    326: "REJECTED_HIGH_RISK",
    327: "CONFIRMATION_PERIOD_EXPIRED",
    328: "REVERT_FAILED",
    329: "REFUND_FAILED",
    330: "PAYMENT_WALLET_INSUFFICIENT_FUNDS",
    331: "INVALID_METADATA_FIELD_VALUE",
    336: "LIMIT_EXCEEDED_FOR_PAYMENT_TYPE",
    337: "LIMIT_EXCEEDED_FOR_MERCHANT",
    338: "TRANSACTION_NOT_FOUND",
    339: "DUPLICATE_TRANSACTION",
    340: "PAYMENT_WALLET_REJECTED",
    343: "GATEWAY_SERVER_ERROR",
    344: "PAYMENT_METHOD_TEMPORARILY_UNAVAILABLE",
    345: "PAYMENT_CANCELED",
    351: "DISPUTED_TRANSACTION",
    355: "PAYMENT_TYPE_NOT_SUPPORTED",
    356: "CARD_NOT_ENROLLED_IN_THREE_DS",
    358: "THREE_DS_COULD_NOT_BE_COMPLETED",
    359: "CARD_REJECTED",
}

# Where UnivaPay puts a konbini charge's payment details once it is ``awaiting``
# (the konbini guide, https://docs.univapay.com/?p=11560): the payment number, and for
# 7-Eleven only the slip URL.
SLIP_PAYMENT_NUMBER_KEY = "internal_convenience_payment_number"
SLIP_URL_KEY = "internal_convenience_payment_url"
# The deadline paygate computed and sent as ``capture_at``, kept in the charge's own
# metadata because UnivaPay answers ``capture_at: null`` on konbini charges (konbini guide).
META_KONBINI_DEADLINE = "paygate_konbini_deadline"
# Pay-easy needs the collecting institution number (収納機関番号) as well; UnivaPay
# says it is always 58091 and puts it in the mail only, not in the API (konbini guide).
PAY_EASY_INSTITUTION_NUMBER = "58091"
JST = timezone(timedelta(hours=9), "JST")
# UnivaPay's default ``expiration_period`` of a konbini token (PYSDK token model).
DEFAULT_KONBINI_PERIOD = timedelta(days=30)


def konbini_deadline(applied: datetime, period: timedelta) -> datetime:
    """The payment deadline of a slip applied for at ``applied``: the application day
    (Japan time) plus ``period`` in whole days (a part day counts as a day), at 23:59:59.

    UnivaPay's rule (its konbini guide: applied on 1/1 with one week, pay by 1/8 23:59);
    the time of day is ignored for 7-Eleven, Seicomart and Pay-easy, so paygate always
    uses the end of the day.

    >>> konbini_deadline(datetime(2026, 1, 1, 3, 0, tzinfo=UTC), timedelta(days=7))
    datetime.datetime(2026, 1, 8, 14, 59, 59, tzinfo=datetime.timezone.utc)
    """
    day = applied.astimezone(JST).date() + timedelta(days=whole_days(period))
    return datetime.combine(day, time(23, 59, 59), tzinfo=JST).astimezone(UTC)


def whole_days(period: timedelta) -> int:
    """``period`` in whole days, a part day counting as one (at least 1)."""
    return max(1, -(-int(period.total_seconds()) // 86400))


def normalize_store(value: str) -> str | None:
    """The UnivaPay ``convenience_store`` value for ``value``, or None if unknown.

    >>> normalize_store("FamilyMart")
    'family_mart'
    >>> normalize_store("7-Eleven")
    'seven_eleven'
    """
    key = re.sub(r"[\s\-.]+", "_", value.strip().lower())
    if key in CONVENIENCE_STORES:
        return key
    return _STORE_ALIASES.get(key) or _STORE_ALIASES.get(key.replace("_", ""))


def iso_duration(delta: timedelta) -> str:
    """An ISO-8601 duration for ``delta`` (whole days as ``P7D``).

    >>> iso_duration(timedelta(days=7))
    'P7D'
    >>> iso_duration(timedelta(days=1, hours=2, minutes=30))
    'P1DT2H30M'
    """
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    if hours or minutes or seconds:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if seconds:
            out += f"{seconds}S"
    return out if out != "P" else "PT0S"


_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def parse_duration(text: Any) -> timedelta | None:
    """Parse the day/time subset of ISO-8601 durations (None when not one).

    >>> parse_duration("P7D")
    datetime.timedelta(days=7)
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in ("P", "PT"):
        return None
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from UnivaPay's ISO-8601 timestamps (None when absent/bad)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
