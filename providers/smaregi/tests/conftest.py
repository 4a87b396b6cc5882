"""Shared fixtures: the Smaregi emulator reached in process (`paygate.testing.
EmulatorClient`: a bare Starlette app behind httpx's ASGI transport, no sockets) and a
runner for adapter flows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from paygate.adapter import OpContext
from paygate.sandbox import EmulatorContext, SandboxClock
from paygate.testing import EmulatorClient, EmulatorResponder, share_tls_contexts
from paygate_smaregi import SmaregiProvider, SmaregiSettings
from paygate_smaregi._emulator import SmaregiEmulator

share_tls_contexts()  # one default TLS context for the many gateways and clients

START = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)  # 10:00 JST
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(start=START)


@pytest.fixture
def emulator(clock: SandboxClock) -> SmaregiEmulator:
    ctx = EmulatorContext(clock=clock, base_url=lambda: f"{BASE}/smaregi", deliver=lambda d: None)
    return SmaregiEmulator(ctx)


# The names the test modules import: the kit's in-process client and flow runner
# (``Wire(client)``: calls recorded, one entity cache per object, i.e. one "store").
Client = EmulatorClient
Wire = EmulatorResponder


@pytest.fixture
def client(emulator: SmaregiEmulator) -> Iterator[EmulatorClient]:
    with EmulatorClient(emulator, base_url=BASE) as made:
        yield made


def account(emulator: SmaregiEmulator, **overrides: Any) -> SmaregiSettings:
    data = {k: v for k, v in emulator.account_settings().items() if k != "provider"}
    data.update(overrides)
    return SmaregiSettings(**data)


@pytest.fixture
def settings(emulator: SmaregiEmulator) -> SmaregiSettings:
    return account(emulator)


@pytest.fixture
def provider(settings: SmaregiSettings) -> SmaregiProvider:
    return SmaregiProvider(settings, account="pos")


@pytest.fixture
def make_ctx(clock: SandboxClock) -> Callable[..., OpContext]:
    def make(key: str | None = "order-1", **kw: Any) -> OpContext:
        kw.setdefault("charge_id", "ch_test_1")
        return OpContext(
            account="pos", provider="smaregi", idempotency_key=key, now=clock.now, **kw
        )

    return make


@pytest.fixture
def wire(client: EmulatorClient) -> EmulatorResponder:
    return EmulatorResponder(client)
