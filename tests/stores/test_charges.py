"""Conformance: charge tracking (`record_charge`, `get_charge`, `find_charge`,
`charges`, `history`) on every store, with hypothesis checking monotonicity."""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygate import ChargeStatus
from paygate._stores import ChargeRecord, ChargeUpdate, Store

from .conftest import T0, StoreKit

S = ChargeStatus
FINAL = {S.FAILED, S.CANCELED, S.EXPIRED, S.REFUNDED}


def upd(
    status: ChargeStatus,
    *,
    at: datetime = T0,
    refunded: int = 0,
    charge_id: str = "ch_1",
    amount: int = 1200,
    source: str = "poll",
    charge_json: dict[str, Any] | None = None,
    note: str | None = None,
    provider_ref: str = "pr_1",
    account: str = "acct",
) -> ChargeUpdate:
    return ChargeUpdate(
        charge_id=charge_id,
        account=account,
        provider="fakepay",
        provider_ref=provider_ref,
        method="card",
        status=status,
        amount=amount,
        currency="JPY",
        amount_refunded=refunded,
        observed_at=at,
        source=source,  # type: ignore[arg-type]
        charge_json=charge_json,
        note=note,
    )


def sec(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


# -------------------------------------------------------------------------- basics


def test_new_charge_is_recorded_with_one_transition(store: Store) -> None:
    rec = store.record_charge(
        upd(S.PENDING, at=sec(-5), source="response", charge_json={"id": "x"}, note="created"),
        now=T0,
    )
    assert rec == ChargeRecord(
        charge_id="ch_1",
        account="acct",
        provider="fakepay",
        provider_ref="pr_1",
        method="card",
        status=S.PENDING,
        amount=1200,
        currency="JPY",
        amount_refunded=0,
        created_at=T0,
        updated_at=T0,
        observed_at=sec(-5),
        charge_json={"id": "x"},
    )
    assert rec.charge_json == {"id": "x"}
    assert store.get_charge("ch_1") == rec
    [t] = store.history("ch_1")
    assert t.charge_id == "ch_1"
    assert t.from_status is None
    assert t.to_status is S.PENDING
    assert t.amount_refunded == 0
    assert t.source == "response"
    assert t.observed_at == sec(-5)
    assert t.recorded_at == T0
    assert t.note == "created"


def test_unknown_charge_is_none(store: Store) -> None:
    assert store.get_charge("nope") is None
    assert store.find_charge("acct", "nope") is None
    assert store.history("nope") == []


def test_forward_transitions_apply_in_order(store: Store) -> None:
    store.record_charge(upd(S.PENDING, at=sec(0)), now=sec(0))
    store.record_charge(upd(S.REQUIRES_ACTION, at=sec(1), source="response"), now=sec(1))
    rec = store.record_charge(
        upd(S.SUCCEEDED, at=sec(2), source="webhook", charge_json={"paid": True}), now=sec(3)
    )
    assert rec.status is S.SUCCEEDED
    assert rec.observed_at == sec(2)
    assert rec.updated_at == sec(3)
    assert rec.created_at == sec(0)
    assert rec.charge_json == {"paid": True}
    hist = store.history("ch_1")
    assert [(t.from_status, t.to_status) for t in hist] == [
        (None, S.PENDING),
        (S.PENDING, S.REQUIRES_ACTION),
        (S.REQUIRES_ACTION, S.SUCCEEDED),
    ]
    assert [t.source for t in hist] == ["poll", "response", "webhook"]
    assert [t.recorded_at for t in hist] == [sec(0), sec(1), sec(3)]


def test_a_step_back_is_ignored(store: Store) -> None:
    store.record_charge(upd(S.SUCCEEDED, at=sec(1)), now=sec(1))
    rec = store.record_charge(upd(S.PENDING, at=sec(5)), now=sec(5))
    assert rec.status is S.SUCCEEDED
    assert rec.observed_at == sec(1)
    assert rec.updated_at == sec(1)
    assert len(store.history("ch_1")) == 1


@pytest.mark.parametrize("final", sorted(FINAL))
def test_a_terminal_status_never_changes(store: Store, final: ChargeStatus) -> None:
    store.record_charge(upd(final, at=sec(1), refunded=1200 if final is S.REFUNDED else 0), now=T0)
    before = store.get_charge("ch_1")
    for status in ChargeStatus:
        rec = store.record_charge(
            upd(status, at=sec(9), refunded=1200, charge_json={"late": 1}), now=sec(9)
        )
        assert rec == before
    assert store.get_charge("ch_1") == before
    assert len(store.history("ch_1")) == 1


def test_an_older_observation_never_overwrites(store: Store) -> None:
    store.record_charge(upd(S.REQUIRES_ACTION, at=sec(10)), now=sec(10))
    rec = store.record_charge(upd(S.SUCCEEDED, at=sec(9), charge_json={"old": 1}), now=sec(11))
    assert rec.status is S.REQUIRES_ACTION
    assert rec.charge_json is None
    assert len(store.history("ch_1")) == 1


def test_an_observation_at_the_same_instant_may_move_forward(store: Store) -> None:
    store.record_charge(upd(S.REQUIRES_ACTION, at=sec(10)), now=sec(10))
    rec = store.record_charge(upd(S.SUCCEEDED, at=sec(10)), now=sec(11))
    assert rec.status is S.SUCCEEDED


def test_same_status_with_more_refunded_applies(store: Store) -> None:
    store.record_charge(upd(S.SUCCEEDED, at=sec(0)), now=sec(0))
    store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(1), refunded=200), now=sec(1))
    rec = store.record_charge(
        upd(S.PARTIALLY_REFUNDED, at=sec(2), refunded=500, source="webhook"), now=sec(2)
    )
    assert rec.amount_refunded == 500
    assert rec.status is S.PARTIALLY_REFUNDED
    hist = store.history("ch_1")
    assert [(t.to_status, t.amount_refunded) for t in hist] == [
        (S.SUCCEEDED, 0),
        (S.PARTIALLY_REFUNDED, 200),
        (S.PARTIALLY_REFUNDED, 500),
    ]
    assert hist[-1].from_status is S.PARTIALLY_REFUNDED


def test_same_status_and_refund_is_not_a_transition(store: Store) -> None:
    store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(0), refunded=300), now=sec(0))
    rec = store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(1), refunded=300), now=sec(1))
    assert rec.updated_at == sec(0)
    assert len(store.history("ch_1")) == 1


def test_refunded_amount_never_decreases(store: Store) -> None:
    store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(0), refunded=700), now=sec(0))
    rec = store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(1), refunded=100), now=sec(1))
    assert rec.amount_refunded == 700
    rec = store.record_charge(upd(S.REFUNDED, at=sec(2), refunded=0), now=sec(2))
    assert rec.status is S.REFUNDED
    assert rec.amount_refunded == 700
    assert store.history("ch_1")[-1].amount_refunded == 700


def test_refunded_amount_never_exceeds_the_amount(store: Store) -> None:
    rec = store.record_charge(upd(S.PARTIALLY_REFUNDED, at=sec(0), refunded=5000), now=sec(0))
    assert rec.amount_refunded == 1200
    store.record_charge(upd(S.SUCCEEDED, charge_id="ch_2", at=sec(0)), now=sec(0))
    rec = store.record_charge(
        upd(S.REFUNDED, charge_id="ch_2", at=sec(1), refunded=99999), now=sec(1)
    )
    assert rec.amount_refunded == 1200
    assert store.history("ch_2")[-1].amount_refunded == 1200


def test_amount_and_identity_stay_as_first_recorded(store: Store) -> None:
    store.record_charge(upd(S.PENDING, at=sec(0), amount=1200), now=sec(0))
    rec = store.record_charge(upd(S.SUCCEEDED, at=sec(1), amount=999), now=sec(1))
    assert rec.amount == 1200
    assert (rec.account, rec.provider, rec.method, rec.currency) == (
        "acct",
        "fakepay",
        "card",
        "JPY",
    )


def test_a_newer_snapshot_of_the_same_status_refreshes_details_only(store: Store) -> None:
    store.record_charge(upd(S.REQUIRES_ACTION, at=sec(0), charge_json={"slip": None}), now=sec(0))
    rec = store.record_charge(
        upd(S.REQUIRES_ACTION, at=sec(5), charge_json={"slip": "1234"}), now=sec(6)
    )
    assert rec.charge_json == {"slip": "1234"}
    assert rec.status is S.REQUIRES_ACTION
    # Not a transition: the observation time of the status stays, no history row.
    assert rec.observed_at == sec(0)
    assert len(store.history("ch_1")) == 1
    # An older snapshot does not overwrite a newer one... of the transition time.
    rec = store.record_charge(
        upd(S.REQUIRES_ACTION, at=sec(-1), charge_json={"slip": "old"}), now=sec(7)
    )
    assert rec.charge_json == {"slip": "1234"}
    assert store.get_charge("ch_1") == rec


def test_applied_update_without_snapshot_keeps_the_last_one(store: Store) -> None:
    store.record_charge(upd(S.PENDING, at=sec(0), charge_json={"a": 1}), now=sec(0))
    rec = store.record_charge(upd(S.SUCCEEDED, at=sec(1)), now=sec(1))
    assert rec.charge_json == {"a": 1}


def test_find_charge_by_provider_reference(store: Store) -> None:
    store.record_charge(upd(S.PENDING, charge_id="ch_1", provider_ref="pr_1"), now=T0)
    store.record_charge(
        upd(S.PENDING, charge_id="ch_2", provider_ref="pr_2", account="other"), now=T0
    )
    found = store.find_charge("acct", "pr_1")
    assert found is not None
    assert found.charge_id == "ch_1"
    assert store.find_charge("other", "pr_2").charge_id == "ch_2"  # type: ignore[union-attr]
    assert store.find_charge("other", "pr_1") is None
    assert store.find_charge("acct", "pr_2") is None


def test_charges_filters(store: Store) -> None:
    store.record_charge(upd(S.PENDING, charge_id="a", account="x"), now=sec(0))
    store.record_charge(upd(S.SUCCEEDED, charge_id="b", account="x"), now=sec(1))
    store.record_charge(upd(S.REQUIRES_ACTION, charge_id="c", account="y"), now=sec(2))
    store.record_charge(upd(S.FAILED, charge_id="d", account="y"), now=sec(3))
    ids = lambda recs: [r.charge_id for r in recs]  # noqa: E731
    assert ids(store.charges()) == ["a", "b", "c", "d"]
    assert ids(store.charges(account="y")) == ["c", "d"]
    assert ids(store.charges(statuses=[S.PENDING, S.REQUIRES_ACTION])) == ["a", "c"]
    assert ids(store.charges(updated_before=sec(2))) == ["a", "b"]
    assert ids(store.charges(account="x", statuses={S.SUCCEEDED}, updated_before=sec(9))) == ["b"]
    assert store.charges(statuses=[]) == []
    # An update moves the charge in updated_at order.
    store.record_charge(upd(S.SUCCEEDED, charge_id="a", account="x", at=sec(5)), now=sec(5))
    assert ids(store.charges()) == ["b", "c", "d", "a"]
    assert ids(store.charges(updated_before=sec(2))) == ["b"]


def test_charge_records_survive_reopening(kit: StoreKit) -> None:
    first = kit.open()
    first.record_charge(upd(S.PENDING, at=sec(0)), now=sec(0))
    first.record_charge(upd(S.SUCCEEDED, at=sec(1)), now=sec(1))
    second = kit.open()
    assert second.get_charge("ch_1") == first.get_charge("ch_1")
    assert second.history("ch_1") == first.history("ch_1")
    rec = second.record_charge(upd(S.PENDING, at=sec(2)), now=sec(2))
    assert rec.status is S.SUCCEEDED


def test_concurrent_updates_to_one_charge_are_serialised(kit: StoreKit) -> None:
    """Many threads race updates of one charge; the result equals some serial order."""
    stores = [kit.open() for _ in range(2)]
    steps = [
        upd(S.PENDING, at=sec(0)),
        upd(S.REQUIRES_ACTION, at=sec(1)),
        upd(S.AUTHORIZED, at=sec(2)),
        upd(S.SUCCEEDED, at=sec(3)),
        upd(S.PARTIALLY_REFUNDED, at=sec(4), refunded=100),
        upd(S.PARTIALLY_REFUNDED, at=sec(5), refunded=300),
        upd(S.PARTIALLY_REFUNDED, at=sec(6), refunded=600),
    ]
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        store = stores[i % len(stores)]
        try:
            barrier.wait()
            for step in steps[i % 3 :] + steps:
                store.record_charge(step, now=T0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = stores[0].get_charge("ch_1")
    assert final is not None
    assert final.status is S.PARTIALLY_REFUNDED
    assert final.amount_refunded == 600
    check_history(stores[0].history("ch_1"), final)


# ------------------------------------------------------------------- properties


def check_history(history: list[Any], record: ChargeRecord) -> None:
    """Invariants every charge history must satisfy."""
    assert history, "an existing charge has at least its first transition"
    assert history[0].from_status is None
    for before, after in itertools.pairwise(history):
        assert after.from_status is before.to_status
        assert before.to_status.can_become(after.to_status) or (
            after.to_status is before.to_status and after.amount_refunded > before.amount_refunded
        )
        assert after.amount_refunded >= before.amount_refunded
        assert after.observed_at >= before.observed_at
        assert before.to_status not in FINAL
    last = history[-1]
    assert last.to_status is record.status
    assert last.amount_refunded == record.amount_refunded
    assert last.observed_at == record.observed_at
    assert 0 <= record.amount_refunded <= record.amount


@dataclass
class Model:
    """An independent statement of the rules in `Store.record_charge`."""

    status: ChargeStatus | None = None
    refunded: int = 0
    observed: datetime | None = None
    amount: int = 0
    transitions: list[tuple[ChargeStatus | None, ChargeStatus, int]] = field(default_factory=list)

    def apply(self, u: ChargeUpdate) -> None:
        if self.status is None:
            self.status, self.amount, self.observed = u.status, u.amount, u.observed_at
            self.refunded = min(max(u.amount_refunded, 0), u.amount)
            self.transitions.append((None, u.status, self.refunded))
            return
        assert self.observed is not None
        if self.status in FINAL or u.observed_at < self.observed:
            return
        refunded = max(self.refunded, min(u.amount_refunded, self.amount))
        moves = self.status.can_become(u.status)
        grows = u.status is self.status and refunded > self.refunded
        if not (moves or grows):
            return
        self.transitions.append((self.status, u.status, refunded))
        self.status, self.refunded, self.observed = u.status, refunded, u.observed_at


updates_strategy = st.lists(
    st.tuples(
        st.sampled_from(list(ChargeStatus)),
        st.integers(min_value=-100, max_value=1500),  # refunded (out of range on purpose)
        st.integers(min_value=0, max_value=20),  # observed second
        st.sampled_from(["response", "poll", "webhook", "reconcile"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=updates_strategy)
def test_record_charge_is_monotonic(store: Store, steps: list[tuple[Any, int, int, str]]) -> None:
    charge_id = f"ch_{uuid.uuid4().hex}"
    model = Model()
    for i, (status, refunded, second, source) in enumerate(steps):
        update = upd(
            status,
            at=sec(second),
            refunded=refunded,
            charge_id=charge_id,
            amount=1000,
            source=source,
            note=f"step {i}",
        )
        before = store.get_charge(charge_id)
        rec = store.record_charge(update, now=sec(100 + i))
        model.apply(update)
        assert rec.status is model.status
        assert rec.amount_refunded == model.refunded
        assert rec.observed_at == model.observed
        if before is not None:
            # Terminal never regresses, refunded never decreases, older never overwrites.
            if before.status in FINAL:
                assert rec.status is before.status
            assert rec.amount_refunded >= before.amount_refunded
            assert rec.observed_at >= before.observed_at
        assert 0 <= rec.amount_refunded <= rec.amount
        assert store.get_charge(charge_id) == rec
    history = store.history(charge_id)
    assert [(t.from_status, t.to_status, t.amount_refunded) for t in history] == model.transitions
    final = store.get_charge(charge_id)
    assert final is not None
    check_history(history, final)
