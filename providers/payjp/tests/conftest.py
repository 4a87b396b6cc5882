"""Fixtures for the PAY.JP adapter tests: a frozen sandbox clock, the emulator reached in
process (`paygate.testing.EmulatorClient`), flows driven against it, and a uvicorn server
for SDK tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from paygate.adapter import Call, Flow, OpContext, Reply
from paygate.sandbox import EmulatorContext, SandboxClock, ServerThread, WebhookDelivery
from paygate.testing import EmulatorClient, EmulatorResponder, emulator_app, share_tls_contexts
from paygate_payjp import PayjpProvider, PayjpSettings
from paygate_payjp._emulator import PUBLIC_KEY, SECRET_KEY, WEBHOOK_TOKEN, PayjpEmulator

share_tls_contexts()  # one default TLS context for the many gateways and clients

# 2026-01-10 12:00 JST: the first Term is January 2026 (JST).
START = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
BASE = "http://127.0.0.1/payjp"


@dataclass
class Harness:
    """The emulator, its clock and a way to run flows against it."""

    clock: SandboxClock
    emulator: PayjpEmulator
    client: EmulatorClient
    deliveries: list[WebhookDelivery]
    provider: PayjpProvider
    wire: EmulatorResponder = field(init=False)

    def __post_init__(self) -> None:
        self.wire = EmulatorResponder(self.client)

    @property
    def calls(self) -> list[Call]:
        return self.wire.calls

    @property
    def cache(self) -> dict[str, Any]:
        """The adapter's entity cache (capture and refund memos), kept across flows."""
        return self.wire.cache

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """A raw request to the emulator (``url`` relative to the host)."""
        return self.client.request(method, url, **kw)

    def respond(self, call: Call) -> Reply:
        return self.wire.respond(call)

    def run(self, flow: Flow[Any]) -> Any:
        return self.wire.run(flow)

    def ctx(self, key: str | None = None, charge_id: str | None = None) -> OpContext:
        return OpContext(
            account="card",
            provider="payjp",
            idempotency_key=key,
            charge_id=charge_id,
            now=self.clock.now,
        )

    def advance(self, **kw: float) -> None:
        self.clock.advance(timedelta(**kw))

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return self.client.control(action, **params)

    def with_settings(self, **changes: Any) -> PayjpProvider:
        data = {**self.provider.config.model_dump(), **changes}
        return PayjpProvider(PayjpSettings(**data), account="card")


def make_settings(**changes: Any) -> PayjpSettings:
    data: dict[str, Any] = {
        "base_url": BASE,
        "secret_key": SECRET_KEY,
        "public_key": PUBLIC_KEY,
        "webhook_token": WEBHOOK_TOKEN,
        **changes,
    }
    return PayjpSettings(**data)


def make_emulator(clock: SandboxClock, deliveries: list[WebhookDelivery]) -> PayjpEmulator:
    ctx = EmulatorContext(clock=clock, base_url=lambda: BASE, deliver=deliveries.append)
    emulator = PayjpEmulator(ctx)
    clock.on_advance(emulator.on_clock_advanced)
    return emulator


@pytest.fixture
def emu() -> Iterator[Harness]:
    clock = SandboxClock(start=START)
    deliveries: list[WebhookDelivery] = []
    emulator = make_emulator(clock, deliveries)
    with EmulatorClient(emulator) as client:
        yield Harness(
            clock=clock,
            emulator=emulator,
            client=client,
            deliveries=deliveries,
            provider=PayjpProvider(make_settings(), account="card"),
        )


@pytest.fixture
def provider() -> PayjpProvider:
    return PayjpProvider(make_settings(base_url="https://api.pay.jp"), account="card")


@pytest.fixture
def make_ctx() -> Callable[..., OpContext]:
    """``make_ctx(key="order-1", charge_id="pg_ch_1")``: a context at a fixed time."""

    def factory(key: str | None = "order-1", charge_id: str | None = "pg_ch_1") -> OpContext:
        return OpContext(
            account="card",
            provider="payjp",
            idempotency_key=key,
            charge_id=charge_id,
            now=lambda: START,
        )

    return factory


@pytest.fixture
def settings_factory() -> Callable[..., PayjpSettings]:
    """``settings_factory(**changes)``: sandbox settings with changes."""
    return make_settings


@pytest.fixture
def start() -> datetime:
    """The sandbox clock's frozen start (2026-01-10 12:00 JST)."""
    return START


@dataclass
class LiveServer:
    url: str
    emulator: PayjpEmulator
    clock: SandboxClock
    deliveries: list[WebhookDelivery]


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    """The emulator served by uvicorn on an ephemeral loopback port, in a thread."""
    clock = SandboxClock(start=START)
    deliveries: list[WebhookDelivery] = []
    url = ""
    ctx_ = EmulatorContext(clock=clock, base_url=lambda: f"{url}/payjp", deliver=deliveries.append)
    emulator = PayjpEmulator(ctx_)
    clock.on_advance(emulator.on_clock_advanced)
    with ServerThread(emulator_app(emulator)) as server:
        url = server.url
        yield LiveServer(url=url, emulator=emulator, clock=clock, deliveries=deliveries)
