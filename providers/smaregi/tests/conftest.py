"""Shared fixtures: the Smaregi emulator mounted in a bare Starlette app, served to
httpx through ASGITransport (no sockets), and a tiny runner for adapter flows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.applications import Starlette
from starlette.routing import Mount

from paygate.adapter import Call, Flow, OpContext, Reply, drive
from paygate.sandbox import EmulatorContext, SandboxClock
from paygate_smaregi import SmaregiProvider, SmaregiSettings
from paygate_smaregi._emulator import SmaregiEmulator

START = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)  # 10:00 JST
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(start=START)


@pytest.fixture
def emulator(clock: SandboxClock) -> SmaregiEmulator:
    ctx = EmulatorContext(clock=clock, base_url=lambda: f"{BASE}/smaregi", deliver=lambda d: None)
    return SmaregiEmulator(ctx)


class Client:
    """A synchronous face of an ``httpx.AsyncClient`` on the emulator app."""

    def __init__(self, portal: BlockingPortal, app: Starlette) -> None:
        self._portal = portal
        self._app = app

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            response = await http.request(method, url, **kw)
            await response.aread()
            return response

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._portal.call(lambda: self._request(method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture
def client(emulator: SmaregiEmulator) -> Iterator[Client]:
    app = Starlette(routes=[Mount("/smaregi", routes=list(emulator.routes()))])
    with start_blocking_portal() as portal:
        yield Client(portal, app)


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


class Wire:
    """Runs flows against the emulator through the Starlette test client.

    ``calls`` records every call (step, method, url) for assertions; ``cache`` is the
    entity cache shared by all flows run through this object (one "store").
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[Call] = []
        self.cache: dict[str, Any] = {}

    def respond(self, call: Call) -> Reply:
        self.calls.append(call)
        response = self.client.request(
            call.method, call.url, headers=dict(call.headers), content=call.content
        )
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, headers, response.content, provider="smaregi")

    def run(self, flow: Flow[Any]) -> Any:
        return drive(flow, self.respond, self.cache)

    def steps(self) -> list[str]:
        return [c.step for c in self.calls]


@pytest.fixture
def wire(client: Client) -> Wire:
    return Wire(client)
