"""UnivaPay wire vocabulary: enums, status mapping and the charge/slip readers.

Everything here is pure. The status rules:

* ``successful`` → succeeded; ``authorized`` → authorized; ``canceled`` → canceled.
* ``failed`` / ``error`` → failed, except a konbini slip that ran past its deadline,
  which UnivaPay reports as ``failed`` (its konbini guide: an expired application
  becomes failed) with no documented error code; paygate calls that ``expired``. The
  deadline decides (``capture_at``, or the deadline paygate sent and kept in the
  metadata), or a 323 PAYMENT_CODE_EXPIRED error. 313 is a card authorisation expiry.
* ``awaiting`` → requires_action: the customer has to act (pay the slip, finish 3-D
  Secure). A konbini ``pending`` charge whose payment details are already visible is
  requires_action too; a ``pending`` one without them is still pending (the slip is
  not issued yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

from paygate._models import ChargeStatus, Failure, KonbiniSlip, RefundStatus

__all__ = [
    "CONVENIENCE_STORES",
    "DEFAULT_KONBINI_PERIOD",
    "META_KONBINI_DEADLINE",
    "PAYMENT_ERROR_NAMES",
    "PAY_EASY_INSTITUTION_NUMBER",
    "SLIP_PAYMENT_NUMBER_KEY",
    "SLIP_URL_KEY",
    "charge_status",
    "iso_duration",
    "konbini_deadline",
    "konbini_slip",
    "normalize_store",
    "parse_duration",
    "parse_time",
    "payment_failure",
    "refund_status",
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

# 323 PAYMENT_CODE_EXPIRED: a payment code (barcode) ran out. 313 CHARGE_EXPIRED is a
# card authorisation that expired before capture, not a konbini deadline.
_EXPIRY_CODES = frozenset({323})

# Where UnivaPay puts a konbini charge's payment details once it is ``awaiting``
# (konbini guide, seed 001): the payment number, and for 7-Eleven only the slip URL.
SLIP_PAYMENT_NUMBER_KEY = "internal_convenience_payment_number"
SLIP_URL_KEY = "internal_convenience_payment_url"
# The deadline paygate computed and sent as ``capture_at``, kept in the charge's own
# metadata because UnivaPay answers ``capture_at: null`` on konbini charges (seed 001).
META_KONBINI_DEADLINE = "paygate_konbini_deadline"
# Pay-easy needs the collecting institution number (収納機関番号) as well; UnivaPay
# says it is always 58091 and puts it in the mail only, not in the API (seed 001).
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


def deadline_of(obj: Mapping[str, Any]) -> datetime | None:
    """A konbini charge's payment deadline: ``capture_at`` when UnivaPay states one,
    else the deadline paygate computed and kept in the metadata."""
    stated = parse_time(obj.get("capture_at"))
    if stated is not None:
        return stated
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        return parse_time(metadata.get(META_KONBINI_DEADLINE))
    return None


def _is_expiry(obj: Mapping[str, Any], *, now: datetime | None) -> bool:
    # UnivaPay turns an unpaid slip ``failed`` once its deadline passes and documents no
    # error code for it (konbini guide), so ``error`` (null or any object) is not what
    # decides: a slip that had been issued (it shows its payment number) can only fail
    # by running out, and a failure at or after the deadline is one too.
    error = obj.get("error")
    if isinstance(error, Mapping) and _error_code(error) in _EXPIRY_CODES:
        return True
    if has_slip_details(obj):
        return True
    deadline = deadline_of(obj)
    return deadline is not None and now is not None and deadline <= now


def has_slip_details(obj: Mapping[str, Any]) -> bool:
    """Whether the charge shows konbini payment details."""
    return _meta_value(obj, SLIP_PAYMENT_NUMBER_KEY) is not None


def charge_status(
    obj: Mapping[str, Any], *, konbini: bool = False, now: datetime | None = None
) -> ChargeStatus:
    """paygate's status for a UnivaPay charge object (see the module notes).

    >>> charge_status({"status": "awaiting"}, konbini=True)
    <ChargeStatus.REQUIRES_ACTION: 'requires_action'>
    >>> charge_status({"status": "failed", "capture_at": "2026-01-08T14:59:59Z"},
    ...               konbini=True, now=datetime(2026, 1, 9, tzinfo=UTC))
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
        if konbini and _is_expiry(obj, now=now):
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


def _meta_value(obj: Mapping[str, Any], name: str) -> str | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(name)
    if value is None or isinstance(value, Mapping | list) or not str(value).strip():
        return None
    return str(value).strip()


def konbini_slip(obj: Mapping[str, Any], store: str) -> KonbiniSlip | None:
    """The slip to show while the charge waits for the customer (None once settled).

    The payment number and (7-Eleven) slip URL are the metadata keys UnivaPay's konbini
    guide names, present from ``awaiting`` on; before that the slip says
    ``issued=False``. A Pay-easy slip also needs the fixed institution number 58091
    (the guide: it is not in the API answer): it is set as ``institution_number`` where
    `KonbiniSlip` has that field. The deadline is ``capture_at`` or the one paygate sent
    (see `deadline_of`).
    """
    status = str(obj.get("status") or "").lower()
    if status not in ("pending", "awaiting"):
        return None
    number = _meta_value(obj, SLIP_PAYMENT_NUMBER_KEY)
    deadline = deadline_of(obj)
    if number is None:
        # Awaiting without visible details: the details went out by mail only.
        issued = status == "awaiting"
        return KonbiniSlip(store=store, issued=issued, expires_at=deadline if issued else None)
    extra: dict[str, Any] = {}
    if store == "pay_easy":
        extra["institution_number"] = PAY_EASY_INSTITUTION_NUMBER
    return KonbiniSlip(
        store=store,
        issued=True,
        payment_number=number,
        url=_meta_value(obj, SLIP_URL_KEY),
        expires_at=deadline,
        **extra,
    )
