"""UnivaPay wire vocabulary: enums, status mapping and the charge/slip readers.

Everything here is pure. The status rules:

* ``successful`` → succeeded; ``authorized`` → authorized; ``canceled`` → canceled.
* ``failed`` / ``error`` → failed, except a konbini slip that ran past its deadline,
  which UnivaPay reports as ``failed`` (its konbini guide: "入金期限を超えた課金申込は
  失敗となり"); paygate calls that ``expired``. A failure counts as an expiry when the
  payment error names one (313 CHARGE_EXPIRED, 323 PAYMENT_CODE_EXPIRED, or a message
  saying "expired"), or when a konbini charge failed after its deadline had passed.
* ``awaiting`` → requires_action: the customer has to act (pay the slip, finish 3-D
  Secure). A konbini ``pending`` charge whose payment details are already visible is
  requires_action too; a ``pending`` one without them is still pending (the slip is
  not issued yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from paygate._models import ChargeStatus, Failure, KonbiniSlip, RefundStatus

__all__ = [
    "CONVENIENCE_STORES",
    "PAYMENT_ERROR_NAMES",
    "charge_status",
    "iso_duration",
    "konbini_slip",
    "normalize_store",
    "parse_duration",
    "parse_time",
    "payment_failure",
    "refund_status",
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

_EXPIRY_CODES = frozenset({313, 323})

# Where a konbini charge's payment instructions are read from. UnivaPay documents only
# that they are visible "in the notification mail or the metadata" (konbini guide) and
# names no keys; the SDK models carry none. paygate therefore reads the charge's
# metadata under any of these names (case-insensitive). The sandbox emulator writes the
# first name of each list.
SLIP_PAYMENT_NUMBER_KEYS = (
    "konbini_payment_number",
    "payment_number",
    "receipt_number",
    "konbini_receipt_number",
    "cvs_receipt_number",
    "haraikomi_number",
    "payment_code",
)
SLIP_CONFIRMATION_KEYS = (
    "konbini_confirmation_number",
    "confirmation_number",
    "cvs_confirmation_number",
)
SLIP_URL_KEYS = (
    "konbini_payment_url",
    "payment_url",
    "slip_url",
    "receipt_url",
    "haraikomi_url",
    "konbini_url",
)
SLIP_DEADLINE_KEYS = (
    "konbini_payment_deadline",
    "payment_deadline",
    "expiration_date",
    "expires_at",
)


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


def _error_code(error: Mapping[str, Any]) -> int | None:
    code = error.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def payment_failure(obj: Mapping[str, Any]) -> Failure | None:
    """The charge/refund/cancel ``error`` object as a `Failure` (None when absent).

    The detail field is spelt ``details`` by the Node SDK and ``detail`` by the Java
    model; both are read.
    """
    error = obj.get("error")
    if not isinstance(error, Mapping):
        return None
    number = _error_code(error)
    name = PAYMENT_ERROR_NAMES.get(number) if number is not None else None
    raw_code = error.get("code")
    code = name or (str(raw_code) if raw_code is not None else None)
    message = error.get("message")
    detail = error.get("details", error.get("detail"))
    text = " - ".join(str(x) for x in (message, detail) if x)
    return Failure(code=code, message=text or None)


def _is_expiry(obj: Mapping[str, Any], *, konbini: bool, now: datetime | None) -> bool:
    error = obj.get("error")
    if isinstance(error, Mapping):
        if _error_code(error) in _EXPIRY_CODES:
            return True
        words = " ".join(str(error.get(k) or "") for k in ("message", "details", "detail"))
        if "EXPIRED" in words.upper() and "CARD_EXPIRED" not in words.upper():
            return True
    if konbini and now is not None:
        deadline = parse_time(obj.get("capture_at"))
        if deadline is not None and deadline <= now:
            return True
    return False


def has_slip_details(obj: Mapping[str, Any]) -> bool:
    """Whether the charge shows konbini payment details."""
    return _meta_value(obj, SLIP_PAYMENT_NUMBER_KEYS) is not None


def charge_status(
    obj: Mapping[str, Any], *, konbini: bool = False, now: datetime | None = None
) -> ChargeStatus:
    """paygate's status for a UnivaPay charge object (see the module notes).

    >>> charge_status({"status": "awaiting"}, konbini=True)
    <ChargeStatus.REQUIRES_ACTION: 'requires_action'>
    >>> charge_status({"status": "failed", "error": {"code": 313}}, konbini=True)
    <ChargeStatus.EXPIRED: 'expired'>
    """
    status = str(obj.get("status") or "").lower()
    if status == "successful":
        return ChargeStatus.SUCCEEDED
    if status == "authorized":
        return ChargeStatus.AUTHORIZED
    if status == "canceled":
        return ChargeStatus.CANCELED
    if status in ("failed", "error"):
        if konbini and _is_expiry(obj, konbini=konbini, now=now):
            return ChargeStatus.EXPIRED
        return ChargeStatus.FAILED
    if status == "awaiting":
        return ChargeStatus.REQUIRES_ACTION
    if konbini and has_slip_details(obj):
        return ChargeStatus.REQUIRES_ACTION
    # "pending", or a status this adapter does not know: never guess a terminal one.
    return ChargeStatus.PENDING


def refund_status(obj: Mapping[str, Any]) -> RefundStatus:
    """paygate's status for a UnivaPay refund object."""
    status = str(obj.get("status") or "").lower()
    if status == "successful":
        return RefundStatus.SUCCEEDED
    if status in ("failed", "error"):
        return RefundStatus.FAILED
    return RefundStatus.PENDING


def _meta_value(obj: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    lowered = {str(k).lower(): v for k, v in metadata.items()}
    for name in names:
        value = lowered.get(name)
        if value is not None and not isinstance(value, Mapping | list) and str(value).strip():
            return str(value).strip()
    return None


def konbini_slip(obj: Mapping[str, Any], store: str) -> KonbiniSlip | None:
    """The slip to show while the charge waits for the customer (None once settled).

    Before UnivaPay has issued the payment details the slip says ``issued=False``.
    The deadline is the charge's ``capture_at``, which UnivaPay uses as the payment
    deadline of konbini charges (a metadata deadline is read as a fallback).
    """
    status = str(obj.get("status") or "").lower()
    if status not in ("pending", "awaiting"):
        return None
    number = _meta_value(obj, SLIP_PAYMENT_NUMBER_KEYS)
    deadline = parse_time(obj.get("capture_at")) or parse_time(_meta_value(obj, SLIP_DEADLINE_KEYS))
    if number is None:
        # Awaiting without visible details: the details went out by mail only.
        issued = status == "awaiting"
        return KonbiniSlip(store=store, issued=issued, expires_at=deadline if issued else None)
    return KonbiniSlip(
        store=store,
        issued=True,
        payment_number=number,
        confirmation_number=_meta_value(obj, SLIP_CONFIRMATION_KEYS),
        url=_meta_value(obj, SLIP_URL_KEYS),
        expires_at=deadline,
    )
