"""Webhook token check and event normalisation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paygate import ChargeStatus, Money, WebhookVerificationError
from paygate.adapter import drive
from paygate_payjp import PayjpProvider

TOKEN = "whook_test_paygate0sandbox00000000"


def body(kind: str, data: dict[str, Any], eid: str = "evnt_1") -> bytes:
    return json.dumps(
        {"object": "event", "id": eid, "type": kind, "created": 1768014000, "data": data}
    ).encode()


def charge(**changes: Any) -> dict[str, Any]:
    obj = {
        "object": "charge",
        "id": "ch_1",
        "amount": 1000,
        "currency": "jpy",
        "paid": True,
        "captured": True,
        "refunded": False,
        "amount_refunded": 0,
    }
    obj.update(changes)
    return obj


def parse(provider: PayjpProvider, make_ctx: Any, raw: bytes) -> Any:
    headers = {"X-Payjp-Webhook-Token": TOKEN}
    provider.verify_webhook(headers, raw)
    events = drive(provider.parse_webhook(headers, raw, make_ctx(key=None)), lambda c: None)  # type: ignore[arg-type,return-value]
    assert len(events) == 1
    return events[0]


def test_token_is_verified(provider: PayjpProvider) -> None:
    raw = body("charge.succeeded", charge())
    provider.verify_webhook({"X-Payjp-Webhook-Token": TOKEN}, raw)
    provider.verify_webhook({"x-payjp-webhook-token": TOKEN}, raw)
    for headers in ({}, {"X-Payjp-Webhook-Token": "whook_wrong"}, {"X-Payjp-Webhook-Token": ""}):
        with pytest.raises(WebhookVerificationError):
            provider.verify_webhook(headers, raw)


def test_token_must_be_configured(settings_factory: Any) -> None:
    provider = PayjpProvider(settings_factory(webhook_token=None), account="card")
    with pytest.raises(WebhookVerificationError, match="no webhook_token"):
        provider.verify_webhook({"X-Payjp-Webhook-Token": TOKEN}, b"{}")


def test_wrong_token_is_not_echoed(provider: PayjpProvider) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        provider.verify_webhook({"X-Payjp-Webhook-Token": "whook_guess_123456"}, b"{}")
    assert "whook_guess_123456" not in str(info.value)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "data", "normalised", "status"),
    [
        ("charge.succeeded", charge(), "charge.succeeded", ChargeStatus.SUCCEEDED),
        ("charge.succeeded", charge(captured=False), "charge.updated", ChargeStatus.AUTHORIZED),
        ("charge.captured", charge(), "charge.succeeded", ChargeStatus.SUCCEEDED),
        (
            "charge.failed",
            charge(paid=False, captured=False, failure_code="card_declined"),
            "charge.failed",
            ChargeStatus.FAILED,
        ),
        # https://pay.jp/docs/refund: refunded is true after any refund, partial or full.
        (
            "charge.refunded",
            charge(amount_refunded=400, refunded=True),
            "charge.refunded",
            ChargeStatus.PARTIALLY_REFUNDED,
        ),
        (
            "charge.refunded",
            charge(amount_refunded=1000, refunded=True),
            "charge.refunded",
            ChargeStatus.REFUNDED,
        ),
        (
            "charge.refunded",
            charge(captured=False, refunded=True, amount_refunded=1000),
            "charge.canceled",
            ChargeStatus.CANCELED,
        ),
        ("charge.updated", charge(), "charge.succeeded", ChargeStatus.SUCCEEDED),
    ],
)
def test_charge_events(
    provider: PayjpProvider,
    make_ctx: Any,
    kind: str,
    data: dict[str, Any],
    normalised: str,
    status: ChargeStatus,
) -> None:
    event = parse(provider, make_ctx, body(kind, data))
    assert event.type == normalised
    assert event.provider_event_type == kind
    assert event.provider_event_id == "evnt_1"
    assert event.provider_ref == "ch_1"
    assert event.status is status
    assert event.amount == Money.jpy(1000)
    assert event.occurred_at is not None


def test_a_partial_refund_event_carries_the_refunded_sum(
    provider: PayjpProvider, make_ctx: Any
) -> None:
    data = charge(amount=12_000, amount_refunded=1000, refunded=True)
    event = parse(provider, make_ctx, body("charge.refunded", data))
    assert event.status is ChargeStatus.PARTIALLY_REFUNDED
    assert event.amount_refunded == Money.jpy(1000)
    assert event.amount_captured == Money.jpy(12_000)
    assert event.charge is not None
    assert event.charge.amount_refunded == Money.jpy(1000)


def test_events_apply_the_capture_memo(provider: PayjpProvider, make_ctx: Any) -> None:
    # 600 of 1000 captured: the 400 released is in amount_refunded, not a refund.
    cache = {"payjp:capture:card:ch_1": {"authorized": 1000, "captured": 600, "released": 400}}
    headers = {"X-Payjp-Webhook-Token": TOKEN}
    raw = body("charge.captured", charge(amount_refunded=400))
    flow = provider.parse_webhook(headers, raw, make_ctx(key=None))
    (event,) = drive(flow, lambda c: None, cache)  # type: ignore[arg-type,return-value]
    assert event.type == "charge.succeeded"
    assert event.amount_refunded == Money.jpy(0)
    assert event.amount_captured == Money.jpy(600)


@pytest.mark.parametrize(
    ("kind", "data", "normalised"),
    [
        ("balance.fixed", {"object": "balance", "id": "ba_1", "net": 9750}, "payout.balance_fixed"),
        ("balance.closed", {"object": "balance", "id": "ba_1", "net": 9750}, "payout.updated"),
        ("balance.created", {"object": "balance", "id": "ba_1", "net": 0}, "payout.updated"),
        ("balance.merged", {"object": "balance", "id": "ba_1", "net": 0}, "payout.updated"),
        ("statement.created", {"object": "statement", "id": "st_1", "net": 10}, "payout.updated"),
        ("term.closed", {"object": "term", "id": "tm_1"}, "payout.updated"),
        ("term.created", {"object": "term", "id": "tm_2"}, "payout.updated"),
        ("customer.created", {"object": "customer", "id": "cus_1"}, "provider.other"),
    ],
)
def test_payout_and_other_events(
    provider: PayjpProvider, make_ctx: Any, kind: str, data: dict[str, Any], normalised: str
) -> None:
    event = parse(provider, make_ctx, body(kind, data, eid="evnt_9"))
    assert event.type == normalised
    assert event.provider_event_id == "evnt_9"
    assert event.provider_ref == data["id"]
    if "net" in data:
        assert event.amount == Money.jpy(data["net"])


def test_wrapped_data_is_accepted(provider: PayjpProvider, make_ctx: Any) -> None:
    raw = body("charge.succeeded", {"object": charge()})
    assert parse(provider, make_ctx, raw).provider_ref == "ch_1"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"id": "evnt_1"}'])
def test_malformed_bodies(provider: PayjpProvider, make_ctx: Any, raw: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        provider.parse_webhook({}, raw, make_ctx())
