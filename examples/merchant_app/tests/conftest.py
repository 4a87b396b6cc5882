"""The shop's own cassette settings. They name one more header to hide; paygate's
scrubbing, matching and leak check stay in force (merged, not replaced)."""

from __future__ import annotations

from typing import Any

import pytest
from shop import Customer

CUSTOMER = Customer(name="テスト 太郎", phone="0364413400", email="taro@example.com")


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {"filter_headers": [("x-shop-session", "[hidden]")]}


@pytest.fixture
def customer() -> Customer:
    return CUSTOMER
