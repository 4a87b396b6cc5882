"""Conformance: idempotency records (`begin`, `complete`, `fail`, `mark_unknown`,
`release`, `get`, `records`, `purge`) on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paygate._stores import Begin, BeginOutcome, Store

from .conftest import T0, Clock, StoreKit

LEASE = timedelta(seconds=30)
RESULT: dict[str, Any] = {
    "id": "ch_1",
    "status": "succeeded",
    "amount": {"value": 1200, "currency": "JPY"},
    "note": "テスト 決済",
    "flags": [True, False, None],
    "ratio": 0,
}


def begin(
    store: Store,
    key: str = "k1",
    *,
    owner: str = "host:1:a",
    fingerprint: str = "fp",
    now: datetime = T0,
    lease: timedelta = LEASE,
    charge_id: str | None = "ch_1",
    account: str = "acct",
    operation: str = "charge",
) -> Begin:
    return store.begin(
        key,
        account=account,
        operation=operation,
        fingerprint=fingerprint,
        owner=owner,
        lease=lease,
        now=now,
        charge_id=charge_id,
    )


# ------------------------------------------------------------------------- begin


def test_first_begin_starts_and_records_intent(store: Store) -> None:
    began = begin(store)
    assert began.outcome is BeginOutcome.STARTED
    assert began.recovering is False
    rec = began.record
    assert (rec.key, rec.account, rec.operation, rec.fingerprint) == ("k1", "acct", "charge", "fp")
    assert rec.state == "started"
    assert rec.owner == "host:1:a"
    assert rec.lease_until == T0 + LEASE
    assert rec.attempts == 1
    assert rec.created_at == T0
    assert rec.updated_at == T0
    assert rec.result is None
    assert rec.charge_id == "ch_1"
    assert rec.provider_ref is None
    assert rec.detail is None
    assert store.get("k1") == rec


def test_get_unknown_key_is_none(store: Store) -> None:
    assert store.get("nope") is None


def test_live_lease_held_by_another_is_in_progress(store: Store) -> None:
    first = begin(store, owner="host:1:a")
    again = begin(store, owner="host:1:b", now=T0 + LEASE - timedelta(microseconds=1))
    assert again.outcome is BeginOutcome.IN_PROGRESS
    assert again.record == first.record
    assert store.get("k1") == first.record


def test_live_lease_with_the_same_owner_is_in_progress_too(store: Store) -> None:
    # Two threads sharing an owner id must not both run the operation.
    begin(store, owner="host:1:a")
    assert begin(store, owner="host:1:a").outcome is BeginOutcome.IN_PROGRESS


@pytest.mark.parametrize(
    "finish",
    ["started", "completed", "failed", "unknown", "expired"],
)
def test_different_fingerprint_conflicts_whatever_the_state(store: Store, finish: str) -> None:
    begin(store, owner="host:1:a")
    if finish == "completed":
        store.complete("k1", "host:1:a", RESULT)
    elif finish == "failed":
        store.fail("k1", "host:1:a", {"type": "PaymentDeclined"})
    elif finish == "unknown":
        store.mark_unknown("k1", "host:1:a", "timeout after sending")
    before = store.get("k1")
    now = T0 + LEASE * 10 if finish == "expired" else T0
    conflict = begin(store, owner="host:1:b", fingerprint="other", now=now)
    assert conflict.outcome is BeginOutcome.CONFLICT
    assert conflict.record == before
    assert store.get("k1") == before


def test_completed_replays_the_stored_result(store: Store, clock: Clock) -> None:
    begin(store)
    clock.advance(timedelta(seconds=2))
    store.complete("k1", "host:1:a", RESULT, provider_ref="ch_provider_1")
    replay = begin(store, owner="host:2:b", now=T0 + timedelta(days=3))
    assert replay.outcome is BeginOutcome.REPLAY
    rec = replay.record
    assert rec.state == "completed"
    assert rec.result == RESULT
    assert rec.provider_ref == "ch_provider_1"
    assert rec.lease_until is None
    assert rec.attempts == 1
    assert rec.owner == "host:1:a"
    assert rec.created_at == T0
    assert rec.updated_at == T0 + timedelta(seconds=2)
    assert rec.charge_id == "ch_1"


def test_failed_replays_the_stored_error(store: Store) -> None:
    begin(store)
    error = {
        "type": "PaymentDeclined",
        "message": "カードが拒否されました",
        "provider_code": "card_declined",
    }
    store.fail("k1", "host:1:a", error)
    replay = begin(store, owner="host:2:b")
    assert replay.outcome is BeginOutcome.REPLAY
    assert replay.record.state == "failed"
    assert replay.record.result == error
    assert replay.record.lease_until is None


def test_expired_lease_is_taken_over(store: Store) -> None:
    begin(store, owner="host:1:a", charge_id="ch_1")
    took = begin(store, owner="host:1:b", now=T0 + LEASE + timedelta(seconds=1), charge_id="ch_x")
    assert took.outcome is BeginOutcome.STARTED
    assert took.recovering is True
    rec = took.record
    assert rec.state == "started"
    assert rec.owner == "host:1:b"
    assert rec.attempts == 2
    assert rec.lease_until == T0 + LEASE + timedelta(seconds=1) + LEASE
    assert rec.created_at == T0
    assert rec.updated_at == T0 + LEASE + timedelta(seconds=1)
    # paygate's charge id is stable across attempts.
    assert rec.charge_id == "ch_1"
    assert store.get("k1") == rec


def test_lease_ends_exactly_at_lease_until(store: Store) -> None:
    begin(store, owner="host:1:a")
    took = begin(store, owner="host:1:b", now=T0 + LEASE)
    assert took.outcome is BeginOutcome.STARTED
    assert took.recovering is True


def test_takeover_fills_a_missing_charge_id(store: Store) -> None:
    begin(store, owner="host:1:a", charge_id=None)
    took = begin(store, owner="host:1:b", now=T0 + LEASE, charge_id="ch_2")
    assert took.record.charge_id == "ch_2"


def test_unknown_is_taken_over_at_once_keeping_what_is_known(store: Store, clock: Clock) -> None:
    begin(store, owner="host:1:a")
    store.mark_unknown("k1", "host:1:a", "read timeout after sending")
    rec = store.get("k1")
    assert rec is not None
    assert rec.state == "unknown"
    assert rec.detail == "read timeout after sending"
    assert rec.lease_until is None
    assert rec.updated_at == clock.now
    took = begin(store, owner="host:1:b", now=T0 + timedelta(seconds=1))
    assert took.outcome is BeginOutcome.STARTED
    assert took.recovering is True
    assert took.record.attempts == 2
    assert took.record.detail == "read timeout after sending"
    assert took.record.owner == "host:1:b"


def test_the_old_owner_cannot_finish_after_a_takeover(store: Store) -> None:
    begin(store, owner="host:1:a")
    begin(store, owner="host:1:b", now=T0 + LEASE)
    store.complete("k1", "host:1:a", {"stale": True})
    store.fail("k1", "host:1:a", {"stale": True})
    store.mark_unknown("k1", "host:1:a", "stale")
    store.release("k1", "host:1:a")
    rec = store.get("k1")
    assert rec is not None
    assert (rec.state, rec.owner, rec.result) == ("started", "host:1:b", None)
    store.complete("k1", "host:1:b", RESULT)
    assert begin(store, owner="host:1:c").record.result == RESULT


def test_only_the_owner_completes(store: Store) -> None:
    begin(store, owner="host:1:a")
    store.complete("k1", "host:1:z", RESULT)
    rec = store.get("k1")
    assert rec is not None
    assert rec.state == "started"
    assert rec.result is None


def test_a_finished_record_is_not_finished_again(store: Store) -> None:
    begin(store, owner="host:1:a")
    store.complete("k1", "host:1:a", RESULT, provider_ref="ref_1")
    store.complete("k1", "host:1:a", {"second": True}, provider_ref="ref_2")
    store.fail("k1", "host:1:a", {"type": "X"})
    store.mark_unknown("k1", "host:1:a", "late")
    store.release("k1", "host:1:a")
    rec = store.get("k1")
    assert rec is not None
    assert (rec.state, rec.result, rec.provider_ref) == ("completed", RESULT, "ref_1")


def test_complete_without_provider_ref_keeps_none(store: Store) -> None:
    begin(store)
    store.complete("k1", "host:1:a", RESULT)
    rec = store.get("k1")
    assert rec is not None
    assert rec.provider_ref is None


def test_release_forgets_the_intent(store: Store) -> None:
    begin(store, owner="host:1:a")
    store.release("k1", "host:1:a")
    assert store.get("k1") is None
    again = begin(store, owner="host:1:b", fingerprint="new-request")
    assert again.outcome is BeginOutcome.STARTED
    assert again.recovering is False
    assert again.record.attempts == 1


def test_release_by_another_owner_is_ignored(store: Store) -> None:
    first = begin(store, owner="host:1:a")
    store.release("k1", "host:1:b")
    assert store.get("k1") == first.record


def test_release_after_a_takeover_keeps_the_record_for_recovery(store: Store) -> None:
    # The first attempt may have reached the provider; releasing the second attempt
    # must not erase that.
    begin(store, owner="host:1:a")
    store.mark_unknown("k1", "host:1:a", "timeout after sending")
    begin(store, owner="host:1:b", now=T0 + timedelta(seconds=1))
    store.release("k1", "host:1:b")
    rec = store.get("k1")
    assert rec is not None
    assert rec.state == "unknown"
    assert rec.detail == "timeout after sending"
    assert rec.lease_until is None
    again = begin(store, owner="host:1:c", now=T0 + timedelta(seconds=2))
    assert again.outcome is BeginOutcome.STARTED
    assert again.recovering is True
    assert again.record.attempts == 3


def test_release_after_an_expired_lease_takeover_gives_a_detail(store: Store) -> None:
    begin(store, owner="host:1:a")
    begin(store, owner="host:1:b", now=T0 + LEASE)
    store.release("k1", "host:1:b")
    rec = store.get("k1")
    assert rec is not None
    assert rec.state == "unknown"
    assert rec.detail


def test_mark_unknown_only_by_the_owner(store: Store) -> None:
    first = begin(store, owner="host:1:a")
    store.mark_unknown("k1", "host:1:b", "not mine")
    assert store.get("k1") == first.record


def test_keys_are_independent(store: Store) -> None:
    begin(store, "k1", owner="host:1:a")
    other = begin(store, "k2", owner="host:1:b")
    assert other.outcome is BeginOutcome.STARTED
    store.complete("k2", "host:1:b", {"k": 2})
    assert store.get("k1") is not None
    assert store.get("k1").state == "started"  # type: ignore[union-attr]


def test_naive_datetimes_count_as_utc(store: Store) -> None:
    naive = datetime(2030, 1, 1, 12, 0)
    began = begin(store, now=naive)
    assert began.record.created_at == T0
    assert begin(store, owner="host:1:b", now=naive).outcome is BeginOutcome.IN_PROGRESS
    assert begin(store, owner="host:1:b", now=naive + LEASE).outcome is BeginOutcome.STARTED


def test_timestamps_come_back_aware(store: Store) -> None:
    begin(store)
    rec = store.get("k1")
    assert rec is not None
    for value in (rec.created_at, rec.updated_at, rec.lease_until):
        assert value is not None
        assert value.utcoffset() == timedelta(0)


# ------------------------------------------------------------------- records/purge


def _populate(store: Store, clock: Clock) -> None:
    begin(store, "a-started", owner="o1", now=T0, account="shop")
    begin(store, "b-completed", owner="o2", now=T0 + timedelta(seconds=1), account="shop")
    store.complete("b-completed", "o2", {"ok": 1})
    begin(store, "c-failed", owner="o3", now=T0 + timedelta(seconds=2), account="other")
    store.fail("c-failed", "o3", {"type": "PaymentDeclined"})
    begin(store, "d-unknown", owner="o4", now=T0 + timedelta(seconds=3), account="other")
    store.mark_unknown("d-unknown", "o4", "timeout")


def test_records_filters_by_state_and_account(store: Store, clock: Clock) -> None:
    _populate(store, clock)
    keys = lambda recs: [r.key for r in recs]  # noqa: E731
    assert keys(store.records()) == ["a-started", "b-completed", "c-failed", "d-unknown"]
    assert keys(store.records(states=["unknown", "started"])) == ["a-started", "d-unknown"]
    assert keys(store.records(account="other")) == ["c-failed", "d-unknown"]
    assert keys(store.records(states={"completed"}, account="shop")) == ["b-completed"]
    assert keys(store.records(states={"completed"}, account="other")) == []
    assert store.records(states=[]) == []
    assert store.records(account="nobody") == []
    assert store.records(states=["unknown"])[0] == store.get("d-unknown")


def test_purge_deletes_only_old_finished_records(store: Store, clock: Clock) -> None:
    _populate(store, clock)  # completed/failed at clock.now == T0
    assert store.purge(older_than=T0) == 0
    assert store.purge(older_than=T0 + timedelta(microseconds=1)) == 2
    assert {r.key for r in store.records()} == {"a-started", "d-unknown"}
    assert store.get("b-completed") is None
    assert store.get("c-failed") is None
    assert store.purge(older_than=T0 + timedelta(days=365)) == 0
    # A purged key starts afresh.
    assert begin(store, "b-completed", owner="o9").outcome is BeginOutcome.STARTED


def test_purge_compares_updated_at(store: Store, clock: Clock) -> None:
    begin(store, "old", owner="o1")
    store.complete("old", "o1", {})
    clock.advance(timedelta(days=10))
    begin(store, "new", owner="o2", now=clock.now)
    store.complete("new", "o2", {})
    assert store.purge(older_than=T0 + timedelta(days=1)) == 1
    assert store.get("old") is None
    assert store.get("new") is not None


def test_purge_accepts_other_time_zones(store: Store, clock: Clock) -> None:
    from datetime import timezone

    begin(store, "x", owner="o1")
    store.complete("x", "o1", {})
    tokyo = timezone(timedelta(hours=9))
    assert store.purge(older_than=T0.astimezone(tokyo)) == 0
    assert store.purge(older_than=(T0 + timedelta(seconds=1)).astimezone(tokyo)) == 1


# --------------------------------------------------------------------- durability


def test_records_survive_reopening(kit: StoreKit) -> None:
    first = kit.open()
    begin(first, owner="host:1:a")
    first.complete("k1", "host:1:a", RESULT, provider_ref="ref")
    begin(first, "k2", owner="host:1:a")
    second = kit.open()
    replay = begin(second, owner="host:2:b")
    assert replay.outcome is BeginOutcome.REPLAY
    assert replay.record.result == RESULT
    assert begin(second, "k2", owner="host:2:b").outcome is BeginOutcome.IN_PROGRESS


def test_results_round_trip_as_json(store: Store) -> None:
    nested = {"a": [1, 2, {"b": None}], "c": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 決済", "d": -(2**53), "e": 1.5, "f": {}}
    begin(store)
    store.complete("k1", "host:1:a", nested)
    assert begin(store, owner="o").record.result == nested


def test_now_in_another_zone_is_the_same_instant(store: Store) -> None:
    from datetime import timezone

    begin(store, now=T0)
    later_in_tokyo = (T0 + LEASE).astimezone(timezone(timedelta(hours=9)))
    took = begin(store, owner="host:1:b", now=later_in_tokyo)
    assert took.outcome is BeginOutcome.STARTED
    assert took.record.lease_until == T0 + LEASE + LEASE
    assert took.record.lease_until.astimezone(UTC) == T0 + 2 * LEASE  # type: ignore[union-attr]
