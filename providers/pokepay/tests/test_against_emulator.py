"""The adapter's flows against the emulator over ASGI (no gateway): end to end on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paygate import (
    ChargeStatus,
    IdempotencyConflict,
    Money,
    NotFound,
    PaymentDeclined,
    ProviderRejected,
    QRCode,
    RefundStatus,
    Wallet,
)
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    RefundRequest,
    TransportFailure,
    drive,
)
from paygate.sandbox import SandboxClock
from paygate_pokepay import SANDBOX, PokepayEmulator, PokepayProvider

FUNDED = SANDBOX.customers["funded"][0]
LOW = SANDBOX.customers["low_balance"][0]
SUSPENDED = SANDBOX.customers["suspended"][0]
Ctx = Callable[..., OpContext]


@pytest.fixture
def pokepay(make_settings: Callable[..., Any]) -> PokepayProvider:
    return PokepayProvider(make_settings(), account="wallet")


def ref_of(charge: Any) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id,
        provider_ref=charge.provider_ref,
        method=charge.method,
        amount=charge.amount,
        created_at=charge.created_at,
    )


def control(emulator: PokepayEmulator, action: str, **params: Any) -> dict[str, Any]:
    return asyncio.run(emulator.control(action, params))


def wallet(amount: int, customer: str = FUNDED, **kw: Any) -> ChargeRequest:
    return ChargeRequest(Money.jpy(amount), Wallet(customer_id=customer), **kw)


def test_wallet_payment_lifecycle(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx, emulator: PokepayEmulator
) -> None:
    charge = drive(
        pokepay.charge(
            wallet(1200, metadata={"order": "A-1"}, description="豆"), sandbox_ctx("A-1")
        ),
        bridge,
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1200)
    stored = next(iter(emulator.transactions.values()))
    assert stored.metadata == {"order": "A-1"}
    request_id = uuid.UUID(stored.request_id or "")
    assert request_id.version == 4
    assert request_id == uuid.UUID(bytes=sandbox_ctx("A-1").key_uuid("payment").bytes, version=4)

    # The same idempotency key replays the same transaction.
    again = drive(
        pokepay.charge(wallet(1200, metadata={"order": "A-1"}), sandbox_ctx("A-1")), bridge
    )
    assert again.provider_ref == charge.provider_ref
    assert len(emulator.transactions) == 1

    assert (
        drive(pokepay.status(ref_of(charge), sandbox_ctx()), bridge).status
        is ChargeStatus.SUCCEEDED
    )
    refund = drive(
        pokepay.refund(RefundRequest(ref_of(charge), reason="返品"), sandbox_ctx("A-1-r")), bridge
    )
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(1200)
    # A refund under another key finds the refund that stands.
    other = drive(pokepay.refund(RefundRequest(ref_of(charge)), sandbox_ctx("A-1-r2")), bridge)
    assert (other.id, other.provider_ref, other.amount) == (
        refund.id,
        refund.provider_ref,
        refund.amount,
    )
    after = drive(pokepay.status(ref_of(charge), sandbox_ctx()), bridge)
    assert after.status is ChargeStatus.REFUNDED
    assert after.amount_refunded == Money.jpy(1200)


def test_same_key_other_amount_conflicts(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx
) -> None:
    drive(pokepay.charge(wallet(100), sandbox_ctx("B-1")), bridge)
    # Pokepay returns the transaction already made for the request id (documented); the
    # adapter tells it is another request's by the amount asked.
    with pytest.raises(IdempotencyConflict) as info:
        drive(pokepay.charge(wallet(101), sandbox_ctx("B-1")), bridge)
    assert info.value.provider_code == "request_id_mismatch"
    # Another customer's transaction under the id: Pokepay's own request_id_conflict.
    with pytest.raises(IdempotencyConflict) as info:
        drive(pokepay.charge(wallet(100, LOW), sandbox_ctx("B-1")), bridge)
    assert info.value.provider_code == "request_id_conflict"


@pytest.mark.parametrize(
    ("customer", "amount", "cls", "code"),
    [
        (LOW, 5000, PaymentDeclined, "account_balance_not_enough"),
        (SUSPENDED, 10, PaymentDeclined, "account_suspended"),
        (SANDBOX.customers["no_wallet"][0], 10, NotFound, "customer_account_not_found"),
    ],
)
def test_wallet_declines(
    pokepay: PokepayProvider,
    bridge: Any,
    sandbox_ctx: Ctx,
    customer: str,
    amount: int,
    cls: type,
    code: str,
) -> None:
    with pytest.raises(cls) as info:
        drive(pokepay.charge(wallet(amount, customer), sandbox_ctx("C-1")), bridge)
    assert info.value.provider_code == code
    assert info.value.http_status == 422
    assert info.value.provider_message


def test_lost_answer_then_lookup(pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx) -> None:
    req = wallet(900)
    assert drive(pokepay.lookup_charge(req, sandbox_ctx("D-1")), bridge) is None
    bridge.lose_next = True
    with pytest.raises(TransportFailure):
        drive(pokepay.charge(req, sandbox_ctx("D-1")), bridge)
    found = drive(pokepay.lookup_charge(req, sandbox_ctx("D-1")), bridge)
    assert found is not None
    assert found.status is ChargeStatus.SUCCEEDED
    assert found.amount == Money.jpy(900)


def test_driver_style_resend_of_the_same_envelope(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx, emulator: PokepayEmulator
) -> None:
    """A driver retry re-sends identical bytes; the emulator refuses the replayed call id and
    the flow recovers with a fresh envelope under the same request_id."""
    sent: list[Any] = []

    def twice(call: Any) -> Any:
        sent.append(call)
        if len(sent) == 1:
            bridge(call)  # committed, answer lost
            return bridge(call)  # the driver's retry: same partner_call_id
        return bridge(call)

    charge = drive(pokepay.charge(wallet(400), sandbox_ctx("E-1")), twice)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(emulator.transactions) == 1


def test_qr_payment_lifecycle(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx, emulator: PokepayEmulator
) -> None:
    req = ChargeRequest(
        Money.jpy(1500), QRCode(expires_in=timedelta(minutes=5)), description="ランチ"
    )
    charge = drive(pokepay.charge(req, sandbox_ctx("F-1")), bridge)
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.next_action is not None
    assert charge.next_action.url.startswith("http://127.0.0.1/pokepay/web/cashtrays/")
    assert (
        drive(pokepay.status(ref_of(charge), sandbox_ctx()), bridge).status
        is ChargeStatus.REQUIRES_ACTION
    )

    result = control(emulator, "scan_cashtray", token=charge.next_action.url)
    assert result["status_code"] == 200
    paid = drive(pokepay.status(ref_of(charge), sandbox_ctx()), bridge)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert "/transaction:" in paid.provider_ref

    with pytest.raises(ProviderRejected):
        drive(pokepay.cancel(CancelRequest(ref_of(charge)), sandbox_ctx()), bridge)

    # The refund works from the first (cashtray-only) reference and from the paid one.
    refund = drive(pokepay.refund(RefundRequest(ref_of(charge)), sandbox_ctx("F-1-r")), bridge)
    assert refund.amount == Money.jpy(1500)
    again = drive(pokepay.refund(RefundRequest(ref_of(paid)), sandbox_ctx("F-1-r2")), bridge)
    assert again.id == refund.id
    assert (
        drive(pokepay.status(ref_of(paid), sandbox_ctx()), bridge).status is ChargeStatus.REFUNDED
    )


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"customer_id": LOW}, ChargeStatus.FAILED, "account_balance_not_enough"),
        ({"error": "account_suspended"}, ChargeStatus.FAILED, "account_suspended"),
        (
            {"error": "account_transfer_limit_exceeded"},
            ChargeStatus.FAILED,
            "account_transfer_limit_exceeded",
        ),
    ],
)
def test_qr_scan_failures(
    pokepay: PokepayProvider,
    bridge: Any,
    sandbox_ctx: Ctx,
    emulator: PokepayEmulator,
    params: dict[str, Any],
    status: ChargeStatus,
    code: str,
) -> None:
    charge = drive(
        pokepay.charge(ChargeRequest(Money.jpy(1500), QRCode()), sandbox_ctx("G-1")), bridge
    )
    control(emulator, "scan_cashtray", cashtray_id=charge.provider_ref.split(":")[1], **params)
    failed = drive(pokepay.status(ref_of(charge), sandbox_ctx()), bridge)
    assert failed.status is status
    assert failed.failure is not None
    assert failed.failure.code == code


def test_qr_cancel_and_expiry(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx, sandbox_clock: SandboxClock
) -> None:
    charge = drive(
        pokepay.charge(ChargeRequest(Money.jpy(100), QRCode()), sandbox_ctx("H-1")), bridge
    )
    canceled = drive(pokepay.cancel(CancelRequest(ref_of(charge)), sandbox_ctx()), bridge)
    assert canceled.status is ChargeStatus.CANCELED
    again = drive(pokepay.cancel(CancelRequest(ref_of(charge)), sandbox_ctx()), bridge)
    assert again.status is ChargeStatus.CANCELED

    short = drive(
        pokepay.charge(
            ChargeRequest(Money.jpy(100), QRCode(expires_in=timedelta(seconds=30))),
            sandbox_ctx("H-2"),
        ),
        bridge,
    )
    sandbox_clock.advance(timedelta(seconds=31))
    assert (
        drive(pokepay.status(ref_of(short), sandbox_ctx()), bridge).status is ChargeStatus.EXPIRED
    )
    assert (
        drive(pokepay.cancel(CancelRequest(ref_of(short)), sandbox_ctx()), bridge).status
        is ChargeStatus.EXPIRED
    )


def test_payout_balance_follows_payments(
    pokepay: PokepayProvider, bridge: Any, sandbox_ctx: Ctx
) -> None:
    start = drive(pokepay.payout_balance(sandbox_ctx(None)), bridge)
    assert start.collecting == Money.jpy(0)
    drive(pokepay.charge(wallet(1500), sandbox_ctx("I-1")), bridge)
    balance = drive(pokepay.payout_balance(sandbox_ctx(None)), bridge)
    assert balance.collecting == Money.jpy(1500)
    assert {i.kind: i.amount for i in balance.items} == {
        "money": Money.jpy(500),
        "point": Money.jpy(1000),
    }
