"""Shared fixtures: a deterministic provider, the emulator reached in process, wire helpers."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from paygate._redact import forget_secrets
from paygate.adapter import Call, OpContext, Reply, TransportFailure
from paygate.sandbox import EmulatorContext, SandboxClock
from paygate.testing import (
    EmulatorClient,
    EmulatorResponder,
    ScriptedResponder,
    emulator_app,
    share_tls_contexts,
)
from paygate_pokepay import (
    SANDBOX,
    EnvelopeCipher,
    PokepayEmulator,
    PokepayProvider,
    PokepaySettings,
)
from paygate_pokepay._crypto import decode_client_secret

share_tls_contexts()  # one default TLS context for the many gateways and clients

BASE = "http://127.0.0.1/pokepay"
START = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
FUNDED = SANDBOX.customers["funded"][0]
LOW = SANDBOX.customers["low_balance"][0]
SUSPENDED = SANDBOX.customers["suspended"][0]
CLOSED = SANDBOX.customers["closed"][0]
NO_WALLET = SANDBOX.customers["no_wallet"][0]


class Clock:
    """A settable clock for OpContext.now."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def uuids(seed: int = 1) -> Callable[[], uuid.UUID]:
    counter = itertools.count(seed)
    return lambda: uuid.UUID(int=next(counter), version=4)


def settings(**over: Any) -> PokepaySettings:
    data: dict[str, Any] = {
        "base_url": BASE,
        "client_id": SANDBOX.client_id,
        "client_secret": SANDBOX.client_secret,
        "shop_id": SANDBOX.shop_id,
        "private_money_id": SANDBOX.private_money_id,
    }
    data.update(over)
    return PokepaySettings(**data)


def server_cipher() -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(SANDBOX.client_secret), iv_source=lambda: bytes(16))


class FakePokepay(ScriptedResponder):
    """Answers `Call`s from scripted replies, recording the decrypted requests.

    A scripted reply is a `Reply` or ``reply(call, request)`` given the opened request.
    """

    def __init__(self) -> None:
        super().__init__(provider="pokepay")
        self.cipher = server_cipher()
        self.requests: list[dict[str, Any]] = []  # type: ignore[assignment]

    def open(self, call: Call) -> dict[str, Any]:
        outer = json.loads(call.content or b"{}")
        inner = json.loads(self.cipher.decrypt(outer["data"]))
        return {"outer": outer, "inner": inner, "path": call.url.removeprefix(BASE)}

    def __call__(self, call: Call) -> Reply:
        self.requests.append(self.open(call))
        return super().__call__(call)

    def unscripted(self, where: str) -> AssertionError:
        return AssertionError(f"unexpected call {where}")

    def next_answer(self, request: httpx.Request | Call, where: str) -> Any:
        reply = super().next_answer(request, where)
        return reply(request, self.requests[-1]) if callable(reply) else reply

    def sealed(self, status: int, body: Any, *, timestamp: str | None = None) -> Reply:
        outer = {
            "response_data": self.cipher.encrypt(json.dumps(body).encode()),
            "timestamp": timestamp or START.isoformat(),
            "partner_call_id": str(uuid.uuid4()),
        }
        return Reply(status, {"content-type": "application/json"}, json.dumps(outer).encode())

    @staticmethod
    def plain(status: int, body: Any) -> Reply:
        return Reply(status, {"content-type": "application/json"}, json.dumps(body).encode())

    def then(self, *replies: Callable[[Call, dict[str, Any]], Reply] | Reply) -> FakePokepay:
        super().then(*replies)
        return self


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    forget_secrets()


@pytest.fixture
def make_settings() -> Callable[..., PokepaySettings]:
    return settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> PokepayProvider:
    return PokepayProvider(settings(), account="wallet", iv_source=lambda: bytes(16))


@pytest.fixture
def make_ctx(clock: Clock) -> Callable[..., OpContext]:
    def make(key: str | None = "order-1", **over: Any) -> OpContext:
        data: dict[str, Any] = {
            "account": "wallet",
            "provider": "pokepay",
            "idempotency_key": key,
            "charge_id": "ch_test",
            "now": clock,
            "new_uuid": uuids(),
        }
        data.update(over)
        return OpContext(**data)

    return make


@pytest.fixture
def fake() -> FakePokepay:
    return FakePokepay()


@pytest.fixture
def sandbox_clock() -> SandboxClock:
    return SandboxClock(start=START)


@pytest.fixture
def emulator(sandbox_clock: SandboxClock) -> PokepayEmulator:
    ctx = EmulatorContext(clock=sandbox_clock, base_url=lambda: BASE, deliver=lambda d: None)
    emu = PokepayEmulator(ctx)
    # Freshness is judged against the sandbox clock only, so tests never read real time.
    emu.wall_clock = sandbox_clock.now
    return emu


# The names the test modules import: the kit's in-process client and app.
AsgiClient = EmulatorClient


@pytest.fixture
def app(emulator: PokepayEmulator) -> Starlette:
    return emulator_app(emulator)


@pytest.fixture
def client(app: Starlette) -> Iterator[EmulatorClient]:
    with EmulatorClient(app) as made:
        yield made


class Bridge(EmulatorResponder):
    """Answers flow `Call`s with the emulator; can lose answers after the fact."""

    def __init__(self, client: EmulatorClient) -> None:
        super().__init__(client, provider="pokepay")
        self.lose_next = False

    def respond(self, call: Call) -> Reply:
        reply = super().respond(call)
        if self.lose_next:
            self.lose_next = False
            raise TransportFailure("read timeout", sent=True, step=call.step)
        return reply


@pytest.fixture
def bridge(client: EmulatorClient) -> Bridge:
    return Bridge(client)


@pytest.fixture
def sandbox_ctx(sandbox_clock: SandboxClock) -> Callable[..., OpContext]:
    counter = itertools.count(1000)

    def make(key: str | None = "order-1", **over: Any) -> OpContext:
        data: dict[str, Any] = {
            "account": "wallet",
            "provider": "pokepay",
            "idempotency_key": key,
            "charge_id": f"ch_{key}",
            "now": sandbox_clock.now,
            "new_uuid": lambda: uuid.UUID(int=next(counter), version=4),
        }
        data.update(over)
        return OpContext(**data)

    return make
