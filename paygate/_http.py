"""Sending a flow's `Call` with httpx, at its transport layer.

The drivers hand requests straight to an `httpx.HTTPTransport` (or
`httpx.AsyncHTTPTransport`) instead of going through `httpx.Client.request`. The client
layer adds a cookie jar (parsed and updated on every response), auth and redirect
machinery and event hooks; paygate uses none of them (adapters sign their own requests,
redirects are never followed, and a payment API's cookies must not be carried from one
call to the next), and on a fast network they cost about a fifth of a request's CPU.
What the client layer does that paygate needs is done here: default headers, timeouts,
proxies from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``), ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, and closing every response.

Recorded cassettes keep working: vcrpy patches the transports' ``handle_request``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx

from ._flow import Call, Reply

__all__ = ["AsyncSender", "SyncSender", "reply_of"]

_DEFAULT_HEADERS: dict[str, str] = {
    "user-agent": "paygate",
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
}

T = TypeVar("T")


def reply_of(response: httpx.Response, provider: str) -> Reply:
    """The `Reply` for a response that has been read."""
    return Reply(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        content=response.content,
        provider=provider,
    )


def _request(
    call: Call, timeouts: Mapping[str, float | None], limit: float | None = None
) -> httpx.Request:
    headers = dict(_DEFAULT_HEADERS)
    for name, value in call.headers.items():
        headers[name.lower()] = value
    if call.timeout is not None:
        timeouts = httpx.Timeout(call.timeout).as_dict()
    if limit is not None:
        # What is left of the operation's ``timeout=`` caps every phase of the attempt.
        timeouts = {k: limit if v is None else min(v, limit) for k, v in timeouts.items()}
    return httpx.Request(
        call.method,
        call.url,
        headers=headers,
        content=call.content,
        extensions={"timeout": timeouts},
    )


class _Routes(Generic[T]):
    """Which transport carries a request: direct, or through the environment's proxy.

    Transports are made on first use, one per proxy (``None``: direct), and the choice is
    remembered per scheme and host.
    """

    __slots__ = ("_chosen", "_make", "_proxies", "transports")

    def __init__(self, make: Callable[[str | None], T], *, trust_env: bool = True) -> None:
        self._make = make
        self._proxies = urllib.request.getproxies_environment() if trust_env else {}
        self._chosen: dict[tuple[str, str], T] = {}
        self.transports: dict[str | None, T] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        proxies = self._proxies
        if not proxies:
            return None
        proxy = proxies.get(url.scheme) or proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(url.host):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    def drain(self) -> list[T]:
        """Forget every transport made so far and return them (to be closed)."""
        made = list(self.transports.values())
        self.transports = {}
        self._chosen = {}
        return made

    def get(self, url: httpx.URL) -> T:
        key = (url.scheme, url.host)
        transport = self._chosen.get(key)
        if transport is None:
            proxy = self._proxy(url)
            transport = self.transports.get(proxy)
            if transport is None:
                transport = self.transports[proxy] = self._make(proxy)
            self._chosen[key] = transport
        return transport


#: The default-verification TLS contexts built so far, by the environment's CA settings.
_DEFAULT_TLS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_DEFAULT_TLS_LOCK = threading.Lock()


def _tls(options: Mapping[str, Any]) -> Any:
    """The TLS context of an account's transports.

    Building the default one (full verification against the CA bundle, no client
    certificate) loads the whole bundle, tens of milliseconds: it is built once per
    process (per ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``) and shared by every account, as
    httpx advises for many clients; nothing changes a context once built. Anything else
    (``verify`` a context for a custom CA bundle, a client certificate, or False, which
    `Provider.http_options` allows only when asked twice) is built for the account.
    """
    verify = options.get("verify", True)
    cert = options.get("cert")
    if verify is not True or cert is not None:
        return httpx.create_ssl_context(verify=verify, cert=cert, trust_env=True)
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _DEFAULT_TLS.get(key)
    if context is None:
        with _DEFAULT_TLS_LOCK:
            context = _DEFAULT_TLS.get(key)
            if context is None:
                context = _DEFAULT_TLS[key] = httpx.create_ssl_context(trust_env=True)
    return context


class SyncSender:
    """One account's blocking transports.

    >>> sender = SyncSender(httpx.Timeout(5.0), transport=httpx.MockTransport(
    ...     lambda request: httpx.Response(200, json={"ok": True})))
    >>> sender.send(Call("GET", "https://api.example/ping"), "example").json()
    {'ok': True}
    """

    def __init__(
        self,
        timeout: httpx.Timeout,
        *,
        options: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeouts = timeout.as_dict()
        self._override = transport
        self._routes: _Routes[httpx.BaseTransport] | None = None
        if transport is None:
            tls = _tls(options or {})
            self._routes = _Routes(lambda proxy: httpx.HTTPTransport(verify=tls, proxy=proxy))

    def send(self, call: Call, provider: str, limit: float | None = None) -> Reply:
        """Send ``call`` and read the whole answer (`httpx.TransportError` on failure).

        ``limit`` (seconds) caps each of the attempt's timeouts."""
        request = _request(call, self._timeouts, limit)
        routes = self._routes
        transport = self._override if routes is None else routes.get(request.url)
        assert transport is not None
        response = transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return reply_of(response, provider)

    def close(self) -> None:
        """Close every transport, a given one too (as `httpx.Client` does)."""
        if self._routes is not None:
            for transport in self._routes.drain():
                transport.close()
        elif self._override is not None:
            self._override.close()


class _Lanes:
    """Single-connection async transports, one lent to each request in flight.

    A request borrows an idle transport (the one returned last: its connection is the
    warmest) or a new one while fewer than ``limit`` exist; beyond that it waits, as long
    as httpx would wait for a free connection, then fails with `httpx.PoolTimeout`. At
    most ``keep`` idle ones are kept (more while requests wait for one); a surplus one is
    closed before the next request.

    Why not one shared pool: httpcore's pool (1.0) hands every queued request the first
    idle connection and lets all but one of them retry, re-scanning every connection
    each time. With tens of requests in flight one pool spends more time re-assigning
    than sending and gets slower as concurrency grows; a pool per connection stays
    trivial (bench/).
    """

    __slots__ = ("_all", "_idle", "_keep", "_make", "_slots", "_surplus", "_wait")

    def __init__(
        self,
        make: Callable[[], httpx.AsyncBaseTransport],
        *,
        limit: int,
        keep: int,
        wait: float | None,
    ) -> None:
        self._make = make
        self._keep = keep
        self._wait = wait
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._surplus: list[httpx.AsyncBaseTransport] = []
        self._all: set[httpx.AsyncBaseTransport] = set()

    async def take(self) -> httpx.AsyncBaseTransport:
        """Borrow a transport for one request; hand it back with `give`."""
        while self._surplus:
            lane = self._surplus.pop()
            self._all.discard(lane)
            await lane.aclose()
        if not self._slots.locked():
            await self._slots.acquire()
        else:
            try:
                await asyncio.wait_for(self._slots.acquire(), self._wait)
            except TimeoutError:
                raise httpx.PoolTimeout("every connection of the account is busy") from None
        if self._idle:
            return self._idle.pop()
        try:
            lane = self._make()
        except BaseException:
            self._slots.release()
            raise
        self._all.add(lane)
        return lane

    def give(self, lane: httpx.AsyncBaseTransport) -> None:
        """Return a borrowed transport."""
        # Keep it while requests wait for a lane (every slot taken): closing it would make
        # the next waiter open a new connection and pay a TLS handshake (docs/bench.md).
        if len(self._idle) < self._keep or self._slots.locked():
            self._idle.append(lane)
        else:
            self._surplus.append(lane)
        self._slots.release()

    async def aclose(self) -> None:
        """Close every transport, borrowed or idle."""
        lanes, self._all = self._all, set()
        self._idle.clear()
        self._surplus.clear()
        for lane in lanes:
            await lane.aclose()


class _Shared:
    """One transport for every request (a proxy's, or one given, e.g. in tests)."""

    __slots__ = ("transport",)

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def take(self) -> httpx.AsyncBaseTransport:
        return self.transport

    def give(self, lane: httpx.AsyncBaseTransport) -> None:
        pass

    async def aclose(self) -> None:
        await self.transport.aclose()


class AsyncSender:
    """One account's async transports.

    Direct requests go out on single-connection lanes (up to ``limit`` at once, ``keep``
    kept idle); requests through a proxy share one pool; a given transport is used for
    everything.

    >>> async def ping():
    ...     sender = AsyncSender(httpx.Timeout(5.0), transport=httpx.MockTransport(
    ...         lambda request: httpx.Response(204)))
    ...     return (await sender.send(Call("GET", "https://api.example/ping"), "ex")).status
    >>> asyncio.run(ping())
    204
    """

    def __init__(
        self,
        timeout: httpx.Timeout,
        *,
        options: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limit: int = 256,
        keep: int = 64,
    ) -> None:
        self._timeouts = timeout.as_dict()
        self._given = None if transport is None else _Shared(transport)
        self._routes: _Routes[_Lanes | _Shared] | None = None
        if transport is None:
            tls = _tls(options or {})
            one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            many = httpx.Limits(max_connections=limit, max_keepalive_connections=keep)

            def make(proxy: str | None) -> _Lanes | _Shared:
                if proxy is not None:
                    return _Shared(httpx.AsyncHTTPTransport(verify=tls, proxy=proxy, limits=many))
                return _Lanes(
                    lambda: httpx.AsyncHTTPTransport(verify=tls, limits=one),
                    limit=limit,
                    keep=keep,
                    wait=timeout.pool,
                )

            self._routes = _Routes(make)

    async def send(self, call: Call, provider: str, limit: float | None = None) -> Reply:
        """Send ``call`` and read the whole answer (`httpx.TransportError` on failure).

        ``limit`` (seconds) caps each of the attempt's timeouts."""
        request = _request(call, self._timeouts, limit)
        routes = self._routes
        pool = self._given if routes is None else routes.get(request.url)
        assert pool is not None
        lane = await pool.take()
        try:
            response = await lane.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        finally:
            pool.give(lane)
        return reply_of(response, provider)

    async def aclose(self) -> None:
        """Close every transport, a given one too (as `httpx.AsyncClient` does)."""
        if self._routes is not None:
            for pool in self._routes.drain():
                await pool.aclose()
        elif self._given is not None:
            await self._given.aclose()
