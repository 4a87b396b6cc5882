"""Serve an ASGI app with uvicorn in a background thread, on a port bound up front."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from .._adapter import is_loopback
from .._errors import ConfigurationError
from ._faults import DroppedConnectionFilter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._client import Sandbox
    from ._emulator import Emulator

__all__ = ["ServerThread", "running", "serve_app"]

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class SandboxTLS:
    """The certificates of a TLS sandbox, made at run time (PEM files in a temporary
    directory that lives as long as the sandbox).

    ``ca_file``: the CA that signed the server's certificate (and the client's): pass it
    as an account's ``ca_bundle``. ``client_cert_file`` / ``client_key_file``: a client
    certificate the server accepts (always made); ``client_cert_required``: whether the
    server refuses a connection without one (mutual TLS).
    """

    ca_file: Path
    server_file: Path
    client_cert_file: Path
    client_key_file: Path
    client_cert_required: bool = False

    def client_context(self, *, with_cert: bool = True) -> ssl.SSLContext:
        """An SSL context that trusts the sandbox (and presents the client certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_cert:
            context.load_cert_chain(str(self.client_cert_file), str(self.client_key_file))
        return context


def make_tls(directory: Path, *, client_cert_required: bool = False) -> SandboxTLS:
    """Make a CA, a server certificate for loopback and a client certificate in
    ``directory`` (needs ``trustme``: ``pip install 'paygate-jp[sandbox-tls]'``)."""
    try:
        import trustme
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "a TLS sandbox needs trustme: pip install 'paygate-jp[sandbox-tls]'", key="tls"
        ) from None
    ca = trustme.CA(organization_name="paygate sandbox")
    server = ca.issue_cert("127.0.0.1", "::1", "localhost")
    client = ca.issue_cert("client.sandbox.paygate.invalid", common_name="paygate sandbox client")
    tls = SandboxTLS(
        ca_file=directory / "ca.pem",
        server_file=directory / "server.pem",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client.key",
        client_cert_required=client_cert_required,
    )
    ca.cert_pem.write_to_path(str(tls.ca_file))
    server.private_key_and_cert_chain_pem.write_to_path(str(tls.server_file))
    client.cert_chain_pems[0].write_to_path(str(tls.client_cert_file))
    client.private_key_pem.write_to_path(str(tls.client_key_file))
    return tls


@functools.cache
def _server_class() -> type[Any]:
    """uvicorn's server, whose idle loop `ServerThread.stop` wakes at once (uvicorn looks
    at ``should_exit`` only every 0.1 s, and test suites stop dozens of servers). Made
    on first use: importing the sandbox does not import uvicorn."""
    import uvicorn

    class WakeableServer(uvicorn.Server):
        _loop: asyncio.AbstractEventLoop | None = None
        _wake: asyncio.Event | None = None

        async def main_loop(self) -> None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864_000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                should_exit = await self.on_tick(counter)

        def wake(self) -> None:
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                    loop.call_soon_threadsafe(wake.set)

    return WakeableServer


class ServerThread:
    """uvicorn serving ``app`` on ``host:port`` in a daemon thread.

    The socket is bound in the constructor, so `url` is known (also for ``port=0``)
    before the server starts; `start` returns once uvicorn accepts connections and
    `stop` asks it to exit and joins the thread.

    Example::

        with ServerThread(app) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        tls: SandboxTLS | None = None,
    ) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY on accepted connections
        # only when the protocol says TCP, and without it every keep-alive request waits
        # out a delayed ACK (~40 ms).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"
        self.tls = tls
        tls_options: dict[str, object] = {}
        if tls is not None:
            tls_options = {
                "ssl_certfile": str(tls.server_file),
                "ssl_ca_certs": str(tls.ca_file),
                "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.client_cert_required else ssl.CERT_NONE,
            }
        config = uvicorn.Config(
            app,
            **tls_options,  # type: ignore[arg-type]
            log_config=None,  # leave the process's logging configuration alone
            log_level=log_level,
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=3,
        )
        self._server = _server_class()(config)
        self._thread = threading.Thread(
            target=self._run, name=f"paygate-sandbox-{self.port}", daemon=True
        )
        self._failure: BaseException | None = None
        _install_log_filter()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit from a failed startup included
            self._failure = exc

    @property
    def alive(self) -> bool:
        """Whether the server thread is still running."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start serving and wait until the server is up."""
        self._thread.start()
        waiter = threading.Event()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError(f"the sandbox server failed to start ({self._failure!r})")
            if waited > _START_TIMEOUT:
                self.stop()
                raise RuntimeError("the sandbox server did not start in time")
            waiter.wait(0.002)
            waited += 0.002

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._server.wake()
        if self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_filter_lock = threading.Lock()
_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("uvicorn.error").addFilter(DroppedConnectionFilter())
            _filter_installed = True


@contextmanager
def serve_app(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve any ASGI app on loopback for the duration of the block; yields its URL.

    Handy for a webhook receiver in tests::

        with serve_app(receiver) as url:
            sandbox.set_webhook_url(url + "/hooks")
    """
    with ServerThread(app, host=host, port=port) as server:
        yield server.url


@contextmanager
def running(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    webhook_url: str | None = None,
    providers: Iterable[str] | None = None,
    emulators: Iterable[type[Emulator]] | None = None,
    allow_remote: bool = False,
    tls: bool = False,
    client_cert: bool = False,
) -> Iterator[Sandbox]:
    """Run the sandbox in this process, on loopback, for the duration of the block.

    Serves every installed provider's emulator (or only ``providers``, or the given
    ``emulators`` classes) with uvicorn in a background thread, on an ephemeral port
    unless ``port`` is given, and yields a `Sandbox` client bound to it.

    ``tls=True`` serves https with certificates made for this run (`SandboxTLS`, in
    ``sandbox.tls``; needs the ``sandbox-tls`` extra); ``client_cert=True`` (implies
    ``tls``) also requires a client certificate, as a provider with mutual TLS does.
    The account tables then carry ``ca_bundle``; the client certificate is
    ``sandbox.tls.client_cert_file`` / ``client_key_file``. Plain http is the default.

    Example::

        from paygate.sandbox import running

        with running() as sandbox:
            settings = sandbox.account_settings("payjp")
            ...
            sandbox.advance(timedelta(days=1))

        with running(client_cert=True) as sandbox:  # https, mutual TLS
            table = sandbox.account_settings("pokepay")  # with ca_bundle
            table |= {"ssl_cert_file": str(sandbox.tls.client_cert_file),
                      "ssl_key_file": str(sandbox.tls.client_key_file)}
    """
    from ._client import Sandbox
    from ._host import SandboxHost

    if not is_loopback(host) and not allow_remote:
        raise ConfigurationError(
            "the sandbox serves fixed, published credentials; serve it on loopback only "
            "(or pass allow_remote=True)",
            key="host",
        )
    sandbox_host = SandboxHost(emulators, providers=providers, webhook_url=webhook_url)
    with tempfile.TemporaryDirectory(prefix="paygate-sandbox-tls-") as directory:
        certs = (
            make_tls(Path(directory), client_cert_required=client_cert)
            if tls or client_cert
            else None
        )
        server = ServerThread(sandbox_host.app, host=host, port=port, tls=certs)
        sandbox_host.url = server.url
        with server, Sandbox(server.url, host=sandbox_host, tls=certs) as client:
            yield client
