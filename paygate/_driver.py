"""The drivers: run flows on httpx, with retry, spans and the store, in one place.

`SyncDriver` and `AsyncDriver` differ only in how they wait for I/O. Everything that
decides (which failures are retried, how long to wait, what a span records) lives in
`_DriverBase` and `paygate._retry`, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import stamina
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode

from . import _logging
from ._adapter import Provider
from ._errors import OutcomeUnknown, PaygateError
from ._flow import CacheGet, CachePut, Call, Effect, Flow, Reply, Sleep, StoreCall, TransportFailure
from ._http import AsyncSender, SyncSender
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


class _Spent(Exception):
    """The operation's ``timeout=`` ran out before the next attempt (never retried)."""


# Without an OpenTelemetry SDK every span is a no-op, yet creating and entering one
# still costs more than the rest of the driver's bookkeeping; skip them then.
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NO_SPAN = contextlib.nullcontext(INVALID_SPAN)


def _tracing() -> bool:
    return not isinstance(trace.get_tracer_provider(), _NO_SDK)


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

    def _timeout(self, provider: Provider) -> httpx.Timeout:
        return httpx.Timeout(provider.settings.timeout, connect=self.policy.connect_timeout)

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

    def _bounded_hook(self, deadline: float) -> Callable[[Exception], bool | float]:
        """`_hook` for an operation with a ``timeout=``: the wait is chosen here (the
        policy's exponential backoff, or Retry-After) and a retry whose wait would outlast
        the timeout is not scheduled (the last failure stands)."""
        p = self.policy
        failures = 0

        def hook(exc: Exception) -> bool | float:
            nonlocal failures
            verdict = self._hook(exc)
            if verdict is False:
                return False
            failures += 1
            if verdict is True:
                jitter = random.uniform(0, p.wait_jitter) if p.wait_jitter else 0.0
                try:
                    wait = min(p.wait_max, p.wait_initial * 2.0 ** (failures - 1) + jitter)
                except OverflowError:
                    wait = p.wait_max
            else:
                wait = float(verdict)
            if wait >= deadline - time.monotonic():
                return False
            return wait

        return hook

    def _retrying(self, timeout: float, deadline: float | None) -> Any:
        p = self.policy
        return stamina.retry_context(
            on=self._hook if deadline is None else self._bounded_hook(deadline),
            attempts=p.attempts,
            timeout=timeout,
            wait_initial=p.wait_initial,
            wait_max=p.wait_max,
            wait_jitter=p.wait_jitter,
        )

    def _remaining(self, started: float, deadline: float | None) -> float:
        """What is left of the call's deadline, counted from its first attempt, and of the
        operation's ``timeout=`` (``deadline``, on the monotonic clock)."""
        now = time.monotonic()
        left = self.policy.deadline - (now - started)
        return left if deadline is None else min(left, deadline - now)

    @staticmethod
    def _limit(deadline: float | None) -> float | None:
        """What is left of the operation's ``timeout=`` for one attempt (`_Spent` if none)."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Spent
        return left

    @staticmethod
    def _not_sent(call: Call) -> TransportFailure:
        # Nothing went out: a mutating operation releases its key and raises a retryable
        # ProviderUnavailable (paygate._exactly_once), a read raises ProviderUnavailable.
        return TransportFailure(
            f"the operation's timeout ran out before {call.step} was sent",
            sent=False,
            step=call.step,
        )

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    def _spent(self, call: Call, last: object, number: int) -> Reply:
        """The operation's time ran out before another attempt: the last answer, or the
        last transport failure as `TransportFailure`."""
        if isinstance(last, RetryableReply):
            return last.reply
        assert isinstance(last, RetryableTransport)
        raise self._gave_up(call, last, number) from None

    @staticmethod
    def _gave_up(call: Call, error: RetryableTransport, number: int) -> TransportFailure:
        return TransportFailure(
            f"{type(error.error).__name__} during {call.step} after {number} attempts",
            sent=error.sent,
            step=call.step,
        )

    @staticmethod
    def _attempt_span(call: Call, provider: Provider, number: int) -> Span:
        if not _tracing():
            return INVALID_SPAN
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
        if not _tracing():
            return _NO_SPAN
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

    # -- log records (paygate._logging): the spans' attributes, as records ----------

    @staticmethod
    def _log_attempt(
        call: Call,
        provider: Provider,
        number: int,
        reply: Reply | None,
        error: BaseException | None,
    ) -> None:
        if not _logging.enabled(logging.DEBUG):
            return
        attrs: dict[str, object] = {
            "http.request.method": call.method,
            "paygate.provider": provider.name,
            "paygate.step": call.step,
            "paygate.retry.attempt": number,
        }
        if reply is not None:
            attrs["http.response.status_code"] = reply.status
            outcome = f"HTTP {reply.status}"
        else:
            attrs["error.type"] = type(error).__name__
            outcome = type(error).__name__
        _logging.log(
            logging.DEBUG,
            f"{provider.name} {call.step} {call.method} attempt {number}: {outcome}",
            attrs,
        )

    @staticmethod
    def _log_retry(call: Call, provider: Provider, number: int, failure: Exception) -> None:
        if not _logging.enabled(logging.WARNING):
            return
        attrs: dict[str, object] = {
            "http.request.method": call.method,
            "paygate.provider": provider.name,
            "paygate.step": call.step,
            "paygate.retry.attempt": number,
        }
        if isinstance(failure, RetryableReply):
            attrs["http.response.status_code"] = failure.reply.status
            after = f"HTTP {failure.reply.status}"
        else:
            cause = failure.error if isinstance(failure, RetryableTransport) else failure
            attrs["error.type"] = type(cause).__name__
            after = type(cause).__name__
        _logging.log(
            logging.WARNING,
            f"{provider.name} {call.step}: retrying (attempt {number}) after {after}",
            attrs,
        )

    @staticmethod
    def _log_operation(
        operation: str,
        attrs: Mapping[str, str],
        started: float,
        error: BaseException | None,
    ) -> None:
        unknown = isinstance(error, OutcomeUnknown)
        level = logging.WARNING if unknown else logging.INFO
        if not _logging.enabled(level):
            return
        record: dict[str, object] = dict(attrs)
        record["paygate.duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        if error is None:
            outcome = "ok"
        else:
            record["error.type"] = type(error).__name__
            outcome = type(error).__name__
            if isinstance(error, PaygateError):
                record["paygate.error.code"] = error.code
                if error.provider_code:
                    record["paygate.error.provider_code"] = error.provider_code
                outcome = f"{outcome} ({error.code})"
            if unknown:
                outcome = f"outcome unknown, {outcome}"
        _logging.log(
            level,
            f"paygate.{operation} on {attrs.get('paygate.account', '?')}"
            f" ({attrs.get('paygate.provider', '?')}): {outcome}",
            record,
        )


class SyncDriver(_DriverBase):
    """Runs flows with blocking I/O (one `httpx.Client` per account)."""

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(store=store, providers=providers, policy=policy)
        self._transport_override = transport
        self._sleep = sleep or time.sleep
        self._senders: dict[str, SyncSender] = {}

    def sender(self, account: str) -> SyncSender:
        """The account's transports (made on first use, then reused)."""
        sender = self._senders.get(account)
        if sender is None:
            provider = self.providers[account]
            sender = SyncSender(
                self._timeout(provider),
                options=provider.http_options(),
                transport=self._transport_override,
            )
            self._senders[account] = sender
        return sender

    def run(
        self,
        flow: Flow[T],
        *,
        account: str,
        operation: str,
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> T:
        """Run ``flow`` for ``account`` to completion inside one operation span.

        ``timeout`` (seconds) bounds the whole run: every attempt's timeouts are capped
        by what is left, retries stop when it is spent."""
        provider = self.providers[account]
        attrs = {
            "paygate.account": account,
            "paygate.provider": provider.name,
            "paygate.operation": operation,
        }
        if attributes:
            attrs.update(attributes)
        deadline = self._deadline(timeout)
        started = time.monotonic()
        with self._operation_span(operation, attrs) as span:
            try:
                effect: Effect = next(flow)
                while True:
                    try:
                        result = self._effect(account, provider, effect, deadline)
                    except TransportFailure as exc:
                        effect = flow.throw(exc)
                        continue
                    effect = flow.send(result)
            except StopIteration as stop:
                self._log_operation(operation, attrs, started, None)
                return stop.value  # type: ignore[no-any-return]
            except BaseException as exc:
                self._span_error(span, exc)
                self._log_operation(operation, attrs, started, exc)
                raise

    def _effect(
        self, account: str, provider: Provider, effect: Effect, deadline: float | None
    ) -> Any:
        if isinstance(effect, Call):
            return self._http(account, provider, effect, deadline)
        if isinstance(effect, StoreCall):
            return effect.apply(self.store)
        if isinstance(effect, CacheGet):
            return self.store.cache_get(effect.key)
        if isinstance(effect, CachePut):
            self.store.cache_put(effect.key, effect.value)
            return None
        if isinstance(effect, Sleep):
            self._sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    def _http(self, account: str, provider: Provider, call: Call, deadline: float | None) -> Reply:
        # Most calls succeed at once: the first attempt runs outside the retry loop,
        # which is only built (with what is left of the deadline) when it fails.
        sender = self.sender(account)
        started = time.monotonic()
        try:
            return self._attempt(sender, provider, call, 1, deadline)
        except (RetryableReply, RetryableTransport) as exc:
            first: Exception = exc
        except _Spent:
            raise self._not_sent(call) from None
        pending: Exception | None = first
        last = first
        number = 1
        try:
            remaining = self._remaining(started, deadline)
            if remaining <= 0:
                raise first
            for attempt in self._retrying(remaining, deadline):
                with attempt:
                    if pending is not None:
                        # Replayed inside the loop, so stamina counts the failed first
                        # attempt and waits its backoff before the second.
                        failed, pending = pending, None
                        raise failed
                    self._limit(deadline)  # no time left: no retry to announce
                    number += 1
                    self._log_retry(call, provider, number, last)
                    try:
                        return self._attempt(sender, provider, call, number, deadline)
                    except (RetryableReply, RetryableTransport) as exc:
                        last = exc
                        raise
                    except _Spent:
                        number -= 1  # not made: the time ran out just before it
                        raise
        except _Spent:
            return self._spent(call, last, number)
        except RetryableReply as exc:
            return exc.reply
        except RetryableTransport as exc:
            raise self._gave_up(call, exc, number) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        sender: SyncSender,
        provider: Provider,
        call: Call,
        number: int,
        deadline: float | None,
    ) -> Reply:
        """One HTTP attempt; raises `RetryableReply` / `RetryableTransport` to retry,
        `_Spent` (nothing sent) when the operation's timeout has run out."""
        limit = self._limit(deadline)
        span = self._attempt_span(call, provider, number)
        try:
            reply = sender.send(call, provider.name, limit)
        except httpx.TransportError as exc:
            self._end_attempt(span, None, exc)
            self._log_attempt(call, provider, number, None, exc)
            raise self._transport(call, exc) from None
        self._end_attempt(span, reply, None)
        self._log_attempt(call, provider, number, reply, None)
        self._judge(provider, call, reply)
        return reply

    def close(self) -> None:
        """Close every transport."""
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            sender.close()


class AsyncDriver(_DriverBase):
    """Runs flows with asyncio.

    Each account's requests go out on single-connection `httpx.AsyncClient` lanes (up
    to 256 at once, 64 kept idle), or on one client when a transport is given.
    """

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        policy: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(store=store, providers=providers, policy=policy)
        self._transport_override = transport
        self._sleep = sleep or asyncio.sleep
        self._senders: dict[str, AsyncSender] = {}

    def sender(self, account: str) -> AsyncSender:
        """The account's transports (made on first use, then reused)."""
        sender = self._senders.get(account)
        if sender is None:
            provider = self.providers[account]
            sender = AsyncSender(
                self._timeout(provider),
                options=provider.http_options(),
                transport=self._transport_override,
            )
            self._senders[account] = sender
        return sender

    async def run(
        self,
        flow: Flow[T],
        *,
        account: str,
        operation: str,
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> T:
        """Run ``flow`` for ``account`` to completion inside one operation span.

        ``timeout`` (seconds) bounds the whole run: every attempt's timeouts are capped
        by what is left, retries stop when it is spent."""
        provider = self.providers[account]
        attrs = {
            "paygate.account": account,
            "paygate.provider": provider.name,
            "paygate.operation": operation,
        }
        if attributes:
            attrs.update(attributes)
        deadline = self._deadline(timeout)
        started = time.monotonic()
        with self._operation_span(operation, attrs) as span:
            try:
                effect: Effect = next(flow)
                while True:
                    try:
                        result = await self._effect(account, provider, effect, deadline)
                    except TransportFailure as exc:
                        effect = flow.throw(exc)
                        continue
                    effect = flow.send(result)
            except StopIteration as stop:
                self._log_operation(operation, attrs, started, None)
                return stop.value  # type: ignore[no-any-return]
            except BaseException as exc:
                self._span_error(span, exc)
                self._log_operation(operation, attrs, started, exc)
                raise

    async def _effect(
        self, account: str, provider: Provider, effect: Effect, deadline: float | None
    ) -> Any:
        if isinstance(effect, Call):
            return await self._http(account, provider, effect, deadline)
        store = self.store
        if isinstance(effect, StoreCall):
            if store.blocking:
                return await asyncio.to_thread(effect.apply, store)
            return effect.apply(store)
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
            await self._sleep(effect.seconds)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    async def _http(
        self, account: str, provider: Provider, call: Call, deadline: float | None
    ) -> Reply:
        # See `SyncDriver._http`: the retry loop is only built after a failed attempt.
        sender = self.sender(account)
        started = time.monotonic()
        try:
            return await self._attempt(sender, provider, call, 1, deadline)
        except (RetryableReply, RetryableTransport) as exc:
            first: Exception = exc
        except _Spent:
            raise self._not_sent(call) from None
        pending: Exception | None = first
        last = first
        number = 1
        try:
            remaining = self._remaining(started, deadline)
            if remaining <= 0:
                raise first
            async for attempt in self._retrying(remaining, deadline):
                with attempt:
                    if pending is not None:
                        failed, pending = pending, None
                        raise failed
                    self._limit(deadline)  # no time left: no retry to announce
                    number += 1
                    self._log_retry(call, provider, number, last)
                    try:
                        return await self._attempt(sender, provider, call, number, deadline)
                    except (RetryableReply, RetryableTransport) as exc:
                        last = exc
                        raise
                    except _Spent:
                        number -= 1  # not made: the time ran out just before it
                        raise
        except _Spent:
            return self._spent(call, last, number)
        except RetryableReply as exc:
            return exc.reply
        except RetryableTransport as exc:
            raise self._gave_up(call, exc, number) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        sender: AsyncSender,
        provider: Provider,
        call: Call,
        number: int,
        deadline: float | None,
    ) -> Reply:
        """See `SyncDriver._attempt`."""
        limit = self._limit(deadline)
        span = self._attempt_span(call, provider, number)
        try:
            reply = await sender.send(call, provider.name, limit)
        except httpx.TransportError as exc:
            self._end_attempt(span, None, exc)
            self._log_attempt(call, provider, number, None, exc)
            raise self._transport(call, exc) from None
        self._end_attempt(span, reply, None)
        self._log_attempt(call, provider, number, reply, None)
        self._judge(provider, call, reply)
        return reply

    async def aclose(self) -> None:
        """Close every transport."""
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.aclose()
