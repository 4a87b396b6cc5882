"""elepay webhooks: shape check and normalisation from the charge fetched back.

elepay signs nothing, so an event is derived only from the charge fetched back from the
API: the posted body ``{"id", "object": "event", "type", "createTime", "data":
{"object"}}`` only names the charge to fetch (``data.object.id``, or ``chargeId`` for a
refund). The event's identity is the charge's state (charge id + status + settled refund
ids), its type follows the fetched status and its amounts come from the fetched charge:
a forged, re-typed or replayed body can at most cause one extra ``GET /charges/{id}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from paygate import Charge, ChargeStatus, Money, WebhookVerificationError
from paygate.adapter import ParsedEvent

from ._charges import NAME, currency_of, integer
from ._wire import from_millis

__all__ = ["charge_event", "charge_id_of", "other_event", "read_event"]


def read_event(body: bytes) -> dict[str, Any]:
    """The posted event, refused (`WebhookVerificationError`) unless it has a ``type``
    and a ``data.object``.

    >>> read_event(b'{"type": "charge.succeeded", "data": {"object": {"id": "ch_1"}}}')["type"]
    'charge.succeeded'
    """
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError("elepay event is not JSON", provider=NAME) from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookVerificationError("elepay event lacks type or data.object", provider=NAME)
    return event


def charge_id_of(event: Mapping[str, Any]) -> str | None:
    """The charge a ``charge.*`` or ``refund.*`` event names (None for other events).

    >>> charge_id_of({"type": "refund.succeeded",
    ...               "data": {"object": {"object": "refund", "chargeId": "ch_1"}}})
    'ch_1'
    """
    if not str(event["type"]).startswith(("charge.", "refund.")):
        return None
    obj = event["data"]["object"]
    is_refund = obj.get("object") == "refund" or "chargeId" in obj
    charge_id = obj.get("chargeId") if is_refund else obj.get("id")
    if not isinstance(charge_id, str) or not charge_id:
        raise WebhookVerificationError("elepay event names no charge", provider=NAME)
    return charge_id


def other_event(event: Mapping[str, Any]) -> ParsedEvent:
    """An event with nothing to fetch back: reported as it came, without any state."""
    event_id = event.get("id")
    return ParsedEvent(
        provider_event_type=str(event["type"]),
        type="provider.other",
        provider_event_id=event_id if isinstance(event_id, str) else None,
        raw=dict(event),
    )


def charge_event(provider_type: str, charge: Mapping[str, Any], fresh: Charge) -> ParsedEvent:
    """The event of the charge as elepay's API states it now (``fresh``: its `Charge`)."""
    settled = _settled_refunds(charge)
    state = charge.get("status")
    kind = _state_event(fresh.status, str(state))
    amount = fresh.amount
    occurred = from_millis(charge.get("paidTime"))
    if kind == "refund.succeeded" and settled:
        latest = max(settled, key=lambda r: (_ms(r, "refundedTime"), _ms(r, "createTime")))
        amount = Money(integer(latest, "amount"), currency_of(latest))
        occurred = from_millis(latest.get("refundedTime"))
    elif fresh.status in (ChargeStatus.REFUNDED, ChargeStatus.PARTIALLY_REFUNDED):
        occurred = from_millis(charge.get("refundTime"))
    refund_ids = ",".join(sorted(str(r.get("id")) for r in settled))
    return ParsedEvent(
        provider_event_type=provider_type,
        type=kind,
        provider_event_id=f"{charge.get('id')}:{state}:{refund_ids}",
        provider_ref=fresh.provider_ref,
        status=fresh.status,
        amount=amount,
        occurred_at=occurred,
        charge=fresh,
        raw=dict(charge),
        amount_refunded=fresh.amount_refunded,
        amount_captured=fresh.amount_captured,
    )


def _settled_refunds(charge: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The charge's completed refunds, as its ``refunds.data`` lists them."""
    refunds = charge.get("refunds")
    data = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not isinstance(data, list):
        return []
    return [
        r
        for r in data
        if isinstance(r, Mapping) and r.get("status") == "refunded" and isinstance(r.get("id"), str)
    ]


def _ms(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _state_event(status: ChargeStatus, elepay_status: str) -> str:
    """The paygate event type of a charge state (never of the posted event's type).

    A paid charge that was ``revoked`` (cancelled whole) is ``charge.refunded``; a
    refund that completed is ``refund.succeeded``.
    """
    if status is ChargeStatus.SUCCEEDED:
        return "charge.succeeded"
    if status is ChargeStatus.REFUNDED and elepay_status == "revoked":
        return "charge.refunded"
    if status in (ChargeStatus.PARTIALLY_REFUNDED, ChargeStatus.REFUNDED):
        return "refund.succeeded"
    if status is ChargeStatus.CANCELED:
        return "charge.canceled"
    return "charge.updated"
