"""PAY.JP charge objects mapped onto paygate's `Charge`.

Status semantics (PAY.JP v1 charge fields ``paid``, ``captured``, ``refunded``,
``amount_refunded``, ``expired_at``, ``failure_code``, ``three_d_secure_status``):

* not paid, ``failure_code`` set, or 3-D Secure ``failed`` / ``error``: failed;
* not paid, 3-D Secure ``unverified``: requires_action (send the customer to the
  3-D Secure start page, a `Redirect`); the flow's end (``three_d_secure_expired`` at
  ``tds_finish``) is found by `PayjpProvider.status`, which makes it expired;
* not paid, 3-D Secure ``verified`` / ``attempted``: pending (``tds_finish`` runs the
  payment);
* paid, not captured: authorized; past ``expired_at`` the authorisation is released:
  expired (whether or not PAY.JP also marks it ``refunded``); a void before that
  (``refunded`` true): canceled;
* captured: succeeded, partially_refunded or refunded **from the amounts**: what the
  merchant refunded (``amount_refunded`` less what a partial capture released) against
  the captured amount. ``refunded`` only says that some refund happened: PAY.JP sets it
  after any refund, partial or full (https://pay.jp/docs/refund).

Partial capture: capturing 400 of a 500 authorisation answers ``amount_refunded = 100``
(the released difference; payjp-go ``v1/charge.go`` ``Capture``). That release is not a
merchant refund. PAY.JP's charge object does not carry the captured amount, so the
adapter remembers the capture (`CaptureMemo`: authorised, captured and what the capture
answer booked in ``amount_refunded``) and every later reading uses it. paygate's
`Charge.amount` stays the authorised amount, ``amount_captured`` is the captured
amount and ``amount_refunded`` the merchant's refunds only, so what may still be
refunded is ``amount_captured - amount_refunded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from paygate import Charge, ChargeStatus, Failure, Money, Redirect
from paygate.adapter import OpContext

from ._wire import from_ts, jpy

__all__ = [
    "CaptureMemo",
    "ChargeAmounts",
    "amounts_of",
    "charge_from_wire",
    "charge_status",
    "tds_start_url",
]


@dataclass(frozen=True, slots=True)
class CaptureMemo:
    """What paygate remembers of a capture: the charge object does not say it.

    ``authorized``: the authorised amount; ``captured``: the amount captured;
    ``released``: what the capture answer booked in ``amount_refunded`` (the released
    rest of the authorisation, ``authorized - captured`` as PAY.JP documents it, 0 if
    it booked nothing).

    >>> CaptureMemo.of({"authorized": 500, "captured": 400, "released": 100})
    CaptureMemo(authorized=500, captured=400, released=100)
    """

    authorized: int
    captured: int
    released: int

    def to_json(self) -> dict[str, int]:
        """The cache form."""
        return {"authorized": self.authorized, "captured": self.captured, "released": self.released}

    @classmethod
    def of(cls, value: Any) -> CaptureMemo | None:
        """The memo from its cache form (None for anything else)."""
        if not isinstance(value, Mapping):
            return None
        fields: list[int] = []
        for name in ("authorized", "captured", "released"):
            v = value.get(name)
            if not isinstance(v, int) or isinstance(v, bool):
                return None
            fields.append(v)
        return cls(authorized=fields[0], captured=fields[1], released=fields[2])

    @classmethod
    def after_capture(cls, obj: Mapping[str, Any], authorized: int, captured: int) -> CaptureMemo:
        """The memo of a capture from PAY.JP's answer to it (no merchant refund can
        precede a capture, so the answer's ``amount_refunded`` is all release)."""
        booked = _int(obj.get("amount_refunded"))
        return cls(authorized, captured, max(0, min(booked, authorized - captured)))


@dataclass(frozen=True, slots=True)
class ChargeAmounts:
    """A charge's amounts as paygate counts them."""

    authorized: int
    captured: int | None
    refunded: int  # the merchant's refunds, never a partial capture's release

    @property
    def refundable(self) -> int:
        """What may still be refunded."""
        return max(0, (self.captured or 0) - self.refunded)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def amounts_of(obj: Mapping[str, Any], memo: CaptureMemo | None = None) -> ChargeAmounts:
    """paygate's amounts of a PAY.JP charge object, given the capture memo.

    >>> amounts_of({"amount": 500, "captured": True, "amount_refunded": 100},
    ...            CaptureMemo(500, 400, 100))
    ChargeAmounts(authorized=500, captured=400, refunded=0)
    >>> amounts_of({"amount": 12000, "captured": True, "refunded": True,
    ...             "amount_refunded": 1000})
    ChargeAmounts(authorized=12000, captured=12000, refunded=1000)
    """
    wire_amount = _int(obj.get("amount"))
    booked = _int(obj.get("amount_refunded"))
    if not obj.get("captured"):
        return ChargeAmounts(authorized=wire_amount, captured=None, refunded=0)
    if memo is None:
        return ChargeAmounts(authorized=wire_amount, captured=wire_amount, refunded=booked)
    return ChargeAmounts(
        authorized=memo.authorized,
        captured=memo.captured,
        refunded=max(0, booked - memo.released),
    )


def _expired(obj: Mapping[str, Any], now: datetime | None) -> bool:
    expired_at = obj.get("expired_at")
    if now is None or not isinstance(expired_at, int) or isinstance(expired_at, bool):
        return False
    return expired_at <= int(now.timestamp())


def charge_status(
    obj: Mapping[str, Any], memo: CaptureMemo | None = None, *, now: datetime | None = None
) -> ChargeStatus:
    """paygate's status of a PAY.JP charge object.

    ``now`` tells an expired authorisation from a void; ``memo`` is the capture memo.

    >>> charge_status({"paid": True, "captured": False, "refunded": False})
    <ChargeStatus.AUTHORIZED: 'authorized'>
    >>> charge_status({"paid": True, "captured": True, "refunded": True, "amount": 12000,
    ...                "amount_refunded": 1000})
    <ChargeStatus.PARTIALLY_REFUNDED: 'partially_refunded'>
    """
    paid = bool(obj.get("paid"))
    captured = bool(obj.get("captured"))
    refunded = bool(obj.get("refunded"))
    tds = obj.get("three_d_secure_status")
    if not paid:
        if obj.get("failure_code") or tds in ("failed", "error"):
            return ChargeStatus.FAILED
        if refunded:
            return ChargeStatus.CANCELED
        if tds == "unverified":
            return ChargeStatus.REQUIRES_ACTION
        return ChargeStatus.PENDING
    if not captured:
        if _expired(obj, now):
            return ChargeStatus.EXPIRED
        return ChargeStatus.CANCELED if refunded else ChargeStatus.AUTHORIZED
    amounts = amounts_of(obj, memo)
    captured_amount = amounts.captured or 0
    if amounts.refunded >= captured_amount > 0:
        return ChargeStatus.REFUNDED
    if amounts.refunded > 0:
        return ChargeStatus.PARTIALLY_REFUNDED
    return ChargeStatus.SUCCEEDED


def tds_start_url(base_url: str, charge_id: str, public_key: str, back: str | None) -> str:
    """PAY.JP's 3-D Secure start page for a charge (redirect flow)."""
    url = f"{base_url}/v1/tds/{quote(charge_id, safe='')}/start?publickey={quote(public_key)}"
    if back:
        url += f"&back={quote(back)}"
    return url


def charge_from_wire(
    obj: Mapping[str, Any],
    ctx: OpContext,
    *,
    tds_url: str | None = None,
    memo: CaptureMemo | None = None,
    status: ChargeStatus | None = None,
    failure: Failure | None = None,
) -> Charge:
    """paygate's `Charge` of a PAY.JP charge object.

    ``tds_url`` is the 3-D Secure start page, given when the adapter knows the public
    key; ``memo`` the capture memo; ``status`` / ``failure`` override what the object
    alone says (a 3-D Secure flow that ended at ``tds_finish``). The charge's provider is
    the context's.
    """
    currency = str(obj.get("currency") or "jpy").upper()
    jpy(obj.get("amount"), currency)  # refuses a missing or non-integer amount
    if not obj.get("captured") or memo is None:
        jpy(obj.get("amount_refunded") or 0, currency)
    amounts = amounts_of(obj, memo)
    if status is None:
        status = charge_status(obj, memo, now=ctx.now())
    if status is ChargeStatus.FAILED and failure is None:
        code = obj.get("failure_code")
        if code is None and obj.get("three_d_secure_status") in ("failed", "error"):
            code = "three_d_secure_failed"
        failure = Failure(code=code, message=obj.get("failure_message"))
    next_action = None
    if status is ChargeStatus.REQUIRES_ACTION and tds_url:
        next_action = Redirect(url=tds_url)
    created = from_ts(obj.get("created")) or ctx.now()
    return ctx.charge(
        str(obj.get("id")),
        method="card",
        status=status,
        amount=Money(amount=amounts.authorized, currency=currency),
        amount_refunded=Money(amount=amounts.refunded, currency=currency),
        amount_captured=(
            Money(amount=amounts.captured, currency=currency)
            if amounts.captured is not None
            else None
        ),
        next_action=next_action,
        failure=failure if status is ChargeStatus.FAILED else None,
        created_at=created,
        updated_at=from_ts(obj.get("captured_at")),
        raw=dict(obj),
    )
