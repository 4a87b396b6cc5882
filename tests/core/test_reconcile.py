"""`paygate reconcile`: unknown outcomes resolved through lookups, stale charges refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    Card,
    ChargeStatus,
    Gateway,
    Money,
    OutcomeUnknown,
    ProviderUnavailable,
    QRCode,
    RetryPolicy,
)
from paygate._reconcile import reconcile


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
