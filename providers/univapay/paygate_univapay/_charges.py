"""UnivaPay charge objects mapped onto paygate's `Charge` (pure).

The status rules:

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

paygate adds its own keys to every charge's metadata (`META_CHARGE_ID`,
`META_KONBINI_STORE`, `META_DESCRIPTION`, and the deadline it sent,
`META_KONBINI_DEADLINE`), so any later read of the charge (a status call, a webhook)
knows paygate's id and which store the slip is for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from paygate._errors import MalformedResponse
from paygate._models import Charge, ChargeStatus, Failure, KonbiniSlip, RefundStatus
from paygate._money import Money
from paygate.adapter import ChargeRequest, OpContext

from ._errors import PROVIDER
from ._wire import (
    META_KONBINI_DEADLINE,
    PAY_EASY_INSTITUTION_NUMBER,
    PAYMENT_ERROR_NAMES,
    SLIP_PAYMENT_NUMBER_KEY,
    SLIP_URL_KEY,
    parse_time,
)

__all__ = [
    "META_CHARGE_ID",
    "META_DESCRIPTION",
    "META_KONBINI_DEADLINE",
    "META_KONBINI_STORE",
    "charge_from_wire",
    "charge_metadata",
    "charge_status",
    "content_hash",
    "deadline_of",
    "has_slip_details",
    "konbini_slip",
    "method_of",
    "money",
    "payment_failure",
    "refund_status",
    "whole_number",
    "with_facts",
]

META_CHARGE_ID = "paygate_charge_id"
META_KONBINI_STORE = "paygate_konbini_store"
META_DESCRIPTION = "paygate_description"

# 323 PAYMENT_CODE_EXPIRED: a payment code (barcode) ran out. 313 CHARGE_EXPIRED is a
# card authorisation that expired before capture, not a konbini deadline.
_EXPIRY_CODES = frozenset({323})


def whole_number(value: Any, what: str) -> int:
    """An integer amount UnivaPay sent (a digit string is accepted); else
    `MalformedResponse`.

    >>> whole_number("1200", "amount")
    1200
    """
    if isinstance(value, bool):
        raise MalformedResponse(f"UnivaPay sent a non-integer {what}", provider=PROVIDER)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise MalformedResponse(f"UnivaPay sent a non-integer {what}", provider=PROVIDER)


def money(amount: Any, currency: Any, what: str) -> Money:
    """`Money` from an amount and a currency code UnivaPay sent.

    >>> money(1200, "jpy", "amount")
    Money.jpy(1200)
    """
    if not isinstance(currency, str) or len(currency) != 3:
        raise MalformedResponse(f"UnivaPay sent no currency for {what}", provider=PROVIDER)
    return Money(amount=whole_number(amount, what), currency=currency.upper())


def content_hash(data: Any) -> str:
    """``sha256:<hex>`` of ``data``'s canonical JSON.

    >>> content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
    True
    """
    canonical = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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

    >>> from datetime import UTC
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


def method_of(obj: Mapping[str, Any], hint: str | None) -> str:
    """``konbini`` or ``card``: ``hint`` when it names one, else paygate's store key in
    the metadata decides.

    >>> method_of({"metadata": {"paygate_konbini_store": "lawson"}}, None)
    'konbini'
    """
    if hint in ("konbini", "card"):
        return hint
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get(META_KONBINI_STORE):
        return "konbini"
    return hint or "card"


def with_facts(obj: Mapping[str, Any], facts: Mapping[str, str]) -> dict[str, Any]:
    """``obj`` with paygate's own metadata keys filled in where the answer lacks them.

    >>> with_facts({"metadata": {}}, {"paygate_konbini_store": "lawson"})
    {'metadata': {'paygate_konbini_store': 'lawson'}}
    """
    out = dict(obj)
    if not facts:
        return out
    metadata = obj.get("metadata")
    merged = dict(metadata) if isinstance(metadata, Mapping) else {}
    for key, value in facts.items():
        if not merged.get(key) and value:
            merged[key] = value
    out["metadata"] = merged
    return out


def charge_metadata(req: ChargeRequest, ctx: OpContext, store: str | None) -> dict[str, str]:
    """The merchant's metadata plus paygate's keys, as sent with ``POST /charges``."""
    metadata = {str(k): str(v) for k, v in req.metadata.items()}
    if req.description:
        metadata[META_DESCRIPTION] = req.description
    if ctx.charge_id:
        metadata[META_CHARGE_ID] = ctx.charge_id
    if store:
        metadata[META_KONBINI_STORE] = store
    return metadata


def charge_from_wire(
    obj: Mapping[str, Any],
    ctx: OpContext,
    *,
    method: str | None = None,
    store: str | None = None,
    refunded: int = 0,
) -> Charge:
    """paygate's `Charge` for a UnivaPay charge object.

    ``refunded`` is the sum of the charge's successful refunds (UnivaPay's charge
    object does not carry it); ``store`` the konbini store when known already.
    """
    charge_id = obj.get("id")
    if not isinstance(charge_id, str) or not charge_id:
        raise MalformedResponse("UnivaPay sent a charge without id", provider=PROVIDER)
    kind = method_of(obj, method)
    konbini = kind == "konbini"
    status = charge_status(obj, konbini=konbini, now=ctx.now())
    amount = money(obj.get("requested_amount"), obj.get("requested_currency"), "amount")
    captured: Money | None = None
    if obj.get("charged_amount") is not None and status in (
        ChargeStatus.SUCCEEDED,
        ChargeStatus.AUTHORIZED,
    ):
        captured = money(
            obj.get("charged_amount"),
            obj.get("charged_currency") or amount.currency,
            "charged_amount",
        )
    refunded_money = Money(amount=refunded, currency=amount.currency)
    if refunded > 0 and status == ChargeStatus.SUCCEEDED:
        paid = (captured or amount).amount
        status = ChargeStatus.REFUNDED if refunded >= paid else ChargeStatus.PARTIALLY_REFUNDED
    next_action = None
    if konbini:
        metadata = obj.get("metadata")
        slip_store = store
        if slip_store is None and isinstance(metadata, Mapping):
            slip_store = str(metadata.get(META_KONBINI_STORE) or "") or None
        next_action = konbini_slip(obj, slip_store or "unknown")
    failure = (
        payment_failure(obj) if status in (ChargeStatus.FAILED, ChargeStatus.EXPIRED) else None
    )
    return ctx.charge(
        charge_id,
        method=kind,
        status=status,
        amount=amount,
        amount_refunded=refunded_money,
        amount_captured=captured,
        next_action=next_action,
        failure=failure,
        created_at=parse_time(obj.get("created_on")) or ctx.now(),
        raw=dict(obj),
    )
