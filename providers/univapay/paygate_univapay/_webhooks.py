"""UnivaPay webhook deliveries → `ParsedEvent`.

A delivery is ``{"id": uuid, "event": "<trigger>", "data": {...}, "created_on": iso}``
(the OpenAPI envelope); the reference page and the Java SDK show only ``event`` and
``data``, so ``id`` and ``created_on`` are optional here. ``data`` is a Charge for
``charge_*``, a Refund for ``refund_finished`` and a Cancel for ``cancel_finished``.

The event time is the envelope's ``created_on`` when there is one, else None (the core
uses the time of receipt): never the ``created_on`` of ``data``, which is when the
charge was made and would make every status change look older than paygate's record.
The event carries the charge's state as UnivaPay states it: a konbini charge (which
cannot be refunded, so its whole state is in ``data``) as a full `Charge` with its
slip; a card charge as its status and charged amount (its refunds are not in ``data``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from paygate._errors import MalformedResponse
from paygate._models import Charge, ChargeStatus
from paygate._money import Money
from paygate.adapter import OpContext, ParsedEvent, check_webhook_token

from ._charges import (
    META_KONBINI_STORE,
    charge_from_wire,
    charge_status,
    content_hash,
    with_facts,
)
from ._errors import PROVIDER
from ._wire import parse_time

__all__ = ["charge_id_of", "parse_event", "verify_token"]


_CHARGE_TYPES: dict[ChargeStatus, str] = {
    ChargeStatus.SUCCEEDED: "charge.succeeded",
    ChargeStatus.FAILED: "charge.failed",
    ChargeStatus.EXPIRED: "charge.expired",
    ChargeStatus.CANCELED: "charge.canceled",
}


def _amount(data: Mapping[str, Any], amount_key: str, currency_key: str) -> Money | None:
    amount, currency = data.get(amount_key), data.get(currency_key)
    if isinstance(amount, int) and not isinstance(amount, bool) and isinstance(currency, str):
        return Money(amount=amount, currency=currency.upper())
    return None


def verify_token(headers: Mapping[str, str], expected: SecretStr | None) -> None:
    """Raise `WebhookVerificationError` unless ``Authorization`` carries ``expected``.

    UnivaPay signs nothing: it echoes the webhook's ``auth_token`` in the
    ``Authorization`` header. The header is accepted with or without a ``Bearer``
    prefix, compared in constant time.
    """
    check_webhook_token(
        headers,
        expected,
        header="Authorization",
        provider=PROVIDER,
        setting="webhook_auth_token",
        prefixes=("Bearer ",),
    )


def charge_id_of(body: bytes) -> str | None:
    """The charge id of a ``charge_*`` delivery (None for anything else)."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(envelope, Mapping) or not str(envelope.get("event")).startswith("charge_"):
        return None
    data = envelope.get("data")
    charge_id = data.get("id") if isinstance(data, Mapping) else None
    return charge_id if isinstance(charge_id, str) and charge_id else None


def parse_event(
    body: bytes,
    ctx: OpContext,
    *,
    facts: Mapping[str, str] | None = None,
) -> list[ParsedEvent]:
    """The normalised events of one delivery (always exactly one for UnivaPay).

    ``facts`` are the store and deadline paygate kept for the charge, used where the
    delivery's metadata lacks them.
    """
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse("webhook body is not JSON", provider=PROVIDER) from exc
    if not isinstance(envelope, Mapping):
        raise MalformedResponse("webhook body is not a JSON object", provider=PROVIDER)
    trigger = str(envelope.get("event") or "")
    data = envelope.get("data")
    data = data if isinstance(data, Mapping) else {}
    event_id = envelope.get("id")
    provider_event_id = (
        str(event_id) if isinstance(event_id, str) and event_id else content_hash(envelope)
    )
    occurred = parse_time(envelope.get("created_on"))
    common: dict[str, Any] = {
        "provider_event_type": trigger,
        "provider_event_id": provider_event_id,
        "occurred_at": occurred,
        "raw": dict(envelope),
    }
    if trigger in ("charge_updated", "charge_finished"):
        data = with_facts(data, facts or {})
        metadata = data.get("metadata")
        konbini = isinstance(metadata, Mapping) and bool(metadata.get(META_KONBINI_STORE))
        status = charge_status(data, konbini=konbini, now=ctx.now())
        charge: Charge | None = None
        if konbini and data.get("id"):
            try:
                charge = charge_from_wire(data, ctx, method="konbini")
            except MalformedResponse:
                charge = None
        captured = None
        if status in (ChargeStatus.SUCCEEDED, ChargeStatus.AUTHORIZED):
            captured = _amount(data, "charged_amount", "charged_currency")
        return [
            ParsedEvent(
                type=_CHARGE_TYPES.get(status, "charge.updated"),
                provider_ref=str(data.get("id")) if data.get("id") else None,
                status=status,
                amount=_amount(data, "requested_amount", "requested_currency"),
                charge=charge,
                amount_captured=captured,
                **common,
            )
        ]
    if trigger == "refund_finished":
        state = str(data.get("status") or "")
        kind = {"successful": "refund.succeeded", "failed": "refund.failed"}.get(
            state, "refund.failed" if state == "error" else "provider.other"
        )
        return [
            ParsedEvent(
                type=kind,
                provider_ref=str(data.get("charge_id")) if data.get("charge_id") else None,
                amount=_amount(data, "amount", "currency"),
                **common,
            )
        ]
    if trigger == "cancel_finished":
        succeeded = str(data.get("status") or "") == "successful"
        return [
            ParsedEvent(
                type="charge.canceled" if succeeded else "provider.other",
                provider_ref=str(data.get("charge_id")) if data.get("charge_id") else None,
                status=ChargeStatus.CANCELED if succeeded else None,
                **common,
            )
        ]
    if trigger.startswith("transfer_"):
        return [ParsedEvent(type="payout.updated", **common)]
    return [ParsedEvent(type="provider.other", **common)]
