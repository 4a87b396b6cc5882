"""No recorded cassette holds a sandbox secret or the customer's personal data.

Runs on replay (the cassettes are written when the recording run ends); skipped while
recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paygate.sandbox import discover_emulators, offline_credentials
from paygate.testing import cassette_secrets

from .conftest import CUSTOMER

CASSETTES = sorted((Path(__file__).parent / "cassettes").rglob("*.yaml"))
SECRET_WORDS = ("secret", "key", "token", "jwt", "password", "auth")


def secrets_of(value: Any, name: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secrets_of(v, str(k))]
    if isinstance(value, str) and len(value) >= 8 and any(w in name.lower() for w in SECRET_WORDS):
        return [value]
    return []


def sandbox_secrets() -> list[str]:
    classes, _errors = discover_emulators(None)
    return sorted(set(secrets_of(offline_credentials(classes.values(), "http://127.0.0.1:9"))))


@pytest.fixture(autouse=True)
def _replay_only(request: pytest.FixtureRequest) -> None:
    if (request.config.getoption("--record-mode") or "none") != "none":
        pytest.skip("cassettes are checked once written (on replay)")


def test_every_flow_was_recorded() -> None:
    names = {p.stem for p in CASSETTES}
    assert {
        "test_konbini_order_paid_at_the_store",
        "test_card_order_and_partial_refund",
        "test_qr_order_paid_with_paypay",
    } <= names


def test_the_check_knows_the_secrets_of_every_provider() -> None:
    secrets = sandbox_secrets()
    providers = set(discover_emulators(None)[0])
    assert {"pokepay", "univapay", "elepay", "payjp", "smaregi"} <= providers
    assert len(secrets) >= len(providers)


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.stem)
def test_cassette_is_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    personal = [CUSTOMER.name, CUSTOMER.phone, CUSTOMER.email, "taro@"]
    assert cassette_secrets(text, [*sandbox_secrets(), *personal]) == []
    assert "[redacted]" in text
