"""The sandbox host: every installed provider's emulator behind one Starlette app.

Each emulator is mounted under ``/<name>``; the control API lives under ``/_sandbox``;
the dashboard (`paygate.sandbox._dashboard`) is at ``/``, its forms under ``/_dashboard``
and the customer pages under ``/customer``.
All emulators share one `SandboxClock`, one fault set and one webhook outbox, and run
on the server's single event loop (so emulator state needs no locks).

Control API (JSON in, JSON out; errors are ``{"error": message}`` with a 4xx status):

=========================================  ==============================================
``GET  /_sandbox/health``                  mounted providers, skipped ones, sandbox time
``GET  /_sandbox/credentials``             every emulator's credentials, with base_url
``GET  /_sandbox/accounts``                every emulator's paygate account table
``POST /_sandbox/<provider>/<action>``     `Emulator.control` (customer/operator action)
``GET  /_sandbox/clock``                   sandbox time
``POST /_sandbox/clock/advance``           ``{"seconds": n}``: move time, fire what is due
``POST /_sandbox/reset``                   ``{"provider"?}``: state, faults, webhook queues
``GET|POST|DELETE /_sandbox/faults``       list / add / clear fault rules
``DELETE /_sandbox/faults/<id>``           drop one fault rule
``GET  /_sandbox/ledger``                  every emulator's money-moving objects
``POST /_sandbox/webhooks/config``         ``{"provider"?, "url"}``: where webhooks go
``GET  /_sandbox/webhooks``                URLs, delivery log, retries waiting
``POST /_sandbox/webhooks/flush``          attempt what is due and wait for it
=========================================  ==============================================
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from .._errors import ConfigurationError
from ._dashboard import Dashboard
from ._emulator import ControlError, Emulator, EmulatorContext, SandboxClock, WebhookDelivery
from ._faults import FaultMiddleware, FaultParamError, FaultSet
from ._webhooks import WebhookOutbox

__all__ = [
    "DEFAULT_URL",
    "ENTRY_POINT_GROUP",
    "SandboxHost",
    "credentials_of",
    "discover_emulators",
    "json_default",
]

logger = logging.getLogger("paygate.sandbox")

ENTRY_POINT_GROUP = "paygate.providers"
DEFAULT_URL = "http://127.0.0.1:8765"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def discover_emulators(
    providers: Iterable[str] | None = None,
) -> tuple[dict[str, type[Emulator]], dict[str, str]]:
    """Find the emulator classes of installed providers.

    Looks at the ``paygate.providers`` entry points and asks each provider class for
    `Provider.emulator()`. Returns ``(found, skipped)``: emulator classes by name, and
    the reason each other provider was left out (not installed, no emulator, broken).

    >>> found, skipped = discover_emulators(["no-such-provider"])
    >>> found, skipped
    ({}, {'no-such-provider': 'not installed'})
    """
    wanted = set(providers) if providers is not None else None
    found: dict[str, type[Emulator]] = {}
    skipped: dict[str, str] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            provider_cls = ep.load()
            emulator_cls = provider_cls.emulator()
        except Exception as exc:
            skipped[ep.name] = f"cannot load: {type(exc).__name__}: {exc}"
            logger.warning("provider %s skipped: %s", ep.name, skipped[ep.name])
            continue
        if emulator_cls is None:
            skipped[ep.name] = "ships no emulator"
            continue
        found[emulator_cls.name] = emulator_cls
    for name in sorted(wanted or ()):
        if name not in found and name not in skipped:
            skipped[name] = "not installed"
    return found, skipped


class SandboxHost:
    """Builds and owns the sandbox app: emulators, clock, faults, webhooks.

    ``emulators`` are explicit emulator classes (tests, third parties); without them the
    installed providers are discovered through their entry points. ``providers`` keeps
    only the named ones (and, when discovering, insists they are available). ``url`` is
    where the app is served; `paygate.sandbox.running` sets it once the port is bound.

    Example (serve with any ASGI server)::

        host = SandboxHost(providers=["payjp"], url="http://127.0.0.1:8765")
        uvicorn.run(host.app, host="127.0.0.1", port=8765)
    """

    def __init__(
        self,
        emulators: Iterable[type[Emulator]] | None = None,
        *,
        providers: Iterable[str] | None = None,
        url: str = DEFAULT_URL,
        webhook_url: str | None = None,
        clock: SandboxClock | None = None,
    ) -> None:
        wanted = list(providers) if providers is not None else None
        self.skipped: dict[str, str] = {}
        if emulators is None:
            classes, self.skipped = discover_emulators(wanted)
            missing = {n: r for n, r in self.skipped.items() if wanted and n in wanted}
            if missing:
                detail = "; ".join(f"{n}: {r}" for n, r in sorted(missing.items()))
                raise ConfigurationError(f"no sandbox emulator for {detail}", key="providers")
        else:
            classes = {cls.name: cls for cls in emulators}
            if wanted is not None:
                unknown = sorted(set(wanted) - set(classes))
                if unknown:
                    raise ConfigurationError(f"no emulator given for {unknown}", key="providers")
                classes = {n: c for n, c in classes.items() if n in wanted}
        self.url = url.rstrip("/")
        self.clock = clock or SandboxClock()
        self.faults = FaultSet()
        self.webhooks = WebhookOutbox(self.clock)
        if webhook_url:
            self.webhooks.set_url(webhook_url)
        self.requests: Counter[str] = Counter()
        # Every delivery the emulators emitted, by the outbox's delivery id (ids are
        # handed out one by one in enqueue order), for the dashboard's replay button.
        self._sent: list[WebhookDelivery] = []
        self.emulators: dict[str, Emulator] = {}
        self._listener_errors: list[str] = []
        for name in sorted(classes):
            if not _NAME.fullmatch(name):
                raise ConfigurationError(
                    "an emulator name must be lower-case letters, digits, '-' or '_'",
                    key=f"emulator {name!r}",
                )
            ctx = EmulatorContext(
                clock=self.clock,
                base_url=_base_url_of(self, name),
                deliver=self._deliver,
                rng=random.Random(_seed(name)),
            )
            emulator = classes[name](ctx)
            emulator.reset()
            self.emulators[name] = emulator
            self.clock.on_advance(self._clock_listener(emulator))
        # Registered after the emulators, so webhooks they emit while reacting to the
        # advance are already queued.
        self.clock.on_advance(self._fire_webhooks)
        self.app: ASGIApp = FaultMiddleware(
            self._starlette(),
            faults=self.faults,
            emulators=self.emulators,
            on_request=self._count,
        )

    # -- helpers used by the server and the CLI ------------------------------------------

    def base_url(self, name: str) -> str:
        """Where emulator ``name`` is served."""
        return f"{self.url}/{name}"

    def emulator(self, name: str) -> Emulator:
        """The mounted emulator called ``name`` (KeyError if none)."""
        return self.emulators[name]

    @property
    def request_count(self) -> int:
        """Requests served by the emulators so far (the control API not counted)."""
        return sum(self.requests.values())

    def _deliver(self, delivery: WebhookDelivery) -> None:
        self._sent.append(delivery)
        self.webhooks.enqueue(delivery)

    def sent_webhook(self, delivery_id: int) -> WebhookDelivery | None:
        """The delivery the webhook log calls ``delivery_id`` (None if unknown)."""
        if 1 <= delivery_id <= len(self._sent):
            return self._sent[delivery_id - 1]
        return None

    def replay_webhook(self, delivery_id: int) -> bool:
        """Send delivery ``delivery_id`` again, as a new delivery with the same body,
        headers and retry schedule. False when it is unknown."""
        delivery = self.sent_webhook(delivery_id)
        if delivery is None:
            return False
        self._deliver(delivery)
        return True

    def advance_clock(self, delta: timedelta) -> datetime:
        """Move the sandbox clock (firing what falls due); raises ValueError with the
        emulators' errors if one failed to handle the advance."""
        self._listener_errors.clear()
        now = self.clock.advance(delta)
        if self._listener_errors:
            raise ValueError("; ".join(self._listener_errors))
        return now

    def _fire_webhooks(self, _now: datetime) -> None:
        self.webhooks.fire_due()

    def _count(self, name: str) -> None:
        self.requests[name] += 1

    def _clock_listener(self, emulator: Emulator) -> Callable[[datetime], None]:
        def listener(now: datetime) -> None:
            # One emulator's bug must not keep time from reaching the others.
            try:
                emulator.on_clock_advanced(now)
            except Exception as exc:
                logger.exception("%s failed to handle the clock advance", emulator.name)
                self._listener_errors.append(f"{emulator.name}: {type(exc).__name__}: {exc}")

        return listener

    def reset(self, provider: str | None = None) -> list[str]:
        """Reset one emulator, or everything (clock back to real time too)."""
        names = [provider] if provider is not None else list(self.emulators)
        if provider is None:
            self.clock.reset()
        self.faults.clear(provider)
        self.webhooks.reset(provider)
        for name in names:
            emulator = self.emulators[name]
            emulator.ctx.rng.seed(_seed(name))
            emulator.reset()
        return names

    # -- the app ---------------------------------------------------------------------------

    def _starlette(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/_sandbox/health", self._health, methods=["GET"]),
            Route("/_sandbox/credentials", self._credentials, methods=["GET"]),
            Route("/_sandbox/accounts", self._accounts, methods=["GET"]),
            Route("/_sandbox/clock", self._clock_get, methods=["GET"]),
            Route("/_sandbox/clock/advance", self._clock_advance, methods=["POST"]),
            Route("/_sandbox/reset", self._reset, methods=["POST"]),
            Route("/_sandbox/faults", self._faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sandbox/faults/{fault_id}", self._fault_delete, methods=["DELETE"]),
            Route("/_sandbox/ledger", self._ledger, methods=["GET"]),
            Route("/_sandbox/webhooks", self._webhooks_get, methods=["GET"]),
            Route("/_sandbox/webhooks/config", self._webhooks_config, methods=["POST"]),
            Route("/_sandbox/webhooks/flush", self._webhooks_flush, methods=["POST"]),
            Route("/_sandbox/{provider}/{action}", self._control, methods=["POST"]),
            Route("/_sandbox/{rest:path}", self._unknown),
        ]
        for name, emulator in self.emulators.items():
            routes.append(Mount(f"/{name}", routes=list(emulator.routes())))
        routes.extend(Dashboard(self).routes())

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            await self.webhooks.aclose()

        return Starlette(routes=routes, lifespan=lifespan)

    async def _health(self, request: Request) -> Response:
        return _json(
            {
                "status": "ok",
                "url": self.url,
                "providers": list(self.emulators),
                "skipped": self.skipped,
                "now": self.clock.now(),
                "requests": dict(self.requests),
            }
        )

    async def _credentials(self, request: Request) -> Response:
        return _json(credentials_of(self.emulators))

    async def _accounts(self, request: Request) -> Response:
        return _json({name: emu.account_settings() for name, emu in self.emulators.items()})

    async def _control(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        action = request.path_params["action"]
        emulator = self.emulators.get(provider)
        if emulator is None:
            return _error(404, f"no emulator mounted for provider {provider!r}")
        return await control_response(emulator, action, request)

    async def _clock_get(self, request: Request) -> Response:
        return _json({"now": self.clock.now()})

    async def _clock_advance(self, request: Request) -> Response:
        params = await _body(request)
        if isinstance(params, Response):
            return params
        seconds = params.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _error(400, "seconds: must be a number of seconds, zero or more")
        self._listener_errors.clear()
        try:
            now = self.clock.advance(timedelta(seconds=seconds))
        except (ValueError, OverflowError) as exc:
            return _error(400, f"seconds: {exc}")
        errors = list(self._listener_errors)
        return _json({"now": now, "errors": errors}, status=500 if errors else 200)

    async def _reset(self, request: Request) -> Response:
        params = await _body(request)
        if isinstance(params, Response):
            return params
        provider = params.get("provider")
        if provider is not None and provider not in self.emulators:
            return _error(404, f"no emulator mounted for provider {provider!r}")
        return _json({"reset": self.reset(provider), "now": self.clock.now()})

    async def _faults(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"faults": [rule.to_json() for rule in self.faults.rules()]})
        if request.method == "DELETE":
            provider = request.query_params.get("provider")
            self.faults.clear(provider)
            return _json({"faults": []})
        params = await _body(request)
        if isinstance(params, Response):
            return params
        provider = params.get("provider")
        if isinstance(provider, str) and provider not in self.emulators:
            return _error(404, f"no emulator mounted for provider {provider!r}")
        try:
            rule = self.faults.add(params)
        except FaultParamError as exc:
            return _error(400, str(exc))
        return _json(rule.to_json(), status=201)

    async def _fault_delete(self, request: Request) -> Response:
        fault_id = request.path_params["fault_id"]
        if not self.faults.remove(fault_id):
            return _error(404, f"no fault {fault_id!r}")
        return Response(status_code=204)

    async def _ledger(self, request: Request) -> Response:
        return _json(
            {
                name: [asdict(entry) for entry in emulator.ledger()]
                for name, emulator in self.emulators.items()
            }
        )

    async def _webhooks_get(self, request: Request) -> Response:
        return _json(
            {
                "urls": self.webhooks.urls(),
                "deliveries": [a.to_json() for a in self.webhooks.log()],
                "pending": self.webhooks.pending(),
            }
        )

    async def _webhooks_config(self, request: Request) -> Response:
        params = await _body(request)
        if isinstance(params, Response):
            return params
        provider = params.get("provider")
        url = params.get("url")
        if provider is not None and provider not in self.emulators:
            return _error(404, f"no emulator mounted for provider {provider!r}")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            return _error(400, "url: must be an http(s) URL, or null to stop deliveries")
        self.webhooks.set_url(url, provider)
        return _json({"urls": self.webhooks.urls()})

    async def _webhooks_flush(self, request: Request) -> Response:
        await self.webhooks.flush()
        return _json(
            {
                "deliveries": [a.to_json() for a in self.webhooks.log()],
                "pending": self.webhooks.pending(),
            }
        )

    async def _unknown(self, request: Request) -> Response:
        return _error(404, f"no sandbox endpoint {request.method} {request.url.path}")


def credentials_of(emulators: Mapping[str, Emulator]) -> dict[str, dict[str, Any]]:
    """Every emulator's credentials, each with its ``base_url``."""
    out: dict[str, dict[str, Any]] = {}
    for name, emulator in emulators.items():
        creds = dict(emulator.credentials())
        creds.setdefault("base_url", emulator.base_url)
        out[name] = creds
    return out


def _base_url_of(host: SandboxHost, name: str) -> Callable[[], str]:
    return lambda: host.base_url(name)


def _seed(name: str) -> str:
    # A fixed seed per emulator: ids and codes repeat from one run (and reset) to the next.
    return f"paygate-sandbox:{name}"


def json_default(value: Any) -> Any:
    """`json.dumps` ``default`` for what emulators return (times, bytes, secrets)."""
    # Sandbox credentials are public by design, so a SecretStr is shown as its value.
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


async def control_response(emulator: Emulator, action: str, request: Request) -> Response:
    """The answer to ``POST /_sandbox/<provider>/<action>`` (the sandbox host's, and the
    test kit's bare emulator app's): the action's result, ``{}`` for none, or
    ``{"error": ...}`` with the status of a `ControlError` or a body that is not a JSON
    object."""
    params = await _body(request)
    if isinstance(params, Response):
        return params
    try:
        result: Any = await emulator.control(action, params)
    except ControlError as exc:
        return _error(exc.status, str(exc))
    return _json({} if result is None else result)


def _json(data: Any, *, status: int = 200) -> Response:
    body = json.dumps(data, default=json_default, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status=status)


async def _body(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return _error(400, "the body must be a JSON object")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object")
    return data
