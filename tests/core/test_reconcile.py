"""`paygate reconcile`: unknown outcomes resolved through lookups, stale charges refreshed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    AsyncGateway,
    Card,
    ChargeStatus,
    Gateway,
    Money,
    OutcomeUnknown,
    ProviderUnavailable,
    QRCode,
    RetryPolicy,
)
from paygate._operations import store_key
from paygate._reconcile import _retry_advice, reconcile
from paygate.adapter import Operation, OperationPolicy


def test_unknown_outcome_found_by_lookup(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    fake_sandbox.fault("fakepay", "drop_after_commit", path="^/charges$", method="POST", count=1)
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="GET", status=503, count=10)
    with Gateway.from_config(fake_config("lookup"), store=store, retry=RetryPolicy.no_wait()) as gw:
        with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
            gw.charge("fake", amount=Money.jpy(900), method=Card(token="t"), idempotency_key="rc-1")
    fake_sandbox.clear_faults()
    with Gateway.from_config(fake_config("lookup"), store=store, retry=RetryPolicy.no_wait()) as gw:
        rows = reconcile(gw)
        assert [(r.kind, r.after) for r in rows] == [("unknown outcome", "succeeded")]
        posts = len(fake_emulator.requests)
        replay = gw.charge(
            "fake", amount=Money.jpy(900), method=Card(token="t"), idempotency_key="rc-1"
        )
        assert replay.status is ChargeStatus.SUCCEEDED
        assert len(fake_emulator.requests) == posts
        assert len(fake_emulator.charges) == 1
        assert reconcile(gw) == []


def test_not_created_is_released(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    fake_sandbox.fault("fakepay", "reset", path="^/charges$", method="POST", count=1)
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="GET", status=503, count=10)
    with Gateway.from_config(fake_config("lookup"), store=store, retry=RetryPolicy.no_wait()) as gw:
        with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
            gw.charge("fake", amount=Money.jpy(900), method=Card(token="t"), idempotency_key="rc-2")
        fake_sandbox.clear_faults()
        rows = reconcile(gw)
        assert [r.after for r in rows] == ["not created"]
        charge = gw.charge(
            "fake", amount=Money.jpy(900), method=Card(token="t"), idempotency_key="rc-2"
        )
        assert charge.status is ChargeStatus.SUCCEEDED
        assert len(fake_emulator.charges) == 1


def test_no_lookup_says_what_to_do(fake_config: Any, fake_sandbox: Any, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    fake_sandbox.fault("fakepay", "drop_after_commit", path="^/charges$", method="POST", count=1)
    with Gateway.from_config(fake_config("none"), store=store, retry=RetryPolicy.no_wait()) as gw:
        with pytest.raises(OutcomeUnknown):
            gw.charge("fake", amount=Money.jpy(900), method=Card(token="t"), idempotency_key="rc-3")
        rows = reconcile(gw)
        assert len(rows) == 1
        assert "dashboard" in rows[0].action


def test_stale_charges_are_refreshed(fake_config: Any, fake_sandbox: Any) -> None:
    with Gateway.from_config(fake_config(), store="memory://", retry=RetryPolicy.no_wait()) as gw:
        charge = gw.charge("fake", amount=Money.jpy(500), method=QRCode(), idempotency_key="rc-4")
        fake_sandbox.control("fakepay", "pay", id=charge.provider_ref)
        rows = reconcile(gw, now=datetime.now(UTC) + timedelta(hours=2))
        assert [(r.kind, r.before, r.after) for r in rows] == [
            ("stale charge", "requires_action", "succeeded")
        ]


@pytest.mark.parametrize(
    ("policy", "advice"),
    [
        (OperationPolicy(), "fake can neither deduplicate nor look up: check its dashboard"),
        (
            OperationPolicy(key="header", lookup=True),
            "retry the refund with the same key (the provider's lookup tells)",
        ),
        (
            OperationPolicy(key="header", key_window=timedelta(hours=24)),
            "retry the refund with the same key within 24 hours",
        ),
        (
            OperationPolicy(key="body", key_window=timedelta(minutes=1)),
            "retry the refund with the same key within 1 minute",
        ),
        (
            OperationPolicy(key="body", key_window="unknown"),
            "retry the refund with the same key "
            "(its key window is not stated: check its dashboard first)",
        ),
        (OperationPolicy(key="path"), "retry the refund with the same key"),
    ],
)
def test_unknown_refund_advice_follows_the_refund_policy(
    policy: OperationPolicy, advice: str
) -> None:
    """An unknown refund is not promised deduplication the provider does not give."""
    assert _retry_advice("fake", policy, "refund") == advice


def test_unknown_refund_row_names_the_refund_window(
    fake_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with Gateway.from_config(fake_config("none"), store="memory://") as gw:
        provider = gw.provider("fake")
        windowed = OperationPolicy(key="header", key_window=timedelta(hours=24))
        policies = {**provider.policies, Operation.REFUND: windowed}
        monkeypatch.setattr(type(provider), "policies", policies)
        key = store_key(provider.account, Operation.REFUND, "rf-1")
        gw.store.begin(
            key,
            account=provider.account,
            operation="refund",
            fingerprint="f",
            owner="o",
            lease=timedelta(seconds=1),
            now=now,
            charge_id="ch_1",
        )
        gw.store.mark_unknown(key, "o", "no answer")
        rows = reconcile(gw, now=now + timedelta(minutes=5))
    assert [(r.kind, r.reference, r.after) for r in rows] == [("unknown refund", "ch_1", "unknown")]
    assert rows[0].action == "retry the refund with the same key within 24 hours"


def test_an_unknown_refund_is_retried_under_its_key_once(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    """A refund whose answer was lost is finished by reconcile with what its key kept;
    the provider holds one refund, and the merchant's own retry then replays it."""
    store = f"sqlite:///{tmp_path / 'r.db'}"
    with Gateway.from_config(fake_config(), store=store, retry=RetryPolicy.no_wait()) as gw:
        charge = gw.charge(
            "fake", amount=Money.jpy(1000), method=Card(token="t"), idempotency_key="rf-o"
        )
    fake_sandbox.fault("fakepay", "drop_after_commit", path="/refunds$", method="POST", count=20)
    one_try = RetryPolicy.no_wait(attempts=1)
    with Gateway.from_config(fake_config(), store=store, retry=one_try) as gw:
        with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
            gw.refund(
                "fake", charge.id, amount=Money.jpy(300), reason="damaged", idempotency_key="rf-1"
            )
    fake_sandbox.clear_faults()
    with Gateway.from_config(fake_config(), store=store, retry=RetryPolicy.no_wait()) as gw:
        assert [r.action for r in reconcile(gw, dry_run=True)] == [
            "would retry the refund under its key"
        ]
        rows = reconcile(gw)
        assert [(r.kind, r.reference, r.before, r.after) for r in rows] == [
            ("unknown refund", charge.id, "unknown", "succeeded")
        ]
        assert fake_emulator.charges[charge.provider_ref]["refunded"] == 300
        posts = len(fake_emulator.requests)
        again = gw.refund(
            "fake", charge.id, amount=Money.jpy(300), reason="damaged", idempotency_key="rf-1"
        )
        assert again.amount == Money.jpy(300)
        assert len(fake_emulator.requests) == posts
        assert gw.status("fake", charge.id).amount_refunded == Money.jpy(300)
        assert reconcile(gw) == []


def test_an_unknown_cancel_is_retried_under_its_key(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    with Gateway.from_config(fake_config(), store=store, retry=RetryPolicy.no_wait()) as gw:
        charge = gw.charge("fake", amount=Money.jpy(800), method=QRCode(), idempotency_key="cn-o")
    fake_sandbox.fault("fakepay", "drop_after_commit", path="/cancel$", method="POST", count=20)
    one_try = RetryPolicy.no_wait(attempts=1)
    with Gateway.from_config(fake_config(), store=store, retry=one_try) as gw:
        with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
            gw.cancel("fake", charge.id, idempotency_key="cn-1")
    fake_sandbox.clear_faults()
    with Gateway.from_config(fake_config(), store=store, retry=RetryPolicy.no_wait()) as gw:
        rows = reconcile(gw)
        assert [(r.kind, r.after) for r in rows] == [("unknown cancel", "canceled")]
        assert gw.status("fake", charge.id).status is ChargeStatus.CANCELED


def test_a_key_left_started_is_resolved_by_the_lookup(
    fake_config: Any, fake_sandbox: Any, fake_emulator: Any, tmp_path: Path
) -> None:
    """What reconcile needs is kept when the key begins: a charge abandoned while its
    request was in flight (a cancelled task; a killed process leaves the same) has no
    answer and no later record, and reconcile still resolves it once the lease is out."""
    store = f"sqlite:///{tmp_path / 'r.db'}"
    fake_sandbox.fault(
        "fakepay", "latency", path="^/charges$", method="POST", latency_ms=300, count=1
    )

    async def abandoned() -> None:
        async with AsyncGateway.from_config(fake_config("lookup"), store=store) as gw:
            task = asyncio.create_task(
                gw.charge(
                    "fake", amount=Money.jpy(700), method=Card(token="t"), idempotency_key="k9"
                )
            )
            await asyncio.sleep(0.1)  # the request is out, its answer held back
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(abandoned())
    time.sleep(0.5)  # whatever the provider does with the request, it has done
    later = datetime.now(UTC) + timedelta(hours=1)  # the lease has run out
    with Gateway.from_config(fake_config("lookup"), store=store, clock=lambda: later) as gw:
        (record,) = gw.store.records(states=["started"])
        assert record.lookup is not None
        assert "token" not in record.lookup["method_fields"]
        (row,) = reconcile(gw, now=later)
    made = len(fake_emulator.charges)
    assert (row.kind, row.before) == ("unknown outcome", "started")
    assert row.after == ("succeeded" if made == 1 else "not created")
    assert made <= 1
