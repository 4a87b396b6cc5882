"""The distributions: names of our own, providers pinned to the core's release series and
the core's extras to the providers' (the import names and entry points stay `paygate`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "paygate-jp"
PROVIDERS = ("pokepay", "univapay", "elepay", "payjp", "smaregi")


def project(path: Path) -> dict[str, object]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return dict(data["project"])


def series(version: str) -> str:
    """``0.1.3`` -> ``~=0.1.0`` (the release series a pin accepts)."""
    major, minor = version.split(".")[:2]
    return f"~={major}.{minor}.0"


def core_version() -> str:
    text = (ROOT / "paygate" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match is not None
    return match.group(1)


def test_the_core_distribution_is_ours_and_imports_as_paygate() -> None:
    core = project(ROOT / "pyproject.toml")
    assert core["name"] == CORE
    assert core["scripts"] == {"paygate": "paygate.cli:main"}
    assert core["entry-points"] == {"pytest11": {"paygate": "paygate.testing._plugin"}}


def test_providers_pin_the_core_series_and_keep_their_import_names() -> None:
    for name in PROVIDERS:
        provider = project(ROOT / "providers" / name / "pyproject.toml")
        assert provider["name"] == f"{CORE}-{name}"
        deps = [str(d) for d in provider["dependencies"]]  # type: ignore[attr-defined]
        assert f"{CORE}{series(core_version())}" in deps, deps
        assert not any(d == "paygate" or d.startswith("paygate>") for d in deps)
        eps = provider["entry-points"]["paygate.providers"]  # type: ignore[index]
        assert list(eps) == [name]
        assert eps[name].startswith(f"paygate_{name}:")


def test_the_core_extras_pin_the_providers_versions() -> None:
    extras = project(ROOT / "pyproject.toml")["optional-dependencies"]
    assert isinstance(extras, dict)
    pins = {}
    for name in PROVIDERS:
        version = str(project(ROOT / "providers" / name / "pyproject.toml")["version"])
        pins[name] = f"{CORE}-{name}{series(version)}"
        assert extras[name] == [pins[name]]
    assert [d for d in extras["all"] if d.startswith(CORE)] == list(pins.values())
