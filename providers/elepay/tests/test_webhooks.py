"""Webhooks: elepay signs nothing, so every event is derived from the re-fetched charge.

The posted body only names the charge. Identity (``provider_event_id``, the core's
dedup key), type, status and amounts come from ``GET /charges/{id}``: a forged,
re-typed or replayed body can at most cause one extra re-fetch.
"""

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
    # The dedupe key is the charge's state, not the posted (unsigned) event id.
    charge_id = json.loads(delivery.body)["data"]["object"]["id"]
    assert event.provider_event_id == f"{charge_id}:captured:"
    assert event.provider_ref == charge.provider_ref  # matched through the orderNo cache
    assert event.status is ChargeStatus.SUCCEEDED
    assert event.amount == Money.jpy(1200)
    assert event.charge is not None
    assert event.charge.status is ChargeStatus.SUCCEEDED
    assert event.charge.provider_ref == charge.provider_ref
    assert event.occurred_at == emu.clock.now()  # the charge's paidTime
    assert event.amount_captured == Money.jpy(1200)
    assert event.amount_refunded == Money.jpy(0)


def test_without_cache_the_event_names_the_charge(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    (delivery,) = emu.deliveries
    (event,) = handle(provider, delivery.body, make_ctx(None), emu.respond, {})
    charge_id = json.loads(delivery.body)["data"]["object"]["id"]
    assert event.provider_ref == f"charge:{charge_id}"


def test_event_naming_an_unknown_charge_is_refused(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    event["data"]["object"]["id"] = "ch_invented"
    with pytest.raises(WebhookVerificationError) as info:
        handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
    assert info.value.provider_code == "M002003"


def test_forged_succeeded_under_a_new_id_is_the_same_event(provider, emu, make_ctx):
    # Issue #26: a real charge.succeeded re-posted under a new event id ran the handler
    # again. The identity is the charge's state: the core deduplicates the replay.
    paid_order(provider, emu, make_ctx, {})
    real = json.loads(emu.deliveries[0].body)
    (first,) = handle(provider, json.dumps(real).encode(), make_ctx(None), emu.respond, {})
    replay = {**real, "id": "evt_forged_1", "createTime": real["createTime"] + 999_999}
    (second,) = handle(provider, json.dumps(replay).encode(), make_ctx(None), emu.respond, {})
    assert second.provider_event_id == first.provider_event_id
    assert second.occurred_at == first.occurred_at


def test_paid_charge_retyped_as_revoked_stays_succeeded(provider, emu, make_ctx):
    # Issue #26: a paid charge re-typed as charge.revoked ran the charge.canceled handler.
    paid_order(provider, emu, make_ctx, {})
    real = json.loads(emu.deliveries[0].body)
    (genuine,) = handle(provider, json.dumps(real).encode(), make_ctx(None), emu.respond, {})
    forged = {**real, "id": "evt_forged_2", "type": "charge.revoked"}
    forged["data"] = {"object": {**real["data"]["object"], "status": "revoked"}}
    (parsed,) = handle(provider, json.dumps(forged).encode(), make_ctx(None), emu.respond, {})
    assert parsed.type == "charge.succeeded"
    assert parsed.status is ChargeStatus.SUCCEEDED
    assert parsed.provider_event_id == genuine.provider_event_id  # deduplicated


def test_refund_with_a_forged_amount_reports_the_refunded_amount(provider, emu, make_ctx):
    # Issue #26: a refund.succeeded with its amount changed from 100 to 4,900 reached the
    # handler with the forged amount.
    from paygate.adapter import ChargeRef, RefundRequest

    cache: dict = {}
    charge = paid_order(provider, emu, make_ctx, cache, amount=5000)
    ref = ChargeRef(charge_id=charge.id, provider_ref=charge.provider_ref, method="qr")
    drive(
        provider.refund(RefundRequest(charge=ref, amount=Money.jpy(100)), make_ctx("r1")),
        emu.respond,
    )
    real = json.loads(emu.deliveries[-1].body)
    (genuine,) = handle(provider, json.dumps(real).encode(), make_ctx(None), emu.respond, cache)
    forged = {**real, "id": "evt_forged_3"}
    forged["data"] = {"object": {**real["data"]["object"], "amount": 4900}}
    (parsed,) = handle(provider, json.dumps(forged).encode(), make_ctx(None), emu.respond, cache)
    assert parsed.amount == Money.jpy(100)
    assert parsed.amount_refunded == Money.jpy(100)
    assert parsed.provider_event_id == genuine.provider_event_id


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
    assert event.amount == Money.jpy(200)
    refund_id = json.loads(delivery.body)["data"]["object"]["id"]
    assert event.provider_event_id.endswith(f":partially_refunded:{refund_id}")

    # A refund id the charge does not have changes nothing: the state is the same event.
    forged = json.loads(delivery.body)
    forged["data"]["object"]["id"] = "re_invented"
    (again,) = handle(provider, json.dumps(forged).encode(), make_ctx(None), emu.respond, cache)
    assert again.provider_event_id == event.provider_event_id


def test_the_type_follows_the_fetched_state_not_the_posted_type(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    for posted in ("charge.captured", "charge.revoked", "charge.something_new"):
        event["type"] = posted
        (parsed,) = handle(provider, json.dumps(event).encode(), make_ctx(None), emu.respond, {})
        assert parsed.type == "charge.succeeded"
        assert parsed.provider_event_type == posted


@pytest.mark.parametrize("mode", ["empty", "listed"])
def test_a_real_revoke_of_a_paid_charge_is_charge_refunded(provider, emu, make_ctx, mode):
    # Whether elepay lists a revoke under `refunds` is not documented: either way the
    # paid charge returned its whole amount.
    emu.control("revoke_refunds", mode=mode)
    cache: dict = {}
    paid_order(provider, emu, make_ctx, cache)
    charge_id = json.loads(emu.deliveries[0].body)["data"]["object"]["id"]
    resp = emu.client.post(
        f"/elepay/charges/{charge_id}/revoke", headers=dict(emu.calls[0].headers)
    )
    assert resp.status_code == 200
    delivery = emu.deliveries[-1]
    assert json.loads(delivery.body)["type"] == "charge.revoked"
    (event,) = handle(provider, delivery.body, make_ctx(None), emu.respond, cache)
    assert event.type == "charge.refunded"
    assert event.status is ChargeStatus.REFUNDED
    assert event.amount_refunded == Money.jpy(1200)
    assert event.charge.amount_refunded == Money.jpy(1200)


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


def test_refetch_cannot_be_switched_off(settings):
    from pydantic import ValidationError

    from paygate_elepay import ElepaySettings

    with pytest.raises(ValidationError, match="signs no webhook"):
        ElepaySettings(
            base_url=settings.base_url, secret_key="sk_test_x", verify_webhooks_by_refetch=False
        )
    assert ElepayProvider(settings, account="qr").capabilities().webhook_auth == "refetch"


def test_event_without_id_still_gets_a_stable_dedupe_key(provider, emu, make_ctx):
    paid_order(provider, emu, make_ctx, {})
    event = json.loads(emu.deliveries[0].body)
    del event["id"]
    body = json.dumps(event).encode()
    (one,) = handle(provider, body, make_ctx(None), emu.respond, {})
    (two,) = handle(provider, body, make_ctx(None), emu.respond, {})
    assert one.provider_event_id == two.provider_event_id
    assert one.provider_event_id.startswith("ch_")


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
