"""Cassette tests: every flow (and its failures) replayed from ``cassettes/pokepay/`` with
the network blocked, on both drivers.

Replay (the default) needs nothing running. To re-record from the local sandbox::

    uv run pytest providers/pokepay/tests/test_cassettes.py --record-mode=rewrite

To re-record against Pokepay's own sandbox, also set ``PAYGATE_POKEPAY_CLIENT_ID``,
``PAYGATE_POKEPAY_CLIENT_SECRET``, ``PAYGATE_POKEPAY_SHOP_ID``,
``PAYGATE_POKEPAY_PRIVATE_MONEY_ID``, ``PAYGATE_POKEPAY_SSL_CERT_FILE``,
``PAYGATE_POKEPAY_SSL_KEY_FILE`` (and ``PAYGATE_POKEPAY_SSL_KEY_PASSWORD``,
``PAYGATE_POKEPAY_BASE_URL`` when needed) and ``PAYGATE_POKEPAY_CUSTOMER_ID`` (a funded
test customer); flows that need the emulator's control API (a customer's scan) are
skipped there. See docs/providers/pokepay.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    AuthenticationError,
    ChargeStatus,
    Gateway,
    Money,
    PaymentDeclined,
    QRCode,
    RefundStatus,
    Wallet,
)
from paygate._retry import RetryPolicy
from paygate.sandbox import SandboxClient
from paygate.testing import DRIVERS, Gateways, cassette_secrets
from paygate_pokepay import SANDBOX
from paygate_pokepay.testing import cassette_config

CASSETTES = Path(__file__).resolve().parents[3] / "cassettes" / "pokepay"
REPLAY_SANDBOX = "http://127.0.0.1:8765"
ENV = "PAYGATE_POKEPAY_"
FUNDED = SANDBOX.customers["funded"][0]
LOW = SANDBOX.customers["low_balance"][0]

pytestmark = [pytest.mark.vcr, pytest.mark.block_network]

# Decided before the cassette fixture runs, so a skipped flow keeps its cassette.
sandbox_only = pytest.mark.skipif(
    "config.getoption('--record-mode') not in (None, 'none')"
    " and bool(os.environ.get('PAYGATE_POKEPAY_CLIENT_SECRET'))",
    reason="recorded from the sandbox only (needs its control API or seed customers)",
)


def _real_account() -> dict[str, Any] | None:
    if not os.environ.get(ENV + "CLIENT_SECRET"):
        return None
    keys = ("base_url", "client_id", "client_secret", "shop_id", "private_money_id")
    table = {"provider": "pokepay", **{k: os.environ.get(ENV + k.upper(), "") for k in keys}}
    table["base_url"] = table["base_url"] or "https://partnerapi-sandbox.pokepay.jp"
    for key in ("ssl_cert_file", "ssl_key_file", "ssl_key_password"):
        if os.environ.get(ENV + key.upper()):
            table[key] = os.environ[ENV + key.upper()]
    return table


class Target:
    """Where a cassette test talks to: the replayed sandbox, the live one, or Pokepay."""

    def __init__(
        self, account: dict[str, Any], control: SandboxClient | None, customer: str
    ) -> None:
        self.account = account
        self.control_client = control
        self.customer = customer

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        if self.control_client is None:
            pytest.skip("needs the sandbox control API (a customer's action)")
        return self.control_client.control("pokepay", action, **params)


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture
def vcr_config(record_mode: str) -> dict[str, Any]:
    real = _real_account() if record_mode != "none" else None
    return cassette_config(recording_secret=real["client_secret"] if real else None)


@pytest.fixture(scope="module")
def live_sandbox(request: pytest.FixtureRequest, record_mode: str) -> Any:
    """The running sandbox when recording from it (started before any cassette opens)."""
    if record_mode == "none" or _real_account() is not None:
        return None
    return request.getfixturevalue("paygate_sandbox")


@pytest.fixture(autouse=True, scope="module")
def _start_before_cassettes(live_sandbox: Any) -> None:
    """Module scope: set up before the function-scoped cassette, so not recorded."""


@pytest.fixture
def target(record_mode: str, live_sandbox: Any) -> Iterator[Target]:
    if record_mode == "none":
        table = {
            "provider": "pokepay",
            "base_url": f"{REPLAY_SANDBOX}/pokepay",
            "client_id": SANDBOX.client_id,
            "client_secret": SANDBOX.client_secret,
            "shop_id": SANDBOX.shop_id,
            "private_money_id": SANDBOX.private_money_id,
        }
        with SandboxClient(REPLAY_SANDBOX) as client:
            yield Target(table, client, FUNDED)
        return
    real = _real_account()
    if real is not None:
        yield Target(real, None, os.environ[ENV + "CUSTOMER_ID"])
        return
    # Read in-process, so the account lookup is not recorded into the cassette.
    account = live_sandbox.host.emulator("pokepay").account_settings()
    yield Target(account, live_sandbox, FUNDED)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A cassette is recorded once (blocking driver); both drivers replay it.
    if "gw" in metafunc.fixturenames:
        recording = (metafunc.config.getoption("--record-mode") or "none") != "none"
        metafunc.parametrize("gw", ["sync"] if recording else list(DRIVERS), indirect=True)


@pytest.fixture
def gw(request: pytest.FixtureRequest, target: Target) -> Iterator[Any]:
    config = {"store": "memory://", "accounts": {"pokepay": target.account}}
    with Gateways(request.param, retry=RetryPolicy.no_wait()) as gateways:
        yield gateways(config)


def wallet(
    target: Target, amount: int, key: str, customer: str | None = None
) -> Callable[[Any], Any]:
    return lambda gw: gw.charge(
        "pokepay",
        amount=Money.jpy(amount),
        method=Wallet(customer_id=customer or target.customer),
        idempotency_key=key,
        metadata={"order": key},
    )


def qr(gw: Any, key: str, amount: int = 1500) -> Any:
    return gw.charge(
        "pokepay",
        amount=Money.jpy(amount),
        method=QRCode(expires_in=timedelta(minutes=10)),
        idempotency_key=key,
        description="cassette",
    )


@pytest.mark.default_cassette("wallet_charge")
def test_wallet_charge(gw: Any, target: Target) -> None:
    charge = wallet(target, 1200, "cassette-wallet-charge")(gw)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1200)
    # The same key replays from the store: no second request (the cassette has one).
    assert wallet(target, 1200, "cassette-wallet-charge")(gw).id == charge.id


@sandbox_only
@pytest.mark.default_cassette("wallet_charge_declined")
def test_wallet_charge_declined(gw: Any, target: Target) -> None:
    with pytest.raises(PaymentDeclined) as info:
        wallet(target, 5000, "cassette-wallet-declined", customer=LOW)(gw)
    assert info.value.provider_code == "account_balance_not_enough"
    assert info.value.http_status == 422


@sandbox_only
@pytest.mark.default_cassette("wallet_campaign_refund")
def test_wallet_campaign_points_and_refund(gw: Any, target: Target) -> None:
    # A point-back campaign: Pokepay's amount is net of the campaign points, the charge
    # is the amount asked; the refund's refund-campaign transfer is not money returned.
    target.control("set_campaign", points=50)
    try:
        charge = wallet(target, 1200, "cassette-wallet-campaign")(gw)
        assert charge.status is ChargeStatus.SUCCEEDED
        assert charge.amount == Money.jpy(1200)
        assert (charge.raw["amount"], charge.raw["campaign_point_amount"]) == (1150, 50)
        refund = gw.refund("pokepay", charge.id, idempotency_key="cassette-campaign-refund")
        assert refund.amount == Money.jpy(1200)
    finally:
        target.control("set_campaign")


@pytest.mark.default_cassette("wallet_status")
def test_wallet_status(gw: Any, target: Target) -> None:
    charge = wallet(target, 800, "cassette-wallet-status")(gw)
    fresh = gw.status("pokepay", charge.id)
    assert fresh.status is ChargeStatus.SUCCEEDED
    assert fresh.provider_ref == charge.provider_ref


@pytest.mark.default_cassette("wallet_refund")
def test_wallet_refund(gw: Any, target: Target) -> None:
    charge = wallet(target, 600, "cassette-wallet-refund")(gw)
    refund = gw.refund(
        "pokepay", charge.id, idempotency_key="cassette-wallet-refund-r", reason="返品"
    )
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.jpy(600)
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REFUNDED


@pytest.mark.default_cassette("qr_charge")
def test_qr_charge(gw: Any) -> None:
    charge = qr(gw, "cassette-qr-charge")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.next_action is not None
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REQUIRES_ACTION


@sandbox_only
@pytest.mark.default_cassette("qr_paid")
def test_qr_paid(gw: Any, target: Target) -> None:
    charge = qr(gw, "cassette-qr-paid")
    target.control("scan_cashtray", token=charge.next_action.url)
    paid = gw.status("pokepay", charge.id)
    assert paid.status is ChargeStatus.SUCCEEDED
    assert "/transaction:" in paid.provider_ref


@sandbox_only
@pytest.mark.default_cassette("qr_scan_failed")
def test_qr_scan_failed(gw: Any, target: Target) -> None:
    charge = qr(gw, "cassette-qr-failed")
    target.control(
        "scan_cashtray", token=charge.next_action.url, error="account_balance_not_enough"
    )
    failed = gw.status("pokepay", charge.id)
    assert failed.status is ChargeStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "account_balance_not_enough"


@pytest.mark.default_cassette("qr_cancel")
def test_qr_cancel(gw: Any) -> None:
    charge = qr(gw, "cassette-qr-cancel")
    assert gw.cancel("pokepay", charge.id).status is ChargeStatus.CANCELED


@sandbox_only
@pytest.mark.default_cassette("qr_refund")
def test_qr_refund(gw: Any, target: Target) -> None:
    charge = qr(gw, "cassette-qr-refund", amount=700)
    target.control("scan_cashtray", token=charge.next_action.url)
    refund = gw.refund("pokepay", charge.id, idempotency_key="cassette-qr-refund-r")
    assert refund.amount == Money.jpy(700)
    assert gw.status("pokepay", charge.id).status is ChargeStatus.REFUNDED


@pytest.mark.default_cassette("payout_balance")
def test_payout_balance(gw: Any) -> None:
    balance = gw.payout_balance("pokepay")
    assert balance.account == "pokepay"
    assert {item.kind for item in balance.items} >= {"money", "point"}


@sandbox_only
@pytest.mark.default_cassette("authentication_error")
def test_authentication_error(target: Target) -> None:
    account = dict(target.account, client_id="00000000-0000-4000-8000-000000000000")
    with Gateway.from_config({"store": "memory://", "accounts": {"pokepay": account}}) as gw:
        with pytest.raises(AuthenticationError) as info:
            wallet(target, 100, "cassette-auth")(gw)
    assert info.value.provider_code == "partner_client_not_found"


def test_cassettes_hold_no_secrets() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes recorded"
    secrets = [SANDBOX.client_secret]
    real = _real_account()
    if real is not None:
        secrets += [real["client_secret"], real.get("ssl_key_password", "")]
    for path in files:
        assert cassette_secrets(path.read_text(encoding="utf-8"), secrets) == [], path.name
