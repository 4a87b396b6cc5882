"""What each provider is charged with, and the raw httpx client it is compared against.

The raw client sends exactly the requests the adapter would (same bytes, same
idempotency key scheme, same keep-alive client settings) on a bare ``httpx`` client and
JSON-decodes the answers; it does no validation, keeps no idempotency record, runs no
retry loop or spans and does not build a `paygate.Charge` from the final answer. What a
paygate call costs beyond it is the gateway's own overhead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from paygate import Card, Konbini, Money, PosLine, PosSale, QRCode
from paygate._adapter import ChargeRef, ChargeRequest, OpContext, Provider
from paygate._flow import CacheGet, CachePut, Call, Flow, Sleep
from paygate._http import reply_of
from paygate._models import PaymentMethod
from paygate._operations import charge_id_for
from paygate._retry import RetryPolicy

__all__ = [
    "SCENARIOS",
    "AsyncRaw",
    "Scenario",
    "SyncRaw",
    "async_client",
    "new_key",
    "sync_client",
]


@dataclass(frozen=True)
class Scenario:
    """How the benchmark charges one provider."""

    provider: str
    method: Callable[[], PaymentMethod]
    amount: int = 1200
    sdk: str | None = None  # official SDK compared in the throughput run


SCENARIOS: dict[str, Scenario] = {
    s.provider: s
    for s in (
        Scenario("fakepay", lambda: Card(token="tok_bench")),
        Scenario("payjp", lambda: Card(token="tok_success"), sdk="payjp"),
        Scenario("elepay", QRCode, sdk="elepay"),
        Scenario(
            "univapay",
            lambda: Konbini(store="family_mart", customer_name="テスト 太郎", phone="0364413400"),
            sdk="univapayclientsdk",
        ),
        Scenario("pokepay", QRCode),
        Scenario(
            "smaregi",
            lambda: PosSale(
                store_id="1",
                terminal_id="1",
                lines=(PosLine(name="Coffee", unit_price=600, quantity=2),),
            ),
        ),
    )
}


def new_key() -> str:
    """A fresh merchant idempotency key."""
    return f"bench-{uuid.uuid4().hex}"


def _client_kwargs(provider: Provider, policy: RetryPolicy) -> dict[str, Any]:
    # The settings `paygate._driver` gives its clients, so both sides reuse connections
    # the same way.
    return {
        "timeout": httpx.Timeout(provider.settings.timeout, connect=policy.connect_timeout),
        "headers": {"user-agent": "paygate"},
        "follow_redirects": False,
        **provider.http_options(),
    }


def sync_client(provider: Provider, policy: RetryPolicy | None = None) -> httpx.Client:
    """A plain keep-alive client configured like the sync driver's."""
    return httpx.Client(**_client_kwargs(provider, policy or RetryPolicy()))


def async_client(provider: Provider, policy: RetryPolicy | None = None) -> httpx.AsyncClient:
    """A plain keep-alive client configured like the async driver's."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        **_client_kwargs(provider, policy or RetryPolicy()),
    )


def _decode(response: httpx.Response, provider: Provider) -> Any:
    """The answer as a raw client must read it to learn the outcome.

    For most providers that is the JSON body. Pokepay's Partner API encrypts every answer
    (``response_data``, AES under the client secret), so a raw client decrypts it too:
    without that it has learnt nothing, and the comparison would charge paygate for
    work the wire protocol demands of every client.
    """
    if response.status_code >= 400:
        raise RuntimeError(f"raw call failed: HTTP {response.status_code} {response.text[:200]}")
    data = response.json() if response.content else None
    wire = getattr(provider, "wire", None)
    if isinstance(data, dict) and "response_data" in data and hasattr(wire, "decrypt_object"):
        return wire.decrypt_object(data["response_data"], response.status_code)
    return data


class _RawBase:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.cache: dict[str, Any] = {}
        self.calls: dict[str, int] = {}

    def ctx(self, key: str | None = None) -> OpContext:
        account = self.provider.account
        return OpContext(
            account=account,
            provider=self.provider.name,
            idempotency_key=key,
            charge_id=charge_id_for(account, key) if key else None,
        )

    def charge_flow(self, req: ChargeRequest, key: str) -> Flow[Any]:
        return self.provider.charge(req, self.ctx(key))

    def status_flow(self, ref: ChargeRef) -> Flow[Any]:
        return self.provider.status(ref, self.ctx())

    def _local(self, effect: Any) -> Any:
        if isinstance(effect, CacheGet):
            return self.cache.get(effect.key)
        if isinstance(effect, CachePut):
            self.cache[effect.key] = effect.value
            return None
        if isinstance(effect, Sleep):
            return None
        raise TypeError(f"raw client cannot run {effect!r}")


class SyncRaw(_RawBase):
    """The provider's requests on a bare `httpx.Client`.

    ``learn`` first (one full run of the flow) to know how many HTTP calls an
    operation makes; later runs stop after the last answer is decoded.
    """

    def __init__(self, provider: Provider, client: httpx.Client) -> None:
        super().__init__(provider)
        self.client = client

    def learn(self, name: str, flow: Flow[Any]) -> Any:
        """Run ``flow`` in full once, counting its HTTP calls; returns its result.

        Learn with a second flow after the first: a first call may do one-off work
        (fetch a token, register something) that later calls skip.
        """
        count = 0
        effect = next(flow)
        try:
            while True:
                if isinstance(effect, Call):
                    count += 1
                    response = self.client.request(
                        effect.method, effect.url, headers=effect.headers, content=effect.content
                    )
                    effect = flow.send(reply_of(response, self.provider.name))
                else:
                    effect = flow.send(self._local(effect))
        except StopIteration as stop:
            self.calls[name] = count
            return stop.value

    def run(self, name: str, flow: Flow[Any]) -> Any:
        """Send ``flow``'s calls; return the last decoded answer."""
        remaining = self.calls[name]
        data: Any = None
        effect = next(flow)
        try:
            while True:
                if isinstance(effect, Call):
                    response = self.client.request(
                        effect.method, effect.url, headers=effect.headers, content=effect.content
                    )
                    data = _decode(response, self.provider)
                    remaining -= 1
                    if remaining <= 0:
                        flow.close()
                        return data
                    effect = flow.send(reply_of(response, self.provider.name))
                else:
                    effect = flow.send(self._local(effect))
        except StopIteration:
            return data


class AsyncRaw(_RawBase):
    """`SyncRaw` on a bare `httpx.AsyncClient`.

    With ``per_connection``, each request borrows a client of its own that holds one
    connection (the way paygate's async driver spreads concurrent requests) instead of
    sharing one client's pool.
    """

    def __init__(
        self, provider: Provider, client: httpx.AsyncClient, *, per_connection: bool = False
    ) -> None:
        super().__init__(provider)
        self.client = client
        self.lanes: list[httpx.AsyncClient] | None = [] if per_connection else None
        self._kwargs = _client_kwargs(provider, RetryPolicy())
        # One TLS context for all of them (building one per client is slow).
        self._kwargs["verify"] = httpx.create_ssl_context(verify=self._kwargs.get("verify", True))

    def make(self) -> httpx.AsyncClient:
        """A client holding at most one connection."""
        return httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), **self._kwargs
        )

    async def learn(self, name: str, flow: Flow[Any]) -> Any:
        count = 0
        effect = next(flow)
        try:
            while True:
                if isinstance(effect, Call):
                    count += 1
                    response = await self._send(effect)
                    effect = flow.send(reply_of(response, self.provider.name))
                else:
                    effect = flow.send(self._local(effect))
        except StopIteration as stop:
            self.calls[name] = count
            return stop.value

    async def run(self, name: str, flow: Flow[Any]) -> Any:
        """Send ``flow``'s calls; return the last decoded answer."""
        remaining = self.calls[name]
        data: Any = None
        effect = next(flow)
        try:
            while True:
                if isinstance(effect, Call):
                    response = await self._send(effect)
                    data = _decode(response, self.provider)
                    remaining -= 1
                    if remaining <= 0:
                        flow.close()
                        return data
                    effect = flow.send(reply_of(response, self.provider.name))
                else:
                    effect = flow.send(self._local(effect))
        except StopIteration:
            return data

    async def _send(self, call: Call) -> httpx.Response:
        if self.lanes is None:
            return await self.client.request(
                call.method, call.url, headers=call.headers, content=call.content
            )
        client = self.lanes.pop() if self.lanes else self.make()
        try:
            return await client.request(
                call.method, call.url, headers=call.headers, content=call.content
            )
        finally:
            self.lanes.append(client)

    async def aclose(self) -> None:
        """Close the client (and every per-connection one)."""
        await self.client.aclose()
        for client in self.lanes or ():
            await client.aclose()


def charge_request(scenario: Scenario) -> ChargeRequest:
    """The provider-level request the raw client sends (what the gateway would build)."""
    return ChargeRequest(amount=Money.jpy(scenario.amount), method=scenario.method())


def accounts_for(
    accounts: Mapping[str, Mapping[str, Any]], names: list[str]
) -> dict[str, dict[str, Any]]:
    """The sandbox's account tables for ``names`` (account name = provider name)."""
    return {name: dict(accounts[name]) for name in names if name in accounts}
