"""Cassette scrubbing cannot be shadowed: not by the order pytest loads the plugins in, not
by a merchant's own ``vcr_config``; a cassette that would hold a secret is not written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from vcr import VCR

from paygate import Gateway, Konbini, Money, RetryPolicy
from paygate._redact import register_secret
from paygate.testing import cassette_secrets
from paygate.testing._cassettes import CassetteLeak, protect

PERSONAL = ("テスト 太郎", "0364413400", "demo@example.com")


def sandbox_secrets(sandbox: Any) -> list[str]:
    words = ("secret", "key", "token", "jwt", "password")
    found = []
    for table in sandbox.credentials().values():
        for name, value in table.items():
            if isinstance(value, str) and len(value) >= 8 and any(w in name for w in words):
                found.append(value)
    return found


def konbini_order(sandbox: Any) -> None:
    config = {"store": "memory://", "accounts": {"konbini": sandbox.account_settings("univapay")}}
    with Gateway.from_config(config, retry=RetryPolicy.no_wait()) as gw:
        gw.charge(
            "konbini",
            amount=Money.jpy(1200),
            method=Konbini(
                store="family_mart", customer_name=PERSONAL[0], phone=PERSONAL[1], email=PERSONAL[2]
            ),
            idempotency_key="protect-1",
        )


def test_a_merchant_vcr_config_merges_with_paygates(tmp_path: Path, sandbox: Any) -> None:
    vcr = protect(VCR(cassette_library_dir=str(tmp_path), record_mode="all"))
    merchant = {  # everything a merchant's vcr_config could say to switch paygate's off
        "before_record_request": lambda request: request,
        "before_record_response": lambda response: response,
        "filter_headers": [],
        "match_on": ["method", "path"],
        "decode_compressed_response": False,
    }
    with vcr.use_cassette("order.yaml", **merchant) as cassette:
        konbini_order(sandbox)
    assert len(cassette) >= 1
    text = (tmp_path / "order.yaml").read_text(encoding="utf-8")
    assert cassette_secrets(text, [*sandbox_secrets(sandbox), *PERSONAL]) == []
    assert "[redacted]" in text
    matchers = {m.__name__ for m in vcr.get_merged_config(**merchant)["match_on"]}
    assert {"method", "path", "path_matcher", "query"} <= matchers


def test_a_cassette_holding_a_secret_is_not_written(tmp_path: Path, sandbox: Any) -> None:
    secret = "sk_test_in_a_query_string_1234"
    register_secret(secret)
    vcr = protect(VCR(cassette_library_dir=str(tmp_path), record_mode="all"))
    url = f"{sandbox.base_url('payjp')}/v1/charges?api_key={secret}"
    with pytest.raises(CassetteLeak) as exc, vcr.use_cassette("leak.yaml"):
        httpx.get(url)
    assert secret not in str(exc.value)
    assert "1 registered secret(s)" in str(exc.value)
    assert not (tmp_path / "leak.yaml").exists()


MERCHANT_CONFTEST = """
import pytest

@pytest.fixture
def vcr_config():
    return {"record_mode": "once", "filter_headers": ["x-merchant-header"]}
"""

MERCHANT_TEST = """
import pytest
from paygate import Konbini, Money

@pytest.mark.vcr
def test_order(make_gateway):
    gw = make_gateway()
    gw.charge(
        "konbini",
        amount=Money.jpy(1200),
        method=Konbini(store="family_mart", customer_name="テスト 太郎", phone="0364413400",
                       email="demo@example.com"),
        idempotency_key="order-1",
    )
"""


@pytest.mark.parametrize(
    "order",
    [["paygate", "recording"], ["recording", "paygate"]],
    ids=["paygate-first", "recording-first"],
)
@pytest.mark.parametrize("merchant_config", [False, True], ids=["no-conftest", "own-vcr_config"])
def test_either_plugin_order_records_a_clean_cassette(
    tmp_path: Path, sandbox: Any, order: list[str], merchant_config: bool
) -> None:
    (tmp_path / "test_order.py").write_text(textwrap.dedent(MERCHANT_TEST), encoding="utf-8")
    if merchant_config:
        (tmp_path / "conftest.py").write_text(MERCHANT_CONFTEST, encoding="utf-8")
    plugins = [arg for name in order for arg in ("-p", name)]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins, "-p", "no:cacheprovider",
         "--record-mode=rewrite", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    cassette = tmp_path / "cassettes" / "test_order" / "test_order.yaml"
    text = cassette.read_text(encoding="utf-8")
    assert "univapay/charges" in text
    assert cassette_secrets(text, [*sandbox_secrets(sandbox), *PERSONAL]) == []
