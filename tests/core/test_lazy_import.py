"""``import paygate`` stays light: the heavy parts load on first use (PEP 562)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import paygate


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_import_paygate_loads_neither_pydantic_nor_httpx() -> None:
    loaded = _modules_after("import paygate")
    heavy = {"pydantic", "pydantic_settings", "httpx", "httpcore", "stamina", "opentelemetry"}
    assert not heavy & loaded, sorted(heavy & loaded)
    assert "paygate._errors" in loaded  # the error classes are there at once


def test_the_models_do_not_bring_httpx() -> None:
    loaded = _modules_after("from paygate import Money, Card, Charge")
    assert "pydantic" in loaded
    assert not {"httpx", "pydantic_settings"} & loaded


def test_every_exported_name_resolves() -> None:
    for name in paygate.__all__:
        assert getattr(paygate, name) is not None, name
    assert set(paygate.__all__) <= set(dir(paygate))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        paygate.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
