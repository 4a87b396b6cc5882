"""The PAY.JP adapter through `Gateway` / `AsyncGateway` against the running sandbox.

Every test runs on both drivers. The sandbox clock starts at real time, so nothing here
depends on a particular date: closing runs are forced (``close_term``) or reached by
advancing more than a month.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from paygate import (
    Card,
    ChargeStatus,
    Gateway,
    InvalidRequest,
    Money,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    Redirect,
    Refund,
    RetryPolicy,
)
from paygate.testing import DRIVERS
from paygate_payjp import Statement, StatementUrl


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, make_gateway: Any) -> Any:
    return make_gateway(driver=request.param)


def api(sandbox: Any, path: str, **params: Any) -> dict[str, Any]:
    creds = sandbox.credentials()["payjp"]
    with httpx.Client(trust_env=False) as client:
        resp = client.get(
            f"{creds['base_url']}{path}", params=params, auth=(creds["secret_key"], "")
        )
    resp.raise_for_status()
    return resp.json()  # type: ignore[no-any-return]


def test_charge_capture_refund_status(gw: Any, sandbox: Any) -> None:
    auth = gw.charge(
        "card",
        amount=Money.jpy(5000),
        method=Card(token="tok_success", capture=False),
        idempotency_key="gw-order-1",
        description="order 1",
        metadata={"order": "1"},
    )
    assert auth.status is ChargeStatus.AUTHORIZED
    assert auth.provider == "payjp"
    captured = gw.capture("card", auth.id, amount=Money.jpy(4000), idempotency_key="gw-cap-1")
    assert captured.status is ChargeStatus.SUCCEEDED
    assert (captured.amount, captured.amount_captured) == (Money.jpy(5000), Money.jpy(4000))
    assert captured.amount_refunded == Money.jpy(0)
    first = gw.refund("card", auth.id, amount=Money.jpy(1000), idempotency_key="gw-r-1")
    assert isinstance(first, Refund)
    assert first.amount == Money.jpy(1000)
    rest = gw.refund("card", auth.id, idempotency_key="gw-r-2")
    assert rest.amount == Money.jpy(3000)
    final = gw.status("card", auth.id)
    assert final.status is ChargeStatus.REFUNDED
    assert final.amount_refunded == Money.jpy(4000)
    (entry,) = sandbox.ledger()["payjp"]
    assert (entry.amount, entry.refunded, entry.status) == (4000, 4000, "refunded")
    assert entry.key == "pg-charge-gw-order-1"


def test_a_lost_response_is_resent_with_the_same_key(gw: Any, sandbox: Any) -> None:
    sandbox.fault("payjp", "drop_after_commit", path="^/v1/charges$", method="POST")
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k1"
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(sandbox.ledger()["payjp"]) == 1


def test_rate_limit_is_retried_then_reported(gw: Any, sandbox: Any) -> None:
    sandbox.fault("payjp", "rate_limit", path="^/v1/charges$", count=2)
    ok = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k1"
    )
    assert ok.status is ChargeStatus.SUCCEEDED
    sandbox.fault("payjp", "rate_limit", path="^/v1/charges$", count=10)
    with pytest.raises(RateLimited) as info:
        gw.charge(
            "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k2"
        )
    assert info.value.provider_code == "over_capacity"
    assert info.value.retryable


def test_server_errors_then_a_keyed_resend(gw: Any, sandbox: Any) -> None:
    sandbox.fault("payjp", "status", status=500, path="^/v1/charges$", count=10)
    with pytest.raises(ProviderUnavailable) as info:
        gw.charge(
            "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k1"
        )
    assert info.value.provider_code == "payjp_wrong"
    sandbox.clear_faults()
    # The outcome was unknown; inside the key window the gateway re-sends the same key.
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k1"
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(sandbox.ledger()["payjp"]) == 1


def test_a_connection_that_keeps_dropping_leaves_the_outcome_unknown(gw: Any, sandbox: Any) -> None:
    sandbox.fault("payjp", "drop_after_commit", path="^/v1/charges$", method="POST", count=10)
    with pytest.raises(OutcomeUnknown):
        gw.charge(
            "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k1"
        )
    # Every re-send carried the same Idempotency-Key: PAY.JP acted once.
    assert len(sandbox.ledger()["payjp"]) == 1


@pytest.mark.parametrize("keys", ["all", "create"])
def test_a_lost_refund_answer_is_looked_up_not_resent(gw: Any, sandbox: Any, keys: str) -> None:
    # v1 documents no Idempotency-Key semantics for /refund: under either reading
    # (keys honoured on every POST, or on charge creation only) the refund happens once.
    sandbox.control("payjp", "reading", idempotent_writes=keys)
    charge = gw.charge(
        "card", amount=Money.jpy(5000), method=Card(token="tok_success"), idempotency_key="k1"
    )
    sandbox.fault("payjp", "drop_after_commit", path="/refund$", method="POST")
    refund = gw.refund("card", charge.id, amount=Money.jpy(1000), idempotency_key="r1")
    assert refund.amount == Money.jpy(1000)
    (entry,) = sandbox.ledger()["payjp"]
    assert (entry.refunded, entry.status) == (1000, "partially_refunded")
    status = gw.status("card", charge.id)
    assert status.status is ChargeStatus.PARTIALLY_REFUNDED
    assert status.amount_refunded == Money.jpy(1000)
    # The rest, without an amount, after the partial refund.
    rest = gw.refund("card", charge.id, idempotency_key="r2")
    assert rest.amount == Money.jpy(4000)
    assert gw.status("card", charge.id).status is ChargeStatus.REFUNDED
    (entry,) = sandbox.ledger()["payjp"]
    assert (entry.refunded, entry.status) == (5000, "refunded")


@pytest.mark.parametrize("keys", ["all", "create"])
def test_a_lost_capture_answer_is_looked_up_not_resent(gw: Any, sandbox: Any, keys: str) -> None:
    sandbox.control("payjp", "reading", idempotent_writes=keys)
    auth = gw.charge(
        "card",
        amount=Money.jpy(5000),
        method=Card(token="tok_success", capture=False),
        idempotency_key="k1",
    )
    sandbox.fault("payjp", "drop_after_commit", path="/capture$", method="POST")
    captured = gw.capture("card", auth.id, amount=Money.jpy(4000), idempotency_key="c1")
    assert captured.status is ChargeStatus.SUCCEEDED
    assert (captured.amount_captured, captured.amount_refunded) == (
        Money.jpy(4000),
        Money.jpy(0),
    )
    (entry,) = sandbox.ledger()["payjp"]
    assert (entry.amount, entry.refunded, entry.status) == (4000, 0, "succeeded")
    rest = gw.refund("card", auth.id, idempotency_key="r1")
    assert rest.amount == Money.jpy(4000)
    final = gw.status("card", auth.id)
    assert (final.status, final.amount_refunded) == (ChargeStatus.REFUNDED, Money.jpy(4000))


def test_a_partial_refund_webhook_books_the_refunded_sum(gw: Any, sandbox: Any) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(12_000), method=Card(token="tok_success"), idempotency_key="k1"
    )
    gw.refund("card", charge.id, amount=Money.jpy(1000), idempotency_key="r1")
    (event,) = api(sandbox, "/v1/events", type="charge.refunded")["data"]
    assert (event["data"]["refunded"], event["data"]["amount_refunded"]) == (True, 1000)
    headers = {"X-Payjp-Webhook-Token": sandbox.credentials()["payjp"]["webhook_token"]}
    (handled,) = gw.webhooks.handle("card", headers, json.dumps(event).encode())
    assert handled.type == "charge.refunded"
    assert handled.status is ChargeStatus.PARTIALLY_REFUNDED
    record = gw.store.get_charge(charge.id)
    assert (record.status, record.amount_refunded) == (ChargeStatus.PARTIALLY_REFUNDED, 1000)


def test_decline_and_provider_rejection(gw: Any) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        gw.charge(
            "card",
            amount=Money.jpy(1200),
            method=Card(token="tok_expired_card"),
            idempotency_key="k1",
        )
    assert declined.value.provider_code == "expired_card"
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k2"
    )
    with pytest.raises(ProviderRejected) as rejected:
        gw.capture("card", charge.id, idempotency_key="cap")
    assert rejected.value.provider_code == "already_captured"


def test_refund_limits_are_checked_once_before_any_request(gw: Any, sandbox: Any) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="k3"
    )
    before = sandbox.host.request_count
    with pytest.raises(InvalidRequest) as info:
        gw.refund("card", charge.id, reason="x" * 256, idempotency_key="r-long")
    assert info.value.param == "reason"
    assert sandbox.host.request_count == before


def test_three_d_secure(gw: Any, sandbox: Any) -> None:
    charge = gw.charge(
        "card",
        amount=Money.jpy(3000),
        method=Card(token="tok_success", three_d_secure=True),
        idempotency_key="tds-1",
    )
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, Redirect)
    with httpx.Client(trust_env=False) as client:
        page = client.get(charge.next_action.url)
    assert page.status_code == 200
    assert gw.status("card", charge.id).status is ChargeStatus.SUCCEEDED


@pytest.mark.parametrize("marks_refunded", [True, False])
def test_authorisation_expires_with_the_clock(
    sandbox: Any, paygate_accounts: Any, marks_refunded: bool
) -> None:
    # The gateway reads the sandbox's clock, as it reads the real one against PAY.JP.
    sandbox.control("payjp", "reading", expiry_marks_refunded=marks_refunded)
    config = {"store": "memory://", "accounts": paygate_accounts}
    gw = Gateway.from_config(config, retry=RetryPolicy.no_wait(), clock=sandbox.now)
    try:
        charge = gw.charge(
            "card",
            amount=Money.jpy(3000),
            method=Card(token="tok_success", capture=False),
            idempotency_key="auth-1",
        )
        sandbox.advance(timedelta(days=6))
        assert gw.status("card", charge.id).status is ChargeStatus.AUTHORIZED
        sandbox.advance(timedelta(days=2))
        assert gw.status("card", charge.id).status is ChargeStatus.EXPIRED
    finally:
        gw.close()


def test_payout_balance_and_extensions(gw: Any, sandbox: Any) -> None:
    gw.charge(
        "card", amount=Money.jpy(15_000), method=Card(token="tok_success"), idempotency_key="p1"
    )
    before = gw.payout_balance("card")
    assert before.scheduled == Money.jpy(0)
    assert before.raw["current_term"]["closed"] is False
    sandbox.control("payjp", "close_term")
    after = gw.payout_balance("card")
    assert after.scheduled == Money.jpy(15_000 - 450 - 250)
    assert after.next_payout_date is not None
    assert {item.kind for item in after.items} == {"gross_sales", "fee", "transfer_fee"}
    statements = gw.extension("card", "payout_statements", type="sales")
    assert [type(st) for st in statements] == [Statement]
    link = gw.extension("card", "statement_urls", statement_id=statements[0].id)
    assert isinstance(link, StatementUrl)
    with httpx.Client(trust_env=False) as client:
        assert "gross_sales" in client.get(link.url).text
    sandbox.advance(timedelta(days=70))  # past the due date: paid out
    paid = gw.payout_balance("card")
    assert paid.scheduled == Money.jpy(0)
    closed = gw.extension("card", "payout_balances", closed=True)
    assert [b.state for b in closed] == ["transfer"]


def test_webhook_deliveries_are_verified_and_deduplicated(gw: Any, sandbox: Any) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=Card(token="tok_success"), idempotency_key="w1"
    )
    (event,) = api(sandbox, "/v1/events", resource_id=charge.provider_ref)["data"]
    token = sandbox.credentials()["payjp"]["webhook_token"]
    headers = {"X-Payjp-Webhook-Token": token, "Content-Type": "application/json"}
    body = json.dumps(event).encode()
    (first,) = gw.webhooks.handle("card", headers, body)
    assert first.type == "charge.succeeded"
    assert first.charge_id == charge.id
    assert first.provider_event_id == event["id"]
    assert not first.duplicate
    (again,) = gw.webhooks.handle("card", headers, body)
    assert again.duplicate
    sandbox.control("payjp", "close_term")
    fixed = api(sandbox, "/v1/events", type="balance.fixed")["data"]
    assert fixed == []  # 1,200 JPY stays collecting (deferred)
    (created,) = api(sandbox, "/v1/events", type="statement.created")["data"]
    (payout,) = gw.webhooks.handle("card", headers, json.dumps(created).encode())
    assert payout.type == "payout.updated"


def test_demo_script_passes() -> None:
    import io

    from rich.console import Console

    from paygate.cli._demo import run_demo

    out = io.StringIO()
    assert run_demo(Console(file=out, width=120), providers=["payjp"]) == 0, out.getvalue()
    assert "payout balance" in out.getvalue()
