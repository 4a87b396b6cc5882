"""Time for tests: `wait` and the drivers' back-off on the sandbox clock, not the wall."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

__all__ = ["TestTime", "VirtualTime"]

# A jump lands this long after the event, so the sandbox has certainly acted on it (an
# expiry at 12:00:00 is seen by a read at 12:00:01; polling would see it up to 15 s late).
_PAST_EVENT = 1.0


class VirtualTime:
    """A clock that moves only when paygate sleeps, and moves the sandbox with it.

    ``sleeps`` lists every sleep paygate asked for; ``elapsed`` is the virtual time so far;
    ``on_sleep(n)`` (if set) runs after the n-th sleep, the place for a test to act as the
    customer while paygate waits.

    Inside a `wait` that this clock knows about (`attach`, or the ``make_gateway``
    fixture's gateways), steady polling does not spin: once paygate sleeps the same
    interval twice in a row (its back-off has reached its ceiling), the clock jumps to the
    next event instead: the expiry of a slip or QR code this gateway issued, a webhook
    retry the sandbox has queued, or the wait's own timeout, whichever comes first
    (``jumps`` lists them). Nothing in the sandbox changes between those events unless the
    test acts, so `wait` returns what step-by-step polling would; a change the sandbox
    makes on its own at another moment is seen at the next event rather than within one
    polling interval. With ``on_sleep`` set the clock never jumps (the test acts in
    between), nor with ``jump=False``.

    >>> vt = VirtualTime(sandbox)  # doctest: +SKIP
    >>> gw = Gateway.from_config(cfg, sleep=vt.sleep, monotonic=vt.monotonic)  # doctest: +SKIP
    >>> vt.attach(gw)  # doctest: +SKIP
    """

    def __init__(self, sandbox: Any = None, *, jump: bool = True) -> None:
        self.sandbox = sandbox
        self.jump = jump
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self.jumps: list[float] = []
        self.on_sleep: Callable[[int], Any] | None = None
        self._deadline: float | None = None
        self._last: float | None = None
        self._expiries: dict[str, datetime] = {}

    def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping (or jump to the next event: see the class)."""
        self.sleeps.append(seconds)
        step = seconds
        if self._may_jump(seconds):
            stop = self._next_stop()
            if stop - self.elapsed > seconds:
                step = stop - self.elapsed
                self.jumps.append(step)
        self._last = seconds
        self.elapsed += step
        if self.sandbox is not None:
            self.sandbox.advance(step)
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    async def asleep(self, seconds: float) -> None:
        """`sleep` for the asyncio driver."""
        self.sleep(seconds)

    def monotonic(self) -> float:
        """Seconds of virtual time so far."""
        return self.elapsed

    # -- knowing what comes next -----------------------------------------------------------

    def note(self, charge: Any) -> Any:
        """Remember when ``charge``'s slip or QR code expires (an event to jump to)."""
        expires = getattr(getattr(charge, "next_action", None), "expires_at", None)
        charge_id = getattr(charge, "id", None)
        if isinstance(expires, datetime) and isinstance(charge_id, str):
            self._expiries[charge_id] = expires
        return charge

    @contextmanager
    def waiting(self, timeout: float) -> Iterator[None]:
        """Within this block paygate is in a `wait` that ends ``timeout`` seconds from now."""
        saved = self._deadline, self._last
        self._deadline, self._last = self.elapsed + timeout, None
        try:
            yield
        finally:
            self._deadline, self._last = saved

    def attach(self, gateway: Any) -> Any:
        """Let this clock see ``gateway``'s charges and waits (so it can jump); returns
        the gateway. The gateway must use this clock (``sleep`` and ``monotonic``)."""
        _attach(gateway, lambda: self)
        return gateway

    def _may_jump(self, seconds: float) -> bool:
        return (
            self.jump
            and self.on_sleep is None
            and self._deadline is not None
            and self._last is not None
            and seconds == self._last
        )

    def _next_stop(self) -> float:
        assert self._deadline is not None
        stops = [self._deadline]
        if self.sandbox is not None:
            now = self.sandbox.now()
            dues = list(self._expiries.values())
            for pending in self.sandbox.pending_webhooks():
                dues.append(datetime.fromisoformat(str(pending["due"])))
            for due in dues:
                ahead = (due - now).total_seconds() + _PAST_EVENT
                if ahead > 0:
                    stops.append(self.elapsed + ahead)
        return min(stops)


def _attach(gateway: Any, clock: Callable[[], VirtualTime | None]) -> None:
    charge, wait = gateway.charge, gateway.wait

    def charge_and_note(*args: Any, **kwargs: Any) -> Any:
        result = charge(*args, **kwargs)
        virtual = clock()
        return virtual.note(result) if virtual is not None else result

    def wait_knowing_the_deadline(*args: Any, **kwargs: Any) -> Any:
        virtual = clock()
        if virtual is None:
            return wait(*args, **kwargs)
        with virtual.waiting(float(kwargs.get("timeout", 600.0))):
            return virtual.note(wait(*args, **kwargs))

    gateway.charge = charge_and_note
    gateway.wait = wait_knowing_the_deadline


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

    def attach(self, gateway: Any) -> Any:
        """Let the virtual clock (once a test asks for one) see ``gateway``'s waits."""
        _attach(gateway, lambda: self.virtual)
        return gateway
