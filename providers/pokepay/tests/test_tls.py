"""Mutual TLS end to end: the sandbox serves https with certificates made for the run and
checks the client certificate, as Pokepay's hosts do (every official SDK sends
``SSL_CERT_FILE`` / ``SSL_KEY_FILE``)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate import ChargeStatus, Gateway, Money, PaygateError, Wallet
from paygate._retry import RetryPolicy
from paygate.sandbox import Sandbox, running
from paygate_pokepay import SANDBOX

FUNDED = SANDBOX.customers["funded"][0]


@pytest.fixture(scope="module")
def mtls_sandbox() -> Iterator[Sandbox]:
    with running(providers=["pokepay"], client_cert=True) as sandbox:
        yield sandbox


def gateway(table: dict[str, Any]) -> Gateway:
    return Gateway.from_config(
        {"store": "memory://", "accounts": {"pokepay": table}},
        retry=RetryPolicy.no_wait(attempts=1),
    )


def pay(gw: Gateway, key: str) -> Any:
    return gw.charge(
        "pokepay", amount=Money.jpy(500), method=Wallet(customer_id=FUNDED), idempotency_key=key
    )


def test_the_sandbox_serves_https_and_requires_a_client_certificate(
    mtls_sandbox: Sandbox,
) -> None:
    tls = mtls_sandbox.tls
    assert tls is not None
    assert tls.client_cert_required
    assert mtls_sandbox.url.startswith("https://127.0.0.1:")
    table = mtls_sandbox.account_settings("pokepay")
    assert table["base_url"].startswith("https://")
    assert table["ca_bundle"] == str(tls.ca_file)
    # Without a client certificate the handshake (or the first read) fails.
    with (
        httpx.Client(verify=tls.client_context(with_cert=False), trust_env=False) as client,
        pytest.raises((httpx.HTTPError, ssl.SSLError)),
    ):
        client.get(mtls_sandbox.url + "/_sandbox/health")


def test_a_wallet_payment_over_mutual_tls(mtls_sandbox: Sandbox) -> None:
    tls = mtls_sandbox.tls
    assert tls is not None
    table = mtls_sandbox.account_settings("pokepay") | {
        "ssl_cert_file": str(tls.client_cert_file),
        "ssl_key_file": str(tls.client_key_file),
    }
    with gateway(table) as gw:
        charge = pay(gw, "mtls-1")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(500)


def test_without_the_client_certificate_nothing_is_paid(mtls_sandbox: Sandbox) -> None:
    before = len(mtls_sandbox.ledger()["pokepay"])
    with gateway(mtls_sandbox.account_settings("pokepay")) as gw, pytest.raises(PaygateError):
        pay(gw, "mtls-no-cert")
    assert len(mtls_sandbox.ledger()["pokepay"]) == before


def test_plain_tls_without_client_certificates() -> None:
    with running(providers=["pokepay"], tls=True) as sandbox:
        assert sandbox.tls is not None
        assert not sandbox.tls.client_cert_required
        with gateway(sandbox.account_settings("pokepay")) as gw:
            assert pay(gw, "tls-1").status is ChargeStatus.SUCCEEDED
