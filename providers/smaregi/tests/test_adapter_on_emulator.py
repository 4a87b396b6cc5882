"""The adapter's flows against the emulator, over ASGI (no sockets, no core driver)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    ChargeStatus,
    Money,
    NotFound,
    PermissionDenied,
    PosLine,
    PosSale,
    ProviderRejected,
    RateLimited,
)
from paygate._flow import CacheClaim
from paygate.adapter import (
    CacheGet,
    CachePut,
    Call,
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    RefundRequest,
    Sleep,
)
from paygate.sandbox import SandboxClock
from paygate_smaregi import SmaregiProvider
from paygate_smaregi._emulator import SmaregiEmulator

from .conftest import Wire, account


def control(emulator: SmaregiEmulator, action: str, **params: Any) -> dict[str, Any]:
    return asyncio.run(emulator.control(action, params))


def sale(amount: int = 1200, **kw: Any) -> ChargeRequest:
    lines = (
        PosLine(product_id="8000001", unit_price=500, quantity=2),
        PosLine(name="袋", unit_price=amount - 1000),
    )
    return ChargeRequest(
        amount=Money.jpy(amount),
        method=PosSale(store_id="1", terminal_id="1", lines=lines, **kw),
    )


def ref_of(charge: Any) -> ChargeRef:
    return ChargeRef(
        charge_id=charge.id, provider_ref=charge.provider_ref, method="pos", amount=charge.amount
    )


def test_first_sale_creates_the_method_then_reuses_it(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    first = wire.run(provider.charge(sale(slip_number="S-1", card_company="VISA"), make_ctx("o-1")))
    assert first.status is ChargeStatus.SUCCEEDED
    assert first.amount == Money.jpy(1200)
    assert wire.steps() == [
        "token",
        "app_payment_methods.get",
        "app_payment_methods.create",
        "transactions.create",
    ]
    # The app payment's slip fields sit on its depositOthers item (forum 539).
    assert first.raw["depositOthers"][0]["slipNumber"] == "S-1"
    assert first.raw["depositOthers"][0]["cardCompany"] == "VISA"
    assert first.raw["slipNumber"] is None
    wire.calls.clear()
    second = wire.run(provider.charge(sale(), make_ctx("o-2")))
    assert wire.steps() == ["transactions.create"]  # token and method both cached
    assert second.provider_ref != first.provider_ref
    stats = control(emulator, "stats")
    assert stats["app_payment_methods_created"] == 1
    assert stats["token_requests"] == 1


def test_existing_method_is_found_not_created(
    client: Any, emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    # Registered earlier by another installation of the app (a re-contract keeps it).
    other = SmaregiProvider(account(emulator), account="elsewhere")
    Wire(client).run(other.ensure_payment_method(make_ctx()))
    mine = SmaregiProvider(account(emulator), account="pos")
    pm = wire.run(mine.ensure_payment_method(make_ctx()))
    assert "app_payment_methods.create" not in wire.steps()
    assert pm.payment_method_id == "101"


def test_lost_cache_race_ends_with_the_same_id(
    client: Any, emulator: SmaregiEmulator, make_ctx: Callable[..., OpContext]
) -> None:
    """Two processes both saw "absent"; the loser's POST gets the 403 and reads again."""
    a = SmaregiProvider(account(emulator), account="pos")
    b = SmaregiProvider(account(emulator), account="pos")
    wire_a, wire_b = Wire(client), Wire(client)  # two processes: two stores
    flow_a = a.ensure_payment_method(make_ctx())
    flow_b = b.ensure_payment_method(make_ctx())
    # Step both flows up to their POST, then let A post first.
    pending_a = advance_until(flow_a, wire_a, "app_payment_methods.create")
    pending_b = advance_until(flow_b, wire_b, "app_payment_methods.create")
    pm_a = finish(flow_a, wire_a, pending_a)
    pm_b = finish(flow_b, wire_b, pending_b)
    assert pm_a.payment_method_id == pm_b.payment_method_id
    assert wire_b.steps()[-2:] == ["app_payment_methods.create", "app_payment_methods.get"]
    stats = control(emulator, "stats")
    assert stats["app_payment_methods_created"] == 1
    assert stats["app_payment_method_posts"] == 2


def advance_until(flow: Any, wire: Wire, step: str) -> Any:
    """Run ``flow`` until it yields the call named ``step``; return that call unsent."""
    effect = next(flow)
    while True:
        if isinstance(effect, Call):
            if effect.step == step:
                return effect
            effect = flow.send(wire.respond(effect))
        elif isinstance(effect, CacheGet):
            effect = flow.send(wire.cache.get(effect.key))
        elif isinstance(effect, CachePut):
            wire.cache[effect.key] = effect.value
            effect = flow.send(None)
        elif isinstance(effect, CacheClaim):
            effect = flow.send(wire.cache.setdefault(effect.key, effect.value))
        elif isinstance(effect, Sleep):
            effect = flow.send(None)


def finish(flow: Any, wire: Wire, effect: Any) -> Any:
    """Send the pending ``effect`` and run ``flow`` to its end."""
    try:
        while True:
            if isinstance(effect, CacheGet):
                effect = flow.send(wire.cache.get(effect.key))
            elif isinstance(effect, CachePut):
                wire.cache[effect.key] = effect.value
                effect = flow.send(None)
            elif isinstance(effect, CacheClaim):
                effect = flow.send(wire.cache.setdefault(effect.key, effect.value))
            elif isinstance(effect, Sleep):
                effect = flow.send(None)
            else:
                effect = flow.send(wire.respond(effect))
    except StopIteration as stop:
        return stop.value


def test_deleted_method_is_recreated(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    wire.run(provider.charge(sale(), make_ctx("o-1")))
    deleted = control(emulator, "delete_payment_method")
    wire.calls.clear()
    charge = wire.run(provider.charge(sale(), make_ctx("o-2")))
    assert wire.steps() == [
        "transactions.create",  # refused: the cached method is gone
        "app_payment_methods.get",
        "app_payment_methods.create",
        "transactions.create",
    ]
    new_id = charge.raw["depositOthers"][0]["paymentMethodId"]
    assert new_id != deleted["paymentMethodId"]


def test_lookup_after_unknown_outcome(
    provider: SmaregiProvider, wire: Wire, make_ctx: Callable[..., OpContext], clock: SandboxClock
) -> None:
    ctx = make_ctx("o-lost")
    assert wire.run(provider.lookup_charge(sale(), ctx)) is None
    created = wire.run(provider.charge(sale(), ctx))
    clock.advance(timedelta(minutes=5))  # the retry comes a while later
    found = wire.run(provider.lookup_charge(sale(), make_ctx("o-lost")))
    assert found is not None
    assert found.provider_ref == created.provider_ref
    # A different key is a different sale.
    assert wire.run(provider.lookup_charge(sale(), make_ctx("o-other"))) is None


def test_status_sees_a_void_at_the_pos(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    charge = wire.run(provider.charge(sale(), make_ctx()))
    assert wire.run(provider.status(ref_of(charge), make_ctx())).status is ChargeStatus.SUCCEEDED
    control(emulator, "void_transaction", transaction_head_id=charge.provider_ref)
    after = wire.run(provider.status(ref_of(charge), make_ctx()))
    assert after.status is ChargeStatus.REFUNDED
    assert after.amount_refunded == charge.amount


def test_cancel_and_refund(
    provider: SmaregiProvider, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    one = wire.run(provider.charge(sale(), make_ctx("o-1")))
    canceled = wire.run(provider.cancel(CancelRequest(ref_of(one)), make_ctx()))
    assert canceled.status is ChargeStatus.REFUNDED
    # Repeating the cancel (e.g. after a lost response) is harmless.
    again = wire.run(provider.cancel(CancelRequest(ref_of(one)), make_ctx()))
    assert again.status is ChargeStatus.REFUNDED

    two = wire.run(provider.charge(sale(), make_ctx("o-2")))
    refund = wire.run(provider.refund(RefundRequest(ref_of(two)), make_ctx()))
    assert refund.amount == Money.jpy(1200)
    assert wire.run(provider.status(ref_of(two), make_ctx())).status is ChargeStatus.REFUNDED


def test_unknown_transaction(
    provider: SmaregiProvider, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    ref = ChargeRef(charge_id="x", provider_ref="424242", method="pos")
    with pytest.raises(NotFound) as info:
        wire.run(provider.status(ref, make_ctx()))
    assert info.value.provider_message == "指定されたIDのリソースが見つかりません"
    with pytest.raises(NotFound):
        wire.run(provider.cancel(CancelRequest(ref), make_ctx()))


def test_expired_tokens_are_refreshed_once(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    wire.run(provider.charge(sale(), make_ctx("o-1")))
    control(emulator, "expire_tokens")
    wire.calls.clear()
    wire.run(provider.charge(sale(), make_ctx("o-2")))
    assert wire.steps() == ["transactions.create", "token", "transactions.create"]
    assert control(emulator, "stats")["transactions_created"] == 2


def test_clock_jump_past_expiry(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    clock: SandboxClock,
) -> None:
    wire.run(provider.charge(sale(), make_ctx("o-1")))
    clock.advance(timedelta(hours=2))  # the flow's clock is the sandbox clock here
    wire.calls.clear()
    wire.run(provider.charge(sale(), make_ctx("o-2")))
    assert wire.steps() == ["token", "transactions.create"]


def test_wrong_secret(
    emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    bad = SmaregiProvider(account(emulator, client_secret="not-the-secret"), account="pos")
    with pytest.raises(AuthenticationError) as info:
        wire.run(bad.charge(sale(), make_ctx()))
    assert info.value.provider_code == "invalid_client"
    assert "not-the-secret" not in str(info.value)


def test_read_only_scope(
    emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    read_only = SmaregiProvider(account(emulator, scopes=("pos.transactions:read",)), account="pos")
    with pytest.raises(PermissionDenied) as info:
        wire.run(read_only.charge(sale(), make_ctx()))
    assert "pos.transactions:write" in (info.value.provider_message or "")


def test_scope_the_app_lacks(
    emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    greedy = SmaregiProvider(
        account(emulator, scopes=("pos.transactions:write", "pos.customers:write")), account="pos"
    )
    with pytest.raises(ProviderRejected) as info:
        wire.run(greedy.charge(sale(), make_ctx()))
    assert info.value.provider_code == "invalid_scope"


def test_unknown_store_is_mapped(
    provider: SmaregiProvider, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    req = ChargeRequest(
        amount=Money.jpy(100),
        method=PosSale(store_id="99", terminal_id="1", lines=(PosLine(name="x", unit_price=100),)),
    )
    with pytest.raises(ProviderRejected) as info:
        wire.run(provider.charge(req, make_ctx()))
    assert info.value.provider_message == "storeId: 指定された店舗が存在しません。"
    assert info.value.http_status == 400


def test_rate_limit_surfaces_after_the_driver_gives_up(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    wire.run(provider.charge(sale(), make_ctx("o-1")))
    control(emulator, "rate_limit", writes=1)
    wire.run(provider.charge(sale(), make_ctx("o-2")))
    with pytest.raises(RateLimited) as info:
        wire.run(provider.charge(sale(), make_ctx("o-3")))
    assert info.value.retry_after == 1.0


# ------------------------------------------ readings of facts no public source settles


def virtual_sale(terminal_id: str = "901") -> ChargeRequest:
    lines = (PosLine(product_id="8000001", unit_price=600, quantity=2),)
    return ChargeRequest(
        amount=Money.jpy(1200),
        method=PosSale(store_id="1", terminal_id=terminal_id, lines=lines),
    )


def test_status_sees_a_dispose_at_the_pos(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
) -> None:
    """返品取消 at the register: the original is refunded; a later refund is a void."""
    charge = wire.run(provider.charge(sale(), make_ctx()))
    control(emulator, "dispose_transaction", transaction_head_id=charge.provider_ref)
    after = wire.run(provider.status(ref_of(charge), make_ctx()))
    assert after.status is ChargeStatus.REFUNDED
    assert after.amount_refunded == charge.amount
    refund = wire.run(provider.refund(RefundRequest(ref_of(charge)), make_ctx()))
    assert refund.kind == "void"
    assert refund.raw["disposeDivision"] == "1"


@pytest.mark.parametrize("reading", ["enforced", "lenient"])
def test_virtual_terminal_under_both_readings(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
    reading: str,
) -> None:
    """A terminal the shop does not have: closed sales are accepted either way."""
    control(emulator, "configure", sum_division=reading)
    charge = wire.run(provider.charge(virtual_sale(), make_ctx()))
    assert charge.raw["sumDivision"] == "2"
    assert charge.raw["sumDate"] == "2025-03-01"


def test_register_setting_on_an_unknown_terminal_is_refused(
    emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    register = SmaregiProvider(account(emulator, virtual_terminal=False), account="pos")
    with pytest.raises(ProviderRejected) as info:
        wire.run(register.charge(virtual_sale(), make_ctx()))
    assert "sumDivision" in (info.value.provider_message or "")
    # On a real register the sale is left to the shop's closing.
    charge = wire.run(register.charge(sale(), make_ctx("o-register")))
    assert charge.raw["sumDivision"] == "0"


@pytest.mark.parametrize("reading", ["exact", "ignored", "refused"])
def test_lookup_under_each_filter_reading(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
    reading: str,
) -> None:
    control(emulator, "configure", transaction_uuid_filter=reading)
    wire.run(provider.charge(sale(), make_ctx("o-neighbour")))
    created = wire.run(provider.charge(sale(), make_ctx("o-lost")))
    found = wire.run(provider.lookup_charge(sale(), make_ctx("o-lost")))
    assert found is not None
    assert found.provider_ref == created.provider_ref
    assert wire.run(provider.lookup_charge(sale(), make_ctx("o-other"))) is None


@pytest.mark.parametrize("reading", ["required", "optional"])
def test_first_sale_under_both_name_readings(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
    reading: str,
) -> None:
    control(emulator, "configure", payment_method_name=reading)
    charge = wire.run(provider.charge(sale(), make_ctx()))
    assert charge.raw["depositOthers"][0]["paymentMethodName"] == SmaregiEmulator.APP_NAME


@pytest.mark.parametrize("reading", ["required", "optional"])
def test_void_under_both_cancel_time_readings(
    provider: SmaregiProvider,
    wire: Wire,
    make_ctx: Callable[..., OpContext],
    emulator: SmaregiEmulator,
    reading: str,
) -> None:
    control(emulator, "configure", cancel_time=reading)
    charge = wire.run(provider.charge(sale(), make_ctx()))
    refund = wire.run(provider.refund(RefundRequest(ref_of(charge)), make_ctx()))
    assert refund.kind == "void"
    assert refund.raw["cancelDateTime"] == "2025-03-01T10:00:00+09:00"


def test_cancel_slip_number_reaches_the_app_payment(
    provider: SmaregiProvider, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    charge = wire.run(provider.charge(sale(slip_number="S-1"), make_ctx()))
    wire.run(
        provider.prepare_void(
            make_ctx(None), transaction_head_id=charge.provider_ref, cancel_slip_number="C-1"
        )
    )
    voided = wire.run(provider.cancel(CancelRequest(ref_of(charge)), make_ctx()))
    assert voided.raw["depositOthers"][0]["cancelSlipNumber"] == "C-1"


def test_plural_path_setting_fails_naming_the_path(
    emulator: SmaregiEmulator, wire: Wire, make_ctx: Callable[..., OpContext]
) -> None:
    """Audit finding 1: the emulator serves one spelling; a wrong one is named."""
    plural = SmaregiProvider(
        account(emulator, app_payment_method_path="app_payment_methods"), account="pos"
    )
    with pytest.raises(NotFound) as info:
        wire.run(plural.charge(sale(), make_ctx()))
    assert "app_payment_methods" in str(info.value)
    assert control(emulator, "stats")["app_payment_method_posts"] == 0
