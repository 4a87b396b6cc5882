"""The test kit: gateways on both drivers, scripted answers and emulators without a server.

Three parts, each usable on its own and none of them needing pytest:

* `gateway_on` / `Gateways`: one test body covers the sync `Gateway` and the
  `AsyncGateway` (through `BlockingAsyncGateway`), chosen by a driver name from
  `DRIVERS`::

      @pytest.fixture(params=DRIVERS)
      def gateways(request):
          with Gateways(request.param, retry=RetryPolicy.no_wait()) as made:
              yield made

      def test_charge(gateways):
          gw = gateways({"accounts": {...}})
          gw.charge(...)

* `ScriptedResponder`: answers requests with canned replies in order and records what
  was asked. One object is an httpx transport for both drivers (``transport=``) and a
  responder for `paygate.adapter.drive` (it answers a `Call` with a `Reply`)::

      script = ScriptedResponder(httpx.Response(200, json={"id": "ch_1"}), httpx.ReadTimeout)
      gw = Gateway({"card": provider}, transport=script)

* `EmulatorClient` / `EmulatorResponder` / `emulator_app`: a provider's sandbox emulator
  mounted in a bare Starlette app, reached through httpx's ASGI transport on a private
  event loop, so an adapter's flows run against it without a server::

      with EmulatorClient(PayjpEmulator(ctx)) as client:
          wire = EmulatorResponder(client)
          charge = wire.run(provider.charge(request, ctx))
          client.control("pay", charge_id=charge.provider_ref)
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import httpx

from .._flow import Call, Flow, Reply, drive
from ._runner import BlockingAsyncGateway

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.applications import Starlette

    from .._adapter import Provider
    from .._gateway import Gateway
    from ..sandbox import Emulator

__all__ = [
    "DRIVERS",
    "Answer",
    "AnyGateway",
    "Driver",
    "EmulatorClient",
    "EmulatorResponder",
    "Gateways",
    "ScriptedResponder",
    "emulator_app",
    "gateway_on",
    "share_tls_contexts",
]

# ------------------------------------------------------------------------ gateways

Driver: TypeAlias = Literal["sync", "async"]
DRIVERS: tuple[Driver, Driver] = ("sync", "async")
AnyGateway: TypeAlias = "Gateway | BlockingAsyncGateway"


def gateway_on(
    driver: str,
    config: str | Path | Mapping[str, Any] | None = None,
    /,
    *,
    providers: Mapping[str, Provider] | None = None,
    sleep: Callable[[float], None] | None = None,
    asleep: Callable[[float], Any] | None = None,
    **options: Any,
) -> Gateway | BlockingAsyncGateway:
    """A gateway on ``driver`` (``"sync"`` or ``"async"``) with one blocking interface.

    ``"sync"`` gives a `Gateway`; ``"async"`` an `AsyncGateway` behind
    `BlockingAsyncGateway`, so the same test body drives both. The gateway is built
    from ``config`` (`Gateway.from_config`) or, with ``providers=``, from provider
    objects (``Gateway(providers, ...)``). ``sleep`` goes to the sync driver and
    ``asleep`` (a coroutine function) to the async one, so one call serves both;
    every other option (``store=``, ``retry=``, ``transport=``, ``clock=``...) is passed
    as it is. The caller closes the gateway (or uses `Gateways`).

    >>> from paygate import RetryPolicy
    >>> from paygate.testing import gateway_on
    >>> gw = gateway_on("async", {"accounts": {}}, retry=RetryPolicy.no_wait())
    >>> type(gw).__name__
    'BlockingAsyncGateway'
    >>> gw.close()
    """
    from .._gateway import AsyncGateway, Gateway

    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {DRIVERS}, not {driver!r}")
    if config is not None and providers is not None:
        raise TypeError("pass a config or providers=, not both")
    if driver == "async":
        if asleep is not None:
            options["sleep"] = asleep
        if providers is not None:
            return BlockingAsyncGateway(AsyncGateway(providers, **options))
        return BlockingAsyncGateway(AsyncGateway.from_config(config, **options))
    if sleep is not None:
        options["sleep"] = sleep
    if providers is not None:
        return Gateway(providers, **options)
    return Gateway.from_config(config, **options)


class Gateways:
    """Makes gateways on one driver with shared defaults, and closes them all.

    Calling it takes the arguments of `gateway_on` (without the driver); its own
    keyword arguments are defaults for every gateway made. ``close()`` (or leaving the
    ``with`` block) closes every gateway made, newest last as they were opened.

    >>> from paygate import RetryPolicy
    >>> from paygate.testing import Gateways
    >>> with Gateways("sync", retry=RetryPolicy.no_wait()) as gateways:
    ...     gw = gateways({"accounts": {}})
    >>> gateways.driver, len(gateways.made)
    ('sync', 1)
    """

    def __init__(self, driver: str, **defaults: Any) -> None:
        if driver not in DRIVERS:
            raise ValueError(f"driver must be one of {DRIVERS}, not {driver!r}")
        self.driver = driver
        self.defaults = defaults
        self.made: list[Gateway | BlockingAsyncGateway] = []

    def __call__(
        self, config: str | Path | Mapping[str, Any] | None = None, /, **options: Any
    ) -> Gateway | BlockingAsyncGateway:
        gw = gateway_on(self.driver, config, **{**self.defaults, **options})
        self.made.append(gw)
        return gw

    def close(self) -> None:
        """Close every gateway made so far (closing twice is harmless)."""
        made, self.made = self.made, []
        for gw in made:
            gw.close()
        self.made = made

    def __enter__(self) -> Gateways:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gateways({self.driver!r}, made={len(self.made)})"


# ------------------------------------------------------------------------ scripted answers

#: What a script may hold: an httpx response, a `Reply`, an exception (a class is
#: instantiated, httpx's with the request) or a callable given the request (an
#: `httpx.Request`, or the `Call` when driven by `drive`) that returns one of those.
Answer: TypeAlias = Any


class ScriptedResponder(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers each request with the next scripted answer, recording what was asked.

    One object serves the sync and async drivers (``transport=``) and, called with a
    `Call`, `paygate.adapter.drive` (answers become `Reply` objects). ``requests``
    keeps the httpx requests, ``calls`` the flow calls, ``seen`` ``"METHOD /path"`` of
    both; ``answers`` is what is left to answer with. A request past the end of the
    script fails the test; `assert_done` fails when an answer was never asked for.

    >>> import httpx
    >>> from paygate.testing import ScriptedResponder
    >>> script = ScriptedResponder(httpx.Response(200, json={"id": "ch_1"}))
    >>> with httpx.Client(transport=script) as client:
    ...     client.get("https://api.example/v1/charges/ch_1").json()
    {'id': 'ch_1'}
    >>> script.seen
    ['GET /v1/charges/ch_1']
    """

    def __init__(self, *answers: Answer, provider: str | None = None) -> None:
        self.answers: list[Answer] = list(answers)
        self.requests: list[httpx.Request] = []
        self.calls: list[Call] = []
        self.seen: list[str] = []
        self.provider = provider

    def then(self, *answers: Answer) -> Any:
        """Add answers to the script; returns the responder, to chain."""
        self.answers.extend(answers)
        return self

    def unscripted(self, where: str) -> AssertionError:
        """The failure for a request past the end of the script."""
        return AssertionError(f"unscripted request {where}")

    def next_answer(self, request: httpx.Request | Call, where: str) -> Answer:
        """Take the next answer for ``request`` (``where``: its method and path).

        Subclasses check the request here (`ScriptedTransport` holds it against the
        documented exchange).
        """
        if not self.answers:
            raise self.unscripted(where)
        return self.answers.pop(0)

    def _resolve(self, request: httpx.Request | Call, where: str) -> Any:
        answer = self.next_answer(request, where)
        if callable(answer) and not isinstance(answer, type):
            answer = answer(request)
        if isinstance(answer, type) and issubclass(answer, BaseException):
            if issubclass(answer, httpx.RequestError) and isinstance(request, httpx.Request):
                raise answer("scripted", request=request)
            raise answer("scripted")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _answer(self, request: httpx.Request) -> httpx.Response:
        request.read()
        where = f"{request.method} {request.url.path}"
        self.requests.append(request)
        self.seen.append(where)
        answer = self._resolve(request, where)
        if isinstance(answer, Reply):
            return httpx.Response(
                answer.status, headers=dict(answer.headers), content=answer.content
            )
        if not isinstance(answer, httpx.Response):
            raise TypeError(f"a scripted answer must be a response, not {type(answer).__name__}")
        return answer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    def __call__(self, call: Call) -> Reply:
        """Answer a flow's `Call` (the responder `drive` takes)."""
        where = f"{call.method} {httpx.URL(call.url).path}"
        self.calls.append(call)
        self.seen.append(where)
        answer = self._resolve(call, where)
        if isinstance(answer, Reply):
            return answer
        if isinstance(answer, httpx.Response):
            answer.read()
            headers = {k.lower(): v for k, v in answer.headers.items()}
            return Reply(answer.status_code, headers, answer.content, provider=self.provider)
        raise TypeError(f"a scripted answer must be a response, not {type(answer).__name__}")

    def assert_done(self) -> None:
        """Fail if a scripted answer was never asked for."""
        if self.answers:
            raise AssertionError(f"{len(self.answers)} scripted answer(s) never requested")

    def __repr__(self) -> str:
        # Requests carry credentials in their headers: only counts are shown.
        return f"{type(self).__name__}(asked={len(self.seen)}, left={len(self.answers)})"


# ------------------------------------------------------------------------ emulators in process


def emulator_app(
    emulator: Emulator, *, prefix: str | None = None, control: bool = False
) -> Starlette:
    """A bare Starlette app serving ``emulator`` under ``prefix`` (default ``/<name>``).

    With ``control=True`` the app also answers ``POST /_sandbox/<name>/<action>`` with
    the sandbox host's own handler (a `ControlError` becomes ``{"error": ...}`` with its
    status).

    >>> from paygate.testing import emulator_app
    >>> app = emulator_app(emulator)  # doctest: +SKIP
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Mount, Route

    from ..sandbox._host import control_response

    async def run_control(request: Request) -> Response:
        return await control_response(emulator, request.path_params["action"], request)

    routes: list[BaseRoute] = []
    if control:
        routes.append(Route(f"/_sandbox/{emulator.name}/{{action}}", run_control, methods=["POST"]))
    routes.append(Mount(prefix or f"/{emulator.name}", routes=list(emulator.routes())))
    return Starlette(routes=routes)


class _Loop:
    """A private event loop and the httpx client living on it (closed together)."""

    def __init__(self, app: Any, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.runner: asyncio.Runner | None = None
        self.client: httpx.AsyncClient | None = None

    def run(self, make: Callable[[httpx.AsyncClient], Any]) -> Any:
        if self.runner is None:
            self.runner = asyncio.Runner()
        if self.client is None:
            transport = httpx.ASGITransport(app=self.app)
            self.client = httpx.AsyncClient(transport=transport, base_url=self.base_url)
        return self.runner.run(make(self.client))

    def close(self) -> None:
        runner, client = self.runner, self.client
        self.runner = self.client = None
        if runner is None:
            return
        if client is not None:
            runner.run(client.aclose())
        runner.close()


class EmulatorClient:
    """A blocking httpx-like client on an emulator (or any ASGI app), with no server.

    Requests go through httpx's ASGI transport on a private event loop, so the
    emulator's state is driven from one loop, as in the sandbox. Built from an
    `Emulator`, the app is `emulator_app` (``control=True`` adds the control route) and
    `control` runs a control action. ``close()`` (or the ``with`` block) ends the loop;
    an unclosed client's loop is closed when it is garbage-collected.

    >>> from paygate.testing import EmulatorClient
    >>> with EmulatorClient(PayjpEmulator(ctx)) as client:  # doctest: +SKIP
    ...     client.get("/payjp/v1/charges", auth=(SECRET_KEY, "")).status_code
    200
    """

    def __init__(
        self,
        target: Emulator | Any,
        *,
        base_url: str = "http://127.0.0.1",
        prefix: str | None = None,
        control: bool = False,
    ) -> None:
        from ..sandbox import Emulator

        self.emulator: Emulator | None = target if isinstance(target, Emulator) else None
        self.app = (
            emulator_app(target, prefix=prefix, control=control)
            if self.emulator is not None
            else target
        )
        self.base_url = base_url
        self._loop = _Loop(self.app, base_url)
        self._finalizer = weakref.finalize(self, self._loop.close)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request (``url`` absolute or relative to ``base_url``); read at once."""
        response: httpx.Response = self._loop.run(lambda c: c.request(method, url, **kwargs))
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """Run the emulator's control action ``action`` on the client's loop."""
        emulator = self.emulator
        if emulator is None:
            raise TypeError("control() needs a client built from an Emulator")
        result: dict[str, Any] = self._loop.run(lambda _c: emulator.control(action, params))
        return result

    def close(self) -> None:
        """End the private loop (idempotent)."""
        self._finalizer()

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self.emulator.name if self.emulator is not None else type(self.app).__name__
        return f"EmulatorClient({name!r})"


class EmulatorResponder:
    """Answers a flow's calls through an `EmulatorClient` (a `drive` responder).

    ``calls`` records every `Call`; ``cache`` is the entity cache shared by the flows
    run through this object (one "store": two responders on one client are two
    processes sharing the provider). ``provider`` names the replies' provider (default:
    the client's emulator's name).

    >>> from paygate.testing import EmulatorClient, EmulatorResponder
    >>> wire = EmulatorResponder(EmulatorClient(emulator))  # doctest: +SKIP
    >>> charge = wire.run(provider.charge(request, ctx))  # doctest: +SKIP
    >>> wire.steps()  # doctest: +SKIP
    ['charges.create']
    """

    def __init__(self, client: EmulatorClient, *, provider: str | None = None) -> None:
        self.client = client
        self.provider = provider or (client.emulator.name if client.emulator else None)
        self.calls: list[Call] = []
        self.cache: dict[str, Any] = {}

    def respond(self, call: Call) -> Reply:
        """Send ``call`` to the emulator and answer with its reply."""
        self.calls.append(call)
        response = self.client.request(
            call.method, call.url, headers=dict(call.headers), content=call.content
        )
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, headers, response.content, provider=self.provider)

    def __call__(self, call: Call) -> Reply:
        return self.respond(call)

    def run(self, flow: Flow[Any]) -> Any:
        """Run ``flow`` to completion against the emulator (`paygate.adapter.drive`)."""
        return drive(flow, self.respond, self.cache)

    def steps(self) -> list[str]:
        """The ``step`` of every call so far."""
        return [c.step for c in self.calls]

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """The client's `EmulatorClient.control`."""
        return self.client.control(action, **params)

    def __repr__(self) -> str:
        return f"EmulatorResponder({self.provider!r}, calls={len(self.calls)})"


# ------------------------------------------------------------------------ TLS contexts

_CREATE = "create_ssl_context"
_shared_tls: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()
_unpatched: list[Callable[..., Any]] = []


def share_tls_contexts() -> Callable[[], None]:
    """Let httpx build the default-verification TLS context once per process.

    Every gateway account and every httpx client builds a TLS context, and building the
    default one (``verify=True``, no client certificate) loads the whole CA bundle: tens
    of milliseconds each, which in a test suite that makes gateways per test adds up to
    most of its time. After this call those contexts are one shared, identical context
    (per ``SSL_CERT_FILE``/``SSL_CERT_DIR``), as httpx recommends for many clients;
    contexts with other settings (``verify=False``, a CA file or context, a client
    certificate) are built each time as before. Calling it again is harmless; the
    returned function undoes it. Meant for test suites, e.g. in a ``conftest.py``:

    >>> from paygate.testing import share_tls_contexts
    >>> undo = share_tls_contexts()
    >>> import httpx
    >>> httpx.create_ssl_context() is httpx.create_ssl_context()
    True
    >>> undo()
    """
    with _shared_lock:
        if not _unpatched:
            original = httpx.create_ssl_context
            _unpatched.append(original)

            def create_ssl_context(
                verify: Any = True, cert: Any = None, trust_env: bool = True
            ) -> Any:
                if verify is not True or cert is not None:
                    return original(verify=verify, cert=cert, trust_env=trust_env)
                env = os.environ if trust_env else {}
                key = (trust_env, env.get("SSL_CERT_FILE"), env.get("SSL_CERT_DIR"))
                context = _shared_tls.get(key)
                if context is None:
                    context = _shared_tls[key] = original(verify=True, trust_env=trust_env)
                return context

            _install(create_ssl_context)
    return _unshare_tls_contexts


def _install(create_ssl_context: Callable[..., Any]) -> None:
    # httpx's own transports call the name imported into their module.
    import httpx._transports.default as transports

    for module in (httpx, transports):
        setattr(module, _CREATE, create_ssl_context)


def _unshare_tls_contexts() -> None:
    with _shared_lock:
        if _unpatched:
            _install(_unpatched.pop())
            _shared_tls.clear()
