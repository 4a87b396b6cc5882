"""examples/qr_checkout.py runs unchanged on elepay EasyQR and on Pokepay Cashtray."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from paygate import Gateway, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("qr_checkout", ROOT / "examples" / "qr_checkout.py")
assert spec is not None
assert spec.loader is not None
qr_checkout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qr_checkout)


def customer_scans(sandbox: Any, provider: str, url: str) -> None:
    """The customer's phone: scan the QR and pay (the only provider-aware part)."""
    if provider == "elepay":
        sandbox.control(
            "elepay",
            "pay_code",
            code_id=url.rstrip("/").rsplit("/", 1)[-1],
            payment_method="paypay",
        )
    else:
        sandbox.control("pokepay", "scan_cashtray", token=url)


@pytest.mark.parametrize("provider", ["elepay", "pokepay"])
def test_same_merchant_code_on_either_provider(sandbox: Any, provider: str) -> None:
    config = {
        "store": "memory://",
        "accounts": {"qr": {**sandbox.account_settings(provider), "methods": ["qr"]}},
    }
    with Gateway.from_config(config, retry=RetryPolicy.no_wait()) as gw:
        charge_id, url = qr_checkout.start_qr_checkout(gw, "1042", 1200)
        assert qr_checkout.start_qr_checkout(gw, "1042", 1200) == (charge_id, url)
        assert not qr_checkout.is_paid(gw, charge_id)
        assert gw.status("qr", charge_id).metadata == {"order_id": "1042"}
        customer_scans(sandbox, provider, url)
        assert qr_checkout.is_paid(gw, charge_id)
        assert gw.provider("qr").name == provider
