"""PAY.JP charge objects mapped onto paygate's `Charge`.

Status semantics (PAY.JP v1 charge fields ``paid``, ``captured``, ``refunded``,
``amount_refunded``, ``failure_code``, ``three_d_secure_status``):

* not paid, ``failure_code`` set, or 3-D Secure ``failed`` / ``error``: failed;
* not paid, 3-D Secure ``unverified``: requires_action (send the customer to the
  3-D Secure start page, a `Redirect`);
* not paid, 3-D Secure ``verified`` / ``attempted``: pending (``tds_finish`` runs the
  payment);
* paid, not captured: authorized; once refunded (a void, or an expired authorisation,
  which PAY.JP marks refunded): canceled;
* captured: succeeded, partially_refunded, or refunded when everything captured was
  refunded.

Partial capture: PAY.JP documents that ``capture`` takes an ``amount`` no larger than
the authorised one, but not how the charge shows it afterwards. The adapter (and the
sandbox emulator) assume that ``amount`` then holds the captured amount, the rest of the
authorisation being released; paygate's ``Charge.amount`` and ``amount_captured`` both
follow it, so what may be refunded is always ``amount - amount_refunded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from paygate import Charge, ChargeStatus, Failure, Redirect
from paygate.adapter import OpContext

from ._wire import from_ts, jpy

__all__ = ["charge_from_wire", "charge_status"]


def charge_status(obj: Mapping[str, Any]) -> ChargeStatus:
    """paygate's status of a PAY.JP charge object.

    >>> charge_status({"paid": True, "captured": False, "refunded": False})
    <ChargeStatus.AUTHORIZED: 'authorized'>
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
        return ChargeStatus.CANCELED if refunded else ChargeStatus.AUTHORIZED
    amount = obj.get("amount")
    refunded_amount = obj.get("amount_refunded") or 0
    if refunded or (isinstance(amount, int) and refunded_amount >= amount > 0):
        return ChargeStatus.REFUNDED
    if refunded_amount > 0:
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
    provider: str,
    tds_url: str | None = None,
) -> Charge:
    """paygate's `Charge` of a PAY.JP charge object.

    ``tds_url`` is the 3-D Secure start page, given when the adapter knows the public
    key.
    """
    currency = str(obj.get("currency") or "jpy").upper()
    wire_amount = jpy(obj.get("amount"), currency)
    status = charge_status(obj)
    captured = bool(obj.get("captured"))
    failure = None
    if status is ChargeStatus.FAILED:
        code = obj.get("failure_code")
        if code is None and obj.get("three_d_secure_status") in ("failed", "error"):
            code = "three_d_secure_failed"
        failure = Failure(code=code, message=obj.get("failure_message"))
    next_action = None
    if status is ChargeStatus.REQUIRES_ACTION and tds_url:
        next_action = Redirect(url=tds_url)
    created = from_ts(obj.get("created")) or ctx.now()
    return Charge(
        id=ctx.charge_id or str(obj.get("id")),
        account=ctx.account,
        provider=provider,
        provider_ref=str(obj.get("id")),
        method="card",
        status=status,
        amount=wire_amount,
        amount_refunded=jpy(obj.get("amount_refunded") or 0, currency),
        amount_captured=wire_amount if captured else None,
        next_action=next_action,
        failure=failure,
        created_at=created,
        updated_at=from_ts(obj.get("captured_at")),
        raw=dict(obj),
    )
