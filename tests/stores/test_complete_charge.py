"""Conformance: `complete_charge`, what a charge does once the provider answered.

It records the charge and completes the key together; every store must give the same
answers as the two calls it replaces (`record_charge`, then `complete` with the result
built from the updated record), and the base class's default must agree with the
overrides. The store never reads the charge's fields: the key's result is what the
``result`` callable builds from the record (here `as_seen`, a stand-in for the core's
record-wins rule).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from paygate import ChargeStatus
from paygate._stores import BeginOutcome, ChargeRecord, ChargeUpdate, MemoryStore, Store

from .conftest import T0
from .test_charges import sec, upd
from .test_idempotency import begin

S = ChargeStatus
OWNER = "host:1:a"


def charge_json(status: ChargeStatus, refunded: int = 0) -> dict[str, Any]:
    return {
        "id": "ch_1",
        "status": status.value,
        "amount": {"amount": 1200, "currency": "JPY"},
        "amount_refunded": {"amount": refunded, "currency": "JPY"},
        "raw": {"nested": ["kept", 1]},
    }


def as_seen(record: ChargeRecord) -> dict[str, Any]:
    """The key's result: the answer with the updated record's status and refunds."""
    return {
        **charge_json(record.status, record.amount_refunded),
        "amount_refunded": {"amount": record.amount_refunded, "currency": record.currency},
    }


def complete(store: Store, update: ChargeUpdate, **kw: Any) -> ChargeRecord:
    owner = kw.pop("owner", OWNER)
    return store.complete_charge("k1", owner, update, result=as_seen, **kw)


def answer(status: ChargeStatus, *, at: Any = T0, refunded: int = 0) -> ChargeUpdate:
    return upd(
        status,
        at=at,
        refunded=refunded,
        source="response",
        charge_json=charge_json(status, refunded),
    )


def test_records_the_charge_and_completes_the_key(store: Store) -> None:
    begin(store)
    record = complete(store, answer(S.SUCCEEDED), now=T0, provider_ref="pr_1")
    assert record.status is S.SUCCEEDED
    assert store.get_charge("ch_1") == record
    assert [t.to_status for t in store.history("ch_1")] == [S.SUCCEEDED]
    done = store.get("k1")
    assert done is not None
    assert done.state == "completed"
    assert done.provider_ref == "pr_1"
    assert done.result == charge_json(S.SUCCEEDED)
    replay = begin(store, owner="host:2:b")
    assert replay.outcome is BeginOutcome.REPLAY
    assert replay.record.result == charge_json(S.SUCCEEDED)


def test_a_stale_answer_is_stored_as_the_record_sees_it(store: Store) -> None:
    """A webhook saw the charge succeed before the create's answer (pending) came back:
    the key's result says succeeded, never pending."""
    begin(store)
    store.record_charge(answer(S.SUCCEEDED, at=sec(5)), now=sec(5))
    record = complete(store, answer(S.PENDING, at=sec(1)), now=sec(6))
    assert record.status is S.SUCCEEDED
    done = store.get("k1")
    assert done is not None
    assert done.result is not None
    assert done.result["status"] == "succeeded"
    assert done.result["raw"] == {"nested": ["kept", 1]}  # the rest of the answer is kept


def test_a_refund_seen_first_shows_in_the_result(store: Store) -> None:
    begin(store)
    store.record_charge(answer(S.PARTIALLY_REFUNDED, at=sec(5), refunded=200), now=sec(5))
    complete(store, answer(S.SUCCEEDED, at=sec(1)), now=sec(6))
    done = store.get("k1")
    assert done is not None
    assert done.result is not None
    assert done.result["status"] == "partially_refunded"
    assert done.result["amount_refunded"] == {"amount": 200, "currency": "JPY"}


def test_only_the_owner_completes_but_the_observation_is_kept(store: Store) -> None:
    begin(store)
    record = complete(store, owner="host:9:z", update=answer(S.SUCCEEDED), now=T0)
    assert record.status is S.SUCCEEDED
    assert store.get_charge("ch_1") == record  # what the provider said is true anyway
    still = store.get("k1")
    assert still is not None
    assert (still.state, still.result) == ("started", None)


def test_after_a_takeover_the_old_owner_cannot_complete(store: Store) -> None:
    begin(store)
    taken = begin(store, owner="host:2:b", now=T0 + timedelta(hours=1))
    assert taken.outcome is BeginOutcome.STARTED
    complete(store, answer(S.SUCCEEDED), now=T0 + timedelta(hours=1))
    record = store.get("k1")
    assert record is not None
    assert (record.state, record.owner) == ("started", "host:2:b")


def test_an_update_without_charge_json_is_refused(store: Store) -> None:
    begin(store)
    with pytest.raises(ValueError, match="charge_json"):
        complete(store, upd(S.SUCCEEDED), now=T0)


class _TwoCalls(MemoryStore):
    """A store that only has the base class's `complete_charge` (two calls)."""

    complete_charge = Store.complete_charge  # type: ignore[assignment]


@pytest.mark.parametrize(
    "history",
    [
        [],
        [answer(S.SUCCEEDED, at=sec(5))],
        [answer(S.PARTIALLY_REFUNDED, at=sec(5), refunded=300)],
        [answer(S.FAILED, at=sec(5))],
    ],
)
def test_the_default_agrees_with_every_store(store: Store, history: list[ChargeUpdate]) -> None:
    default = _TwoCalls()
    outcomes: list[tuple[ChargeRecord, Any]] = []
    for each in (store, default):
        begin(each)
        for seen in history:
            each.record_charge(seen, now=seen.observed_at)
        record = complete(each, answer(S.PENDING, at=sec(1)), now=sec(6))
        done = each.get("k1")
        assert done is not None
        outcomes.append((record, done.result))
    (got, got_result), (want, want_result) = outcomes
    assert got_result == want_result
    assert (got.status, got.amount_refunded, got.charge_json) == (
        want.status,
        want.amount_refunded,
        want.charge_json,
    )
