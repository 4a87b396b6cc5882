"""The adapter's flows driven against the emulator over HTTP (ASGI), end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paygate import (
    ChargeStatus,
    IdempotencyConflict,
    InvalidRequest,
    Konbini,
    KonbiniSlip,
    Money,
    NotSupported,
    PaymentDeclined,
    ProviderRejected,
    RateLimited,
    RefundStatus,
)
from paygate._models import Card, Charge
from paygate.adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    RefundRequest,
)
from paygate.sandbox import SandboxClock
from paygate_univapay import UnivapayProvider

Ctx = Callable[..., OpContext]


def konbini(store: str = "family_mart", **kw: Any) -> ChargeRequest:
    method = Konbini(
        store=store,
        customer_name="テスト 太郎",
        phone="03-6441-3400",
        email="demo@example.com",
        expires_in=kw.pop("expires_in", None),
    )
    return ChargeRequest(amount=kw.pop("amount", Money.jpy(1200)), method=method, **kw)


def ref_of(charge: Charge) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method=charge.method,
        amount=charge.amount,
        created_at=charge.created_at,
        raw=charge.raw,
    )


def test_konbini_charge_returns_issued_slip(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    charge = wire.run(
        provider.charge(konbini("seven_eleven", expires_in=timedelta(days=7)), ctx_factory())
    )
    assert wire.steps() == ["tokens.create", "charges.create", "charges.poll"]
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    slip = charge.next_action
    assert isinstance(slip, KonbiniSlip)
    assert slip.issued
    assert slip.store == "seven_eleven"
    assert slip.payment_number is not None
    assert len(slip.payment_number) == 13
    assert slip.url is not None
    assert slip.url.endswith(f"/_slips/{charge.provider_ref}")
    assert slip.expires_at is not None
    assert slip.expires_at.isoformat() == "2026-01-08T14:59:59+00:00"


def test_retry_after_crash_replays_both_keys(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx, emulator: Any
) -> None:
    first = wire.run(provider.charge(konbini(), ctx_factory("order-9")))
    again = wire.run(provider.charge(konbini(), ctx_factory("order-9")))
    assert again.provider_ref == first.provider_ref
    assert len(emulator.charges) == 1
    assert [e.key for e in emulator.ledger()] == ["pg-charge-order-9"]


def test_same_key_other_request_conflicts(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    wire.run(provider.charge(konbini(), ctx_factory("order-10")))
    with pytest.raises(IdempotencyConflict) as info:
        wire.run(provider.charge(konbini("lawson"), ctx_factory("order-10")))
    assert info.value.provider_code == "IDEMPOTENCY_KEY_CONFLICT"


def test_unissued_slip_then_issue(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    wire.control("configure", auto_issue=False, poll_hold_seconds=0)
    charge = wire.run(provider.charge(konbini("lawson"), ctx_factory()))
    assert charge.status is ChargeStatus.PENDING
    assert charge.next_action == KonbiniSlip(store="lawson", issued=False)
    wait = provider.wait_status(ref_of(charge), ctx_factory(None), timeout=30)
    assert wait is not None
    assert wire.run(wait).status is ChargeStatus.PENDING
    wire.control("issue_konbini", charge_id=charge.provider_ref)
    fresh = wire.run(provider.status(ref_of(charge), ctx_factory(None)))
    assert fresh.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(fresh.next_action, KonbiniSlip)
    assert fresh.next_action.payment_number
    # UnivaPay's default period (30 days) from the 1/1 application, kept by paygate.
    assert fresh.next_action.expires_at == datetime(2026, 1, 31, 14, 59, 59, tzinfo=UTC)


def test_pay_then_status_succeeded(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    charge = wire.run(provider.charge(konbini(), ctx_factory()))
    wire.control("pay_konbini", charge_id=charge.provider_ref)
    paid = wire.run(provider.status(ref_of(charge), ctx_factory(None)))
    assert paid.status is ChargeStatus.SUCCEEDED
    assert paid.next_action is None
    assert paid.amount_captured == Money.jpy(1200)
    assert paid.id == charge.id


def test_expiry_via_clock(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx, clock: SandboxClock
) -> None:
    charge = wire.run(provider.charge(konbini(expires_in=timedelta(days=3)), ctx_factory()))
    clock.advance(timedelta(days=4))
    expired = wire.run(provider.status(ref_of(charge), ctx_factory(None)))
    assert expired.status is ChargeStatus.EXPIRED
    # UnivaPay documents no error for an expired slip (the emulator sends null).
    assert expired.failure is None
    assert expired.next_action is None


def test_expiry_with_an_error_object_is_still_expired(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx, clock: SandboxClock
) -> None:
    wire.control("configure", expiry_error={"code": 309, "message": "PROCESSING_ERROR"})
    charge = wire.run(provider.charge(konbini(expires_in=timedelta(days=3)), ctx_factory()))
    clock.advance(timedelta(days=4))
    expired = wire.run(provider.status(ref_of(charge), ctx_factory(None)))
    assert expired.status is ChargeStatus.EXPIRED
    assert expired.failure is not None
    assert expired.failure.code == "PROCESSING_ERROR"


def test_cancel_unpaid_konbini(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    charge = wire.run(provider.charge(konbini(), ctx_factory()))
    canceled = wire.run(
        provider.cancel(CancelRequest(charge=ref_of(charge)), ctx_factory("order-1-cancel"))
    )
    assert canceled.status is ChargeStatus.CANCELED
    # Same cancel key again: UnivaPay replays the stored cancel.
    again = wire.run(
        provider.cancel(CancelRequest(charge=ref_of(charge)), ctx_factory("order-1-cancel"))
    )
    assert again.status is ChargeStatus.CANCELED


def test_cancel_paid_konbini_refused(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    charge = wire.run(provider.charge(konbini(), ctx_factory()))
    wire.control("pay_konbini", charge_id=charge.provider_ref)
    with pytest.raises(ProviderRejected) as info:
        wire.run(provider.cancel(CancelRequest(charge=ref_of(charge)), ctx_factory("c")))
    assert info.value.provider_code == "CANCEL_NOT_ALLOWED"


def test_konbini_refund_not_supported_without_calls(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    charge = wire.run(provider.charge(konbini(), ctx_factory()))
    wire.control("pay_konbini", charge_id=charge.provider_ref)
    before = len(wire.calls)
    with pytest.raises(NotSupported):
        provider.validate_refund(RefundRequest(charge=ref_of(charge)))
    assert len(wire.calls) == before


def test_card_partial_refunds(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    token = wire.control("card_token", card="success")["id"]
    req = ChargeRequest(amount=Money.jpy(5000), method=Card(token=token))
    charge = wire.run(provider.charge(req, ctx_factory("order-7")))
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.method == "card"
    ref = ref_of(charge)
    r1 = wire.run(
        provider.refund(
            RefundRequest(charge=ref, amount=Money.jpy(1500)), ctx_factory("order-7-r1")
        )
    )
    assert r1.status is RefundStatus.SUCCEEDED
    partly = wire.run(provider.status(ref, ctx_factory(None)))
    assert partly.status is ChargeStatus.PARTIALLY_REFUNDED
    assert partly.amount_refunded == Money.jpy(1500)
    rest = wire.run(provider.refund(RefundRequest(charge=ref), ctx_factory("order-7-r2")))
    assert rest.amount == Money.jpy(3500)
    full = wire.run(provider.status(ref, ctx_factory(None)))
    assert full.status is ChargeStatus.REFUNDED
    with pytest.raises(InvalidRequest):
        wire.run(provider.refund(RefundRequest(charge=ref), ctx_factory("order-7-r3")))


def test_card_refund_over_remaining_keeps_provider_code(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    token = wire.control("card_token", card="success")["id"]
    charge = wire.run(
        provider.charge(
            ChargeRequest(amount=Money.jpy(1000), method=Card(token=token)), ctx_factory("o")
        )
    )
    ref = ref_of(charge)
    wire.run(provider.refund(RefundRequest(charge=ref, amount=Money.jpy(800)), ctx_factory("o-r1")))
    with pytest.raises(ProviderRejected) as info:
        wire.run(
            provider.refund(RefundRequest(charge=ref, amount=Money.jpy(300)), ctx_factory("o-r2"))
        )
    assert info.value.provider_code == "REFUND_EXCEEDS_CHARGE_AMOUNT"


def test_card_decline(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    token = wire.control("card_token", card="declined")["id"]
    req = ChargeRequest(amount=Money.jpy(100), method=Card(token=token))
    with pytest.raises(PaymentDeclined) as info:
        wire.run(provider.charge(req, ctx_factory()))
    assert info.value.provider_code == "CARD_REJECTED"


def test_authorize_capture_and_void(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx
) -> None:
    token = wire.control("card_token", card="success")["id"]
    req = ChargeRequest(amount=Money.jpy(5000), method=Card(token=token, capture=False))
    held = wire.run(provider.charge(req, ctx_factory("auth-1")))
    assert held.status is ChargeStatus.AUTHORIZED
    captured = wire.run(
        provider.capture(
            CaptureRequest(charge=ref_of(held), amount=Money.jpy(4000)), ctx_factory("auth-1-cap")
        )
    )
    assert captured.status is ChargeStatus.SUCCEEDED
    assert captured.amount_captured == Money.jpy(4000)

    token2 = wire.control("card_token", card="success")["id"]
    other = wire.run(
        provider.charge(
            ChargeRequest(amount=Money.jpy(900), method=Card(token=token2, capture=False)),
            ctx_factory("auth-2"),
        )
    )
    voided = wire.run(
        provider.cancel(CancelRequest(charge=ref_of(other)), ctx_factory("auth-2-void"))
    )
    assert voided.status is ChargeStatus.CANCELED


def test_charge_too_quick_is_rate_limited(
    wire: Any, provider: UnivapayProvider, ctx_factory: Ctx, emulator: Any
) -> None:
    body = {
        "payment_type": "card",
        "type": "recurring",
        "data": {
            "cardholder": "TARO",
            "card_number": "4111111111111111",
            "exp_month": 12,
            "exp_year": 2099,
            "cvv": "123",
        },
    }
    auth = {"Authorization": provider.cfg.authorization}
    token = wire.client.post("/univapay/tokens", json=body, headers=auth).json()["id"]
    req = ChargeRequest(amount=Money.jpy(321), method=Card(token=token))
    wire.run(provider.charge(req, ctx_factory("q-1")))
    with pytest.raises(RateLimited) as info:
        wire.run(provider.charge(req, ctx_factory("q-2")))
    assert info.value.provider_code == "CHARGE_TOO_QUICK"
    reply = wire.calls[-1]
    assert reply.step == "charges.create"


def test_payout_balance(wire: Any, provider: UnivapayProvider, ctx_factory: Ctx) -> None:
    empty = wire.run(provider.payout_balance(ctx_factory(None)))
    assert empty.scheduled == Money.jpy(0)
    assert empty.items == ()
    for i, amount in enumerate((1200, 3400)):
        charge = wire.run(provider.charge(konbini(amount=Money.jpy(amount)), ctx_factory(f"p-{i}")))
        wire.control("pay_konbini", charge_id=charge.provider_ref)
    transfer = wire.control("run_transfer")
    balance = wire.run(provider.payout_balance(ctx_factory(None)))
    assert balance.scheduled == Money.jpy(4600)
    assert balance.next_payout_amount == Money.jpy(4600)
    assert balance.next_payout_date is not None
    assert balance.next_payout_date.isoformat() == "2026-01-01"
    assert sorted(i.amount.amount for i in balance.items) == [1200, 3400]
    assert {i.state for i in balance.items} == {"created"}
    wire.control("set_transfer_status", transfer_id=transfer["id"], status="paid")
    after = wire.run(provider.payout_balance(ctx_factory(None)))
    assert after.scheduled == Money.jpy(0)
    assert after.next_payout_date is None
