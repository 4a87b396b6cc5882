"""The drivers: run flows on httpx, with retry, spans and the store, in one place.

`SyncDriver` and `AsyncDriver` differ only in how they wait for I/O. Everything that
decides (which failures are retried, how long to wait, what a span records) lives in
`_DriverBase` and `paygate._retry`, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
import stamina
from opentelemetry.trace import Span, SpanKind, StatusCode

from ._adapter import Provider
from ._errors import PaygateError
from ._flow import CacheGet, CachePut, Call, Effect, Flow, Reply, Sleep, StoreCall, TransportFailure
from ._retry import (
    RetryableReply,
    RetryableTransport,
    RetryPolicy,
    reply_retryable,
    retry_after,
    surely_not_sent,
    transport_retryable,
)
from ._stores import Store
from ._telemetry import tracer

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")

_USER_AGENT = "paygate"


def _reply(response: httpx.Response, provider: str) -> Reply:
    return Reply(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        content=response.content,
        provider=provider,
    )


class _DriverBase:
    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
    ) -> None:
        self.store = store
        self.providers = providers
        self.policy = policy

    # -- decisions shared by both drivers ---------------------------------------

    def _judge(self, provider: Provider, call: Call, reply: Reply) -> None:
        """Raise `RetryableReply` when ``reply`` should be retried."""
        decision = provider.classify(reply)
        if decision is not None:
            if decision.retry:
                after = decision.after
                if after is None:
                    after = retry_after(reply, self.policy)
                else:
                    after = min(after, self.policy.max_retry_after)
                raise RetryableReply(reply, after)
            return
        if reply_retryable(call, reply):
            raise RetryableReply(reply, retry_after(reply, self.policy))

    def _transport(self, call: Call, error: httpx.TransportError) -> Exception:
        sent = not surely_not_sent(error)
        if transport_retryable(call, error):
            return RetryableTransport(error, sent)
        return TransportFailure(
            f"{type(error).__name__} during {call.step}", sent=sent, step=call.step
        )

    @staticmethod
    def _hook(exc: Exception) -> bool | float:
        if isinstance(exc, RetryableReply):
            return True if exc.after is None else exc.after
        return isinstance(exc, RetryableTransport)

    def _retrying(self) -> Any:
        p = self.policy
        return stamina.retry_context(
            on=self._hook,
            attempts=p.attempts,
            timeout=p.deadline,
            wait_initial=p.wait_initial,
            wait_max=p.wait_max,
            wait_jitter=p.wait_jitter,
        )

    @staticmethod
    def _attempt_span(call: Call, provider: Provider, number: int) -> Span:
        return tracer.start_span(
            f"{provider.name} {call.step}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": call.method,
                "paygate.provider": provider.name,
                "paygate.step": call.step,
                "paygate.retry.attempt": number,
            },
        )

    @staticmethod
    def _end_attempt(span: Span, reply: Reply | None, error: BaseException | None) -> None:
        if reply is not None:
            span.set_attribute("http.response.status_code", reply.status)
            if reply.status >= 500:
                span.set_status(StatusCode.ERROR)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(StatusCode.ERROR)
        span.end()

    def _operation_span(self, name: str, attributes: Mapping[str, str]) -> Any:
        return tracer.start_as_current_span(
            f"paygate.{name}",
            kind=SpanKind.INTERNAL,
            attributes=dict(attributes),
            record_exception=False,
            set_status_on_exception=False,
        )

    @staticmethod
    def _span_error(span: Span, error: BaseException) -> None:
        span.set_attribute("error.type", type(error).__name__)
        if isinstance(error, PaygateError):
            span.set_attribute("paygate.error.code", error.code)
            if error.provider_code:
                span.set_attribute("paygate.error.provider_code", error.provider_code)
        span.set_status(StatusCode.ERROR, type(error).__name__)


class SyncDriver(_DriverBase):
    """Runs flows with blocking I/O (one `httpx.Client` per account)."""

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(store=store, providers=providers, policy=policy)
        self._transport_override = transport
        self._clients: dict[str, httpx.Client] = {}

    def client(self, account: str) -> httpx.Client:
        """The account's HTTP client (created on first use, then reused)."""
        client = self._clients.get(account)
        if client is None:
            provider = self.providers[account]
            client = httpx.Client(
                timeout=httpx.Timeout(
                    provider.settings.timeout, connect=self.policy.connect_timeout
                ),
                headers={"user-agent": _USER_AGENT},
                transport=self._transport_override,
                follow_redirects=False,
                **provider.http_options(),
            )
            self._clients[account] = client
        return client

    def run(
        self,
        flow: Flow[T],
        *,
        account: str,
        operation: str,
        attributes: Mapping[str, str] | None = None,
    ) -> T:
        """Run ``flow`` for ``account`` to completion inside one operation span."""
        provider = self.providers[account]
        attrs = {
            "paygate.account": account,
            "paygate.provider": provider.name,
            "paygate.operation": operation,
        }
        if attributes:
            attrs.update(attributes)
        with self._operation_span(operation, attrs) as span:
            try:
                effect: Effect = next(flow)
                while True:
                    try:
                        result = self._effect(account, provider, effect)
                    except TransportFailure as exc:
                        effect = flow.throw(exc)
                        continue
                    effect = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except BaseException as exc:
                self._span_error(span, exc)
                raise

    def _effect(self, account: str, provider: Provider, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return self._http(account, provider, effect)
        if isinstance(effect, StoreCall):
            return getattr(self.store, effect.method)(**effect.kwargs)
        if isinstance(effect, CacheGet):
            return self.store.cache_get(effect.key)
        if isinstance(effect, CachePut):
            self.store.cache_put(effect.key, effect.value)
            return None
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    def _http(self, account: str, provider: Provider, call: Call) -> Reply:
        client = self.client(account)
        number = 0
        try:
            for attempt in self._retrying():
                with attempt:
                    number += 1
                    span = self._attempt_span(call, provider, number)
                    reply: Reply | None = None
                    try:
                        response = client.request(
                            call.method,
                            call.url,
                            headers=call.headers,
                            content=call.content,
                            timeout=call.timeout
                            if call.timeout is not None
                            else httpx.USE_CLIENT_DEFAULT,
                        )
                        reply = _reply(response, provider.name)
                    except httpx.TransportError as exc:
                        self._end_attempt(span, None, exc)
                        raise self._transport(call, exc) from None
                    self._end_attempt(span, reply, None)
                    self._judge(provider, call, reply)
                    return reply
        except RetryableReply as exc:
            return exc.reply
        except RetryableTransport as exc:
            raise TransportFailure(
                f"{type(exc.error).__name__} during {call.step} after {number} attempts",
                sent=exc.sent,
                step=call.step,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every HTTP client."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class AsyncDriver(_DriverBase):
    """Runs flows with asyncio (one `httpx.AsyncClient` per account)."""

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(store=store, providers=providers, policy=policy)
        self._transport_override = transport
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, account: str) -> httpx.AsyncClient:
        """The account's HTTP client (created on first use, then reused)."""
        client = self._clients.get(account)
        if client is None:
            provider = self.providers[account]
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    provider.settings.timeout, connect=self.policy.connect_timeout
                ),
                headers={"user-agent": _USER_AGENT},
                transport=self._transport_override,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                **provider.http_options(),
            )
            self._clients[account] = client
        return client

    async def run(
        self,
        flow: Flow[T],
        *,
        account: str,
        operation: str,
        attributes: Mapping[str, str] | None = None,
    ) -> T:
        """Run ``flow`` for ``account`` to completion inside one operation span."""
        provider = self.providers[account]
        attrs = {
            "paygate.account": account,
            "paygate.provider": provider.name,
            "paygate.operation": operation,
        }
        if attributes:
            attrs.update(attributes)
        with self._operation_span(operation, attrs) as span:
            try:
                effect: Effect = next(flow)
                while True:
                    try:
                        result = await self._effect(account, provider, effect)
                    except TransportFailure as exc:
                        effect = flow.throw(exc)
                        continue
                    effect = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except BaseException as exc:
                self._span_error(span, exc)
                raise

    async def _effect(self, account: str, provider: Provider, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return await self._http(account, provider, effect)
        store = self.store
        if isinstance(effect, StoreCall):
            method = getattr(store, effect.method)
            if store.blocking:
                return await asyncio.to_thread(method, **effect.kwargs)
            return method(**effect.kwargs)
        if isinstance(effect, CacheGet):
            if store.blocking:
                return await asyncio.to_thread(store.cache_get, effect.key)
            return store.cache_get(effect.key)
        if isinstance(effect, CachePut):
            if store.blocking:
                await asyncio.to_thread(store.cache_put, effect.key, effect.value)
            else:
                store.cache_put(effect.key, effect.value)
            return None
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    async def _http(self, account: str, provider: Provider, call: Call) -> Reply:
        client = self.client(account)
        number = 0
        try:
            async for attempt in self._retrying():
                with attempt:
                    number += 1
                    span = self._attempt_span(call, provider, number)
                    reply: Reply | None = None
                    try:
                        response = await client.request(
                            call.method,
                            call.url,
                            headers=call.headers,
                            content=call.content,
                            timeout=call.timeout
                            if call.timeout is not None
                            else httpx.USE_CLIENT_DEFAULT,
                        )
                        reply = _reply(response, provider.name)
                    except httpx.TransportError as exc:
                        self._end_attempt(span, None, exc)
                        raise self._transport(call, exc) from None
                    self._end_attempt(span, reply, None)
                    self._judge(provider, call, reply)
                    return reply
        except RetryableReply as exc:
            return exc.reply
        except RetryableTransport as exc:
            raise TransportFailure(
                f"{type(exc.error).__name__} during {call.step} after {number} attempts",
                sent=exc.sent,
                step=call.step,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every HTTP client."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
