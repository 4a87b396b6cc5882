"""Cassette tests: every PAY.JP flow replayed from ``cassettes/payjp/<flow>.yaml`` with the
network blocked, on both drivers.

Replaying needs nothing but the cassettes. Recording (``--record-mode=rewrite``) talks to
the local sandbox by default, or to PAY.JP's own test mode when
``PAYGATE_PAYJP_SECRET_KEY`` is set (see docs/providers/payjp.md). Flows that need an
operator's hand (a closing run, the customer's 3-D Secure step, an injected fault) are
recorded from the sandbox only. Control-API calls to the sandbox are never written to a
cassette, and the ``Authorization`` header is scrubbed at record time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from paygate import (
    AuthenticationError,
    Card,
    ChargeStatus,
    Gateway,
    Money,
    PaymentDeclined,
    PayoutBalance,
    ProviderRejected,
    RateLimited,
    Redirect,
    RetryPolicy,
)
from paygate._redact import register_secret
from paygate.testing import DRIVERS, Gateways, cassette_secrets
from paygate.testing import vcr_config as paygate_vcr_config
from paygate_payjp import PayjpProvider, PayjpSettings, Statement, StatementUrl
from paygate_payjp._emulator import PUBLIC_KEY, SECRET_KEY, WEBHOOK_TOKEN

CASSETTES = Path(__file__).resolve().parents[3] / "cassettes" / "payjp"
# Replays never open a socket; any host will do.
REPLAY_URL = "http://127.0.0.1:9/payjp"

pytestmark = pytest.mark.block_network

# Evaluated before any fixture runs, so a skipped flow's cassette is never opened (and
# never emptied by ``--record-mode=rewrite``) while recording against PAY.JP.
sandbox_only = pytest.mark.skipif(
    "config.getoption('--record-mode') not in (None, 'none')"
    " and bool(os.environ.get('PAYGATE_PAYJP_SECRET_KEY'))",
    reason="needs the sandbox's control API; kept as recorded from the sandbox",
)


def _recording(config: pytest.Config) -> bool:
    return (config.getoption("--record-mode") or "none") != "none"


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    # Both drivers replay the same cassette: the wire traffic is the same.
    return request.node.originalname.removeprefix("test_")


@pytest.fixture
def vcr_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = paygate_vcr_config()
    scrub = config["before_record_request"]

    def before_record_request(req: Any) -> Any:
        # The sandbox's control API is the test's own hand, not PAY.JP traffic.
        if urlsplit(req.uri).path.startswith("/_sandbox/"):
            return None
        return scrub(req)

    config["before_record_request"] = before_record_request
    if _recording(request.config):
        # paygate's settings pin replay; an explicit --record-mode must win.
        config.pop("record_mode", None)
    return config


@dataclass
class Target:
    """Where the flows run: a cassette, the sandbox (recording) or PAY.JP (recording)."""

    settings: dict[str, Any]
    customer: str = "cus_success"
    declined_customer: str = "cus_card_declined"
    sandbox: Any = None
    real: bool = False
    secrets: list[str] = field(default_factory=list)

    def operator(self, action: str, **params: Any) -> None:
        """A sandbox control action (only while recording from the sandbox)."""
        if self.sandbox is not None:
            self.sandbox.control("payjp", action, **params)


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    if not _recording(request.config):
        return Target(
            settings={
                "base_url": REPLAY_URL,
                "secret_key": SECRET_KEY,
                "public_key": PUBLIC_KEY,
                "webhook_token": WEBHOOK_TOKEN,
            }
        )
    key = os.environ.get("PAYGATE_PAYJP_SECRET_KEY")
    if key:
        if not key.startswith("sk_test_"):
            pytest.fail("record against PAY.JP only with a test-mode key (sk_test_...)")
        customer = os.environ["PAYGATE_PAYJP_CUSTOMER"]
        declined = os.environ["PAYGATE_PAYJP_DECLINED_CUSTOMER"]
        for value in (key, customer, declined):
            register_secret(value)
        return Target(
            settings={
                "base_url": os.environ.get("PAYGATE_PAYJP_BASE_URL", "https://api.pay.jp"),
                "secret_key": key,
                "public_key": os.environ.get("PAYGATE_PAYJP_PUBLIC_KEY"),
            },
            customer=customer,
            declined_customer=declined,
            real=True,
            secrets=[key, customer, declined],
        )
    sandbox = request.getfixturevalue("sandbox")
    settings = dict(sandbox.accounts()["payjp"])
    settings.pop("provider", None)
    return Target(settings=settings, sandbox=sandbox)


def recorded_at(name: str) -> datetime | None:
    """When a cassette was recorded (its first answer's ``Date`` header)."""
    path = CASSETTES / f"{name}.yaml"
    if not path.is_file():
        return None
    found = re.search(r"\n\s+date:\n\s+- (.+)\n", path.read_text(encoding="utf-8"))
    return parsedate_to_datetime(found.group(1)).astimezone(UTC) if found else None


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, target: Target, default_cassette_name: str) -> Iterator[Any]:
    provider = PayjpProvider(PayjpSettings(**target.settings), account="card")
    # A replay runs at the recording's time: statuses that depend on time (an
    # authorisation's expired_at, a 3-D Secure flow's timeout) read as they did then.
    at = None if _recording(request.config) else recorded_at(default_cassette_name)
    clock: dict[str, Any] = {"clock": (lambda: at)} if at is not None else {}
    with Gateways(request.param, retry=RetryPolicy.no_wait(), **clock) as gateways:
        yield gateways(providers={"card": provider})
    if target.secrets and CASSETTES.is_dir():
        for path in CASSETTES.glob("*.yaml"):
            assert cassette_secrets(path.read_text(), target.secrets) == [], path


@pytest.fixture(autouse=True)
def _every_interaction_replayed(request: pytest.FixtureRequest, vcr: Any) -> Iterator[None]:
    yield
    if vcr is not None and not _recording(request.config):
        assert vcr.all_played, "the flow made fewer calls than the cassette holds"


def test_cassettes_hold_no_secrets() -> None:
    paths = sorted(CASSETTES.glob("*.yaml"))
    assert paths
    for path in paths:
        assert cassette_secrets(path.read_text(), [SECRET_KEY, WEBHOOK_TOKEN]) == [], path


def card(target: Target, *, capture: bool = True) -> Card:
    return Card(customer=target.customer, capture=capture)


@pytest.mark.vcr
def test_charge_succeeds(gw: Any, target: Target) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=card(target), idempotency_key="cassette-1"
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.provider_ref.startswith("ch_")
    assert gw.status("card", charge.id).status is ChargeStatus.SUCCEEDED


@pytest.mark.vcr
def test_charge_declined(gw: Any, target: Target) -> None:
    method = Card(customer=target.declined_customer)
    with pytest.raises(PaymentDeclined) as info:
        gw.charge("card", amount=Money.jpy(1200), method=method, idempotency_key="cassette-2")
    assert info.value.provider_code == "card_declined"
    assert info.value.http_status == 402


@sandbox_only
@pytest.mark.vcr
def test_processing_error(gw: Any, target: Target) -> None:
    with pytest.raises(PaymentDeclined) as info:
        gw.charge(
            "card",
            amount=Money.jpy(1200),
            method=Card(token="tok_processing_error"),
            idempotency_key="cassette-3",
        )
    assert info.value.provider_code == "processing_error"


@pytest.mark.vcr
def test_authorize_then_partial_capture(gw: Any, target: Target) -> None:
    auth = gw.charge(
        "card",
        amount=Money.jpy(5000),
        method=card(target, capture=False),
        idempotency_key="cassette-4",
    )
    assert auth.status is ChargeStatus.AUTHORIZED
    captured = gw.capture("card", auth.id, amount=Money.jpy(3000), idempotency_key="cap-4")
    assert captured.status is ChargeStatus.SUCCEEDED
    assert captured.amount_captured == Money.jpy(3000)
    # The released 2,000 (booked in PAY.JP's amount_refunded) is not a refund.
    assert captured.amount_refunded == Money.jpy(0)
    rest = gw.refund("card", auth.id, idempotency_key="r-4")
    assert rest.amount == Money.jpy(3000)
    final = gw.status("card", auth.id)
    assert final.status is ChargeStatus.REFUNDED
    assert final.amount_refunded == Money.jpy(3000)


@pytest.mark.vcr
def test_capture_of_a_captured_charge_is_rejected(gw: Any, target: Target) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(1200), method=card(target), idempotency_key="cassette-5"
    )
    with pytest.raises(ProviderRejected) as info:
        gw.capture("card", charge.id, idempotency_key="cap-5")
    assert info.value.provider_code == "already_captured"


@pytest.mark.vcr
def test_partial_refund_then_the_rest(gw: Any, target: Target) -> None:
    charge = gw.charge(
        "card", amount=Money.jpy(2000), method=card(target), idempotency_key="cassette-6"
    )
    first = gw.refund(
        "card", charge.id, amount=Money.jpy(500), reason="damaged", idempotency_key="r-6a"
    )
    assert first.amount == Money.jpy(500)
    # refunded=true after a partial refund: still partially refunded, the rest open.
    partial = gw.status("card", charge.id)
    assert partial.status is ChargeStatus.PARTIALLY_REFUNDED
    assert partial.raw["refunded"] is True
    assert partial.amount_refunded == Money.jpy(500)
    rest = gw.refund("card", charge.id, idempotency_key="r-6b")
    assert rest.amount == Money.jpy(1500)
    assert gw.status("card", charge.id).status is ChargeStatus.REFUNDED


@pytest.mark.vcr
def test_cancel_voids_an_authorisation(gw: Any, target: Target) -> None:
    auth = gw.charge(
        "card",
        amount=Money.jpy(3000),
        method=card(target, capture=False),
        idempotency_key="cassette-7",
    )
    canceled = gw.cancel("card", auth.id, idempotency_key="cancel-7")
    assert canceled.status is ChargeStatus.CANCELED


@sandbox_only
@pytest.mark.vcr
def test_three_d_secure(gw: Any, target: Target) -> None:
    charge = gw.charge(
        "card",
        amount=Money.jpy(3000),
        method=Card(token="tok_success", three_d_secure=True),
        idempotency_key="cassette-8",
    )
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert isinstance(charge.next_action, Redirect)
    target.operator("tds", charge=charge.provider_ref, result="verified")
    assert gw.status("card", charge.id).status is ChargeStatus.SUCCEEDED


@sandbox_only
@pytest.mark.vcr
def test_three_d_secure_declined_at_finish(gw: Any, target: Target) -> None:
    charge = gw.charge(
        "card",
        amount=Money.jpy(3000),
        method=Card(token="tok_card_declined", three_d_secure=True),
        idempotency_key="cassette-12",
    )
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    target.operator("tds", charge=charge.provider_ref, result="verified")
    failed = gw.status("card", charge.id)
    assert failed.status is ChargeStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "card_declined"


@pytest.mark.vcr
def test_authentication_failure(gw: Any, target: Target) -> None:
    wrong = PayjpProvider(
        PayjpSettings(**{**target.settings, "secret_key": "sk_test_not_a_real_key_000"}),
        account="card",
    )
    bad = Gateway({"card": wrong}, retry=RetryPolicy.no_wait())
    try:
        with pytest.raises(AuthenticationError) as info:
            bad.charge(
                "card", amount=Money.jpy(1200), method=card(target), idempotency_key="cassette-9"
            )
    finally:
        bad.close()
    assert info.value.provider_code == "invalid_api_key"


@sandbox_only
@pytest.mark.vcr
def test_rate_limited(gw: Any, target: Target) -> None:
    if target.sandbox is not None:
        target.sandbox.fault("payjp", "rate_limit", path="^/v1/charges$", count=10)
    with pytest.raises(RateLimited) as info:
        gw.charge(
            "card", amount=Money.jpy(1200), method=card(target), idempotency_key="cassette-10"
        )
    assert info.value.provider_code == "over_capacity"


@pytest.mark.vcr
def test_payout_balance(gw: Any, target: Target) -> None:
    balance = gw.payout_balance("card")
    assert isinstance(balance, PayoutBalance)
    assert balance.currency == "JPY"
    statements = gw.extension("card", "payout_statements", max_items=5)
    assert all(isinstance(st, Statement) for st in statements)


@sandbox_only
@pytest.mark.vcr
def test_payout_after_a_closing_run(gw: Any, target: Target) -> None:
    gw.charge("card", amount=Money.jpy(15_000), method=card(target), idempotency_key="cassette-11")
    target.operator("close_term")
    balance = gw.payout_balance("card")
    assert balance.scheduled == Money.jpy(15_000 - 450 - 250)
    assert balance.next_payout_date is not None
    (statement,) = gw.extension("card", "payout_statements", type="sales")
    assert statement.net == Money.jpy(15_000 - 450)
    link = gw.extension("card", "statement_urls", balance_id=statement.balance_id)
    assert isinstance(link, StatementUrl)
