"""Starting and stopping the sandbox; discovery of provider emulators; the bare app."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from paygate import ConfigurationError
from paygate.sandbox import (
    SandboxClient,
    SandboxHost,
    discover_emulators,
    running,
)
from paygate.sandbox import _host as host_module


def sandbox_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("paygate-sandbox")]


def test_running_serves_on_loopback_and_stops_cleanly(toy_classes: list[type]) -> None:
    before = sandbox_threads()
    with running(emulators=toy_classes) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert len(sandbox_threads()) == len(before) + 1
        url = sandbox.url
        # Any client can drive it over HTTP, e.g. from another process.
        with SandboxClient(url) as client:
            assert client.providers() == ["otherpay", "toypay"]
    assert sandbox_threads() == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_sandbox/health")


def test_running_takes_a_webhook_url_and_a_provider_filter(toy_classes: list[type]) -> None:
    with running(
        emulators=toy_classes, providers=["toypay"], webhook_url="http://127.0.0.1:9/hooks"
    ) as sandbox:
        assert sandbox.providers() == ["toypay"]
        assert sandbox.host.webhooks.urls() == {"*": "http://127.0.0.1:9/hooks"}


def test_running_refuses_remote_hosts(toy_classes: list[type]) -> None:
    with pytest.raises(ConfigurationError) as refused:
        with running(emulators=toy_classes, host="0.0.0.0"):
            pass
    assert "loopback" in str(refused.value)


def test_asking_for_a_missing_emulator_fails(toy_classes: list[type]) -> None:
    with pytest.raises(ConfigurationError):
        SandboxHost(toy_classes, providers=["nopay"])
    with pytest.raises(ConfigurationError) as missing:
        SandboxHost(providers=["surely-not-installed"])
    assert "not installed" in str(missing.value)


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.target = target

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_discovery_goes_through_the_provider_entry_points(
    monkeypatch: pytest.MonkeyPatch, toy_classes: list[type]
) -> None:
    toy = toy_classes[1]

    class WithEmulator:
        @classmethod
        def emulator(cls) -> type:
            return toy

    class WithoutEmulator:
        @classmethod
        def emulator(cls) -> None:
            return None

    fakes = [
        FakeEntryPoint("toypay", WithEmulator),
        FakeEntryPoint("quiet", WithoutEmulator),
        FakeEntryPoint("broken", ImportError("no module named broken_sdk")),
    ]

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == "paygate.providers"
        return fakes

    monkeypatch.setattr(host_module, "entry_points", fake_entry_points)
    found, skipped = discover_emulators()
    assert found == {"toypay": toy}
    assert skipped == {
        "broken": "cannot load: ImportError: no module named broken_sdk",
        "quiet": "ships no emulator",
    }
    assert discover_emulators(["toypay", "elsewhere"]) == (
        {"toypay": toy},
        {"elsewhere": "not installed"},
    )
    with running() as sandbox:
        health = sandbox.health()
    assert health["providers"] == ["toypay"]
    assert set(health["skipped"]) == {"broken", "quiet"}


@pytest.mark.anyio
async def test_the_app_works_under_any_asgi_server(
    toy_classes: list[type], auth: dict[str, str]
) -> None:
    host = SandboxHost(toy_classes, url="http://sandbox.test")
    transport = httpx.ASGITransport(app=host.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        created = await client.post("/toypay/v1/charges", json={"amount": 10}, headers=auth)
        assert created.status_code == 201
        paid = await client.post("/_sandbox/toypay/pay", json={"charge_id": created.json()["id"]})
        assert paid.json()["charge"]["status"] == "succeeded"
        creds = (await client.get("/_sandbox/credentials")).json()
        assert creds["toypay"]["base_url"] == "http://sandbox.test/toypay"
    assert host.request_count == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
