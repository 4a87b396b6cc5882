"""The local ledger: gw.charges / refunds / history on every store and both drivers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fakepay.scripted import Classy, Script, ok

from paygate import (
    Card,
    ChargeStatus,
    InvalidRequest,
    Money,
    RetryPolicy,
)
from paygate.testing import Gateways

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Answering(Script):
    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/refunds"):
            return httpx.Response(200, json={"id": f"re_{len(self.seen)}"})
        return ok(id=f"ch_{len(self.seen)}")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'paygate.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def gw(driver: str, store_url: str) -> Iterator[Any]:
    now = [T0]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    kw: dict[str, Any] = {"store": store_url, "retry": RetryPolicy.no_wait(1), "clock": clock}
    script = Answering()
    with Gateways(driver) as gateways:
        yield gateways(providers={"acct": Classy()}, transport=script, **kw)


def _charge(gw: Any, key: str, amount: int = 1200) -> Any:
    return gw.charge(
        "acct", amount=Money.jpy(amount), method=Card(token="tok"), idempotency_key=key
    )


def test_charges_page_newest_first(gw: Any) -> None:
    made = [_charge(gw, f"k{i}", 100 + i) for i in range(5)]
    first = gw.charges("acct", limit=2)
    assert [c.id for c in first] == [made[4].id, made[3].id]
    assert first.next is not None
    second = gw.charges("acct", limit=2, after=first.next)
    assert [c.id for c in second] == [made[2].id, made[1].id]
    last = gw.charges("acct", limit=2, after=second.next)
    assert [c.id for c in last] == [made[0].id]
    assert last.next is None
    assert [c.id for c in gw.charges()] == [c.id for c in reversed(made)]


def test_filters_by_status_and_time(gw: Any) -> None:
    a = _charge(gw, "a")
    b = _charge(gw, "b")
    gw.refund("acct", b.id, idempotency_key="b-r")
    assert [c.id for c in gw.charges(status="refunded")] == [b.id]
    assert [c.id for c in gw.charges(status=[ChargeStatus.SUCCEEDED])] == [a.id]
    b_recorded = gw.store.get_charge(b.id).created_at  # the ledger's time: when recorded
    assert [c.id for c in gw.charges(since=b_recorded)] == [b.id]
    assert [c.id for c in gw.charges(until=b_recorded)] == [a.id]
    assert gw.charges(until=T0).items == ()


def test_refunds_and_history(gw: Any) -> None:
    charge = _charge(gw, "c")
    gw.refund("acct", charge.id, amount=Money.jpy(200), idempotency_key="c-r1")
    gw.refund("acct", charge.id, amount=Money.jpy(300), idempotency_key="c-r2")
    refunds = gw.refunds("acct", charge_id=charge.id)
    assert sorted(r.amount.amount for r in refunds) == [200, 300]
    history = gw.history("acct", charge.id)
    assert [t.to_status for t in history] == [
        ChargeStatus.SUCCEEDED,
        ChargeStatus.PARTIALLY_REFUNDED,
        ChargeStatus.PARTIALLY_REFUNDED,
    ]
    assert [t.amount_refunded for t in history] == [0, 200, 500]
    assert {t.source for t in history} == {"response"}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"status": "paid"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"after": "not-a-cursor"}, "after"),
    ],
)
def test_bad_arguments_are_typed_errors(gw: Any, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gw.charges("acct", **kwargs)
    assert info.value.param == param


def test_unknown_account_or_charge(gw: Any) -> None:
    from paygate import ConfigurationError

    with pytest.raises(ConfigurationError):
        gw.charges("nope")
    with pytest.raises(InvalidRequest):
        gw.history("acct", "ch_missing")
