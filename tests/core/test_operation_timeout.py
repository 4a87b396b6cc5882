"""``timeout=`` on every operation: a bound on the whole operation, retries included.

No test here reads the wall clock to judge the result: that the client gave up before
the (delayed) provider answered is seen in the order of events (the sandbox has not
served the request when the call returns), and how many attempts were made is counted
from the ``paygate`` logger's per-attempt records.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import httpx
import pytest

from paygate import (
    Card,
    ChargeStatus,
    InvalidRequest,
    Money,
    OutcomeUnknown,
    PaygateError,
    ProviderUnavailable,
)
from paygate._flow import Call
from paygate._http import _request
from paygate._retry import RetryPolicy


def card_charge(gw: Any, key: str, **kw: Any) -> Any:
    return gw.charge(
        "fake", amount=Money.jpy(1200), method=Card(token="tok"), idempotency_key=key, **kw
    )


def posts(emulator: Any, path: str = "/charges") -> int:
    return sum(1 for method, p in emulator.requests if method == "POST" and p == path)


@pytest.fixture
def attempts(caplog: pytest.LogCaptureFixture) -> Any:
    """How many HTTP attempts the gateway made so far (one DEBUG record each)."""
    caplog.set_level(logging.DEBUG, logger="paygate")
    return lambda: sum(
        1 for r in caplog.records if r.name == "paygate" and r.levelno == logging.DEBUG
    )


def settle(emulator: Any, count: int) -> None:
    """Wait until a request the client gave up on has been served (it would land in the
    next test otherwise)."""
    until = time.monotonic() + 10
    while len(emulator.requests) < count and time.monotonic() < until:
        time.sleep(0.05)
    assert len(emulator.requests) == count


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "1", [1.0]])
def test_timeout_is_checked_before_anything_is_sent(
    gateway_factory: Any, fake_emulator: Any, bad: Any
) -> None:
    gw = gateway_factory()
    with pytest.raises(InvalidRequest) as refused:
        card_charge(gw, "t-bad", timeout=bad)
    assert refused.value.param == "timeout"
    with pytest.raises(InvalidRequest):
        gw.status("fake", "ch_unknown", timeout=bad)
    with pytest.raises(InvalidRequest):
        gw.payout_balance("fake", timeout=bad)
    assert fake_emulator.requests == []
    # The key was never recorded: the same key works with a valid timeout.
    assert card_charge(gw, "t-bad", timeout=30).status is ChargeStatus.SUCCEEDED


def test_generous_timeout_changes_nothing(gateway_factory: Any, fake_emulator: Any) -> None:
    gw = gateway_factory()
    charge = card_charge(gw, "t-ok", timeout=30.0)
    assert gw.status("fake", charge.id, timeout=30) == charge
    refund = gw.refund("fake", charge.id, idempotency_key="t-ok-r", timeout=30.0)
    assert refund.amount == Money.jpy(1200)
    assert gw.payout_balance("fake", timeout=30.0) is not None
    assert posts(fake_emulator) == 1


def test_spent_before_sending_sends_nothing_and_releases_the_key(
    gateway_factory: Any, fake_emulator: Any
) -> None:
    gw = gateway_factory()
    with pytest.raises(ProviderUnavailable) as unavailable:
        card_charge(gw, "t-spent", timeout=1e-9)
    assert unavailable.value.retryable
    assert "timeout ran out before charges.create was sent" in str(unavailable.value)
    assert fake_emulator.requests == []
    # Nothing was sent: the key was released, the same key charges once now.
    assert card_charge(gw, "t-spent").status is ChargeStatus.SUCCEEDED
    assert posts(fake_emulator) == 1


def test_slow_read_is_cut_at_the_timeout(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any, attempts: Any
) -> None:
    gw = gateway_factory()
    charge = card_charge(gw, "t-read")
    fake_sandbox.fault("fakepay", "latency", path="^/charges/", method="GET", latency_ms=1500)
    served = len(fake_emulator.requests)
    before = attempts()
    with pytest.raises(ProviderUnavailable):
        gw.status("fake", charge.id, timeout=0.3)
    # The call returned before the provider answered: it was cut, not waited out, and
    # no time was left for another attempt.
    assert len(fake_emulator.requests) == served
    assert attempts() - before == 1


def test_slow_mutation_after_sending_is_an_unknown_outcome(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any
) -> None:
    gw = gateway_factory()
    fake_sandbox.fault("fakepay", "latency", path="^/charges$", method="POST", latency_ms=1500)
    with pytest.raises(OutcomeUnknown):
        card_charge(gw, "t-sent", timeout=0.3)
    # Given up before the provider answered; the lookup and the re-send found no time
    # left, so nothing else was sent.
    assert posts(fake_emulator) == 0
    settle(fake_emulator, 1)
    assert posts(fake_emulator) == 1


def test_retries_stop_when_the_timeout_is_spent(
    gateway_factory: Any, fake_sandbox: Any, fake_emulator: Any, attempts: Any
) -> None:
    policy = RetryPolicy(attempts=50, wait_initial=0.05, wait_max=0.05, wait_jitter=0.0)
    gw = gateway_factory(retry=policy)
    charge = card_charge(gw, "t-retry")
    fake_sandbox.fault("fakepay", "status", path="^/charges/", method="GET", status=503, count=50)
    before = attempts()
    with pytest.raises(ProviderUnavailable):
        gw.status("fake", charge.id, timeout=0.4)
    # The policy allows 50 attempts 0.05 s apart (2.5 s): the timeout stopped them.
    assert 2 <= attempts() - before < 50


def test_each_attempt_is_capped_by_what_is_left() -> None:
    timeouts = {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": None}
    request = _request(Call("GET", "https://api.example/ping"), timeouts, 0.25)
    assert request.extensions["timeout"] == {
        "connect": 0.25,
        "read": 0.25,
        "write": 0.25,
        "pool": 0.25,
    }
    long_poll = _request(Call("GET", "https://api.example/wait", timeout=60.0), timeouts, 2.0)
    assert set(long_poll.extensions["timeout"].values()) == {2.0}
    assert _request(Call("GET", "https://api.example/ping"), timeouts).extensions[
        "timeout"
    ] == dict(timeouts)


def test_a_delaying_transport_is_given_the_remaining_time(fake_config: Any, driver: str) -> None:
    from paygate.testing import gateway_on

    seen: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        return httpx.Response(503)

    transport: httpx.MockTransport
    policy = RetryPolicy(attempts=50, wait_initial=0.1, wait_max=0.1, wait_jitter=0.0)
    if driver == "async":

        async def slow(request: httpx.Request) -> httpx.Response:
            import asyncio

            await asyncio.sleep(0.1)
            return answer(request)

        transport = httpx.MockTransport(slow)
    else:

        def slow_sync(request: httpx.Request) -> httpx.Response:
            time.sleep(0.1)
            return answer(request)

        transport = httpx.MockTransport(slow_sync)
    gw = gateway_on(driver, fake_config(), retry=policy, transport=transport)
    try:
        with pytest.raises(PaygateError):  # the last 503, as the provider's error
            gw.payout_balance("fake", timeout=0.7)
    finally:
        gw.close()
    assert 2 <= len(seen) < 50
    assert all(0 < left <= 0.7 for left in seen)
    assert seen == sorted(seen, reverse=True)  # each attempt gets what is left, less each time


def test_no_retry_is_scheduled_past_the_timeout(
    gateway_factory: Any, fake_sandbox: Any, attempts: Any
) -> None:
    gw = gateway_factory(retry=RetryPolicy())
    charge = card_charge(gw, "t-after")
    fake_sandbox.fault(
        "fakepay", "rate_limit", path="^/charges/", method="GET", retry_after=10, count=5
    )
    before = attempts()
    with pytest.raises(PaygateError):  # the 429 stands: waiting 10 s would outlast 1 s
        gw.status("fake", charge.id, timeout=1.0)
    assert attempts() - before == 1  # no retry was scheduled
