"""Conformance: the entity cache and webhook event dedup on every store."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from paygate._stores import ClaimOutcome, Store

from .conftest import T0, StoreKit

LEASE = timedelta(seconds=60)

# ------------------------------------------------------------------------- cache


def test_cache_get_missing_is_none(store: Store) -> None:
    assert store.cache_get("nope") is None


@pytest.mark.parametrize(
    "value",
    [
        {"id": "pm_1", "name": "アプリ決済"},
        ["a", 1, None, True],
        "text",
        12345,
        {"nested": {"deep": [1, {"x": "y"}]}},
    ],
)
def test_cache_put_and_get(store: Store, value: object) -> None:
    store.cache_put("k", value)
    assert store.cache_get("k") == value


def test_cache_put_overwrites(store: Store) -> None:
    store.cache_put("k", {"v": 1})
    store.cache_put("k", {"v": 2})
    assert store.cache_get("k") == {"v": 2}


def test_cache_put_if_absent_keeps_the_first_value(store: Store) -> None:
    assert store.cache_put_if_absent("k", {"v": 1}) == {"v": 1}
    assert store.cache_put_if_absent("k", {"v": 2}) == {"v": 1}
    assert store.cache_get("k") == {"v": 1}
    store.cache_put("k", {"v": 3})
    assert store.cache_put_if_absent("k", {"v": 4}) == {"v": 3}


def test_cache_keys_are_independent(store: Store) -> None:
    store.cache_put("a", 1)
    store.cache_put("b", 2)
    assert (store.cache_get("a"), store.cache_get("b")) == (1, 2)


def test_cache_put_if_absent_is_atomic_under_threads(kit: StoreKit) -> None:
    stores = [kit.open() for _ in range(2)]
    n = 12
    barrier = threading.Barrier(n)
    got: list[object] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        got[i] = stores[i % 2].cache_put_if_absent("shared", {"winner": i})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = stores[0].cache_get("shared")
    assert stored is not None
    assert all(value == stored for value in got)


def test_cache_survives_reopening(kit: StoreKit) -> None:
    kit.open().cache_put("k", {"v": 1})
    assert kit.open().cache_get("k") == {"v": 1}


# ------------------------------------------------------------------------ events


def claim(store: Store, owner: str, *, event: str = "evt_1", at: int = 0, account: str = "a"):  # type: ignore[no-untyped-def]
    return store.claim_event(
        account, event, owner=owner, lease=LEASE, now=T0 + timedelta(seconds=at)
    )


def test_first_delivery_is_new(store: Store) -> None:
    assert claim(store, "o1") is ClaimOutcome.NEW


def test_delivery_while_processing_is_busy(store: Store) -> None:
    claim(store, "o1")
    assert claim(store, "o2", at=59) is ClaimOutcome.BUSY
    assert claim(store, "o1", at=1) is ClaimOutcome.BUSY


def test_finished_event_is_done_forever(store: Store) -> None:
    claim(store, "o1")
    store.finish_event("a", "evt_1", "o1")
    assert claim(store, "o2") is ClaimOutcome.DONE
    assert claim(store, "o2", at=86400 * 30) is ClaimOutcome.DONE


def test_released_event_may_be_claimed_again(store: Store) -> None:
    claim(store, "o1")
    store.release_event("a", "evt_1", "o1")
    assert claim(store, "o2", at=1) is ClaimOutcome.NEW
    assert claim(store, "o3", at=2) is ClaimOutcome.BUSY


def test_release_by_another_owner_is_ignored(store: Store) -> None:
    claim(store, "o1")
    store.release_event("a", "evt_1", "o2")
    assert claim(store, "o3", at=1) is ClaimOutcome.BUSY


def test_release_after_finish_is_ignored(store: Store) -> None:
    claim(store, "o1")
    store.finish_event("a", "evt_1", "o1")
    store.release_event("a", "evt_1", "o1")
    assert claim(store, "o2") is ClaimOutcome.DONE


def test_an_expired_claim_is_taken_over(store: Store) -> None:
    claim(store, "o1")
    assert claim(store, "o2", at=60) is ClaimOutcome.NEW
    # The first claimer lost the event: its release does not free the new claim.
    store.release_event("a", "evt_1", "o1")
    assert claim(store, "o3", at=61) is ClaimOutcome.BUSY
    # But processing finished is a fact, whoever reports it.
    store.finish_event("a", "evt_1", "o1")
    assert claim(store, "o3", at=62) is ClaimOutcome.DONE
    store.release_event("a", "evt_1", "o2")
    assert claim(store, "o3", at=63) is ClaimOutcome.DONE


def test_events_are_per_account(store: Store) -> None:
    claim(store, "o1", account="a")
    store.finish_event("a", "evt_1", "o1")
    assert claim(store, "o1", account="b") is ClaimOutcome.NEW
    assert claim(store, "o1", event="evt_2", account="a") is ClaimOutcome.NEW


def test_finish_without_claim_marks_done(store: Store) -> None:
    store.finish_event("a", "evt_9", "o1")
    assert claim(store, "o2", event="evt_9") is ClaimOutcome.DONE


def test_exactly_one_thread_claims_an_event(kit: StoreKit) -> None:
    stores = [kit.open() for _ in range(2)]
    n = 12
    barrier = threading.Barrier(n)
    got: list[ClaimOutcome | None] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        got[i] = claim(stores[i % 2], f"o{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got.count(ClaimOutcome.NEW) == 1
    assert got.count(ClaimOutcome.BUSY) == n - 1


def test_event_state_survives_reopening(kit: StoreKit) -> None:
    first = kit.open()
    claim(first, "o1")
    first.finish_event("a", "evt_1", "o1")
    assert claim(kit.open(), "o2") is ClaimOutcome.DONE
