"""PAY.JP webhooks: token check and normalisation.

PAY.JP signs nothing: every delivery carries the account's static webhook token in
``X-Payjp-Webhook-Token``, compared here in constant time. The body is the event
``{id: "evnt_...", object: "event", type, created, data: <resource>}``. Deliveries may
be missing or repeated, so the event id is the dedupe key.

Normalised types: charge events become ``charge.*`` according to the charge's state;
``balance.fixed`` (a balance whose amount is fixed for payout or claim) becomes
``payout.balance_fixed``; the other ``balance.*``, ``statement.*`` and ``term.*``
events become ``payout.updated``; everything else is ``provider.other``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from paygate import ChargeStatus, Money
from paygate._errors import WebhookVerificationError
from paygate.adapter import ParsedEvent

from ._charges import charge_status
from ._wire import from_ts, jpy

__all__ = ["TOKEN_HEADER", "parse_event", "verify_token"]

TOKEN_HEADER = "X-Payjp-Webhook-Token"  # noqa: S105 - a header name
PROVIDER = "payjp"

_CHARGE_TYPES = {
    ChargeStatus.SUCCEEDED: "charge.succeeded",
    ChargeStatus.FAILED: "charge.failed",
    ChargeStatus.CANCELED: "charge.canceled",
    ChargeStatus.EXPIRED: "charge.expired",
    ChargeStatus.REFUNDED: "charge.refunded",
    ChargeStatus.PARTIALLY_REFUNDED: "charge.refunded",
}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_token(headers: Mapping[str, str], expected: str | None) -> None:
    """Raise `WebhookVerificationError` unless the token header matches ``expected``."""
    if not expected:
        raise WebhookVerificationError(
            "no webhook_token is configured for this PAY.JP account", provider=PROVIDER
        )
    given = _header(headers, TOKEN_HEADER)
    if given is None:
        raise WebhookVerificationError(f"missing {TOKEN_HEADER} header", provider=PROVIDER)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookVerificationError(f"{TOKEN_HEADER} does not match", provider=PROVIDER)


def _resource(event: Mapping[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    # The documented shape puts the resource directly under ``data``; a Stripe-like
    # ``data.object`` wrapper is accepted as well.
    if isinstance(data, dict) and isinstance(data.get("object"), dict):
        return data["object"]  # type: ignore[no-any-return]
    return data if isinstance(data, dict) else {}


def parse_event(body: bytes) -> ParsedEvent:
    """Normalise one PAY.JP event body.

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
    ref = resource.get("id") if isinstance(resource.get("id"), str) else None
    if kind.startswith("charge.") and resource.get("object") == "charge":
        status = charge_status(resource)
        if kind == "charge.failed":
            status = ChargeStatus.FAILED
        normalised = _CHARGE_TYPES.get(status, "charge.updated")
        if isinstance(resource.get("amount"), int):
            amount = jpy(resource["amount"], str(resource.get("currency") or "jpy"))
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
        raw=event,
    )


def _net(resource: Mapping[str, Any]) -> Money | None:
    net = resource.get("net")
    if isinstance(net, int) and not isinstance(net, bool):
        return jpy(net)
    return None
