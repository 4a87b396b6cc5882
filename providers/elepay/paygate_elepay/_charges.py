"""elepay codes, charges and refunds read as paygate objects (pure, no I/O).

A paygate charge is an EasyQR code (``provider_ref`` ``code:<codeId>``), or, when it
was recovered from the charge list and its code is unknown, only a charge
(``charge:<chargeId>``). Status comes from the code and its nested charge: code
``pending`` -> requires_action; ``captured`` -> the charge's state (``captured`` ->
succeeded, ``partially_refunded``, ``refunded``, ``revoked`` -> canceled or refunded
once paid); ``closed`` -> canceled when paygate closed it (or it closed before its
expiry time), else expired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from paygate import (
    Charge,
    ChargeStatus,
    DisplayQR,
    IdempotencyConflict,
    InvalidRequest,
    MalformedResponse,
    Money,
    OutcomeUnknown,
    Refund,
    RefundStatus,
)
from paygate.adapter import ChargeRequest, OpContext, RefundRequest

from ._errors import PROVIDER as NAME
from ._wire import from_millis

__all__ = [
    "CLOCK_SKEW",
    "METHOD",
    "NAME",
    "PAID",
    "ElepayRef",
    "charge_from_charge",
    "charge_from_code",
    "charge_status",
    "code_status",
    "committed_refunds",
    "currency_of",
    "double_payment",
    "integer",
    "parse_ref",
    "refund_from_wire",
    "refund_list",
    "refunded_amount",
    "same_amount",
    "text",
    "was_paid",
]

METHOD: Final = "qr"
# elepay charge statuses of a paid charge.
PAID: Final = frozenset({"captured", "partially_refunded", "refunded"})
# paygate's clock and elepay's may disagree by this much.
CLOCK_SKEW: Final = timedelta(minutes=5)

_CHARGE_STATUS: Final[Mapping[str, ChargeStatus]] = {
    "pending": ChargeStatus.REQUIRES_ACTION,
    "uncaptured": ChargeStatus.AUTHORIZED,
    "captured": ChargeStatus.SUCCEEDED,
    "partially_refunded": ChargeStatus.PARTIALLY_REFUNDED,
    "refunded": ChargeStatus.REFUNDED,
    "revoked": ChargeStatus.CANCELED,
}
_REFUND_STATUS: Final[Mapping[str, RefundStatus]] = {
    "pending": RefundStatus.PENDING,
    "refunded": RefundStatus.SUCCEEDED,
}
_PAID_STATUSES: Final = (
    ChargeStatus.SUCCEEDED,
    ChargeStatus.PARTIALLY_REFUNDED,
    ChargeStatus.REFUNDED,
)


# --------------------------------------------------------------------------- refs


@dataclass(frozen=True, slots=True)
class ElepayRef:
    """What a paygate charge points at: an EasyQR code, or only a charge.

    ``provider_ref`` is ``code:<codeId>`` for every charge paygate creates. A charge
    recovered from the charge list (its code is unknown) is ``charge:<chargeId>``.

    >>> str(ElepayRef("code", "cd_1"))
    'code:cd_1'
    """

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def parse_ref(provider_ref: str) -> ElepayRef:
    """Read a ``provider_ref``; a bare id is taken as a code id.

    >>> parse_ref("charge:ch_1")
    ElepayRef(kind='charge', id='ch_1')
    """
    kind, sep, ident = provider_ref.partition(":")
    if sep and kind in ("code", "charge") and ident:
        return ElepayRef(kind, ident)
    if not provider_ref:
        raise InvalidRequest("empty elepay reference", param="charge_id")
    return ElepayRef("code", provider_ref)


# ------------------------------------------------------------------------ fields


def text(obj: Mapping[str, Any], key: str) -> str:
    """A required non-empty string field (`MalformedResponse` otherwise)."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"elepay object without {key!r}", provider=NAME)
    return value


def integer(obj: Mapping[str, Any], key: str) -> int:
    """A required integer field (`MalformedResponse` otherwise)."""
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedResponse(f"elepay object without integer {key!r}", provider=NAME)
    return value


def currency_of(obj: Mapping[str, Any]) -> str:
    """The object's currency, upper case (JPY when absent).

    >>> currency_of({"currency": "jpy"}), currency_of({})
    ('JPY', 'JPY')
    """
    value = obj.get("currency")
    return value.upper() if isinstance(value, str) and len(value) == 3 else "JPY"


def _updated(charge: Mapping[str, Any]) -> datetime | None:
    return from_millis(charge.get("refundTime")) or from_millis(charge.get("paidTime"))


# ------------------------------------------------------------------------ statuses


def charge_status(charge: Mapping[str, Any]) -> ChargeStatus | None:
    """paygate status of an elepay charge object (None for an unknown status).

    A ``revoked`` charge that had been paid returned all its money: refunded.

    >>> charge_status({"status": "revoked", "paid": True})
    <ChargeStatus.REFUNDED: 'refunded'>
    """
    status = charge.get("status")
    if not isinstance(status, str):
        return None
    if status == "revoked" and was_paid(charge):
        return ChargeStatus.REFUNDED
    return _CHARGE_STATUS.get(status)


def was_paid(charge: Mapping[str, Any]) -> bool:
    """Whether the charge was paid at some point (``paid`` or a ``paidTime``)."""
    return charge.get("paid") is True or bool(charge.get("paidTime"))


def code_status(
    code: Mapping[str, Any],
    *,
    now: datetime | None = None,
    closed_by_paygate: bool = False,
) -> ChargeStatus:
    """paygate status of an EasyQR code, taking its nested charge into account.

    elepay's ``closed`` means "expired or deleted" (one value), and what ``expired``
    says about a deleted code is not documented. So a ``closed`` code is *canceled*
    when paygate closed it (it sent the ``DELETE``) or when it was closed before its
    ``expiryTime``; otherwise it ran out: *expired*, unless its ``expired`` flag is
    false (which can only mean it was deleted). An unknown status reads as still
    waiting for the payer.

    >>> code_status({"status": "closed"}, closed_by_paygate=True)
    <ChargeStatus.CANCELED: 'canceled'>
    """
    nested = code.get("charge")
    status = code.get("status")
    if isinstance(nested, Mapping):
        mapped = charge_status(nested)
        if mapped is not None and mapped is not ChargeStatus.REQUIRES_ACTION:
            return mapped
    if status == "captured":
        return ChargeStatus.SUCCEEDED
    if status == "closed":
        return (
            ChargeStatus.EXPIRED
            if _ran_out(code, now, closed_by_paygate)
            else (ChargeStatus.CANCELED)
        )
    if status == "pending" and code.get("expired") is True:
        period = code.get("expiryPeriod")
        if not isinstance(period, int) or period <= 0:
            return ChargeStatus.EXPIRED
    return ChargeStatus.REQUIRES_ACTION


def _ran_out(code: Mapping[str, Any], now: datetime | None, closed_by_paygate: bool) -> bool:
    if closed_by_paygate or code.get("expired") is False:
        return False  # paygate deleted it, or elepay says it did not run out
    period = code.get("expiryPeriod")
    if isinstance(period, int) and not isinstance(period, bool) and period > 0:
        return False  # elepay's own clock says time was left: it was deleted
    # Closed well before its expiry time (paygate's clock, less the skew): deleted.
    expires = from_millis(code.get("expiryTime"))
    return not (expires is not None and now is not None and now + CLOCK_SKEW < expires)


# ------------------------------------------------------------------------- refunds


def refunded_amount(charge: Mapping[str, Any], status: ChargeStatus | None) -> int:
    """What the charge returned to the payer.

    A paid charge that was ``revoked`` (cancelled) returned its whole amount, whether or
    not elepay lists the revoke under ``refunds`` (not documented either way).

    >>> refunded_amount({"amount": 1200, "refunds": {"amount": 300}}, None)
    300
    """
    amount = charge.get("amount")
    whole = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
    if charge.get("status") == "revoked" and was_paid(charge):
        return whole
    refunds = charge.get("refunds")
    if isinstance(refunds, Mapping):
        total = refunds.get("amount")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    if status is ChargeStatus.REFUNDED:
        return whole
    return 0


def refund_list(charge: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The charge's refunds when the charge object lists all of them (else None)."""
    refunds = charge.get("refunds")
    if not isinstance(refunds, Mapping):
        return None
    data = refunds.get("data")
    count = refunds.get("totalCount")
    if not isinstance(data, list) or not isinstance(count, int) or len(data) != count:
        return None
    return [r for r in data if isinstance(r, dict)]


def committed_refunds(charge: Mapping[str, Any]) -> int:
    """Refunded so far, counting refunds still pending (they cannot be refunded twice)."""
    listed = refund_list(charge)
    if listed is not None:
        return sum(r["amount"] for r in listed if isinstance(r.get("amount"), int))
    return refunded_amount(charge, None)


# ------------------------------------------------------------------ paygate objects


def charge_from_code(
    code: Mapping[str, Any], ctx: OpContext, *, closed_by_paygate: bool = False
) -> Charge:
    """paygate's `Charge` of an EasyQR code (``code:<codeId>``), with a `DisplayQR`
    while the payer has yet to pay."""
    code_id = text(code, "id")
    ref = str(ElepayRef("code", code_id))
    status = code_status(code, now=ctx.now(), closed_by_paygate=closed_by_paygate)
    nested = code.get("charge")
    charge_obj: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    currency = currency_of(code)
    amount = integer(code, "amount")
    refunded = refunded_amount(charge_obj, status) if charge_obj else 0
    next_action = None
    if status is ChargeStatus.REQUIRES_ACTION:
        url = code.get("codeUrl")
        if isinstance(url, str) and url:
            next_action = DisplayQR(url=url, expires_at=from_millis(code.get("expiryTime")))
    captured = charge_obj.get("amount") if status in _PAID_STATUSES else None
    return _charge(
        ref,
        ctx,
        status,
        Money(amount, currency),
        refunded=refunded,
        captured=captured if isinstance(captured, int) else None,
        next_action=next_action,
        created=code.get("createTime"),
        updated=_updated(charge_obj) if charge_obj else None,
        raw=code,
    )


def charge_from_charge(
    charge: Mapping[str, Any], ctx: OpContext, *, code_id: str | None = None
) -> Charge:
    """paygate's `Charge` of an elepay charge object (``code:<codeId>`` when its code
    is known, else ``charge:<chargeId>``)."""
    charge_id = text(charge, "id")
    ref = str(ElepayRef("code", code_id) if code_id else ElepayRef("charge", charge_id))
    status = charge_status(charge) or ChargeStatus.REQUIRES_ACTION
    amount = Money(integer(charge, "amount"), currency_of(charge))
    return _charge(
        ref,
        ctx,
        status,
        amount,
        refunded=refunded_amount(charge, status),
        captured=amount.amount if status in _PAID_STATUSES else None,
        created=charge.get("createTime"),
        updated=_updated(charge),
        raw=charge,
    )


def _charge(
    ref: str,
    ctx: OpContext,
    status: ChargeStatus,
    amount: Money,
    *,
    refunded: int,
    captured: int | None,
    created: Any,
    updated: datetime | None,
    raw: Mapping[str, Any],
    next_action: DisplayQR | None = None,
) -> Charge:
    currency = amount.currency
    return ctx.charge(
        ref,
        method=METHOD,
        status=status,
        amount=amount,
        amount_refunded=Money(refunded, currency),
        amount_captured=Money(captured, currency) if captured is not None else None,
        next_action=next_action,
        created_at=from_millis(created) or ctx.now(),
        updated_at=updated,
        raw=dict(raw),
    )


def refund_from_wire(refund: Mapping[str, Any], req: RefundRequest, ctx: OpContext) -> Refund:
    """paygate's `Refund` of an elepay refund object."""
    refund_id = text(refund, "id")
    status = refund.get("status")
    return ctx.refund(
        ctx.charge_id or req.charge.charge_id,
        refund_id,
        amount=Money(integer(refund, "amount"), currency_of(refund)),
        status=_REFUND_STATUS.get(status, RefundStatus.PENDING)
        if isinstance(status, str)
        else RefundStatus.PENDING,
        reason=refund.get("reason") if isinstance(refund.get("reason"), str) else None,
        created_at=from_millis(refund.get("createTime")) or ctx.now(),
        raw=dict(refund),
    )


# ---------------------------------------------------------------- lookup verdicts


def double_payment(refs: Sequence[str]) -> OutcomeUnknown:
    """The error for one key that ended in more than one paid code."""
    return OutcomeUnknown(
        f"elepay holds {len(refs)} paid codes for one idempotency key ({', '.join(refs)}); "
        "refund the extra payment",
        provider=NAME,
    )


def same_amount(found: Charge, req: ChargeRequest) -> None:
    """Refuse a charge found under the key when it is for another amount."""
    if found.amount != req.amount:
        raise IdempotencyConflict(
            "elepay already holds this order number for a different amount",
            provider=NAME,
        )
