"""The same QR checkout code on elepay EasyQR and on Pokepay Cashtray: which one serves the
"qr" account is configuration only (runs on the live sandbox)."""

from __future__ import annotations

from typing import Any

import pytest
import shop

from paygate import Gateway, RetryPolicy


def customer_scans(sandbox: Any, provider: str, gw: Gateway, charge_id: str, url: str) -> None:
    """The customer's phone (the only provider-aware part: it plays the customer)."""
    if provider == "elepay":
        code = gw.status("qr", charge_id).provider_ref.partition(":")[2]
        sandbox.control("elepay", "pay_code", code_id=code, payment_method="paypay")
    else:
        sandbox.control("pokepay", "scan_cashtray", token=url)


@pytest.mark.parametrize("provider", ["elepay", "pokepay"])
def test_same_checkout_code_on_either_qr_provider(sandbox: Any, provider: str) -> None:
    config = {
        "store": "memory://",
        "accounts": {"qr": {**sandbox.account_settings(provider), "methods": ["qr"]}},
    }
    with Gateway.from_config(config, retry=RetryPolicy.no_wait()) as gw:
        charge_id, url = shop.start_qr_checkout(gw, "2001", 1200)
        assert shop.start_qr_checkout(gw, "2001", 1200) == (charge_id, url)
        # The order's metadata is there whether the provider carries it (elepay) or
        # paygate keeps it (Pokepay's Cashtray has no metadata field).
        assert gw.status("qr", charge_id).metadata == {"order_id": "2001"}
        assert not shop.is_paid(gw, "qr", charge_id)
        customer_scans(sandbox, provider, gw, charge_id, url)
        assert shop.is_paid(gw, "qr", charge_id)
        assert gw.provider("qr").name == provider
