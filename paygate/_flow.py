"""The sans-I/O protocol between provider flows and the drivers.

A flow is a plain generator. It yields *effects* (an HTTP `Call`, or a small store
operation such as `CacheGet`) and receives their results; its return value is the
operation's result. Flows never touch sockets, clocks or random sources: the drivers do
I/O, retry, telemetry and idempotency in one place, for sync and async alike.

>>> def ping():
...     reply = yield Call("GET", "https://example.invalid/ping", step="ping")
...     return reply.status
>>> drive(ping(), lambda call: Reply(200, {}, b""))
200
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, Union

from ._errors import MalformedResponse

__all__ = [
    "CacheClaim",
    "CacheGet",
    "CachePut",
    "Call",
    "Effect",
    "Flow",
    "Reply",
    "Retry",
    "Sleep",
    "TransportFailure",
    "cache_claim",
    "drive",
]

T = TypeVar("T")
R = TypeVar("R")


class Retry(enum.Enum):
    """How a call may be retried by the driver.

    SAFE: reading, or naturally idempotent: retry any failure.
    KEYED: carries a provider idempotency key: retry any failure, the provider dedups.
    UNSAFE: may create something and carries no key: retry only what surely did not
    reach the provider (connection refused, 429). Any other failure is an unknown
    outcome that the gateway resolves through the provider's lookup.
    """

    SAFE = "safe"
    KEYED = "keyed"
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request a flow wants made.

    ``step`` names the step for spans and logs (``"charges.create"``); it must hold no
    personal data. ``content`` is the encoded body. ``timeout`` overrides the read
    timeout (for long polls).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    retry: Retry = Retry.SAFE
    step: str = "request"
    timeout: float | None = None

    def __repr__(self) -> str:
        # Headers carry credentials and bodies carry personal data: never shown.
        return f"Call({self.method} {self.url.split('?')[0]} step={self.step!r})"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a `Call`. Header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    provider: str | None = None

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON, or `MalformedResponse`."""
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MalformedResponse(
                f"response is not JSON (HTTP {self.status}, {len(self.content)} bytes)",
                provider=self.provider,
                http_status=self.status,
            ) from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or `MalformedResponse`."""
        data = self.json()
        if not isinstance(data, dict):
            raise MalformedResponse(
                f"expected a JSON object, got {type(data).__name__}",
                provider=self.provider,
                http_status=self.status,
            )
        return data

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"Reply({self.status}, {len(self.content)} bytes)"


@dataclass(frozen=True, slots=True)
class CacheGet:
    """Read an entity-cache entry (None when absent)."""

    key: str


@dataclass(frozen=True, slots=True)
class CachePut:
    """Write an entity-cache entry (a JSON-safe value)."""

    key: str
    value: Any


class StoreCall(Generic[R]):
    """A store operation a flow asks for; the driver runs ``apply(store)`` and sends
    the result back. One subclass per operation, with declared fields (see
    `paygate._effects` for the core's own; adapters use `cache_claim`)."""

    __slots__ = ()

    def apply(self, store: Any) -> R:
        """Run this operation on ``store`` (a `paygate._stores.Store`)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CacheClaim(StoreCall[Any]):
    """Store ``value`` under ``key`` unless something is there; the answer is what is
    stored (see `cache_claim`)."""

    key: str
    value: Any

    def apply(self, store: Any) -> Any:
        return store.cache_put_if_absent(self.key, self.value)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Core only: wait ``seconds`` (backoff between polls)."""

    seconds: float


def cache_claim(key: str, value: Any) -> CacheClaim:
    """Store ``value`` under ``key`` unless something is there; receive what is stored.

    The answer equals ``value`` when this caller won the claim. Atomic across threads,
    processes and (PostgreSQL) machines: the way a flow makes sure only one worker
    creates a provider entity.
    """
    return CacheClaim(key, value)


Effect = Union[Call, CacheGet, CachePut, StoreCall[Any], Sleep]  # noqa: UP007  (runtime alias)
Flow = Generator[Effect, Any, T]


class TransportFailure(Exception):
    """Thrown into a flow (and out of it) when a call failed without an HTTP answer.

    ``sent`` is False only when the request surely never reached the provider
    (connection refused, DNS); otherwise the provider may have acted on it.
    """

    def __init__(self, message: str, *, sent: bool, step: str = "") -> None:
        super().__init__(message)
        self.sent = sent
        self.step = step


def drive(
    flow: Flow[T],
    respond: Callable[[Call], Reply],
    cache: dict[str, Any] | None = None,
) -> T:
    """Run ``flow`` to completion with ``respond`` answering its calls (for tests).

    ``respond`` may raise `TransportFailure` to simulate a network failure.
    """
    store = {} if cache is None else cache
    try:
        effect = next(flow)
        while True:
            result: Any
            if isinstance(effect, Call):
                try:
                    result = respond(effect)
                except TransportFailure as exc:
                    effect = flow.throw(exc)
                    continue
            elif isinstance(effect, CacheGet):
                result = store.get(effect.key)
            elif isinstance(effect, CachePut):
                store[effect.key] = effect.value
                result = None
            elif isinstance(effect, Sleep):
                result = None  # tests do not wait
            elif isinstance(effect, CacheClaim):
                result = store.setdefault(effect.key, effect.value)
            else:
                raise TypeError(f"drive() cannot run core effect {effect!r}")
            effect = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
