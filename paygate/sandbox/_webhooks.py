"""The sandbox's webhook outbox: deliver what emulators emit, retry on the sandbox clock.

A delivery is attempted as soon as it is emitted. A failed attempt (an answer outside
2xx, or no answer) is retried after the delays of its ``WebhookDelivery.schedule``,
measured on the sandbox clock: a retry fires when the clock is advanced past its due
time (or on `WebhookOutbox.flush` once due). When one advance jumps over several due
times, the retries that would have happened in between are all made, in order, each
stamped with the sandbox time it was due.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ._emulator import SandboxClock, WebhookDelivery

__all__ = ["WebhookAttempt", "WebhookOutbox"]

logger = logging.getLogger("paygate.sandbox")


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One delivery attempt, as the delivery log records it.

    ``outcome`` is ``"delivered"`` (2xx), ``"retrying"`` (failed; ``next_attempt_at`` is
    set), ``"failed"`` (failed and the schedule is used up) or ``"no_url"`` (nowhere to
    send it). ``at`` is the sandbox time the attempt was due.
    """

    delivery_id: int
    provider: str
    url: str | None
    attempt: int
    status_code: int | None
    error: str | None
    event_id: str | None
    at: datetime
    next_attempt_at: datetime | None
    outcome: str

    def to_json(self) -> dict[str, Any]:
        """JSON form (datetimes as ISO 8601)."""
        return {
            "delivery_id": self.delivery_id,
            "provider": self.provider,
            "url": self.url,
            "attempt": self.attempt,
            "status_code": self.status_code,
            "error": self.error,
            "event_id": self.event_id,
            "at": self.at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "outcome": self.outcome,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WebhookAttempt:
        """Inverse of `to_json`."""
        nxt = data.get("next_attempt_at")
        return cls(
            delivery_id=int(data["delivery_id"]),
            provider=str(data["provider"]),
            url=data.get("url"),
            attempt=int(data["attempt"]),
            status_code=data.get("status_code"),
            error=data.get("error"),
            event_id=data.get("event_id"),
            at=datetime.fromisoformat(data["at"]),
            next_attempt_at=datetime.fromisoformat(nxt) if nxt else None,
            outcome=str(data["outcome"]),
        )


@dataclass(slots=True)
class _Pending:
    id: int
    delivery: WebhookDelivery
    attempt: int
    due: datetime
    generation: tuple[int, int]


class WebhookOutbox:
    """Queue, send and retry webhook deliveries. Lives on the sandbox's event loop."""

    def __init__(self, clock: SandboxClock, *, timeout: float = 10.0) -> None:
        self.clock = clock
        self.timeout = timeout
        self._urls: dict[str | None, str] = {}
        self._queue: list[_Pending] = []
        self._log: list[WebhookAttempt] = []
        self._inflight: dict[asyncio.Task[None], str] = {}
        # Bumped by resets; an attempt that returns into a newer generation is dropped.
        self._generation: dict[str, int] = {}
        self._resets = 0
        self._ids = itertools.count(1)
        self._client: httpx.AsyncClient | None = None

    # -- configuration -----------------------------------------------------------------

    def set_url(self, url: str | None, provider: str | None = None) -> None:
        """Where to send webhooks: for one provider, or the default (``provider`` None)."""
        if url is None:
            self._urls.pop(provider, None)
        else:
            self._urls[provider] = url

    def urls(self) -> dict[str, str]:
        """The configured URLs; the default one is under ``"*"``."""
        return {("*" if k is None else k): v for k, v in self._urls.items()}

    def url_for(self, delivery: WebhookDelivery) -> str | None:
        """The URL a delivery goes to: its own, its provider's, or the default."""
        return delivery.url or self._urls.get(delivery.provider) or self._urls.get(None)

    # -- emitting and sending ------------------------------------------------------------

    def enqueue(self, delivery: WebhookDelivery) -> None:
        """Accept a delivery from an emulator and attempt it now (if a loop is running)."""
        pending = _Pending(
            id=next(self._ids),
            delivery=delivery,
            attempt=1,
            due=self.clock.now(),
            generation=self._gen(delivery.provider),
        )
        self._queue.append(pending)
        self.fire_due()

    def fire_due(self) -> int:
        """Start every attempt that is due on the sandbox clock; returns how many."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return 0  # not on the sandbox loop (yet): `flush` will send them
        now = self.clock.now()
        due = sorted((p for p in self._queue if p.due <= now), key=lambda p: (p.due, p.id))
        for pending in due:
            self._queue.remove(pending)
            task = asyncio.create_task(self._attempt(pending))
            self._inflight[task] = pending.delivery.provider
            task.add_done_callback(self._task_done)
        return len(due)

    def _gen(self, provider: str) -> tuple[int, int]:
        return (self._resets, self._generation.get(provider, 0))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook delivery task failed", exc_info=task.exception())

    async def _attempt(self, pending: _Pending) -> None:
        delivery = pending.delivery
        url = self.url_for(delivery)
        if url is None:
            self._record(pending, None, None, "no webhook URL configured", None, "no_url")
            return
        headers = dict(delivery.headers)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(url, content=delivery.body, headers=headers)
            status = response.status_code
        except Exception as exc:  # any failure to get an answer is a failed attempt
            error = type(exc).__name__
        if pending.generation != self._gen(delivery.provider):
            return  # the provider was reset while this attempt was in flight
        if status is not None and 200 <= status < 300:
            self._record(pending, url, status, None, None, "delivered")
            return
        if error is None:
            error = f"HTTP {status}"
        schedule = list(delivery.schedule)
        if pending.attempt > len(schedule):
            self._record(pending, url, status, error, None, "failed")
            return
        next_due = pending.due + schedule[pending.attempt - 1]
        self._record(pending, url, status, error, next_due, "retrying")
        self._queue.append(
            _Pending(
                id=pending.id,
                delivery=delivery,
                attempt=pending.attempt + 1,
                due=next_due,
                generation=pending.generation,
            )
        )
        # A retry whose time has already passed (the clock jumped over it) goes now.
        self.fire_due()

    def _record(
        self,
        pending: _Pending,
        url: str | None,
        status: int | None,
        error: str | None,
        next_due: datetime | None,
        outcome: str,
    ) -> None:
        self._log.append(
            WebhookAttempt(
                delivery_id=pending.id,
                provider=pending.delivery.provider,
                url=url,
                attempt=pending.attempt,
                status_code=status,
                error=error,
                event_id=pending.delivery.event_id,
                at=pending.due,
                next_attempt_at=next_due,
                outcome=outcome,
            )
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env off: a proxy from the environment must not catch loopback traffic.
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        return self._client

    async def settle(self) -> None:
        """Wait until no attempt is in flight (attempts may start further attempts)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def flush(self) -> None:
        """Attempt everything due now and wait until those attempts are done."""
        self.fire_due()
        await self.settle()

    # -- inspection and reset ----------------------------------------------------------------

    def log(self) -> list[WebhookAttempt]:
        """Every attempt so far, oldest first."""
        return list(self._log)

    def pending(self) -> list[dict[str, Any]]:
        """Deliveries waiting for a retry."""
        return [
            {
                "delivery_id": p.id,
                "provider": p.delivery.provider,
                "event_id": p.delivery.event_id,
                "attempt": p.attempt,
                "due": p.due.isoformat(),
            }
            for p in sorted(self._queue, key=lambda p: (p.due, p.id))
        ]

    def reset(self, provider: str | None = None) -> None:
        """Forget queued deliveries and the log (of one provider, or all).

        Attempts in flight are cancelled; configured URLs are kept.
        """
        for task, task_provider in list(self._inflight.items()):
            if provider is None or task_provider == provider:
                task.cancel()
        if provider is None:
            self._resets += 1
            self._queue.clear()
            self._log.clear()
        else:
            self._generation[provider] = self._generation.get(provider, 0) + 1
            self._queue = [p for p in self._queue if p.delivery.provider != provider]
            self._log = [a for a in self._log if a.provider != provider]

    async def aclose(self) -> None:
        """Cancel what is in flight and close the HTTP client."""
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
