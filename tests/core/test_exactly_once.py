"""Exactly-once on the fake provider: lost responses, restarts, the three recovery policies."""

from __future__ import annotations

from typing import Any

import pytest

from paygate import (
    Card,
    ChargeStatus,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    Money,
    NotSupported,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
    QRCode,
)
from paygate._stores import open_store


def card_charge(gw: Any, key: str, amount: int = 1200) -> Any:
    return gw.charge(
        "fake", amount=Money.jpy(amount), method=Card(token="tok"), idempotency_key=key
    )


def posts(emulator: Any) -> int:
    return sum(1 for method, path in emulator.requests if method == "POST" and path == "/charges")


def test_charge_replays_without_a_second_provider_call(
    gateway_factory: Any, fake_emulator: Any
) -> None:
    gw = gateway_factory()
    first = card_charge(gw, "order-1")
    again = card_charge(gw, "order-1")
    assert first == again
    assert first.status is ChargeStatus.SUCCEEDED
    assert first.id.startswith("ch_")
    assert posts(fake_emulator) == 1
    assert len(fake_emulator.charges) == 1


def test_same_key_different_request_conflicts(gateway_factory: Any, fake_emulator: Any) -> None:
    gw = gateway_factory()
    card_charge(gw, "order-2", 1200)
    with pytest.raises(IdempotencyConflict):
        card_charge(gw, "order-2", 1300)
    assert posts(fake_emulator) == 1


def test_decline_keeps_provider_code_and_is_replayed(
    gateway_factory: Any, fake_emulator: Any
) -> None:
    gw = gateway_factory()
    with pytest.raises(PaymentDeclined) as first:
        card_charge(gw, "order-3", 666)
    assert first.value.provider_code == "card_declined"
    assert first.value.provider_message == "カードが拒否されました"
    assert first.value.http_status == 402
    with pytest.raises(PaymentDeclined) as again:
        card_charge(gw, "order-3", 666)
    assert again.value.provider_code == "card_declined"
    assert posts(fake_emulator) == 1


def test_in_progress_when_another_owner_holds_the_key(gateway_factory: Any, tmp_path: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from paygate import _operations as ops

    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    gw = gateway_factory(store=store)
    store.begin(
        ops.store_key("fake", "charge", "order-4"),
        account="fake",
        operation="charge",
        fingerprint="x",
        owner="otherhost:1:abc",
        lease=timedelta(minutes=5),
        now=datetime.now(UTC),
    )
    with pytest.raises((IdempotencyInProgress, IdempotencyConflict)):
        card_charge(gw, "order-4")


@pytest.mark.parametrize("mode", ["keyed", "lookup"])
def test_lost_response_restart_and_retry_charges_once(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Any, mode: str
) -> None:
    """The provider commits, the response is lost, the process restarts, the merchant
    retries with the same key: the provider holds one charge and the merchant gets it."""
    store_url = f"sqlite:///{tmp_path / 'paygate.db'}"
    # Every attempt of this gateway loses its response (and lookups fail too).
    fake_sandbox.fault("fakepay", "drop_after_commit", path="^/charges$", method="POST", count=10)
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="GET", status=503, count=10)
    first = gateway_factory(store=store_url, mode=mode)
    with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
        card_charge(first, "order-5")
    first.close()
    assert len(fake_emulator.charges) >= 1
    fake_sandbox.clear_faults()
    # "Restart": a new gateway on the same store.
    second = gateway_factory(store=store_url, mode=mode)
    charge = card_charge(second, "order-5")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(fake_emulator.charges) == 1
    assert charge.provider_ref in fake_emulator.charges
    assert card_charge(second, "order-5") == charge


def test_lost_response_with_lookup_recovers_in_process(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any
) -> None:
    fake_sandbox.fault("fakepay", "drop_after_commit", path="^/charges$", method="POST", count=1)
    gw = gateway_factory(mode="lookup")
    charge = card_charge(gw, "order-6")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(fake_emulator.charges) == 1


def test_without_key_or_lookup_the_outcome_stays_unknown(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Any
) -> None:
    store_url = f"sqlite:///{tmp_path / 'paygate.db'}"
    fake_sandbox.fault("fakepay", "drop_after_commit", path="^/charges$", method="POST", count=1)
    gw = gateway_factory(store=store_url, mode="none")
    with pytest.raises(OutcomeUnknown):
        card_charge(gw, "order-7")
    gw.close()
    again = gateway_factory(store=store_url, mode="none")
    with pytest.raises(OutcomeUnknown):
        card_charge(again, "order-7")
    assert len(fake_emulator.charges) == 1
    record = again.store.get("fake\x1fcharge\x1forder-7")
    assert record is not None
    assert record.state == "unknown"


def test_unsafe_create_is_not_retried_on_5xx(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any
) -> None:
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="POST", status=500, count=1)
    gw = gateway_factory(mode="none")
    with pytest.raises(ProviderUnavailable):
        card_charge(gw, "order-8")
    assert posts(fake_emulator) == 0 or len(fake_emulator.charges) <= 1


def test_keyed_create_is_retried_on_5xx_and_429(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any
) -> None:
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="POST", status=502, count=1)
    fake_sandbox.fault(
        "fakepay", "rate_limit", path="^/charges$", method="POST", retry_after=1, count=1
    )
    gw = gateway_factory()
    charge = card_charge(gw, "order-9")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert len(fake_emulator.charges) == 1


def test_reads_are_retried(gateway_factory: Any, fake_sandbox: Any) -> None:
    gw = gateway_factory()
    charge = card_charge(gw, "order-10")
    fake_sandbox.fault("fakepay", "reset", path="^/charges/", method="GET", count=2)
    assert gw.status("fake", charge.id).status is ChargeStatus.SUCCEEDED


def test_refunds_partial_multiple_and_bounded(gateway_factory: Any, fake_emulator: Any) -> None:
    gw = gateway_factory()
    charge = card_charge(gw, "order-11", 1000)
    r1 = gw.refund("fake", charge.id, amount=Money.jpy(300), idempotency_key="order-11-r1")
    assert gw.refund("fake", charge.id, amount=Money.jpy(300), idempotency_key="order-11-r1") == r1
    gw.refund("fake", charge.id, amount=Money.jpy(200), idempotency_key="order-11-r2")
    before = len(fake_emulator.requests)
    with pytest.raises(InvalidRequest):
        gw.refund("fake", charge.id, amount=Money.jpy(600), idempotency_key="order-11-r3")
    assert len(fake_emulator.requests) == before
    assert fake_emulator.charges[charge.provider_ref]["refunded"] == 500
    assert gw.status("fake", charge.id).status is ChargeStatus.PARTIALLY_REFUNDED


def test_qr_refund_is_not_supported_but_cancel_is(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any
) -> None:
    gw = gateway_factory()
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="order-12")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    fake_sandbox.control("fakepay", "pay", id=charge.provider_ref)
    before = len(fake_emulator.requests)
    with pytest.raises(NotSupported) as exc:
        gw.refund("fake", charge.id, idempotency_key="order-12-r")
    assert "cancel" in str(exc.value)
    fresh = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="order-13")
    canceled = gw.cancel("fake", fresh.id)
    assert canceled.status is ChargeStatus.CANCELED
    assert gw.status("fake", fresh.id).status is ChargeStatus.CANCELED
    assert len(fake_emulator.requests) >= before


def test_terminal_status_never_goes_back(gateway_factory: Any, fake_emulator: Any) -> None:
    gw = gateway_factory()
    charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="order-14")
    gw.cancel("fake", charge.id)
    # The provider "forgets" (a stale replica answering): paygate keeps the final state.
    fake_emulator.charges[charge.provider_ref]["status"] = "pending"
    assert gw.status("fake", charge.id).status is ChargeStatus.CANCELED


def test_bad_input_is_refused_before_io(gateway_factory: Any, fake_emulator: Any) -> None:
    gw = gateway_factory()
    with pytest.raises(InvalidRequest):
        gw.charge("fake", amount=1200, method=Card(token="t"), idempotency_key="k")
    with pytest.raises(InvalidRequest):
        gw.charge("fake", amount=Money(1200, "USD"), method=Card(token="t"), idempotency_key="k")
    with pytest.raises(InvalidRequest):
        gw.charge("fake", amount=Money.jpy(0), method=Card(token="t"), idempotency_key="k")
    with pytest.raises(InvalidRequest):
        gw.charge("fake", amount=Money.jpy(10), method=Card(token="t"), idempotency_key="")
    with pytest.raises(InvalidRequest):
        gw.charge(
            "fake",
            amount=Money.jpy(10),
            method=Card(token="t"),
            idempotency_key="k",
            metadata={"a": {"b": 1}},
        )
    assert fake_emulator.requests == []


def test_payout_balance(gateway_factory: Any) -> None:
    gw = gateway_factory()
    card_charge(gw, "order-15", 700)
    balance = gw.payout_balance("fake")
    assert balance.collecting == Money.jpy(700)
