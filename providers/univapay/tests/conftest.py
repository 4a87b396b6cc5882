"""Fixtures: the UnivaPay emulator on a test clock, and flows driven against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from paygate.adapter import Flow, OpContext, drive
from paygate.sandbox import EmulatorContext, SandboxClock, WebhookDelivery
from paygate.testing import EmulatorClient, EmulatorResponder, share_tls_contexts
from paygate_univapay import UnivapayProvider, UnivapaySettings
from paygate_univapay._emulator import UnivapayEmulator

share_tls_contexts()  # one default TLS context for the many gateways and clients

T0 = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # 10:00 JST
BASE = "http://127.0.0.1"


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(start=T0)


@pytest.fixture
def deliveries() -> list[WebhookDelivery]:
    return []


@pytest.fixture
def emulator(clock: SandboxClock, deliveries: list[WebhookDelivery]) -> UnivapayEmulator:
    ctx = EmulatorContext(
        clock=clock, base_url=lambda: f"{BASE}/univapay", deliver=deliveries.append
    )
    emu = UnivapayEmulator(ctx)
    clock.on_advance(emu.on_clock_advanced)
    return emu


@pytest.fixture
def client(emulator: UnivapayEmulator) -> Iterator[EmulatorClient]:
    """The emulator mounted as the sandbox host would, plus its control route."""
    with EmulatorClient(emulator, base_url=BASE, control=True) as made:
        yield made


@pytest.fixture
def settings(emulator: UnivapayEmulator) -> UnivapaySettings:
    values = dict(emulator.account_settings())
    values.pop("provider")
    return UnivapaySettings(**values)


@pytest.fixture
def provider(settings: UnivapaySettings) -> UnivapayProvider:
    return UnivapayProvider(settings, account="konbini")


def make_ctx(
    key: str | None = "order-1", *, clock: SandboxClock | None = None, **kw: Any
) -> OpContext:
    now = clock.now if clock is not None else (lambda: T0)
    return OpContext(
        account="konbini",
        provider="univapay",
        idempotency_key=key,
        charge_id=kw.pop("charge_id", "pgch_1"),
        now=now,
        **kw,
    )


class Wire(EmulatorResponder):
    """Answers flow calls through the emulator and records them; each run starts with
    an empty entity cache, and control actions go through the control route."""

    def run(self, flow: Flow[Any]) -> Any:
        return drive(flow, self)

    def control(self, action: str, **params: Any) -> Any:
        response = self.client.post(f"/_sandbox/univapay/{action}", json=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def wire(client: EmulatorClient) -> Wire:
    return Wire(client)


@pytest.fixture
def ctx_factory(clock: SandboxClock) -> Callable[..., OpContext]:
    def factory(key: str | None = "order-1", **kw: Any) -> OpContext:
        return make_ctx(key, clock=clock, **kw)

    return factory
