"""pytest-recording's ``vcr_config`` and ``vcr_cassette_dir``, paygate's way.

The paygate plugin registers this module in ``pytest_configure``, after every plugin has
loaded: among plugins the fixture registered last is used, so these take precedence over
pytest-recording's defaults whichever of the two plugins pytest loaded first. A conftest's
own fixtures still take precedence (and the scrubbing holds anyway: see
`paygate.testing._cassettes.protect`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """paygate's cassette settings for pytest-recording."""
    from ._cassettes import vcr_config as config

    return config()


def _provider_of(path: Any) -> str | None:
    parts = list(getattr(path, "parts", ()))
    for i, part in enumerate(parts[:-2]):
        if part == "providers" and parts[i + 2] == "tests":
            return str(parts[i + 1])
    return None


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Cassettes of an adapter's tests live in ``cassettes/<provider>/`` at the root.

    Other test modules (a merchant's own) keep pytest-recording's default location,
    unless the module sets ``paygate_cassette_provider``.
    """
    module = request.module
    provider = getattr(module, "paygate_cassette_provider", None) or _provider_of(
        Path(module.__file__)
    )
    if provider is None:
        return str(Path(module.__file__).parent / "cassettes" / Path(module.__file__).stem)
    return str(Path(str(request.config.rootpath)) / "cassettes" / provider)
