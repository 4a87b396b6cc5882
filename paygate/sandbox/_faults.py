"""Fault injection for the sandbox: rules, and the ASGI middleware that applies them.

A rule picks requests by provider, optional HTTP method and a path regex (searched in
the path *inside* the provider's mount, e.g. ``/v1/charges``), and fires either for the
next ``count`` matching calls or with a ``probability`` drawn from its own
``random.Random(seed)``, so a run can be repeated exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = [
    "FAULT_KINDS",
    "ConnectionDropped",
    "DroppedConnectionFilter",
    "FaultMiddleware",
    "FaultParamError",
    "FaultRule",
    "FaultSet",
]

FAULT_KINDS = frozenset({"drop_after_commit", "reset", "status", "rate_limit", "latency"})
_MAX_LATENCY_MS = 120_000

logger = logging.getLogger("paygate.sandbox")


class ConnectionDropped(Exception):
    """Raised inside the server on purpose so it aborts the connection mid-response."""


class FaultParamError(ValueError):
    """A fault description is invalid; ``param`` names the field."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(slots=True)
class FaultRule:
    """One injected fault. Built by `FaultRule.from_params` from the control API body."""

    id: str
    provider: str
    kind: str
    path: re.Pattern[str]
    method: str | None = None
    remaining: int | None = 1
    probability: float | None = None
    seed: int | None = None
    status: int | None = None
    retry_after: int | None = None
    latency_ms: int | None = None
    jitter_ms: int | None = None
    fired: int = 0
    seen: int = 0
    _rng: random.Random | None = field(default=None, repr=False)
    _jitter_rng: random.Random | None = field(default=None, repr=False)

    @classmethod
    def from_params(cls, rule_id: str, params: Mapping[str, Any]) -> FaultRule:
        """Validate a fault description (the JSON body of ``POST /_sandbox/faults``)."""
        provider = params.get("provider")
        if not isinstance(provider, str) or not provider:
            raise FaultParamError("required", param="provider")
        kind = params.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultParamError(f"must be one of {sorted(FAULT_KINDS)}", param="kind")
        raw_path = params.get("path", ".*")
        if not isinstance(raw_path, str):
            raise FaultParamError("must be a regular expression", param="path")
        try:
            path = re.compile(raw_path)
        except re.error as exc:
            raise FaultParamError(f"invalid regular expression ({exc})", param="path") from None
        method = params.get("method")
        if method is not None and not isinstance(method, str):
            raise FaultParamError("must be an HTTP method", param="method")
        probability = _opt_number(params, "probability")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise FaultParamError("must be between 0 and 1", param="probability")
        count = _opt_int(params, "count", minimum=1)
        seed = _opt_int(params, "seed")
        status = _opt_int(params, "status", minimum=100, maximum=599)
        retry_after = _opt_int(params, "retry_after", minimum=0)
        latency_ms = _opt_int(params, "latency_ms", minimum=0, maximum=_MAX_LATENCY_MS)
        if kind == "latency" and latency_ms is None:
            raise FaultParamError("required for a latency fault", param="latency_ms")
        jitter_ms = _opt_int(params, "jitter_ms", minimum=0, maximum=_MAX_LATENCY_MS)
        if jitter_ms and not latency_ms:
            raise FaultParamError("needs latency_ms", param="jitter_ms")
        if kind == "rate_limit":
            status = status or 429
            retry_after = 1 if retry_after is None else retry_after
        if kind == "status":
            status = status or 500
        # Without a probability a rule fires for the next `count` calls (default one);
        # with one, `count` caps how often it may fire (default: no cap).
        remaining = count if probability is not None else (count or 1)
        rng = random.Random(seed if seed is not None else 0) if probability is not None else None
        return cls(
            id=rule_id,
            provider=provider,
            kind=kind,
            path=path,
            method=method.upper() if method else None,
            remaining=remaining,
            probability=probability,
            seed=seed,
            status=status,
            retry_after=retry_after,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms or None,
            _rng=rng,
            _jitter_rng=random.Random(seed if seed is not None else 0) if jitter_ms else None,
        )

    def matches(self, provider: str, method: str, path: str) -> bool:
        """Whether this rule applies to the request (not whether it fires)."""
        if provider != self.provider:
            return False
        if self.method is not None and method.upper() != self.method:
            return False
        return self.path.search(path) is not None

    @property
    def active(self) -> bool:
        """False once a counted rule has fired its last time."""
        return self.remaining is None or self.remaining > 0

    def draw(self) -> bool:
        """Decide whether this matching call is hit, and account for it."""
        if not self.active:
            return False
        self.seen += 1
        if (
            self._rng is not None
            and self.probability is not None
            and self._rng.random() >= self.probability
        ):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True

    def delay(self) -> float:
        """Seconds to hold this call back: ``latency_ms``, ± ``jitter_ms`` drawn uniformly
        from the rule's own seeded generator (never below zero)."""
        base = (self.latency_ms or 0) / 1000
        if self._jitter_rng is None or not self.jitter_ms:
            return base
        return max(0.0, base + self._jitter_rng.uniform(-1, 1) * self.jitter_ms / 1000)

    def to_json(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        return {
            "id": self.id,
            "provider": self.provider,
            "kind": self.kind,
            "method": self.method,
            "path": self.path.pattern,
            "remaining": self.remaining,
            "probability": self.probability,
            "seed": self.seed,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "seen": self.seen,
            "fired": self.fired,
            "active": self.active,
        }


def _opt_int(
    params: Mapping[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultParamError("must be an integer", param=name)
    if minimum is not None and value < minimum:
        raise FaultParamError(f"must be at least {minimum}", param=name)
    if maximum is not None and value > maximum:
        raise FaultParamError(f"must be at most {maximum}", param=name)
    return value


def _opt_number(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultParamError("must be a number", param=name)
    return float(value)


class FaultSet:
    """The active fault rules, in the order they were added (the first that fires wins)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, params: Mapping[str, Any]) -> FaultRule:
        """Validate and add a rule."""
        rule = FaultRule.from_params(f"fault_{next(self._ids)}", params)
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        """Drop one rule; False if there was none with that id."""
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) != before

    def clear(self, provider: str | None = None) -> None:
        """Drop every rule, or every rule of one provider."""
        if provider is None:
            self._rules.clear()
        else:
            self._rules = [r for r in self._rules if r.provider != provider]

    def pick(self, provider: str, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any."""
        for rule in self._rules:
            if rule.matches(provider, method, path) and rule.draw():
                return rule
        return None

    def rules(self) -> list[FaultRule]:
        """All rules, spent ones included (they show how often they fired)."""
        return list(self._rules)


class FaultMiddleware:
    """ASGI middleware around the mounted emulators that applies `FaultSet` rules.

    ``emulators`` maps a mount name to its emulator; requests whose first path segment is
    not a mounted provider (the control API, for one) pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultSet,
        emulators: Mapping[str, Emulator],
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.faults = faults
        self.emulators = emulators
        self.on_request = on_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        full_path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and full_path.startswith(root):
            full_path = full_path[len(root) :]
        head, _, rest = full_path.lstrip("/").partition("/")
        emulator = self.emulators.get(head)
        if emulator is None:
            await self.app(scope, receive, send)
            return
        if self.on_request is not None:
            self.on_request(head)
        rule = self.faults.pick(head, scope["method"], "/" + rest)
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.latency_ms:
            # A sleep on the event loop: a slow provider costs the sandbox no CPU.
            await asyncio.sleep(rule.delay())
        if rule.kind == "latency":
            await self.app(scope, receive, send)
        elif rule.kind == "drop_after_commit":
            await self._drop_after_commit(rule, scope, receive, send)
        elif rule.kind == "reset":
            await _abort(send, 200, [(b"content-type", b"application/json")], b"", rule)
        else:
            response = _fault_response(emulator, rule)
            await response(scope, receive, send)

    async def _drop_after_commit(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # Let the emulator run to completion (so its state changes are committed), then
        # deliver only the head of its answer and abort: the client sees a broken
        # response although the provider did the work.
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            # The emulator failed; still cut the (error) response off as the rule says.
            logger.exception("emulator error under fault %s", rule.id)
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        status = int(start["status"]) if start else 200
        headers = list(start.get("headers", [])) if start else []
        await _abort(send, status, headers, body, rule)


async def _abort(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, rule: FaultRule
) -> None:
    # ASGI has no "close the socket" message. Announcing a body longer than what is sent
    # and then raising makes the server drop the connection, which is what a client sees
    # when a connection is reset or a proxy dies mid-response.
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    length = max(len(body), 1) + 1
    kept.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise ConnectionDropped(f"sandbox fault {rule.id} ({rule.kind}) dropped the connection")


def _fault_response(emulator: Emulator, rule: FaultRule) -> Response:
    status = rule.status or (429 if rule.kind == "rate_limit" else 500)
    response: Response | None = None
    # Emulators may offer ``fault_response(status)`` to answer with the provider's own
    # error body; the host falls back to a generic JSON error.
    hook = getattr(emulator, "fault_response", None)
    if callable(hook):
        candidate = hook(status)
        if isinstance(candidate, Response):
            response = candidate
    if response is None:
        response = JSONResponse(
            {
                "error": {
                    "type": "sandbox_fault",
                    "status": status,
                    "message": f"injected by sandbox fault {rule.id}",
                }
            },
            status_code=status,
        )
    if rule.kind == "rate_limit" and "retry-after" not in response.headers:
        response.headers["Retry-After"] = str(rule.retry_after or 0)
    elif rule.retry_after is not None and "retry-after" not in response.headers:
        response.headers["Retry-After"] = str(rule.retry_after)
    return response


class DroppedConnectionFilter(logging.Filter):
    """Hide the server's traceback for connections the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)
