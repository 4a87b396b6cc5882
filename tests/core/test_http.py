"""`paygate._http`: what the drivers send, at httpx's transport layer."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest

from paygate._flow import Call
from paygate._http import AsyncSender, SyncSender, _Routes


class Recorder(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers 200 and keeps every request; counts responses closed and itself closed."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = 0
        self.responses: list[httpx.Response] = []
        self.headers = headers or {}

    def _answer(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        response = httpx.Response(
            200, headers={"Set-Cookie": "lb=1", "X-Thing": "yes", **self.headers}, content=b"{}"
        )
        self.responses.append(response)
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


CALL = Call(
    "POST",
    "https://api.example/v1/charges",
    headers={"Authorization": "Bearer sk", "Content-Type": "application/json"},
    content=b'{"amount":1}',
)


def test_sync_sender_sends_the_call_with_default_headers_and_timeouts() -> None:
    wire = Recorder()
    sender = SyncSender(httpx.Timeout(30.0, connect=5.0), transport=wire)
    reply = sender.send(CALL, "example")
    sent = wire.requests[0]
    assert (sent.method, str(sent.url), sent.content) == ("POST", CALL.url, b'{"amount":1}')
    assert sent.headers["authorization"] == "Bearer sk"
    assert sent.headers["user-agent"] == "paygate"
    assert sent.headers["content-length"] == "12"
    assert sent.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert reply.status == 200
    assert reply.headers["x-thing"] == "yes"  # names are lower-case
    assert reply.provider == "example"
    assert wire.responses[0].is_closed


def test_a_calls_own_timeout_wins() -> None:
    wire = Recorder()
    sender = SyncSender(httpx.Timeout(30.0), transport=wire)
    sender.send(Call("GET", "https://api.example/poll", timeout=65.0), "example")
    assert wire.requests[0].extensions["timeout"]["read"] == 65.0


def test_cookies_are_never_sent_back() -> None:
    wire = Recorder()
    sender = SyncSender(httpx.Timeout(5.0), transport=wire)
    sender.send(CALL, "example")
    sender.send(CALL, "example")
    assert "cookie" not in wire.requests[1].headers


def test_redirects_are_answers_not_followed() -> None:
    wire = Recorder(headers={"Location": "https://elsewhere.example/"})
    sender = SyncSender(httpx.Timeout(5.0), transport=wire)
    sender.send(CALL, "example")
    assert len(wire.requests) == 1


def test_closing_closes_a_given_transport() -> None:
    wire = Recorder()
    SyncSender(httpx.Timeout(5.0), transport=wire).close()
    assert wire.closed == 1


def test_async_sender_sends_and_closes() -> None:
    wire = Recorder()

    async def run() -> Any:
        sender = AsyncSender(httpx.Timeout(5.0), transport=wire)
        replies = await asyncio.gather(*(sender.send(CALL, "example") for _ in range(5)))
        await sender.aclose()
        return replies

    replies = asyncio.run(run())
    assert [r.status for r in replies] == [200] * 5
    assert all(r.is_closed for r in wire.responses)
    assert wire.closed == 1


def test_async_lanes_are_made_per_request_in_flight_and_closed() -> None:
    made: list[Recorder] = []

    async def run() -> None:
        sender = AsyncSender(httpx.Timeout(5.0), limit=8, keep=2)
        routes = sender._routes
        assert routes is not None

        def lane() -> Recorder:
            made.append(Recorder())
            return made[-1]

        lanes = routes.get(httpx.URL(CALL.url))
        lanes._make = lane  # type: ignore[union-attr]
        await asyncio.gather(*(sender.send(CALL, "example") for _ in range(4)))
        await sender.aclose()

    asyncio.run(run())
    assert 1 <= len(made) <= 4
    assert sum(len(r.requests) for r in made) == 4
    assert all(r.closed == 1 for r in made)


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.corp.example")


def test_environment_proxies_are_honoured(proxy_env: None) -> None:
    routes: _Routes[str] = _Routes(lambda proxy: proxy or "direct")
    assert routes.get(httpx.URL("https://api.pay.jp/v1/charges")) == "http://proxy.internal:3128"
    assert routes.get(httpx.URL("http://api.pay.jp/v1/charges")) == "direct"  # https only
    assert routes.get(httpx.URL("http://127.0.0.1:8080/sandbox")) == "direct"
    assert routes.get(httpx.URL("https://pay.corp.example/x")) == "direct"
    assert set(routes.transports) == {"http://proxy.internal:3128", None}


def test_without_trust_env_no_proxy_is_used(proxy_env: None) -> None:
    routes: _Routes[str] = _Routes(lambda proxy: proxy or "direct", trust_env=False)
    assert routes.get(httpx.URL("https://api.pay.jp/v1/charges")) == "direct"


def test_transports_are_made_once_per_route(proxy_env: None) -> None:
    made: list[str | None] = []

    def make(proxy: str | None) -> str:
        made.append(proxy)
        return proxy or "direct"

    routes: _Routes[str] = _Routes(make)
    for _ in range(3):
        routes.get(httpx.URL("https://api.pay.jp/v1/charges"))
        routes.get(httpx.URL("https://api.smaregi.jp/x"))
        routes.get(httpx.URL("http://localhost/x"))
    assert made == ["http://proxy.internal:3128", None]
    assert sorted(routes.drain(), key=str) == ["direct", "http://proxy.internal:3128"]
    assert routes.transports == {}


def test_a_returned_lane_is_kept_while_requests_wait() -> None:
    """With every slot taken, a returned connection goes to the next waiter instead of
    being closed (a new one would pay a TLS handshake)."""
    import asyncio

    from paygate._http import _Lanes

    made: list[httpx.AsyncBaseTransport] = []

    def make() -> httpx.AsyncBaseTransport:
        lane = httpx.MockTransport(lambda request: httpx.Response(204))
        made.append(lane)
        return lane

    async def scenario() -> None:
        lanes = _Lanes(make, limit=1, keep=0, wait=5.0)
        first = await lanes.take()
        waiter = asyncio.ensure_future(lanes.take())
        await asyncio.sleep(0)
        lanes.give(first)  # every slot was taken: kept for the waiter
        assert await waiter is first
        lanes.give(first)  # nobody waits now: keep=0 makes it surplus
        await lanes.aclose()

    asyncio.run(scenario())
    assert len(made) == 1


def test_default_tls_context_is_built_once_and_shared() -> None:
    """Full verification with no client certificate: one context per process (loading
    the CA bundle costs tens of milliseconds); anything else is the account's own."""
    from paygate._http import _tls

    first, second = _tls({}), _tls({"verify": True})
    assert first is second
    assert first.verify_mode is ssl.CERT_REQUIRED
    assert first.check_hostname
    own = ssl.create_default_context()
    assert _tls({"verify": own}) is not first
    insecure = _tls({"verify": False})
    assert insecure is not first
    assert insecure.verify_mode is ssl.CERT_NONE
    assert first.verify_mode is ssl.CERT_REQUIRED  # the shared one is untouched
