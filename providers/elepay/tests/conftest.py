"""Fixtures: the elepay emulator in-process, and an adapter pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from paygate._redact import forget_secrets
from paygate.adapter import Call, OpContext, Reply
from paygate.sandbox import EmulatorContext, SandboxClock, WebhookDelivery
from paygate_elepay import ElepayProvider, ElepaySettings
from paygate_elepay._emulator import SECRET_KEY, ElepayEmulator

BASE = "http://127.0.0.1/elepay"
START = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


class AsgiClient:
    """A small synchronous client for an ASGI app (httpx's ASGI transport is async)."""

    def __init__(self, app: Starlette, base_url: str = "http://127.0.0.1") -> None:
        self.app = app
        self.base_url = base_url

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url) as c:
                response = await c.request(method, path, **kw)
                await response.aread()
                return response

        return anyio.run(run)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)


@dataclass
class Local:
    """The emulator behind an in-process ASGI client, plus what it delivered."""

    emulator: ElepayEmulator
    client: AsgiClient
    clock: SandboxClock
    deliveries: list[WebhookDelivery]
    calls: list[Call] = field(default_factory=list)

    def respond(self, call: Call) -> Reply:
        """Answer a flow's call through the emulator (a `drive` responder)."""
        self.calls.append(call)
        parts = urlsplit(call.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        resp = self.client.request(
            call.method, path, headers=dict(call.headers), content=call.content
        )
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Reply(resp.status_code, headers, resp.content, provider="elepay")

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            return await self.emulator.control(action, params)

        return anyio.run(run)

    def pay(self, charge_ref: str, method: str = "paypay") -> dict[str, Any]:
        code_id = charge_ref.partition(":")[2] or charge_ref
        return self.control("pay_code", code_id=code_id, payment_method=method)


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(start=START)


@pytest.fixture
def emu(clock: SandboxClock) -> Local:
    deliveries: list[WebhookDelivery] = []
    emulator = ElepayEmulator(
        EmulatorContext(clock=clock, base_url=lambda: BASE, deliver=deliveries.append)
    )
    app = Starlette(routes=[Mount("/elepay", routes=list(emulator.routes()))])
    return Local(emulator, AsgiClient(app), clock, deliveries)


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
