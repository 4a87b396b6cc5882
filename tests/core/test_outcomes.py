"""Every provider answer classified once: what each outcome class does to the key.

A small provider declares its own codes (`Provider.outcomes`); a scripted transport
answers each request. Each case runs on both drivers and on every store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fakepay.scripted import LOST, NOT_FOUND, Classy, Script, err, ok

from paygate import (
    Card,
    Charge,
    ChargeStatus,
    MethodCapabilities,
    Money,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    Refund,
    RefundStatus,
)
from paygate._retry import RetryPolicy
from paygate.adapter import (
    OperationPolicy,
    Outcome,
    default_outcome,
)
from paygate.testing import gateway_on

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'paygate.db'}"
    return str(request.getfixturevalue("postgres_url"))


class World:
    """A gateway on one driver and store, the scripted transport and a movable clock."""

    def __init__(self, driver: str, store: str, provider: Classy) -> None:
        self.now = T0
        self.script = Script()
        self.provider = provider
        self._driver = driver
        self._store = store
        self.gw: Any = None
        self.restart()

    def clock(self) -> datetime:
        return self.now

    def restart(self) -> None:
        """A new gateway on the same store (a restarted process)."""
        if self.gw is not None:
            self.gw.close()
        kw: dict[str, Any] = {
            "store": self._store,
            "retry": RetryPolicy.no_wait(attempts=1),
            "clock": self.clock,
            "lease": timedelta(seconds=30),
        }
        self.gw = gateway_on(
            self._driver, providers={"acct": self.provider}, transport=self.script, **kw
        )

    def charge(self, key: str = "order-1") -> Charge:
        result: Charge = self.gw.charge(
            "acct", amount=Money.jpy(1200), method=Card(token="tok_x"), idempotency_key=key
        )
        return result

    def key_state(self, key: str = "order-1") -> str:
        from paygate._operations import store_key

        record = self.gw.store.get(store_key("acct", "charge", key))
        return str(record.state) if record is not None else "absent"


@pytest.fixture
def world(driver: str, store_url: str) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(**kw: Any) -> World:
        w = World(driver, store_url, Classy(**kw))
        made.append(w)
        return w

    yield make
    for w in made:
        w.gw.close()


# ------------------------------------------------------------------ classification itself


def test_declared_codes_win_over_the_class_and_the_class_decides_the_rest() -> None:
    provider = Classy()
    busy = ProviderRejected("x", provider_code="busy")
    assert provider.outcome_of(busy) is Outcome.RETRYABLE
    assert provider.outcome_of(ProviderRejected("x", provider_code="other")) is None
    assert default_outcome(ProviderRejected("x")) is Outcome.REFUSED
    assert default_outcome(ProviderRejected("x", retryable=True)) is Outcome.RETRYABLE
    assert default_outcome(PaymentDeclined("x")) is Outcome.REFUSED
    assert default_outcome(RateLimited("x")) is Outcome.RETRYABLE
    assert default_outcome(ProviderUnavailable("x")) is Outcome.UNKNOWN


def test_key_window_rules() -> None:
    started = T0
    assert not OperationPolicy(key="header").window_passed(started, T0 + timedelta(days=999))
    hour = OperationPolicy(key="header", key_window=timedelta(hours=1))
    assert not hour.window_passed(started, T0 + timedelta(minutes=59))
    assert hour.window_passed(started, T0 + timedelta(minutes=61))
    assert OperationPolicy(key="body", key_window="unknown").window_passed(started, T0)


# ---------------------------------------------------------------------------- the classes


def test_refused_is_stored_and_replayed_without_asking_again(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(err(400, "nope"))
    with pytest.raises(ProviderRejected) as first:
        w.charge()
    assert first.value.provider_code == "nope"
    with pytest.raises(ProviderRejected):
        w.charge()
    assert len(w.script.seen) == 1
    assert w.key_state() == "failed"


def test_retryable_refusal_leaves_the_key_usable(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(err(400, "busy"), ok())
    with pytest.raises(ProviderRejected):
        w.charge()
    assert w.key_state() == "absent"
    assert w.charge().status is ChargeStatus.SUCCEEDED
    assert len(w.script.seen) == 2


def test_a_temporary_rejection_undeclared_is_retryable_by_its_class(
    world: Callable[..., World],
) -> None:
    w = world()
    w.script.then(err(409, "other", temporary=True), ok())
    with pytest.raises(ProviderRejected):
        w.charge()
    assert w.charge().status is ChargeStatus.SUCCEEDED


def test_maybe_done_on_a_first_attempt_is_a_refusal(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(err(400, "already_done"))
    with pytest.raises(ProviderRejected):
        w.charge()
    assert w.key_state() == "failed"


def test_maybe_done_after_a_lost_answer_goes_to_the_lookup(world: Callable[..., World]) -> None:
    w = world()
    # lost answer -> lookup: not there yet -> re-send refused "already done" -> lookup: found
    w.script.then(LOST, NOT_FOUND, err(400, "already_done"), ok(id="ch_first"))
    charge = w.charge()
    assert charge.provider_ref == "ch_first"
    assert w.key_state() == "completed"
    assert w.charge().provider_ref == "ch_first"  # replayed
    assert len(w.script.seen) == 4


def test_maybe_done_with_nothing_found_is_unknown_never_a_failure(
    world: Callable[..., World],
) -> None:
    w = world()
    w.script.then(LOST, NOT_FOUND, err(400, "already_done"), NOT_FOUND)
    with pytest.raises(OutcomeUnknown) as info:
        w.charge()
    assert info.value.provider_code == "already_done"
    assert w.key_state() == "unknown"
    # The next call with the key recovers: the lookup now finds the charge.
    w.script.then(ok(id="ch_late"))
    assert w.charge().provider_ref == "ch_late"


def test_maybe_done_without_a_lookup_is_unknown(world: Callable[..., World]) -> None:
    w = world(lookup=False)
    w.script.then(LOST, err(400, "already_done"))
    with pytest.raises(OutcomeUnknown):
        w.charge()
    assert w.key_state() == "unknown"


def test_retryable_refusal_of_a_resend_keeps_the_key_unknown(
    world: Callable[..., World],
) -> None:
    w = world(lookup=False)
    # The first send may have charged; a throttled re-send says nothing about it.
    w.script.then(LOST, err(429, "slow"))
    with pytest.raises(RateLimited):
        w.charge()
    assert w.key_state() == "unknown"
    w.script.then(ok(id="ch_keyed"))  # recovery re-sends under the same provider key
    assert w.charge().provider_ref == "ch_keyed"


def test_unknown_code_keeps_the_key_for_recovery(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(err(400, "weird"))
    with pytest.raises(ProviderRejected):
        w.charge()
    assert w.key_state() == "unknown"
    w.script.then(ok(id="ch_found"))  # recovery asks the lookup first
    assert w.charge().provider_ref == "ch_found"
    assert w.script.seen[-1] == "GET /lookup"


def test_a_decline_on_the_resend_stands(world: Callable[..., World]) -> None:
    w = world(lookup=False)
    w.script.then(LOST, err(402, "card_declined"))
    with pytest.raises(PaymentDeclined):
        w.charge()
    assert w.key_state() == "failed"


# ----------------------------------------------------------------------------- key windows


def test_past_the_window_recovery_needs_a_positive_lookup(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(err(503, "down"))
    with pytest.raises(ProviderUnavailable):
        w.charge()
    assert w.key_state() == "unknown"
    w.now += timedelta(hours=2)
    w.script.then(NOT_FOUND)  # not found, but the provider may have forgotten the key
    with pytest.raises(OutcomeUnknown, match="window"):
        w.charge()
    assert w.script.seen[-1] == "GET /lookup"
    assert w.key_state() == "unknown"
    w.script.then(ok(id="ch_positive"))
    assert w.charge().provider_ref == "ch_positive"


def test_inside_the_window_a_negative_lookup_allows_the_resend(
    world: Callable[..., World],
) -> None:
    w = world()
    w.script.then(err(503, "down"))
    with pytest.raises(ProviderUnavailable):
        w.charge()
    w.now += timedelta(minutes=10)
    w.script.then(NOT_FOUND, ok(id="ch_resent"))
    assert w.charge().provider_ref == "ch_resent"


def test_an_unstated_window_never_resends_blind_on_recovery(world: Callable[..., World]) -> None:
    w = world(window="unknown")
    w.script.then(err(503, "down"))
    with pytest.raises(ProviderUnavailable):
        w.charge()
    w.script.then(NOT_FOUND)
    with pytest.raises(OutcomeUnknown):
        w.charge()
    assert [s for s in w.script.seen if s.startswith("POST")] == ["POST /charges"]


def test_an_unstated_window_still_allows_the_immediate_resend(
    world: Callable[..., World],
) -> None:
    w = world(window="unknown")
    w.script.then(LOST, NOT_FOUND, ok(id="ch_now"))
    assert w.charge().provider_ref == "ch_now"


# ------------------------------------------------------------- cancel, refund and lookups


def test_a_busy_cancel_can_be_retried_with_the_default_key(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(ok(status="requires_action"))
    charge = w.charge()
    w.script.then(err(400, "busy"))
    with pytest.raises(ProviderRejected):
        w.gw.cancel("acct", charge.id)
    w.script.then(ok(status="canceled"))
    assert w.gw.cancel("acct", charge.id).status is ChargeStatus.CANCELED


def test_a_lost_refund_answer_is_looked_up_before_any_resend(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(ok())
    charge = w.charge()
    w.script.then(LOST, httpx.Response(200, json={"id": "re_1", "amount": 500}))
    refund = w.gw.refund("acct", charge.id, amount=Money.jpy(500), idempotency_key="r1")
    assert refund.provider_ref == "re_1"
    assert [s for s in w.script.seen if s == "POST /refunds"] == ["POST /refunds"]
    assert w.gw.store.get_charge(charge.id).amount_refunded == 500


def test_the_providers_stated_refunded_total_is_recorded(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(ok())
    charge = w.charge()
    # The provider says the charge's refunded total is 700 (a refund paygate missed).
    w.script.then(httpx.Response(200, json={"id": "re_2", "charge_refunded": 700}))
    w.gw.refund("acct", charge.id, amount=Money.jpy(200), idempotency_key="r2")
    record = w.gw.store.get_charge(charge.id)
    assert record.amount_refunded == 700
    assert record.status is ChargeStatus.PARTIALLY_REFUNDED


# ---------------------------------------------------------------- events carry the state


def _webhook(w: World, **data: Any) -> Any:
    body = json.dumps({"id": "ev_1", "type": "charge.refunded", "charge": "ch_1", **data})
    return w.gw.webhooks.handle("acct", {}, body.encode())


def test_a_refunded_event_with_amounts_records_them(world: Callable[..., World]) -> None:
    w = world()
    w.script.then(ok())
    charge = w.charge()
    _webhook(w, status="partially_refunded", amount_refunded=300)
    record = w.gw.store.get_charge(charge.id)
    assert (record.status, record.amount_refunded) == (ChargeStatus.PARTIALLY_REFUNDED, 300)


def test_a_refunded_status_alone_never_books_the_whole_amount(
    world: Callable[..., World],
) -> None:
    w = world()
    w.script.then(ok())
    charge = w.charge()
    # The event says "refunded" and no amount: the core fetches the charge, which has
    # 1,000 of 1,200 refunded.
    w.script.then(ok(status="partially_refunded", refunded=1000))
    _webhook(w, status="refunded")
    record = w.gw.store.get_charge(charge.id)
    assert record.amount_refunded == 1000
    assert record.status is ChargeStatus.PARTIALLY_REFUNDED
    assert w.script.seen[-1] == "GET /charges/ch_1"


# ------------------------------------------------------------------------------ voids


def test_a_void_says_no_money_moved() -> None:
    void = Refund(
        id="re_x",
        charge_id="ch_x",
        account="pos",
        provider="x",
        provider_ref="1",
        amount=Money.jpy(100),
        status=RefundStatus.SUCCEEDED,
        created_at=T0,
        kind="void",
    )
    assert not void.money_returned
    assert void.model_copy(update={"kind": "refund"}).money_returned
    caps = MethodCapabilities(method="pos", refund="full", refund_moves_money=False)
    from paygate.cli._matrix import _refund_cell

    assert _refund_cell(caps) == "void (no money moves, full)"
