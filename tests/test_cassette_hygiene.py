"""No cassette holds a credential or personal data (scanned on every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paygate.sandbox import EmulatorContext, SandboxClock
from paygate.sandbox._host import discover_emulators
from paygate.testing import cassette_secrets

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = sorted((ROOT / "cassettes").rglob("*.yaml"))
SECRET_WORDS = ("secret", "key", "token", "jwt", "password")


def _secrets_of(value: Any, name: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secrets_of(v, str(k))]
    if isinstance(value, str) and any(w in name.lower() for w in SECRET_WORDS) and len(value) >= 8:
        return [value]
    return []


def sandbox_secrets() -> list[str]:
    from fakepay import FakeEmulator

    classes, _ = discover_emulators(None)
    found: list[str] = []
    for cls in [*classes.values(), FakeEmulator]:
        ctx = EmulatorContext(
            clock=SandboxClock(), base_url=lambda: "http://127.0.0.1:9/x", deliver=lambda d: None
        )
        found += _secrets_of(cls(ctx).credentials())
    return sorted(set(found))


def test_there_are_cassettes() -> None:
    assert CASSETTES, "no cassettes committed"


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: str(p.relative_to(ROOT / "cassettes")))
def test_cassette_is_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert cassette_secrets(text, sandbox_secrets()) == []


def test_the_scan_finds_what_it_looks_for() -> None:
    secrets = sandbox_secrets()
    assert secrets
    planted = (
        "headers: {authorization: Bearer abcdefgh}\n"
        f"body: {secrets[0]} taro@example.com 090-1234-5678"
    )
    found = cassette_secrets(planted, secrets)
    assert secrets[0] in found
    assert "personal-data pattern" in found
    assert "Bearer" in found
