"""PAY.JP webhooks: token check and normalisation.

PAY.JP signs nothing: every delivery carries the account's static webhook token in
``X-Payjp-Webhook-Token``, compared here in constant time. The body is the event
``{id: "evnt_...", object: "event", type, created, data: <resource>}``. Deliveries may
be missing or repeated, so the event id is the dedupe key.

Normalised types: charge events become ``charge.*`` according to the charge's state,
read from the amounts (`paygate_payjp._charges`: ``refunded`` is true after any
refund, so a ``charge.refunded`` event of a partial refund is ``charge.refunded`` with
status partially_refunded and the refunded sum, never the whole charge). The event
carries the charge as its body states it (``ParsedEvent.charge``, with the capture
memo applied) and its ``amount_refunded`` / ``amount_captured``;
``balance.fixed`` (a balance whose amount is fixed for payout or claim) becomes
``payout.balance_fixed``; the other ``balance.*``, ``statement.*`` and ``term.*``
events become ``payout.updated``; everything else is ``provider.other``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from paygate import Charge, ChargeStatus, Money
from paygate._errors import WebhookVerificationError
from paygate.adapter import OpContext, ParsedEvent, check_webhook_token

from ._charges import CaptureMemo, charge_from_wire, charge_status
from ._errors import PROVIDER
from ._wire import from_ts, jpy

__all__ = ["TOKEN_HEADER", "charge_id_of", "parse_event", "verify_token"]

TOKEN_HEADER = "X-Payjp-Webhook-Token"  # noqa: S105 - a header name

_CHARGE_TYPES = {
    ChargeStatus.SUCCEEDED: "charge.succeeded",
    ChargeStatus.FAILED: "charge.failed",
    ChargeStatus.CANCELED: "charge.canceled",
    ChargeStatus.EXPIRED: "charge.expired",
    ChargeStatus.REFUNDED: "charge.refunded",
    ChargeStatus.PARTIALLY_REFUNDED: "charge.refunded",
}


def verify_token(headers: Mapping[str, str], expected: str | None) -> None:
    """Raise `WebhookVerificationError` unless the token header matches ``expected``."""
    check_webhook_token(
        headers, expected, header=TOKEN_HEADER, provider=PROVIDER, setting="webhook_token"
    )


def _resource(event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    # The documented shape puts the resource directly under ``data``; a Stripe-like
    # ``data.object`` wrapper is accepted as well.
    if isinstance(data, dict) and isinstance(data.get("object"), dict):
        return data["object"]  # type: ignore[no-any-return]
    return data if isinstance(data, dict) else {}


def charge_id_of(body: bytes) -> str | None:
    """The id of the charge a charge event carries (None for anything else)."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict):
        return None
    resource = _resource(event)
    oid = resource.get("id")
    return oid if resource.get("object") == "charge" and isinstance(oid, str) else None


def parse_event(
    body: bytes, ctx: OpContext | None = None, memo: CaptureMemo | None = None
) -> ParsedEvent:
    """Normalise one PAY.JP event body.

    With ``ctx`` a charge event also carries the charge (``memo``: the capture memo).

    >>> ev = parse_event(b'{"id": "evnt_1", "type": "balance.fixed", "created": 1,'
    ...                  b' "data": {"object": "balance", "id": "ba_1", "net": 9750}}')
    >>> ev.type, ev.provider_ref, ev.amount
    ('payout.balance_fixed', 'ba_1', Money.jpy(9750))
    """
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError("webhook body is not JSON", provider=PROVIDER) from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise WebhookVerificationError("webhook body is not a PAY.JP event", provider=PROVIDER)
    kind: str = event["type"]
    resource = _resource(event)
    event_id = event.get("id")
    created = event.get("created")
    occurred = from_ts(created) if isinstance(created, int) else None
    status: ChargeStatus | None = None
    amount: Money | None = None
    charge: Charge | None = None
    refunded: Money | None = None
    captured: Money | None = None
    ref = resource.get("id") if isinstance(resource.get("id"), str) else None
    if kind.startswith("charge.") and resource.get("object") == "charge":
        now = ctx.now() if ctx is not None else None
        status = charge_status(resource, memo, now=now)
        if kind == "charge.failed":
            status = ChargeStatus.FAILED
        normalised = _CHARGE_TYPES.get(status, "charge.updated")
        if isinstance(resource.get("amount"), int):
            amount = jpy(resource["amount"], str(resource.get("currency") or "jpy"))
        if ctx is not None and isinstance(resource.get("amount"), int):
            charge = charge_from_wire(resource, ctx, memo=memo, status=status)
            amount = charge.amount
            refunded = charge.amount_refunded
            captured = charge.amount_captured
    elif kind == "balance.fixed":
        normalised = "payout.balance_fixed"
        amount = _net(resource)
    elif kind.split(".", 1)[0] in ("balance", "statement", "term"):
        normalised = "payout.updated"
        amount = _net(resource)
    else:
        normalised = "provider.other"
    return ParsedEvent(
        provider_event_type=kind,
        type=normalised,
        provider_event_id=str(event_id) if event_id is not None else None,
        provider_ref=ref,
        status=status,
        amount=amount,
        occurred_at=occurred,
        charge=charge,
        raw=event,
        amount_refunded=refunded,
        amount_captured=captured,
    )


def _net(resource: Mapping[str, Any]) -> Money | None:
    net = resource.get("net")
    if isinstance(net, int) and not isinstance(net, bool):
        return jpy(net)
    return None
