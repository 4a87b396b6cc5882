"""``virtual_time`` jumps to the next event instead of polling through idle virtual time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from paygate import ChargeStatus, Konbini, Money
from paygate.testing import VirtualTime


def slip(gw: Any, key: str, days: int) -> Any:
    return gw.charge(
        "konbini",
        amount=Money.jpy(1200),
        method=Konbini(
            store="family_mart",
            customer_name="テスト 太郎",
            phone="0364413400",
            email="demo@example.com",
            expires_in=timedelta(days=days),
        ),
        idempotency_key=key,
    )


def test_wait_on_a_30_day_slip_ends_at_its_expiry_quickly(
    make_gateway: Any, virtual_time: VirtualTime
) -> None:
    gw = make_gateway()
    charge = slip(gw, "vt-1", days=30)
    done = gw.wait("konbini", charge.id, timeout=40 * 86400)
    assert done.status is ChargeStatus.EXPIRED
    assert len(virtual_time.sleeps) < 20  # quick: a few jumps of virtual time, no real waits
    assert virtual_time.jumps
    assert 30 * 86400 <= virtual_time.elapsed < 32 * 86400


def test_wait_shorter_than_the_slip_ends_at_its_timeout(
    make_gateway: Any, virtual_time: VirtualTime
) -> None:
    gw = make_gateway()
    charge = slip(gw, "vt-2", days=30)
    done = gw.wait("konbini", charge.id, timeout=3 * 86400)
    assert done.status is ChargeStatus.REQUIRES_ACTION
    assert virtual_time.elapsed == 3 * 86400
    assert len(virtual_time.sleeps) < 20


def test_the_async_driver_jumps_too(make_gateway: Any, virtual_time: VirtualTime) -> None:
    gw = make_gateway(driver="async")
    charge = slip(gw, "vt-3", days=30)
    done = gw.wait("konbini", charge.id, timeout=2 * 86400)
    assert done.status is ChargeStatus.REQUIRES_ACTION
    assert virtual_time.elapsed == 2 * 86400


def test_no_jump_while_the_test_acts_between_sleeps(
    make_gateway: Any, sandbox: Any, virtual_time: VirtualTime
) -> None:
    gw = make_gateway()
    charge = slip(gw, "vt-4", days=30)
    virtual_time.on_sleep = lambda n: None
    done = gw.wait("konbini", charge.id, timeout=120)
    assert done.status is ChargeStatus.REQUIRES_ACTION
    assert virtual_time.jumps == []
    assert virtual_time.sleeps[-3:] == [15.0, 15.0, 15.0]
