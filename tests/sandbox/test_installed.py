"""Every installed provider's emulator mounts and answers the host's generic calls."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest

from paygate.sandbox import discover_emulators, running
from paygate.sandbox._accounts import ACCOUNT_ALIASES


def test_installed_emulators_serve_together() -> None:
    found, _skipped = discover_emulators()
    if not found:
        pytest.skip("no provider with an emulator is installed")
    with running() as sandbox:
        assert sandbox.providers() == sorted(found)
        credentials = sandbox.credentials()
        accounts = sandbox.accounts()
        for name in found:
            assert credentials[name]["base_url"].startswith(sandbox.base_url(name))
            assert accounts[name]["provider"] == name
        config = tomllib.loads(sandbox.config_toml())
        aliases = {a for a, p in ACCOUNT_ALIASES.items() if p in found}
        assert set(config["accounts"]) == set(found) | aliases
        assert set(sandbox.ledger()) == set(found)
        sandbox.advance(timedelta(days=40))
        sandbox.reset()
