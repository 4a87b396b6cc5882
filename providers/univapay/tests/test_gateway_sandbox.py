"""UnivaPay through `Gateway` and `AsyncGateway`, over loopback HTTP to the sandbox.

Time only moves on the sandbox clock: ``wait``'s backoff sleeps are turned into sandbox
clock advances (the ``virtual_time`` fixture of paygate's pytest plugin), so nothing here
sleeps for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate import (
    Card,
    ChargeStatus,
    IdempotencyConflict,
    InvalidRequest,
    Konbini,
    KonbiniSlip,
    Money,
    NotSupported,
    PaymentDeclined,
    ProviderRejected,
    Redirect,
    RefundStatus,
    WebhookVerificationError,
)
from paygate.sandbox import serve_app
from paygate.testing import DRIVERS, VirtualTime
from paygate_univapay._emulator import SEED_CARD_TOKENS, WEBHOOK_AUTH_TOKEN, UnivapayEmulator
from paygate_univapay._wire import parse_time

ACCOUNT = "univapay"


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, make_gateway: Any) -> Any:
    return make_gateway(driver=request.param)


def emulator(sandbox: Any) -> UnivapayEmulator:
    emu = sandbox.host.emulators["univapay"]
    assert isinstance(emu, UnivapayEmulator)
    return emu


def slip_charge(gw: Any, key: str, store: str = "family_mart", **kw: Any) -> Any:
    method = Konbini(
        store=store,
        customer_name="テスト 太郎",
        phone="03-6441-3400",
        email="demo@example.com",
        expires_in=kw.pop("expires_in", None),
    )
    return gw.charge(
        ACCOUNT, amount=kw.pop("amount", Money.jpy(1200)), method=method, idempotency_key=key
    )


def pay(sandbox: Any, charge: Any) -> None:
    sandbox.control("univapay", "pay_konbini", charge_id=charge.provider_ref)


# ----------------------------------------------------------------------------- time


# -------------------------------------------------------------------------- konbini


def test_konbini_slip_pay_and_status(gw: Any, sandbox: Any) -> None:
    charge = slip_charge(gw, "order-1", "seven_eleven", expires_in=timedelta(days=7))
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    slip = charge.next_action
    assert isinstance(slip, KonbiniSlip)
    assert slip.issued
    assert slip.store == "seven_eleven"
    assert slip.payment_number is not None
    assert slip.url == f"{sandbox.url}/univapay/_slips/{charge.provider_ref}"
    assert slip.expires_at is not None
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.REQUIRES_ACTION

    pay(sandbox, charge)
    paid = gw.status(ACCOUNT, charge.id)
    assert paid.id == charge.id
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.next_action is None
    (entry,) = sandbox.ledger()["univapay"]
    assert (entry.key, entry.amount, entry.status) == ("pg-charge-order-1", 1200, "successful")


def test_replay_and_conflict(gw: Any, sandbox: Any) -> None:
    first = slip_charge(gw, "order-2")
    again = slip_charge(gw, "order-2")
    assert again.id == first.id
    assert again.provider_ref == first.provider_ref
    with pytest.raises(IdempotencyConflict):
        slip_charge(gw, "order-2", amount=Money.jpy(1300))
    assert len(emulator(sandbox).charges) == 1


def test_lost_store_retry_is_replayed_by_univapay(make_gateway: Any, sandbox: Any) -> None:
    first = make_gateway()
    charge = slip_charge(first, "order-3")
    # Another deployment with an empty store retries the same key within 24 hours:
    # UnivaPay replays the token and the charge instead of creating new ones.
    second = make_gateway(driver="async")
    recovered = slip_charge(second, "order-3")
    assert recovered.provider_ref == charge.provider_ref
    assert len(emulator(sandbox).charges) == 1
    tokens = emulator(sandbox).tokens.values()
    assert len([t for t in tokens if t["payment_type"] == "konbini"]) == 1


def test_lost_response_is_resent_with_the_same_key(gw: Any, sandbox: Any) -> None:
    sandbox.fault("univapay", "drop_after_commit", path="^/charges$", method="POST")
    charge = slip_charge(gw, "order-4")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert len(emulator(sandbox).charges) == 1
    (entry,) = sandbox.ledger()["univapay"]
    assert entry.key == "pg-charge-order-4"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_retry_a_day_later_resends_the_same_deadline(
    make_gateway: Any, sandbox: Any, tmp_path: Any, driver: str
) -> None:
    """The slip's deadline comes from when the key was first begun (kept by the store), so
    the merchant's retry on the next day, in a new gateway, works with the deadline
    UnivaPay holds: a re-send carries the same body under the same Idempotency-Key
    (another body is 409 IDEMPOTENCY_KEY_CONFLICT), a lookup shows the same slip."""
    from paygate import OutcomeUnknown, ProviderUnavailable, RetryPolicy

    store = f"sqlite:///{tmp_path / 'deadline.db'}"
    now = [sandbox.now()]
    sandbox.fault("univapay", "drop_after_commit", path="^/charges$", method="POST", count=1)
    sandbox.fault("univapay", "status", path="charges", method="GET", status=503, count=50)
    first = make_gateway(
        driver=driver, store=store, clock=lambda: now[0], retry=RetryPolicy.no_wait(attempts=1)
    )
    with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
        slip_charge(first, "order-4d", expires_in=timedelta(days=7))
    sandbox.clear_faults()
    now[0] += timedelta(days=1)  # the retry comes on another (Japan) day
    again = make_gateway(driver=driver, store=store, clock=lambda: now[0])
    charge = slip_charge(again, "order-4d", expires_in=timedelta(days=7))
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    (held,) = emulator(sandbox).charges.values()
    # The slip paygate shows carries the deadline UnivaPay holds, the first day's.
    assert isinstance(charge.next_action, KonbiniSlip)
    assert charge.next_action.expires_at == parse_time(held.wire["capture_at"]) == held.deadline


def test_lost_answer_without_idempotency_is_looked_up_not_charged_twice(
    gw: Any, sandbox: Any
) -> None:
    """UnivaPay's idempotency is best effort: with the key unusable a re-send would make a
    second slip. paygate lists the store's charges by its charge id first."""
    sandbox.control("univapay", "configure", idempotency_error=True)
    try:
        sandbox.fault("univapay", "drop_after_commit", path="^/charges$", method="POST")
        charge = slip_charge(gw, "order-4b")
        assert charge.status is ChargeStatus.REQUIRES_ACTION
        assert len(emulator(sandbox).charges) == 1
        assert charge.provider_ref in emulator(sandbox).charges
    finally:
        sandbox.control("univapay", "configure", idempotency_error=False)


@pytest.mark.parametrize("over_limit", [429, 400])
def test_rate_limit_is_retried(gw: Any, sandbox: Any, over_limit: int) -> None:
    """Over the limit is an empty 429 (current page) or 400 RATE_LIMIT_EXCEEDED (older
    page): both are retried."""
    sandbox.control("univapay", "configure", over_limit=over_limit)
    try:
        sandbox.fault("univapay", "rate_limit", path="^/tokens$", retry_after=1)
        charge = slip_charge(gw, f"order-5-{over_limit}")
        assert charge.status is ChargeStatus.REQUIRES_ACTION
    finally:
        sandbox.control("univapay", "configure", over_limit=429)


def test_expiry_on_the_sandbox_clock(gw: Any, sandbox: Any) -> None:
    charge = slip_charge(gw, "order-6", "lawson", expires_in=timedelta(days=2))
    sandbox.advance(timedelta(days=3))
    expired = gw.status(ACCOUNT, charge.id)
    assert expired.status is ChargeStatus.EXPIRED
    # UnivaPay documents no error payload for an expired slip.
    assert expired.failure is None
    # A terminal status never goes back.
    with pytest.raises(ProviderRejected):
        gw.cancel(ACCOUNT, charge.id)


def test_cancel_unpaid_and_refund_not_supported(gw: Any, sandbox: Any) -> None:
    unpaid = slip_charge(gw, "order-7")
    canceled = gw.cancel(ACCOUNT, unpaid.id)
    assert canceled.status is ChargeStatus.CANCELED
    assert gw.cancel(ACCOUNT, unpaid.id).status is ChargeStatus.CANCELED  # replayed
    charge = slip_charge(gw, "order-8")
    pay(sandbox, charge)
    with pytest.raises(ProviderRejected) as paid_cancel:
        gw.cancel(ACCOUNT, charge.id)
    assert paid_cancel.value.provider_code == "CANCEL_NOT_ALLOWED"
    before = sandbox.host.request_count
    with pytest.raises(NotSupported) as refund:
        gw.refund(ACCOUNT, charge.id, idempotency_key="order-8-r1")
    assert refund.value.alternative == "cancel an unpaid slip"
    assert sandbox.host.request_count == before


def test_bad_input_never_reaches_univapay(gw: Any, sandbox: Any) -> None:
    before = sandbox.host.request_count
    with pytest.raises(InvalidRequest) as store:
        slip_charge(gw, "order-9", "walmart")
    assert store.value.param == "method.store"
    with pytest.raises(InvalidRequest) as amount:
        slip_charge(gw, "order-10", amount=Money.jpy(300_000))
    assert amount.value.param == "amount"
    assert sandbox.host.request_count == before


# ------------------------------------------------------------------------------ wait


def test_wait_polls_with_backoff_until_paid(
    gw: Any, sandbox: Any, virtual_time: VirtualTime
) -> None:
    charge = slip_charge(gw, "order-11")

    def customer_pays(sleeps: int) -> None:
        if sleeps == 2:
            pay(sandbox, charge)

    virtual_time.on_sleep = customer_pays
    done = gw.wait(ACCOUNT, charge.id, timeout=600)
    assert done.status is ChargeStatus.SUCCEEDED
    # An issued slip is "awaiting": the long poll would return at once, so wait backs off.
    assert virtual_time.sleeps[:2] == [1.0, 2.0]


def test_wait_times_out_on_an_unpaid_slip(gw: Any, sandbox: Any, virtual_time: VirtualTime) -> None:
    charge = slip_charge(gw, "order-12")
    still = gw.wait(ACCOUNT, charge.id, timeout=30)
    assert still.status is ChargeStatus.REQUIRES_ACTION
    assert sum(virtual_time.sleeps) == pytest.approx(30)


def test_wait_long_polls_a_pending_charge(
    make_gateway: Any, sandbox: Any, virtual_time: VirtualTime
) -> None:
    emu = emulator(sandbox)
    # No hold while the charge is created (its own polling read comes back pending).
    sandbox.control("univapay", "configure", auto_issue=False, poll_hold_seconds=0)
    gw = make_gateway()
    charge = slip_charge(gw, "order-13")
    assert charge.status is ChargeStatus.PENDING
    assert charge.next_action == KonbiniSlip(store="family_mart", issued=False)
    sandbox.control("univapay", "configure", poll_hold_seconds=30)

    held = threading.Event()
    original = emu._hold

    async def hold(object_id: str, still_pending: Any) -> None:
        held.set()
        await original(object_id, still_pending)

    emu._hold = hold  # type: ignore[method-assign]
    result: dict[str, Any] = {}

    def waiter() -> None:
        result["charge"] = gw.wait(ACCOUNT, charge.id, timeout=600)

    virtual_time.on_sleep = lambda sleeps: pay(sandbox, charge) if sleeps == 1 else None
    thread = threading.Thread(target=waiter)
    thread.start()
    assert held.wait(timeout=10), "wait should hold a polling=true read"
    sandbox.control("univapay", "issue_konbini", charge_id=charge.provider_ref)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["charge"].status is ChargeStatus.SUCCEEDED
    # The held read needed no sleep; the issued slip then went to backoff polling.
    assert virtual_time.sleeps == [1.0]


# ----------------------------------------------------------------------------- cards


def test_card_partial_refunds(gw: Any, sandbox: Any) -> None:
    charge = gw.charge(
        ACCOUNT,
        amount=Money.jpy(5000),
        method=Card(token=SEED_CARD_TOKENS["success"]),
        idempotency_key="order-20",
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    first = gw.refund(ACCOUNT, charge.id, amount=Money.jpy(1200), idempotency_key="order-20-r1")
    assert (first.amount, first.status) == (Money.jpy(1200), RefundStatus.SUCCEEDED)
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.PARTIALLY_REFUNDED
    rest = gw.refund(ACCOUNT, charge.id, idempotency_key="order-20-r2")
    assert rest.amount == Money.jpy(3800)
    done = gw.status(ACCOUNT, charge.id)
    assert done.status is ChargeStatus.REFUNDED
    assert done.amount_refunded == Money.jpy(5000)
    refunds = sorted(e.key or "" for e in sandbox.ledger()["univapay"] if e.kind == "refund")
    assert refunds == ["pg-refund-order-20-r1", "pg-refund-order-20-r2"]


def test_card_authorise_capture(gw: Any, sandbox: Any) -> None:
    held = gw.charge(
        ACCOUNT,
        amount=Money.jpy(5000),
        method=Card(token=SEED_CARD_TOKENS["success"], capture=False),
        idempotency_key="order-21",
    )
    assert held.status is ChargeStatus.AUTHORIZED
    captured = gw.capture(ACCOUNT, held.id, amount=Money.jpy(4500))
    assert captured.status is ChargeStatus.SUCCEEDED
    assert captured.amount_captured == Money.jpy(4500)


def test_card_decline_keeps_univapays_code(gw: Any, sandbox: Any) -> None:
    with pytest.raises(PaymentDeclined) as info:
        gw.charge(
            ACCOUNT,
            amount=Money.jpy(500),
            method=Card(token=SEED_CARD_TOKENS["declined"]),
            idempotency_key="order-22",
        )
    assert info.value.provider_code == "CARD_REJECTED"


# ---------------------------------------------------------------------------- payout


def test_payout_balance_from_transfers(gw: Any, sandbox: Any) -> None:
    for i, amount in enumerate((1200, 800)):
        charge = slip_charge(gw, f"order-30-{i}", amount=Money.jpy(amount))
        pay(sandbox, charge)
    sandbox.control("univapay", "run_transfer")
    balance = gw.payout_balance(ACCOUNT)
    assert balance.account == ACCOUNT
    assert balance.scheduled == Money.jpy(2000)
    assert balance.next_payout_amount == Money.jpy(2000)
    assert sorted(i.amount.amount for i in balance.items) == [800, 1200]


# -------------------------------------------------------------------------- webhooks


@pytest.fixture
def receiver(sandbox: Any) -> Iterator[list[tuple[dict[str, str], bytes]]]:
    """A webhook endpoint that records what UnivaPay's emulator sends."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        return Response(status_code=200)

    with serve_app(Starlette(routes=[Route("/hooks", hook, methods=["POST"])])) as url:
        sandbox.set_webhook_url(f"{url}/hooks", provider="univapay")
        yield got
    sandbox.set_webhook_url(None, provider="univapay")


def test_webhooks_verified_recorded_and_deduplicated(
    gw: Any, sandbox: Any, receiver: list[tuple[dict[str, str], bytes]]
) -> None:
    events: list[Any] = []
    gw.webhooks.on("*")(events.append)
    charge = slip_charge(gw, "order-40")
    pay(sandbox, charge)
    sandbox.flush_webhooks()
    assert [json.loads(body)["event"] for _, body in receiver] == [
        "charge_updated",
        "charge_finished",
    ]
    for headers, body in receiver:
        assert headers["authorization"] == WEBHOOK_AUTH_TOKEN
        gw.webhooks.handle(ACCOUNT, headers, body)
    assert [e.type for e in events] == ["charge.updated", "charge.succeeded"]
    assert {e.charge_id for e in events} == {charge.id}
    # A redelivery is recognised and the handlers do not run again.
    headers, body = receiver[-1]
    (again,) = gw.webhooks.handle(ACCOUNT, headers, body)
    assert again.duplicate
    assert len(events) == 2
    with pytest.raises(WebhookVerificationError):
        gw.webhooks.handle(ACCOUNT, {**headers, "authorization": "forged"}, body)


def test_reference_envelope_moves_the_record_to_paid(
    gw: Any, sandbox: Any, receiver: list[tuple[dict[str, str], bytes]]
) -> None:
    """``{"event","data"}`` (reference page): the paid slip's ``charge_finished`` is
    applied (its time is the receipt's, not the charge's creation time)."""
    sandbox.control("univapay", "configure", webhook_envelope="reference")
    try:
        events: list[Any] = []
        gw.webhooks.on("*")(events.append)
        charge = slip_charge(gw, "order-41")
        pay(sandbox, charge)
        sandbox.flush_webhooks()
        for headers, body in receiver:
            assert set(json.loads(body)) == {"event", "data"}
            gw.webhooks.handle(ACCOUNT, headers, body)
        assert [e.type for e in events] == ["charge.updated", "charge.succeeded"]
        assert events[-1].status is ChargeStatus.SUCCEEDED
        assert events[-1].occurred_at is None or events[-1].occurred_at >= charge.created_at
    finally:
        sandbox.control("univapay", "configure", webhook_envelope="openapi")


def test_card_waiting_for_3ds_shows_the_form_post(gw: Any, sandbox: Any) -> None:
    """An ``awaiting`` card charge: the customer's 3-D Secure step is a form POST
    (issuer token URL + payload), given as ``Redirect(method="POST", form=...)``."""
    token = sandbox.control("univapay", "card_token", card="three_ds")["id"]
    charge = gw.charge(
        ACCOUNT, amount=Money.jpy(3000), method=Card(token=token), idempotency_key="order-3ds"
    )
    current = gw.status(ACCOUNT, charge.id)
    assert current.status is ChargeStatus.REQUIRES_ACTION
    step = current.next_action
    assert isinstance(step, Redirect)
    assert (step.method, step.url.endswith(f"/_3ds/{charge.provider_ref}")) == ("POST", True)
    assert step.form is not None
    assert step.form["request_data"] == charge.provider_ref
    sandbox.control("univapay", "finish_three_ds", charge_id=charge.provider_ref)
    done = gw.status(ACCOUNT, charge.id)
    assert (done.status, done.next_action) == (ChargeStatus.SUCCEEDED, None)


def test_card_failing_3ds_fails(gw: Any, sandbox: Any) -> None:
    token = sandbox.control("univapay", "card_token", card="three_ds")["id"]
    charge = gw.charge(
        ACCOUNT, amount=Money.jpy(3000), method=Card(token=token), idempotency_key="order-3ds-f"
    )
    sandbox.control("univapay", "finish_three_ds", charge_id=charge.provider_ref, result="fail")
    assert gw.status(ACCOUNT, charge.id).status is ChargeStatus.FAILED
