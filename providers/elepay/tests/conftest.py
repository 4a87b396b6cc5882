"""Fixtures: the elepay emulator in-process, and an adapter pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from paygate._redact import forget_secrets
from paygate.adapter import Call, OpContext, Reply
from paygate.sandbox import EmulatorContext, SandboxClock, WebhookDelivery
from paygate.testing import EmulatorClient, EmulatorResponder, share_tls_contexts
from paygate_elepay import ElepayProvider, ElepaySettings
from paygate_elepay._emulator import SECRET_KEY, ElepayEmulator

share_tls_contexts()  # one default TLS context for the many gateways and clients

BASE = "http://127.0.0.1/elepay"
START = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@dataclass
class Local:
    """The emulator behind an in-process client, plus what it delivered."""

    emulator: ElepayEmulator
    client: EmulatorClient
    clock: SandboxClock
    deliveries: list[WebhookDelivery]
    wire: EmulatorResponder = field(init=False)

    def __post_init__(self) -> None:
        self.wire = EmulatorResponder(self.client)

    @property
    def calls(self) -> list[Call]:
        return self.wire.calls

    def respond(self, call: Call) -> Reply:
        """Answer a flow's call through the emulator (a `drive` responder)."""
        return self.wire.respond(call)

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return self.client.control(action, **params)

    def pay(self, charge_ref: str, method: str = "paypay") -> dict[str, Any]:
        code_id = charge_ref.partition(":")[2] or charge_ref
        return self.control("pay_code", code_id=code_id, payment_method=method)


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(start=START)


@pytest.fixture
def emu(clock: SandboxClock) -> Iterator[Local]:
    deliveries: list[WebhookDelivery] = []
    emulator = ElepayEmulator(
        EmulatorContext(clock=clock, base_url=lambda: BASE, deliver=deliveries.append)
    )
    with EmulatorClient(emulator) as client:
        yield Local(emulator, client, clock, deliveries)


@pytest.fixture
def settings() -> ElepaySettings:
    return ElepaySettings(base_url=BASE, secret_key=SECRET_KEY)


@pytest.fixture
def provider(settings: ElepaySettings) -> Iterator[ElepayProvider]:
    yield ElepayProvider(settings, account="qr")
    forget_secrets()


@pytest.fixture
def make_ctx(clock: SandboxClock) -> Callable[..., OpContext]:
    def make(key: str | None = "order-1042", **kw: Any) -> OpContext:
        kw.setdefault("charge_id", f"pgch_{key}")
        return OpContext(account="qr", provider="elepay", idempotency_key=key, now=clock.now, **kw)

    return make


@pytest.fixture
def no_io() -> Callable[[Call], Reply]:
    """A responder for flows that must fail before sending anything."""

    def respond(call: Call) -> Reply:
        raise AssertionError(f"unexpected request {call!r}")

    return respond
