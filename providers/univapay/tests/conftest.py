"""Fixtures: the UnivaPay emulator on a test clock, and flows driven against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.from_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from paygate.adapter import Call, Flow, OpContext, Reply, drive
from paygate.sandbox import ControlError, EmulatorContext, SandboxClock, WebhookDelivery
from paygate_univapay import UnivapayProvider, UnivapaySettings
from paygate_univapay._emulator import UnivapayEmulator

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


def build_app(emulator: UnivapayEmulator) -> Starlette:
    """The emulator mounted as the sandbox host would, plus a control route."""

    async def control(request: Request) -> Response:
        params = await request.json() if (await request.body()) else {}
        try:
            result = await emulator.control(request.path_params["action"], params)
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return JSONResponse(result)

    return Starlette(
        routes=[
            Route("/_sandbox/univapay/{action}", control, methods=["POST"]),
            Mount("/univapay", routes=list(emulator.routes())),
        ]
    )


class SyncClient:
    """A blocking httpx client over an ASGI app, run on a portal event loop thread."""

    def __init__(self, app: Starlette, portal: anyio.from_thread.BlockingPortal) -> None:
        self.portal = portal
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.request, method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", url, **kw)


@pytest.fixture
def client(emulator: UnivapayEmulator) -> Iterator[SyncClient]:
    with anyio.from_thread.start_blocking_portal() as portal:
        sync = SyncClient(build_app(emulator), portal)
        yield sync
        portal.call(sync.client.aclose)


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


class Wire:
    """Answers flow calls through the emulator and records them."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.calls: list[Call] = []

    def __call__(self, call: Call) -> Reply:
        self.calls.append(call)
        response = self.client.request(
            call.method, call.url, headers=dict(call.headers), content=call.content
        )
        return Reply(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
            provider="univapay",
        )

    def run(self, flow: Flow[Any]) -> Any:
        return drive(flow, self)

    def control(self, action: str, **params: Any) -> Any:
        response = self.client.post(f"/_sandbox/univapay/{action}", json=params)
        assert response.status_code == 200, response.text
        return response.json()

    def steps(self) -> list[str]:
        return [c.step for c in self.calls]


@pytest.fixture
def wire(client: SyncClient) -> Wire:
    return Wire(client)


@pytest.fixture
def ctx_factory(clock: SandboxClock) -> Callable[..., OpContext]:
    def factory(key: str | None = "order-1", **kw: Any) -> OpContext:
        return make_ctx(key, clock=clock, **kw)

    return factory
