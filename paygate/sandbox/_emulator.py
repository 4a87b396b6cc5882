"""What a provider emulator implements to be served by the paygate sandbox.

The sandbox host (`paygate.sandbox`) mounts each installed provider's emulator under
``/<name>`` on one loopback port, owns the shared clock, fault injection and webhook
delivery, and forwards control actions (``POST /_sandbox/<name>/<action>``) to the
emulator. Emulators keep their state in memory and are driven from one event loop, so
they need no locks.
"""

from __future__ import annotations

import inspect
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

from starlette.routing import BaseRoute

__all__ = [
    "ControlError",
    "Emulator",
    "EmulatorContext",
    "LedgerEntry",
    "SandboxClock",
    "WebhookDelivery",
]


class SandboxClock:
    """The sandbox's notion of now. Starts at real time and only moves forward by
    `advance` (or `set`); every emulator reads it for timestamps, expiries and closings.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = start.astimezone(UTC) if start else None
        self._listeners: list[Callable[[datetime], None]] = []

    def now(self) -> datetime:
        """Current sandbox time (aware, UTC)."""
        if self._frozen is not None:
            return self._frozen + self._offset
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta`` and tell every listener."""
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self._offset += delta
        now = self.now()
        for listener in list(self._listeners):
            listener(now)
        return now

    def on_advance(self, listener: Callable[[datetime], None]) -> None:
        """Call ``listener(now)`` after every advance."""
        self._listeners.append(listener)

    def reset(self) -> None:
        """Back to real time."""
        self._offset = timedelta(0)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One webhook an emulator wants delivered.

    ``schedule`` is the provider's retry schedule: the delays after a failed attempt
    (e.g. elepay: 1 min ×3 then 10 min ×3). Retries fire on the sandbox clock.
    ``url`` None: the sandbox's configured webhook URL for this provider.
    """

    provider: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    schedule: Sequence[timedelta] = ()
    url: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A provider object, as the emulator's own records see it (for reconciliation tests).

    ``key`` is the provider-side idempotency key / request id / order number that
    created it, when there was one.
    """

    kind: str
    id: str
    key: str | None
    amount: int
    currency: str = "JPY"
    refunded: int = 0
    status: str = ""


#: Methods named ``control_<action>`` are an emulator's control actions.
CONTROL_PREFIX = "control_"


class ControlError(Exception):
    """A control action was refused (unknown action, unknown object, wrong state)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class EmulatorContext:
    """What the host gives every emulator."""

    clock: SandboxClock
    base_url: Callable[[], str]
    deliver: Callable[[WebhookDelivery], None]
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class Emulator(ABC):
    """Base of provider emulators.

    Subclasses set ``name`` (the mount prefix, equal to the provider name) and build
    their Starlette routes. Routes are relative to the mount: ``/v1/charges`` for PAY.JP
    is served at ``/payjp/v1/charges``.
    """

    name: ClassVar[str]

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx

    @property
    def now(self) -> datetime:
        """Sandbox time."""
        return self.ctx.clock.now()

    @property
    def base_url(self) -> str:
        """Where this emulator is served (``http://127.0.0.1:PORT/<name>``)."""
        return self.ctx.base_url()

    @abstractmethod
    def routes(self) -> Sequence[BaseRoute]:
        """The provider's API routes, relative to the mount point."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all state and restore the seed data."""

    @abstractmethod
    def credentials(self) -> dict[str, Any]:
        """The fixed, documented test credentials and seed ids (plus ``base_url``)."""

    @abstractmethod
    def account_settings(self) -> dict[str, Any]:
        """A paygate account table (``provider`` and settings) pointing at this emulator."""

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Perform a customer-side or operator action (pay a slip, scan a QR, ...).

        First `catch_up` applies what the sandbox clock has made due, then the method
        ``control_<action>(params)`` runs (sync or async, returning a dict); an action
        without one is a `ControlError` 404 naming the known actions. Emulators define
        those methods rather than override this one::

            def control_pay(self, params: Mapping[str, Any]) -> dict[str, Any]:
                # its docstring's first line is what `actions` lists
                ...
        """
        self.catch_up()
        method = getattr(self, CONTROL_PREFIX + action, None) if action.isidentifier() else None
        if method is None or not callable(method):
            known = ", ".join(sorted(self.actions())) or "none"
            raise ControlError(
                f"unknown action {action!r} for {self.name} (known: {known})", status=404
            )
        result: Any = method(params)
        if inspect.isawaitable(result):
            result = await result
        return cast("dict[str, Any]", result)

    def catch_up(self) -> None:  # noqa: B027
        """Apply what the sandbox clock has made due (expiries, closings) before a control
        action acts on the emulator's state; default: nothing."""

    @classmethod
    def actions(cls) -> dict[str, str]:
        """Every control action of this emulator with the first line of its docstring.

        >>> class Toy(Emulator):
        ...     def control_pay(self, params):
        ...         "Pay a pending charge."
        >>> Toy.actions()
        {'pay': 'Pay a pending charge.'}
        """
        found: dict[str, str] = {}
        for attr in sorted(dir(cls)):
            if not attr.startswith(CONTROL_PREFIX) or len(attr) == len(CONTROL_PREFIX):
                continue
            method = getattr(cls, attr)
            if callable(method):
                doc = inspect.getdoc(method) or ""
                found[attr[len(CONTROL_PREFIX) :]] = doc.strip().splitlines()[0] if doc else ""
        return found

    def fault_response(self, status: int) -> Any:
        """The provider's own error response for an injected ``status`` fault.

        Return a Starlette ``Response`` shaped like the provider's errors, or None for
        the host's generic JSON body.
        """
        return None

    def on_clock_advanced(self, now: datetime) -> None:  # noqa: B027
        """React to time moving (expire codes, run closings); default: nothing."""

    def ledger(self) -> list[LedgerEntry]:
        """Every money-moving object this emulator holds."""
        return []
