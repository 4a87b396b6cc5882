"""The paygate pytest plugin (entry point ``pytest11``): installed with paygate, so a
merchant's own test suite gets the sandbox and cassette settings without setup.

Fixtures:

* ``paygate_sandbox``: every installed provider's emulator on a loopback port, for the
  whole session (`paygate.sandbox.Sandbox`).
* ``sandbox``: the same sandbox, reset before the test.
* ``paygate_accounts``: account tables pointing at the sandbox, one per provider plus the
  aliases ``card``, ``konbini``, ``qr``, ``wallet``, ``pos``.
* ``make_gateway``: builds a `Gateway` (or, with ``driver="async"``, a blocking facade
  over an `AsyncGateway`) on the sandbox with a no-wait retry policy.
* ``vcr_config``: paygate's cassette settings (scrubbing and matching), used by
  pytest-recording's ``@pytest.mark.vcr``.

The cassette settings do not depend on that fixture: the ``pytest_recording_configure``
hook puts them on every VCR instance pytest-recording makes (`paygate.testing._cassettes.
protect`), merged with whatever ``vcr_config`` is in force, so neither the order in which
pytest loads the two plugins nor a merchant's own ``vcr_config`` can switch scrubbing
off. The ``vcr_config`` and ``vcr_cassette_dir`` fixtures are registered once every
plugin is loaded (`pytest_configure`), so they take precedence over pytest-recording's
defaults in either load order; a conftest's own fixtures still take precedence over both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, overload

import pytest

if TYPE_CHECKING:
    from .._gateway import Gateway
    from .._retry import RetryPolicy
    from .._stores import Store
    from ..sandbox import Sandbox
    from ._cassette_env import CassetteEnv
    from ._runner import BlockingAsyncGateway
    from ._time import TestTime, VirtualTime

RECORDING_FIXTURES = "paygate-recording-fixtures"

ALIASES = {
    "card": "payjp",
    "konbini": "univapay",
    "qr": "elepay",
    "wallet": "pokepay",
    "pos": "smaregi",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "paygate_contract: the provider conformance suite")
    # Registered after every plugin (pytest-recording included) has loaded: among plugins,
    # the fixture registered last is the one used.
    from . import _recording_fixtures

    if not config.pluginmanager.has_plugin(RECORDING_FIXTURES):
        config.pluginmanager.register(_recording_fixtures, RECORDING_FIXTURES)


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Put paygate's scrubbing, matching and leak check on the VCR instance itself
    (pytest-recording hook; runs for every cassette, whatever ``vcr_config`` says)."""
    from ._cassettes import protect

    protect(vcr)


class MakeGateway(Protocol):
    """The type of the ``make_gateway`` fixture: a `Gateway`, or with ``driver="async"`` a
    blocking facade over an `AsyncGateway`."""

    @overload
    def __call__(
        self,
        driver: Literal["sync"] = "sync",
        store: Store | str = "memory://",
        accounts: dict[str, dict[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Gateway: ...
    @overload
    def __call__(
        self,
        driver: Literal["async"],
        store: Store | str = "memory://",
        accounts: dict[str, dict[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> BlockingAsyncGateway: ...


@pytest.fixture(scope="session")
def paygate_sandbox() -> Iterator[Sandbox]:
    """The sandbox, served once per test session."""
    from ..sandbox import running

    with running() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(paygate_sandbox: Sandbox) -> Sandbox:
    """The session's sandbox, reset first (state, faults, queued webhooks, the clock)."""
    paygate_sandbox.reset()
    paygate_sandbox.clear_faults()
    return paygate_sandbox


def accounts_for(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Account tables for every emulator of ``sandbox``, plus the method aliases."""
    tables = dict(sandbox.accounts())
    for alias, provider in ALIASES.items():
        if provider in tables:
            tables[alias] = dict(tables[provider])
    return tables


@pytest.fixture
def paygate_accounts(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Account tables pointing at the sandbox."""
    return accounts_for(sandbox)


@pytest.fixture
def paygate_time() -> TestTime:
    """The time source of gateways made by ``make_gateway`` (the wall clock by default)."""
    from ._time import TestTime

    return TestTime()


@pytest.fixture
def virtual_time(paygate_time: TestTime, sandbox: Sandbox) -> VirtualTime:
    """Switch this test's gateways to a `VirtualTime` on the sandbox clock: `wait` and
    back-off sleeps advance the sandbox instead of sleeping."""
    from ._time import VirtualTime

    virtual = VirtualTime(sandbox)
    paygate_time.virtual = virtual
    return virtual


@pytest.fixture
def make_gateway(
    paygate_accounts: dict[str, dict[str, Any]], paygate_time: TestTime
) -> Iterator[MakeGateway]:
    """Factory: ``make_gateway(driver="sync"|"async", store="memory://", accounts=None,
    retry=None, clock=None)``; ``clock`` (e.g. ``sandbox.now``) dates paygate's records
    and judges time-dependent states (expiry) on the sandbox's time."""
    from .._retry import RetryPolicy
    from ._kit import Gateways

    made: dict[str, Gateways] = {}

    def make(
        driver: str = "sync",
        store: Store | str = "memory://",
        accounts: dict[str, dict[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Gateway | BlockingAsyncGateway:
        config = {"store": "memory://", "accounts": accounts or paygate_accounts}
        chosen = "async" if driver == "async" else "sync"  # as before: anything else is sync
        gateways = made.get(chosen) or made.setdefault(chosen, Gateways(chosen))
        gw = gateways(
            config,
            store=store,
            retry=retry or RetryPolicy.no_wait(),
            sleep=paygate_time.sleep,
            asleep=paygate_time.asleep,
            monotonic=paygate_time.monotonic,
            clock=clock,
        )
        paygate_time.attach(gw)
        return gw

    yield cast("MakeGateway", make)
    for gateways in made.values():
        gateways.close()


@pytest.fixture
def paygate_cassette(request: pytest.FixtureRequest) -> Iterator[CassetteEnv]:
    """What a cassette test needs: ``.gateway(provider)``, ``.control(...)``, ``.recording``.

    Replay (``--record-mode=none``, the default): no server runs; account settings come
    from the emulator's fixed credentials at a placeholder loopback URL, and every call
    (control actions included) is answered from the cassette. Recording against the
    sandbox (any other record mode): the session sandbox serves the calls. Recording
    against a provider's real sandbox: ``PAYGATE_RECORD_REAL=1`` and the account tables in
    the TOML file named by ``PAYGATE_RECORD_CONFIG``; control actions then skip the test.
    """
    from ._cassette_env import CassetteEnv

    env = CassetteEnv.for_request(request)
    try:
        yield env
    finally:
        env.close()
