"""The test kit in paygate.testing: gateways on both drivers, scripted answers, emulators
reached without a server."""

from __future__ import annotations

import ast
import asyncio
import gc
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakepay import SECRET, FakeEmulator
from fakepay.scripted import Classy

from paygate import Card, Gateway, Money, RetryPolicy
from paygate.adapter import Call, Reply, TransportFailure
from paygate.sandbox import EmulatorContext, SandboxClock, WebhookDelivery
from paygate.testing import (
    DRIVERS,
    BlockingAsyncGateway,
    EmulatorClient,
    EmulatorResponder,
    Gateways,
    ScriptedResponder,
    emulator_app,
    gateway_on,
    share_tls_contexts,
)

AUTH = {"authorization": f"Bearer {SECRET}"}
BASE = "http://127.0.0.1/fakepay"


def _charge(id_: str = "ch_1") -> httpx.Response:
    return httpx.Response(200, json={"id": id_, "status": "succeeded", "amount": 1200})


# -- gateways on both drivers -------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_gateway_on_gives_one_blocking_interface(driver: str) -> None:
    script = ScriptedResponder(_charge())
    gw = gateway_on(
        driver, providers={"acct": Classy()}, transport=script, retry=RetryPolicy.no_wait()
    )
    try:
        assert isinstance(gw, Gateway if driver == "sync" else BlockingAsyncGateway)
        charge = gw.charge(
            "acct", amount=Money.jpy(1200), method=Card(token="tok"), idempotency_key="k1"
        )
        assert charge.provider_ref == "ch_1"
        assert script.seen == ["POST /charges"]
    finally:
        gw.close()


def test_gateway_on_refuses_unknown_drivers_and_two_sources() -> None:
    with pytest.raises(ValueError, match="driver"):
        gateway_on("trio", {"accounts": {}})
    with pytest.raises(TypeError, match="not both"):
        gateway_on("sync", {"accounts": {}}, providers={})


def test_gateway_on_gives_each_driver_its_own_sleep() -> None:
    def sleep(seconds: float) -> None:
        raise AssertionError

    async def asleep(seconds: float) -> None:
        raise AssertionError

    with Gateways("sync", sleep=sleep, asleep=asleep) as sync:
        assert sync({"accounts": {}})._driver._sleep is sleep  # type: ignore[union-attr]
    with Gateways("async", sleep=sleep, asleep=asleep) as async_:
        gw = async_({"accounts": {}})
        assert gw.gateway._driver._sleep is asleep  # type: ignore[union-attr]


def test_gateways_close_everything_they_made() -> None:
    with Gateways("async", retry=RetryPolicy.no_wait()) as gateways:
        first, second = gateways({"accounts": {}}), gateways({"accounts": {}})
    assert [gw._closed for gw in (first, second)] == [True, True]  # type: ignore[union-attr]
    gateways.close()  # twice is harmless
    assert repr(gateways) == "Gateways('async', made=2)"


# -- scripted answers ---------------------------------------------------------------------


def test_scripted_responder_answers_in_order_and_records() -> None:
    script = ScriptedResponder(_charge("a")).then(httpx.ReadTimeout, httpx.Response(404))
    with httpx.Client(transport=script, base_url="https://api.example") as client:
        assert client.post("/v1/charges", json={"amount": 1}).json()["id"] == "a"
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v1/charges/a")
        assert client.get("/v1/charges/a").status_code == 404
        with pytest.raises(AssertionError, match="unscripted request GET /v1/x"):
            client.get("/v1/x")
    assert script.seen == [
        "POST /v1/charges",
        "GET /v1/charges/a",
        "GET /v1/charges/a",
        "GET /v1/x",
    ]
    assert json.loads(script.requests[0].content) == {"amount": 1}
    script.assert_done()


def test_scripted_responder_serves_the_async_driver() -> None:
    script = ScriptedResponder(lambda request: httpx.Response(201, text=request.url.path))

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=script) as client:
            return await client.get("https://api.example/echo")

    response = asyncio.run(get())
    assert (response.status_code, response.text) == (201, "/echo")
    assert script.answers == []


def test_scripted_responder_answers_flow_calls_with_replies() -> None:
    reply = Reply(202, {"x": "1"}, b"{}", provider="classy")
    script = ScriptedResponder(httpx.Response(200, json={"ok": True}), reply, provider="classy")
    script.then(TransportFailure("lost", sent=True))
    first = script(Call("GET", "https://api.example/v1/a?page=2"))
    assert (first.status, first.json(), first.provider) == (200, {"ok": True}, "classy")
    assert script(Call("POST", "https://api.example/v1/b")) is reply
    with pytest.raises(TransportFailure):
        script(Call("GET", "https://api.example/v1/c"))
    assert script.seen == ["GET /v1/a", "POST /v1/b", "GET /v1/c"]
    assert len(script.calls) == 3


def test_assert_done_names_what_was_never_asked() -> None:
    script = ScriptedResponder(_charge(), _charge())
    with pytest.raises(AssertionError, match="2 scripted answer"):
        script.assert_done()


def test_scripted_reprs_hold_no_request_content() -> None:
    script = ScriptedResponder(_charge())
    with httpx.Client(transport=script) as client:
        client.post("https://api.example/v1", headers={"authorization": "Bearer sk_live_xyz"})
    assert "sk_live" not in repr(script)
    assert repr(script) == "ScriptedResponder(asked=1, left=0)"


# -- emulators without a server -----------------------------------------------------------


@pytest.fixture
def deliveries() -> list[WebhookDelivery]:
    return []


@pytest.fixture
def emulator(deliveries: list[WebhookDelivery]) -> FakeEmulator:
    clock = SandboxClock(start=datetime(2030, 1, 1, tzinfo=UTC))
    return FakeEmulator(
        EmulatorContext(clock=clock, base_url=lambda: BASE, deliver=deliveries.append)
    )


@pytest.fixture
def client(emulator: FakeEmulator) -> Iterator[EmulatorClient]:
    with EmulatorClient(emulator, control=True) as made:
        yield made


def _create(client: EmulatorClient, amount: int = 1200, method: str = "qr") -> dict[str, Any]:
    body = {"amount": amount, "currency": "JPY", "method": method, "order": "o-1"}
    response = client.post("/fakepay/charges", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_emulator_client_serves_the_emulator_and_its_control_actions(
    client: EmulatorClient, emulator: FakeEmulator, deliveries: list[WebhookDelivery]
) -> None:
    charge = _create(client)
    assert charge["status"] == "pending"
    assert client.control("pay", id=charge["id"])["status"] == "succeeded"
    assert (
        client.get(f"{BASE}/charges/{charge['id']}", headers=AUTH).json()["status"] == "succeeded"
    )
    assert [d.event_id for d in deliveries] == [f"evt_{charge['id']}"]
    # The control route, as the sandbox host answers it.
    charge = _create(client)
    assert client.post("/_sandbox/fakepay/pay", json={"id": charge["id"]}).status_code == 200
    refused = client.post("/_sandbox/fakepay/nothing")
    assert refused.status_code == 404
    assert refused.json()["error"].startswith("unknown action 'nothing'")
    assert repr(client) == "EmulatorClient('fakepay')"


def test_emulator_responder_drives_flows_and_records_calls(client: EmulatorClient) -> None:
    charge = _create(client)
    wire = EmulatorResponder(client)
    headers = dict(AUTH)

    def flow() -> Any:
        reply: Reply = yield Call("GET", f"{BASE}/charges/{charge['id']}", headers, step="get")
        return reply

    reply = wire.run(flow())
    assert (reply.status, reply.provider, reply.json_object()["id"]) == (
        200,
        "fakepay",
        charge["id"],
    )
    assert wire.steps() == ["get"]
    assert wire.control("pay", id=charge["id"])["status"] == "succeeded"
    other = EmulatorResponder(client, provider="other")  # a second store on the same emulator
    assert other.calls == []
    assert other.cache is not wire.cache
    assert "Bearer" not in repr(wire)


def test_emulator_app_mounts_under_a_prefix(emulator: FakeEmulator) -> None:
    app = emulator_app(emulator, prefix="/elsewhere")
    with EmulatorClient(app) as raw:
        assert raw.get("/elsewhere/balance", headers=AUTH).status_code == 200
        assert raw.get("/fakepay/balance", headers=AUTH).status_code == 404
        with pytest.raises(TypeError, match="Emulator"):
            raw.control("pay")


def test_an_unclosed_emulator_client_closes_its_loop_when_collected() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/", lambda r: PlainTextResponse("hi"))])
    client = EmulatorClient(app)
    assert client.get("/").text == "hi"
    runner = client._loop.runner
    assert runner is not None
    loop = runner.get_loop()
    del client, runner
    gc.collect()
    assert loop.is_closed()


def test_the_kit_imports_no_sandbox_at_import_time() -> None:
    import paygate.testing._kit as kit

    tree = ast.parse(Path(kit.__file__).read_text(encoding="utf-8"))
    imported = [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not [m for m in imported if "sandbox" in m or m == "pytest"], imported


def test_share_tls_contexts_shares_only_the_default_context() -> None:
    undo = share_tls_contexts()  # already done by the conftest: calling again is harmless
    try:
        assert httpx.create_ssl_context() is httpx.create_ssl_context()
        assert httpx.create_ssl_context(verify=False) is not httpx.create_ssl_context(verify=False)
        undo()
        assert httpx.create_ssl_context() is not httpx.create_ssl_context()
    finally:
        share_tls_contexts()
