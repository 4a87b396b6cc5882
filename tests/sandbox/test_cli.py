"""``paygate sandbox credentials`` and ``serve`` argument checks."""

from __future__ import annotations

import json
import tomllib

import pytest
from typer.testing import CliRunner

import paygate.sandbox
from paygate.cli import app
from paygate.sandbox import Emulator

runner = CliRunner()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, toy_classes: list[type[Emulator]]) -> None:
    """Pretend the toy emulators (one of them named like a real provider) are installed."""
    toy = toy_classes[1]

    class ToyAsPayjp(toy):  # type: ignore[misc,valid-type]
        name = "payjp"

    classes = {"otherpay": toy_classes[0], "toypay": toy, "payjp": ToyAsPayjp}

    def discover(providers=None):
        wanted = set(providers) if providers else set(classes)
        return {n: c for n, c in classes.items() if n in wanted}, {}

    monkeypatch.setattr(paygate.sandbox, "discover_emulators", discover)


@pytest.mark.usefixtures("installed")
def test_credentials_json_is_one_object_keyed_by_provider() -> None:
    result = runner.invoke(app, ["sandbox", "credentials", "--json", "--port", "9911"])
    assert result.exit_code == 0, result.output
    creds = json.loads(result.stdout)
    assert sorted(creds) == ["otherpay", "payjp", "toypay"]
    assert creds["toypay"]["base_url"] == "http://127.0.0.1:9911/toypay"
    assert creds["payjp"]["secret_key"] == "sk_test_toy_0123456789"


@pytest.mark.usefixtures("installed")
def test_credentials_toml_is_a_ready_config() -> None:
    result = runner.invoke(
        app, ["sandbox", "credentials", "--toml", "--url", "http://localhost:7000/"]
    )
    assert result.exit_code == 0, result.output
    config = tomllib.loads(result.stdout)
    assert config["store"] == "sqlite:///paygate.db"
    accounts = config["accounts"]
    # Provider names, plus the alias of each provider that is installed.
    assert sorted(accounts) == ["card", "otherpay", "payjp", "toypay"]
    assert accounts["card"] == accounts["payjp"]
    assert accounts["payjp"]["base_url"] == "http://localhost:7000/payjp"
    assert accounts["toypay"]["provider"] == "toypay"


@pytest.mark.usefixtures("installed")
def test_credentials_for_some_providers_only() -> None:
    result = runner.invoke(app, ["sandbox", "credentials", "-p", "toypay"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["toypay"]
    missing = runner.invoke(app, ["sandbox", "credentials", "-p", "nopay"])
    assert missing.exit_code == 2
    both = runner.invoke(app, ["sandbox", "credentials", "--json", "--toml"])
    assert both.exit_code == 2


def test_serve_refuses_a_public_interface() -> None:
    result = runner.invoke(app, ["sandbox", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "published" in result.output
    assert "--allow-remote" in result.output
