"""Webhooks: elepay signs nothing, so the adapter re-fetches the charge before trusting."""

from __future__ import annotations

import json

import pytest

from paygate import ChargeStatus, Money, QRCode, WebhookVerificationError
from paygate.adapter import ChargeRequest, Reply, drive
from paygate_elepay import ElepayProvider


def paid_order(provider, emu, make_ctx, cache, key="order-1042", amount=1200):
    charge = drive(
        provider.charge(ChargeRequest(amount=Money.jpy(amount), method=QRCode()), make_ctx(key)),
        emu.respond,
        cache,
    )
    emu.pay(charge.provider_ref)
    return charge


def handle(provider, delivery_body, ctx, respond, cache=None):
    headers = {"content-type": "application/json;charset=utf-8"}
    provider.verify_webhook(headers, delivery_body)
    return drive(provider.parse_webhook(headers, delivery_body, ctx), respond, cache)


def test_charge_succeeded_is_refetched(provider, emu, make_ctx):
    cache: dict = {}
    charge = paid_order(provider, emu, make_ctx, cache)
    (delivery,) = emu.deliveries
    emu.calls.clear()
    (event,) = handle(provider, delivery.body, make_ctx(None, charge_id=None), emu.respond, cache)
    assert [c.step for c in emu.calls] == ["charges.get"]
    assert event.type == "charge.succeeded"
    assert event.provider_event_type == "charge.succeeded"
    assert event.provider_event_id == delivery.event_id  # the dedupe key
    assert event.provider_ref == charge.provider_ref  # matched through the orderNo cache
    assert event.status is ChargeStatus.SUCCEEDED
    assert event.amount == Money.jpy(1200)
    assert event.charge is not None
    assert event.charge.status is ChargeStatus.SUCCEEDED
    assert event.charge.provider_ref == charge.provider_ref
    assert event.occurred_at == emu.clock.now()


def test_without_cache_the_event_names_the_charge(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    (delivery,) = emu.deliveries
    (event,) = handle(provider, delivery.body, make_ctx(None), emu.respond, {})
    charge_id = json.loads(delivery.body)["data"]["object"]["id"]
    assert event.provider_ref == f"charge:{charge_id}"


def test_forged_body_is_refused(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    event["data"]["object"]["amount"] = 1
    with pytest.raises(WebhookVerificationError):
        handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    event["data"]["object"]["id"] = "ch_invented"
    with pytest.raises(WebhookVerificationError) as info:
        handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert info.value.provider_code == "M002003"


def test_state_comes_from_the_api_not_the_body(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    event["data"]["object"]["status"] = "refunded"  # a replayed or altered body
    (parsed,) = handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert parsed.status is ChargeStatus.SUCCEEDED


def test_refund_event(provider, emu, make_ctx):
    from paygate.adapter import ChargeRef, RefundRequest

    cache: dict = {}
    charge = paid_order(provider, emu, make_ctx, cache)
    ref = ChargeRef(charge_id=charge.id, provider_ref=charge.provider_ref, method="qr")
    drive(
        provider.refund(RefundRequest(charge=ref, amount=Money.jpy(200)), make_ctx("r1")),
        emu.respond,
    )
    delivery = emu.deliveries[-1]
    (event,) = handle(provider, delivery.body, make_ctx(None), emu.respond, cache)
    assert event.type == "refund.succeeded"
    assert event.status is ChargeStatus.PARTIALLY_REFUNDED
    assert event.provider_ref == charge.provider_ref
    assert event.charge.amount_refunded == Money.jpy(200)

    forged = json.loads(delivery.body)
    forged["data"]["object"]["id"] = "re_invented"
    with pytest.raises(WebhookVerificationError):
        handle(provider, json.dumps(forged).encode(), make_ctx(None), emu.respond, cache)


def test_charge_captured_alias_and_revoked(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    event["type"] = "charge.captured"
    (parsed,) = handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert parsed.type == "charge.succeeded"
    event["type"] = "charge.revoked"
    (parsed,) = handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert parsed.type == "charge.canceled"
    event["type"] = "charge.something_new"
    (parsed,) = handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert parsed.type == "charge.updated"


def test_other_events_are_passed_through_without_calls(provider, make_ctx, no_io):
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "source.activated",
            "data": {"object": {"id": "src_1"}},
        }
    ).encode()
    (event,) = handle(provider, body, make_ctx(None), no_io)
    assert event.type == "provider.other"
    assert event.provider_event_id == "evt_1"


def test_refetch_can_be_switched_off(settings, emu, make_ctx, no_io):
    provider = ElepayProvider(
        settings.model_copy(update={"verify_webhooks_by_refetch": False}), account="qr"
    )
    assert provider.capabilities().webhook_auth == "none"
    paid_order(provider, emu, make_ctx, {})
    (event,) = handle(provider, emu.deliveries[0].body, make_ctx(None), no_io, {})
    assert event.status is ChargeStatus.SUCCEEDED
    assert event.charge is None


def test_event_without_id_still_gets_a_stable_dedupe_key(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    del event["id"]
    body = json.dumps(event).encode()
    (one,) = handle(provider, body, make_ctx(None), emu.respond, {})
    (two,) = handle(provider, body, make_ctx(None), emu.respond, {})
    assert one.provider_event_id == two.provider_event_id
    assert one.provider_event_id.startswith("charge.succeeded:ch_")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "charge.succeeded"}',
        b'{"type": "charge.succeeded", "data": {"object": "x"}}',
        b'{"data": {"object": {}}}',
    ],
)
def test_malformed_deliveries_fail_verification(provider, body):
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook({}, body)


def test_event_naming_no_charge(provider, make_ctx, no_io):
    body = b'{"id": "evt_1", "type": "charge.succeeded", "data": {"object": {"amount": 1}}}'
    with pytest.raises(WebhookVerificationError):
        handle(provider, body, make_ctx(None), no_io)


def test_elepay_outage_during_refetch_is_a_provider_error(provider, make_ctx):
    from paygate import ProviderUnavailable

    body = b'{"id": "evt_1", "type": "charge.succeeded", "data": {"object": {"id": "ch_1"}}}'
    with pytest.raises(ProviderUnavailable):
        handle(provider, body, make_ctx(None), lambda call: Reply(503, {}, b""))
