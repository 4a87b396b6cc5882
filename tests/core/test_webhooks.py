"""Webhooks through the gateway: verification, dedup, handlers once, the ASGI app."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from paygate import ChargeStatus, Event, Money, QRCode, WebhookVerificationError

TOKEN = {"x-fake-token": "whk_fake_token_abcdef"}


def delivery(charge: Any, status: str = "succeeded", event_id: str = "evt_1") -> bytes:
    data = {
        "id": charge.provider_ref,
        "amount": charge.amount.amount,
        "currency": "JPY",
        "status": status,
    }
    return json.dumps({"id": event_id, "type": "charge.paid", "data": data}).encode()


def test_forged_token_is_refused_and_nothing_recorded(gateway_factory: Any) -> None:
    gw = gateway_factory()
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="wh-1")
    with pytest.raises(WebhookVerificationError):
        gw.webhooks.handle("fake", {"x-fake-token": "forged"}, delivery(charge))
    assert gw.store.get_charge(charge.id).status is ChargeStatus.REQUIRES_ACTION


def test_six_deliveries_run_handlers_once(gateway_factory: Any) -> None:
    gw = gateway_factory()
    seen: list[Event] = []
    gw.webhooks.on("charge.succeeded")(seen.append)
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="wh-2")
    results = [gw.webhooks.handle("fake", TOKEN, delivery(charge)) for _ in range(6)]
    assert len(seen) == 1
    assert seen[0].charge_id == charge.id
    assert [r[0].duplicate for r in results] == [False, True, True, True, True, True]
    assert gw.store.get_charge(charge.id).status is ChargeStatus.SUCCEEDED
    history = gw.store.history(charge.id)
    assert [t.source for t in history][-1] == "webhook"


def test_handler_failure_releases_the_event_for_redelivery(gateway_factory: Any) -> None:
    gw = gateway_factory()
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("database down")

    gw.webhooks.on("*")(flaky)
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="wh-3")
    with pytest.raises(RuntimeError):
        gw.webhooks.handle("fake", TOKEN, delivery(charge))
    gw.webhooks.handle("fake", TOKEN, delivery(charge))
    gw.webhooks.handle("fake", TOKEN, delivery(charge))
    assert len(calls) == 2


def test_late_webhook_cannot_undo_a_final_status(gateway_factory: Any) -> None:
    gw = gateway_factory()
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="wh-4")
    gw.cancel("fake", charge.id)
    gw.webhooks.handle("fake", TOKEN, delivery(charge, "pending", "evt_late"))
    assert gw.store.get_charge(charge.id).status is ChargeStatus.CANCELED


def test_asgi_app_status_codes(gateway_factory: Any, driver: str, serve: Any) -> None:
    gw = gateway_factory()
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="wh-5")
    failing = {"on": False}

    def handler(event: Event) -> None:
        if failing["on"]:
            raise RuntimeError("boom")

    gw.webhooks.on("*")(handler)
    app = gw.gateway.webhooks.asgi() if driver == "async" else gw.webhooks.asgi()
    with serve(app) as url:
        with httpx.Client(base_url=url) as client:
            assert (
                client.post(
                    "/fake", content=delivery(charge), headers={"x-fake-token": "no"}
                ).status_code
                == 401
            )
            assert (
                client.post("/fake", content=b"x" * (2 * 1024 * 1024), headers=TOKEN).status_code
                == 400
            )
            assert client.post("/nope", content=b"{}", headers=TOKEN).status_code == 404
            failing["on"] = True
            assert (
                client.post(
                    "/fake", content=delivery(charge, event_id="e9"), headers=TOKEN
                ).status_code
                == 500
            )
            failing["on"] = False
            ok = client.post("/fake", content=delivery(charge, event_id="e9"), headers=TOKEN)
            assert ok.status_code == 200
            assert ok.json() == {"received": 1, "duplicates": 0}
            again = client.post("/fake", content=delivery(charge, event_id="e9"), headers=TOKEN)
            assert again.json() == {"received": 1, "duplicates": 1}
