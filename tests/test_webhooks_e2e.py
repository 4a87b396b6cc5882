"""End to end: the emulators deliver webhooks (with their retry schedules) to the mounted
webhook app while the merchant also polls. The final state is right and every handler
ran once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from paygate import Card, ChargeStatus, Event, Gateway, Konbini, Money, QRCode, RetryPolicy


def _pay(sandbox: Any, provider: str, charge: Any) -> None:
    if provider == "univapay":
        sandbox.control("univapay", "pay_konbini", charge_id=charge.provider_ref)
    elif provider == "elepay":
        code_id = charge.next_action.url.rstrip("/").rsplit("/", 1)[-1]
        sandbox.control("elepay", "pay_code", code_id=code_id, payment_method="paypay")


CASES = {
    "univapay": lambda: Konbini(
        store="seven_eleven", customer_name="テスト 太郎", phone="0364413400"
    ),
    "payjp": lambda: Card(token="tok_success"),
    "elepay": QRCode,
}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_webhooks_with_retries_and_polling_converge(
    sandbox: Any, provider: str, serve: Any
) -> None:
    config = {"store": "memory://", "accounts": {provider: sandbox.account_settings(provider)}}
    gw = Gateway.from_config(config, retry=RetryPolicy.no_wait())
    ran: Counter[str] = Counter()
    failures = {"left": 2}
    lock = threading.Lock()

    @gw.webhooks.on("charge.succeeded")
    def paid(event: Event) -> None:
        with lock:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RuntimeError("order service briefly down")
            ran[event.charge_id or ""] += 1

    with serve(gw.webhooks.asgi()) as url:
        sandbox.set_webhook_url(f"{url}/{provider}", provider=provider)
        try:
            charge = gw.charge(
                provider,
                amount=Money.jpy(1500),
                method=CASES[provider](),
                idempotency_key=f"e2e-{provider}",
            )
            _pay(sandbox, provider, charge)
            sandbox.flush_webhooks()
            # The merchant polls while deliveries are failing and being retried.
            polled = gw.status(provider, charge.id)
            assert polled.status is ChargeStatus.SUCCEEDED
            for _ in range(8):
                sandbox.advance(timedelta(minutes=15))
                sandbox.flush_webhooks()
                if ran[charge.id]:
                    break
            log = [a for a in sandbox.webhook_log() if a.provider == provider]
            assert any(a.status_code == 500 for a in log), "the first deliveries should have failed"
            assert any(a.status_code == 200 for a in log)
            assert ran[charge.id] == 1
            assert gw.store.get_charge(charge.id).status is ChargeStatus.SUCCEEDED
            # A late redelivery of everything changes nothing and runs nothing again.
            sandbox.advance(timedelta(hours=6))
            sandbox.flush_webhooks()
            assert ran[charge.id] == 1
            assert gw.status(provider, charge.id).status is ChargeStatus.SUCCEEDED
        finally:
            sandbox.set_webhook_url(None, provider=provider)
            gw.close()
