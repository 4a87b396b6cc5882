"""Credentials and ready-made paygate configuration for the sandbox.

The emulators' credentials are fixed, so they can be computed without a running
sandbox: every emulator class is instantiated against a base URL and asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

from ._emulator import Emulator, EmulatorContext, SandboxClock, WebhookDelivery

__all__ = [
    "ACCOUNT_ALIASES",
    "offline_accounts",
    "offline_credentials",
    "render_config",
    "to_toml",
]

#: Account names a generated config adds next to the provider names, by what the
#: merchant uses the provider for (see the README's account examples).
ACCOUNT_ALIASES: Mapping[str, str] = {
    "card": "payjp",
    "konbini": "univapay",
    "qr": "elepay",
    "wallet": "pokepay",
    "pos": "smaregi",
}


def _instances(classes: Iterable[type[Emulator]], url: str) -> dict[str, Emulator]:
    root = url.rstrip("/")
    clock = SandboxClock()

    def drop(_delivery: WebhookDelivery) -> None:
        return None

    out: dict[str, Emulator] = {}
    for cls in sorted(classes, key=lambda c: c.name):
        name = cls.name
        ctx = EmulatorContext(clock=clock, base_url=_fixed(f"{root}/{name}"), deliver=drop)
        emulator = cls(ctx)
        emulator.reset()
        out[name] = emulator
    return out


def _fixed(url: str) -> Callable[[], str]:
    return lambda: url


def offline_credentials(classes: Iterable[type[Emulator]], url: str) -> dict[str, dict[str, Any]]:
    """The credentials a sandbox at ``url`` would serve, without starting one."""
    from ._host import credentials_of

    return credentials_of(_instances(classes, url))


def offline_accounts(classes: Iterable[type[Emulator]], url: str) -> dict[str, dict[str, Any]]:
    """The account tables for a sandbox at ``url``, without starting one."""
    return {name: emu.account_settings() for name, emu in _instances(classes, url).items()}


def render_config(
    accounts: Mapping[str, Mapping[str, Any]], *, store: str = "sqlite:///paygate.db"
) -> str:
    """A paygate config: the store, one account per provider, and the alias accounts.

    >>> print(render_config({"payjp": {"provider": "payjp", "secret_key": "sk"}}))
    store = "sqlite:///paygate.db"
    <BLANKLINE>
    [accounts.payjp]
    provider = "payjp"
    secret_key = "sk"
    <BLANKLINE>
    [accounts.card]
    provider = "payjp"
    secret_key = "sk"
    <BLANKLINE>
    """
    tables: dict[str, Any] = {name: dict(table) for name, table in accounts.items()}
    for alias, provider in ACCOUNT_ALIASES.items():
        if provider in accounts and alias not in tables:
            tables[alias] = dict(accounts[provider])
    return to_toml({"store": store, "accounts": tables})


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def to_toml(data: Mapping[str, Any]) -> str:
    """Write a mapping as TOML (tables of scalars, lists and nested tables; None dropped).

    The sandbox only needs this small subset, so it does without a TOML-writing library.
    """
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: list[str], data: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _table(lines, [*path, key], value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, PurePath):
        value = str(value)
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(str(value), ensure_ascii=False)
