"""Webhook authentication (the echoed auth token) and normalisation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from paygate import ChargeStatus, KonbiniSlip, Money, WebhookVerificationError
from paygate.adapter import OpContext, drive
from paygate_univapay import UnivapayProvider, UnivapaySettings

STORE = "11f0c0de-5702-4000-8000-70617967a7e0"
TOKEN = "whk-Secret-Token-42"
NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def provider(token: str | None = TOKEN) -> UnivapayProvider:
    settings = UnivapaySettings(
        store_id=STORE, secret="webhook_secret", jwt="a.b.c", webhook_auth_token=token
    )
    return UnivapayProvider(settings, account="konbini")


def ctx() -> OpContext:
    return OpContext(account="konbini", provider="univapay", now=lambda: NOW)


def body(event: str, data: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"event": event, "data": data, **extra}).encode()


def charge(status: str, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "ch-1",
        "status": status,
        "requested_amount": 1200,
        "requested_currency": "JPY",
        "metadata": {"paygate_konbini_store": "lawson"},
        "capture_at": None,
        "created_on": "2026-01-01T01:00:00Z",
    }
    data.update(kw)
    return data


# ------------------------------------------------------------------------- verification


@pytest.mark.parametrize(
    "header",
    [TOKEN, f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}", f"  {TOKEN}  "],
)
def test_accepts_token_with_or_without_bearer(header: str) -> None:
    provider().verify_webhook({"Authorization": header}, b"{}")
    provider().verify_webhook({"authorization": header}, b"{}")


@pytest.mark.parametrize(
    "header",
    [
        "forged",
        TOKEN.lower(),
        TOKEN + "x",
        TOKEN[:-1],
        f"Token {TOKEN}",
        f"Bearer{TOKEN}",
        f"Bearer Bearer {TOKEN}",
        "",
    ],
)
def test_refuses_forged_token(header: str) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        provider().verify_webhook({"Authorization": header}, b"{}")
    assert TOKEN not in str(info.value)


def test_refuses_missing_header() -> None:
    with pytest.raises(WebhookVerificationError):
        provider().verify_webhook({"Content-Type": "application/json"}, b"{}")


def test_refuses_when_no_token_configured() -> None:
    with pytest.raises(WebhookVerificationError, match="webhook_auth_token"):
        provider(None).verify_webhook({"Authorization": TOKEN}, b"{}")


def test_token_is_registered_as_secret() -> None:
    from paygate._redact import redact

    provider()
    assert TOKEN not in redact(f"got {TOKEN}")


# ------------------------------------------------------------------------------ parsing


def parse(raw: bytes) -> Any:
    return drive(provider().parse_webhook({}, raw, ctx()), lambda call: pytest.fail("no I/O"))


@pytest.mark.parametrize(
    ("event", "data", "kind", "status"),
    [
        ("charge_finished", charge("successful"), "charge.succeeded", ChargeStatus.SUCCEEDED),
        ("charge_finished", charge("failed"), "charge.failed", ChargeStatus.FAILED),
        ("charge_finished", charge("error"), "charge.failed", ChargeStatus.FAILED),
        ("charge_finished", charge("canceled"), "charge.canceled", ChargeStatus.CANCELED),
        (
            "charge_finished",
            charge(
                "failed",
                metadata={
                    "paygate_konbini_store": "lawson",
                    "internal_convenience_payment_number": "1",
                },
            ),
            "charge.expired",
            ChargeStatus.EXPIRED,
        ),
        (
            "charge_updated",
            charge(
                "awaiting",
                metadata={
                    "paygate_konbini_store": "lawson",
                    "internal_convenience_payment_number": "1",
                },
            ),
            "charge.updated",
            ChargeStatus.REQUIRES_ACTION,
        ),
        (
            "charge_updated",
            charge("authorized", metadata={}),
            "charge.updated",
            ChargeStatus.AUTHORIZED,
        ),
    ],
)
def test_charge_events(event: str, data: dict[str, Any], kind: str, status: ChargeStatus) -> None:
    (parsed,) = parse(body(event, data, id="ev-1", created_on="2026-01-02T03:04:05Z"))
    assert parsed.type == kind
    assert parsed.status is status
    assert parsed.provider_event_type == event
    assert parsed.provider_event_id == "ev-1"
    assert parsed.provider_ref == "ch-1"
    assert parsed.amount == Money.jpy(1200)
    assert parsed.occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [("successful", "refund.succeeded"), ("failed", "refund.failed"), ("error", "refund.failed")],
)
def test_refund_finished(status: str, kind: str) -> None:
    data = {"id": "rf-1", "charge_id": "ch-1", "status": status, "amount": 500, "currency": "JPY"}
    (parsed,) = parse(body("refund_finished", data, id="ev-2"))
    assert parsed.type == kind
    assert parsed.provider_ref == "ch-1"
    assert parsed.amount == Money.jpy(500)


def test_cancel_finished() -> None:
    data = {"id": "cn-1", "charge_id": "ch-1", "status": "successful"}
    (parsed,) = parse(body("cancel_finished", data, id="ev-3"))
    assert parsed.type == "charge.canceled"
    assert parsed.status is ChargeStatus.CANCELED
    assert parsed.provider_ref == "ch-1"
    (failed,) = parse(body("cancel_finished", {**data, "status": "failed"}, id="ev-4"))
    assert failed.type == "provider.other"
    assert failed.status is None


def test_other_triggers() -> None:
    (token,) = parse(body("token_created", {"id": "tok"}, id="ev-5"))
    assert token.type == "provider.other"
    (transfer,) = parse(body("transfer_finalized", {"id": "tr"}, id="ev-6"))
    assert transfer.type == "payout.updated"


def test_event_id_falls_back_to_content_hash() -> None:
    raw = body("charge_finished", charge("successful"))
    (first,) = parse(raw)
    assert first.provider_event_id is not None
    assert first.provider_event_id.startswith("sha256:")
    # Same content with other key order and whitespace: the same id (a redelivery).
    reordered = json.dumps(
        {"data": charge("successful"), "event": "charge_finished"}, indent=2
    ).encode()
    (second,) = parse(reordered)
    assert second.provider_event_id == first.provider_event_id
    (third,) = parse(body("charge_finished", charge("failed")))
    assert third.provider_event_id != first.provider_event_id


def test_malformed_bodies() -> None:
    from paygate import MalformedResponse

    with pytest.raises(MalformedResponse):
        parse(b"not json")
    with pytest.raises(MalformedResponse):
        parse(b"[1, 2]")


def test_reference_page_envelope_has_no_event_time() -> None:
    """``{"event","data"}`` (reference page, Java SDK): the charge's ``created_on`` is
    not the event's time; None lets the core use the time of receipt."""
    data = charge(
        "successful",
        charged_amount=1200,
        charged_currency="JPY",
        metadata={"paygate_konbini_store": "lawson", "internal_convenience_payment_number": "1"},
    )
    (parsed,) = parse(body("charge_finished", data))
    assert parsed.type == "charge.succeeded"
    assert parsed.occurred_at is None
    assert parsed.status is ChargeStatus.SUCCEEDED
    assert parsed.amount_captured == Money.jpy(1200)
    assert parsed.charge is not None
    assert parsed.charge.status is ChargeStatus.SUCCEEDED
    assert parsed.charge.amount_captured == Money.jpy(1200)


def test_openapi_envelope_time_is_used() -> None:
    data = charge("successful", charged_amount=1200, charged_currency="JPY", metadata={})
    (parsed,) = parse(body("charge_finished", data, id="ev-9", created_on="2026-01-05T00:00:00Z"))
    assert parsed.occurred_at == datetime(2026, 1, 5, tzinfo=UTC)
    # A card charge's refunds are not in ``data``: status and charged amount only.
    assert parsed.charge is None
    assert parsed.amount_captured == Money.jpy(1200)
    assert parsed.amount_refunded is None


def test_konbini_update_carries_the_issued_slip() -> None:
    data = charge(
        "awaiting",
        metadata={
            "paygate_konbini_store": "seven_eleven",
            "internal_convenience_payment_number": "1234567890123",
            "internal_convenience_payment_url": "https://example.com/slip",
        },
    )
    (parsed,) = parse(body("charge_updated", data))
    assert parsed.charge is not None
    slip = parsed.charge.next_action
    assert isinstance(slip, KonbiniSlip)
    assert slip.payment_number == "1234567890123"
    assert slip.url == "https://example.com/slip"
