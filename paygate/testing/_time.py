"""Time for tests: `wait` and the drivers' back-off on the sandbox clock, not the wall."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TestTime", "VirtualTime"]


class VirtualTime:
    """A clock that moves only when paygate sleeps, and moves the sandbox with it.

    ``sleeps`` lists every sleep; ``on_sleep(n)`` (if set) runs after the n-th one, the
    place for a test to act as the customer while paygate waits.

    >>> vt = VirtualTime(sandbox)  # doctest: +SKIP
    >>> gw = Gateway.from_config(cfg, sleep=vt.sleep, monotonic=vt.monotonic)  # doctest: +SKIP
    """

    def __init__(self, sandbox: Any = None) -> None:
        self.sandbox = sandbox
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], Any] | None = None

    def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping."""
        self.sleeps.append(seconds)
        self.elapsed += seconds
        if self.sandbox is not None:
            self.sandbox.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    async def asleep(self, seconds: float) -> None:
        """`sleep` for the asyncio driver."""
        self.sleep(seconds)

    def monotonic(self) -> float:
        """Seconds slept so far."""
        return self.elapsed


class TestTime:
    """The time source the ``make_gateway`` fixture wires into every gateway: the wall
    clock, until a test asks for ``virtual_time``."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.virtual: VirtualTime | None = None

    def sleep(self, seconds: float) -> None:
        if self.virtual is not None:
            self.virtual.sleep(seconds)
        else:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        if self.virtual is not None:
            self.virtual.sleep(seconds)
        else:
            import asyncio

            await asyncio.sleep(seconds)

    def monotonic(self) -> float:
        return self.virtual.monotonic() if self.virtual is not None else time.monotonic()
