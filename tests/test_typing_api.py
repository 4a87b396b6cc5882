"""The public API is typed with no holes where a merchant's code meets it: `from_config`
keywords and the pytest plugin's fixtures are checked by ``mypy --strict``, and the
merchant test project in examples/ passes it (CI runs the same check, .ci/run)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

mypy_api = pytest.importorskip("mypy.api")

MERCHANT_CODE = """
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from paygate import AsyncGateway, Gateway, Money, QRCode
from paygate.sandbox import Sandbox
from paygate.testing import BlockingAsyncGateway, VirtualTime
from paygate.testing._cassette_env import CassetteEnv
from paygate.testing._plugin import MakeGateway, make_gateway, paygate_cassette, sandbox
from paygate.testing._time import TestTime


def now() -> datetime:
    return datetime.now(UTC)


async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)


def build() -> None:
    gw = Gateway.from_config("paygate.toml", clock=now, sleep=lambda s: None, lease=60)
    agw = AsyncGateway.from_config("paygate.toml", sleep=nap, webhook_max_body="big")
    Gateway.from_config("paygate.toml", sleep=nap)
    Gateway.from_config("paygate.toml", colck=now)
    reveal_type(gw)
    reveal_type(agw)


def test_fixtures(make_gateway: MakeGateway, sandbox: Sandbox, virtual_time: VirtualTime) -> None:
    gw = make_gateway()
    reveal_type(gw)
    reveal_type(make_gateway("async"))
    gw.charge("qr", amount=Money.jpy(500), method=QRCode(), idempotency_key="k")
    reveal_type(sandbox.now())
"""


def _mypy(*args: str, cache: str = "") -> tuple[str, int]:
    cache_dir = ROOT / ".mypy_cache" / cache if cache else ROOT / ".mypy_cache"
    out, err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(cache_dir), *args]
    )
    return out + err, status


def test_from_config_keywords_and_fixtures_are_typed(tmp_path: Path) -> None:
    sample = tmp_path / "merchant_sample.py"
    sample.write_text(MERCHANT_CODE, encoding="utf-8")
    out, _status = _mypy("--config-file", str(ROOT / "pyproject.toml"), str(sample))
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    text = "\n".join(lines)
    # A wrongly typed keyword is an error; so is a sync sleep on the async gateway and the
    # other way round, and a misspelt keyword.
    assert 'Argument "lease" to "from_config" of "Gateway" has incompatible type' in text
    assert 'Argument "webhook_max_body" to "from_config" of "AsyncGateway"' in text
    assert 'Argument "sleep" to "from_config" of "Gateway" has incompatible type' in text
    assert 'Unexpected keyword argument "colck" for "from_config" of "Gateway"' in text
    assert 'Revealed type is "paygate._gateway.Gateway"' in text
    assert 'Revealed type is "paygate._gateway.AsyncGateway"' in text
    assert 'Revealed type is "paygate.testing._runner.BlockingAsyncGateway"' in text
    assert "Any" not in "\n".join(line for line in lines if "Revealed type" in line), text


def test_fixtures_have_return_types() -> None:
    import inspect

    from paygate.testing import _plugin

    for name in (
        "paygate_sandbox",
        "sandbox",
        "paygate_accounts",
        "paygate_time",
        "virtual_time",
        "make_gateway",
        "paygate_cassette",
    ):
        fixture = getattr(_plugin, name)
        unwrap = getattr(fixture, "_get_wrapped_function", None)
        function = unwrap() if unwrap else getattr(fixture, "__wrapped__", fixture)
        annotation = inspect.signature(function).return_annotation
        # (Account tables stay dict[str, Any]: a table's values are settings of any type.)
        assert annotation not in ("Any", "Iterator[Any]", inspect.Signature.empty), name


def test_the_merchant_project_passes_mypy_strict() -> None:
    app = ROOT / "examples" / "merchant_app"
    # As a merchant runs it: no paygate config, only --strict (the command .ci/run runs).
    import os

    cwd = os.getcwd()
    os.chdir(app)
    try:
        out, status = _mypy("--config-file", "", "shop.py", "tests", cache="merchant_app")
    finally:
        os.chdir(cwd)
    assert status == 0, out


def test_retry_table_reaches_the_policy_whole() -> None:
    """Every key of the config's ``[retry]`` table reaches the `RetryPolicy` (spelt out
    field by field, so the call is typed)."""
    from paygate._config import RetrySettings

    values = {
        "attempts": 7,
        "deadline": 12.5,
        "wait_initial": 0.5,
        "wait_max": 3.0,
        "wait_jitter": 0.0,
        "max_retry_after": 9.0,
    }
    assert set(values) == set(RetrySettings.model_fields)
    policy = RetrySettings(**values).policy()
    assert {name: getattr(policy, name) for name in values} == values
