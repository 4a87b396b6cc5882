"""Through `paygate.Gateway` against the sandbox, playing each reading of what Pokepay
documents loosely: campaign points on a payment, expired envelopes, and request ids that
are purged after a period Pokepay does not state (or kept)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paygate import (
    ChargeStatus,
    Money,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    Wallet,
)
from paygate.testing import DRIVERS
from paygate_pokepay import SANDBOX

FUNDED = SANDBOX.customers["funded"][0]


@pytest.fixture(params=DRIVERS)
def gw(request: pytest.FixtureRequest, make_gateway: Callable[..., Any]) -> Any:
    return make_gateway(driver=request.param)


def pay(gw: Any, amount: int = 1200, key: str | None = None) -> Any:
    return gw.charge(
        "pokepay",
        amount=Money.jpy(amount),
        method=Wallet(customer_id=FUNDED),
        idempotency_key=key or f"fid-{uuid.uuid4()}",
    )


def payments(sandbox: Any) -> list[Any]:
    return [e for e in sandbox.ledger()["pokepay"] if e.kind == "payment"]


@pytest.mark.parametrize("campaign", [{"percent": 5}, {"points": 50}], ids=["percent", "fixed"])
def test_campaign_points_do_not_fail_a_paid_charge(gw: Any, sandbox: Any, campaign: Any) -> None:
    sandbox.control("pokepay", "set_campaign", **campaign)
    charge = pay(gw, 1200, key="campaign-1")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1200)
    assert charge.raw["campaign_point_amount"] > 0
    assert charge.raw["amount"] < 1200  # Pokepay's amount is net of the campaign
    # The key replays the same charge (no idempotency conflict).
    assert pay(gw, 1200, key="campaign-1").id == charge.id
    refund = gw.refund("pokepay", charge.id, idempotency_key="campaign-r1")
    assert refund.amount == Money.jpy(1200)  # refund-campaign is not money returned
    types = [t["type"] for t in refund.raw["transfers"]]
    assert "refund-payment" in types
    assert "refund-campaign" in types
    status = gw.status("pokepay", charge.id)
    assert status.status is ChargeStatus.REFUNDED
    assert status.amount_refunded == Money.jpy(1200)
    assert len(payments(sandbox)) == 1


def test_an_expired_envelope_is_rebuilt_once(gw: Any, sandbox: Any) -> None:
    sandbox.control("pokepay", "set_envelope", expire_next=1)
    assert pay(gw, 300).status is ChargeStatus.SUCCEEDED
    assert len(payments(sandbox)) == 1


def test_an_envelope_expired_twice_releases_the_key(gw: Any, sandbox: Any) -> None:
    sandbox.control("pokepay", "set_envelope", expire_next=2)
    with pytest.raises(ProviderRejected) as info:
        pay(gw, 300, key="expired-twice")
    assert info.value.provider_code == "partner_request_expired"
    assert payments(sandbox) == []
    # Nothing happened and nothing is stored: the same key reaches Pokepay again.
    assert pay(gw, 300, key="expired-twice").status is ChargeStatus.SUCCEEDED
    assert len(payments(sandbox)) == 1


def _lose_the_payment(gw: Any, sandbox: Any, key: str) -> None:
    """The payment is made, its answer lost and the lookup fails: the key stays unknown."""
    sandbox.fault("pokepay", "drop_after_commit", path="^/transactions/payment$")
    sandbox.fault("pokepay", "status", path="^/transactions/requests/", status=503, count=50)
    with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
        pay(gw, 900, key=key)
    sandbox.clear_faults()
    assert len(payments(sandbox)) == 1


def test_recovery_after_the_request_id_was_purged_never_pays_twice(gw: Any, sandbox: Any) -> None:
    # Reading 1: Pokepay has deleted the request id by the time paygate recovers.
    sandbox.control("pokepay", "set_request_id_retention", seconds=3600)
    _lose_the_payment(gw, sandbox, "purged")
    sandbox.advance(timedelta(hours=2))
    with pytest.raises(OutcomeUnknown):
        pay(gw, 900, key="purged")
    assert len(payments(sandbox)) == 1  # not re-sent blind


def test_recovery_while_the_request_id_is_kept_finds_the_payment(gw: Any, sandbox: Any) -> None:
    # Reading 2: the request id is still known: the lookup finds the payment.
    sandbox.control("pokepay", "set_request_id_retention", seconds=None)
    _lose_the_payment(gw, sandbox, "kept")
    sandbox.advance(timedelta(days=30))
    charge = pay(gw, 900, key="kept")
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(900)
    assert len(payments(sandbox)) == 1


@pytest.mark.parametrize("v4_only", [True, False], ids=["v4-enforced", "any-uuid"])
def test_payments_pass_whether_or_not_the_v4_form_is_enforced(
    gw: Any, sandbox: Any, v4_only: bool
) -> None:
    sandbox.control("pokepay", "set_request_id_check", v4_only=v4_only)
    assert pay(gw, 400).status is ChargeStatus.SUCCEEDED
    assert len(payments(sandbox)) == 1


def test_a_lost_cashtray_is_replaced_on_recovery(gw: Any, sandbox: Any) -> None:
    from paygate import QRCode

    sandbox.fault("pokepay", "drop_after_commit", path="^/cashtrays$", count=5)
    with pytest.raises((OutcomeUnknown, ProviderUnavailable)):
        gw.charge("pokepay", amount=Money.jpy(700), method=QRCode(), idempotency_key="lost-qr")
    sandbox.clear_faults()
    charge = gw.charge("pokepay", amount=Money.jpy(700), method=QRCode(), idempotency_key="lost-qr")
    assert charge.status is ChargeStatus.REQUIRES_ACTION
    assert charge.next_action is not None
