"""``paygate sandbox credentials`` and ``actions``, and ``serve`` argument checks."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from starlette.routing import BaseRoute
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


class _Acting(Emulator):
    """Stands for an installed emulator with control actions."""

    name = "actpay"

    def routes(self) -> Sequence[BaseRoute]:
        return []

    def reset(self) -> None:
        pass

    def credentials(self) -> dict[str, Any]:
        return {}

    def account_settings(self) -> dict[str, Any]:
        return {}

    def control_pay(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Pay a pending charge as the customer.

        Left out of the listing.
        """
        return {}

    async def control_expire(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Expire every open code now."""
        return {}


def test_actions_lists_each_emulator_s_actions(
    monkeypatch: pytest.MonkeyPatch, toy_classes: list[type[Emulator]]
) -> None:
    classes: dict[str, type[Emulator]] = {"actpay": _Acting, "toypay": toy_classes[1]}

    def discover(providers=None):
        wanted = set(providers) if providers else set(classes)
        found = {n: c for n, c in classes.items() if n in wanted}
        broken = {"brokenpay": "cannot load: ImportError: x"}
        return found, {n: r for n, r in broken.items() if not providers or n in providers}

    monkeypatch.setattr(paygate.sandbox, "discover_emulators", discover)
    every = runner.invoke(app, ["sandbox", "actions"], terminal_width=120)
    assert every.exit_code == 0, every.output
    lines = [line.strip("│ ") for line in every.stdout.splitlines()]
    assert any(
        line.startswith("expire") and "Expire every open code now." in line for line in lines
    )
    assert any(
        line.startswith("pay") and "Pay a pending charge as the customer." in line for line in lines
    )
    assert "Left out" not in every.stdout
    assert "toypay" in every.stdout
    assert "none listed" in every.stdout  # the toy emulator has no control_ methods
    assert "brokenpay: cannot load" in every.stdout

    one = runner.invoke(app, ["sandbox", "actions", "actpay"], terminal_width=120)
    assert one.exit_code == 0, one.output
    assert "expire" in one.stdout
    assert "toypay" not in one.stdout

    missing = runner.invoke(app, ["sandbox", "actions", "nopay"])
    assert missing.exit_code == 2
    assert "no emulator for nopay" in missing.output


def test_actions_of_the_installed_emulators_have_descriptions() -> None:
    """Every action an installed emulator lists says what it does."""
    from paygate.sandbox import discover_emulators

    found, _skipped = discover_emulators()
    for name, emulator in found.items():
        for action, description in emulator.actions().items():
            assert description, f"{name}: control_{action} has no docstring"


def test_demo_runs_each_provider_s_demo_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """``paygate demo`` takes each provider's script from `Provider.demo_script`."""
    import io

    from rich.console import Console

    from paygate.cli._demo import run_demo
    from paygate_payjp import PayjpProvider

    ran: list[str] = []

    def script(d: Any) -> None:
        ran.append(d.provider)
        d.step("a step", lambda: None)

    monkeypatch.setattr(PayjpProvider, "demo_script", classmethod(lambda cls: script))
    out = io.StringIO()
    assert run_demo(Console(file=out, width=120), providers=["payjp"], store="memory") == 0
    assert ran == ["payjp"]
    assert "a step" in out.getvalue()

    monkeypatch.setattr(PayjpProvider, "demo_script", classmethod(lambda cls: None))
    out = io.StringIO()
    assert run_demo(Console(file=out, width=120), providers=["payjp"], store="memory") == 0
    assert "no demo script" in out.getvalue()
