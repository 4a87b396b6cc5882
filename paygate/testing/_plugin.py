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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

ALIASES = {
    "card": "payjp",
    "konbini": "univapay",
    "qr": "elepay",
    "wallet": "pokepay",
    "pos": "smaregi",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "paygate_contract: the provider conformance suite")


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Register paygate's request matcher with vcrpy (pytest-recording hook)."""
    from ._cassettes import path_matcher

    vcr.register_matcher("paygate_path", path_matcher)


@pytest.fixture(scope="session")
def paygate_sandbox() -> Iterator[Any]:
    """The sandbox, served once per test session."""
    from ..sandbox import running

    with running() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(paygate_sandbox: Any) -> Any:
    """The session's sandbox, reset (state, faults, clock offset kept monotonic) first."""
    paygate_sandbox.reset()
    paygate_sandbox.clear_faults()
    return paygate_sandbox


def accounts_for(sandbox: Any) -> dict[str, dict[str, Any]]:
    """Account tables for every emulator of ``sandbox``, plus the method aliases."""
    tables = dict(sandbox.accounts())
    for alias, provider in ALIASES.items():
        if provider in tables:
            tables[alias] = dict(tables[provider])
    return tables


@pytest.fixture
def paygate_accounts(sandbox: Any) -> dict[str, dict[str, Any]]:
    """Account tables pointing at the sandbox."""
    return accounts_for(sandbox)


@pytest.fixture
def make_gateway(paygate_accounts: dict[str, dict[str, Any]]) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_gateway(driver="sync"|"async", store="memory://", accounts=None)``."""
    from .._gateway import AsyncGateway, Gateway
    from .._retry import RetryPolicy
    from ._runner import BlockingAsyncGateway

    made: list[Any] = []

    def make(
        driver: str = "sync",
        store: Any = "memory://",
        accounts: dict[str, dict[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        config = {"store": "memory://", "accounts": accounts or paygate_accounts}
        policy = retry or RetryPolicy.no_wait()
        gw: Any
        if driver == "async":
            gw = BlockingAsyncGateway(AsyncGateway.from_config(config, store=store, retry=policy))
        else:
            gw = Gateway.from_config(config, store=store, retry=policy)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """paygate's cassette settings for pytest-recording."""
    from ._cassettes import vcr_config as config

    return config()
