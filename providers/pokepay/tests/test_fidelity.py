"""What the Partner API's own documents say, held against the adapter (no sockets).

Campaign points net out of a payment's ``amount``; a refund cancels campaign points and
coupons beside the payment; ``request_id`` is a UUID v4; ``partner_request_expired``
refuses an envelope before anything is done; request ids are purged after a period
Pokepay does not state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from paygate import (
    ChargeStatus,
    IdempotencyConflict,
    Money,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
    Wallet,
)
from paygate.adapter import (
    ChargeRef,
    ChargeRequest,
    OpContext,
    Outcome,
    RefundRequest,
    drive,
)
from paygate_pokepay import SANDBOX, PokepayProvider

CUSTOMER = SANDBOX.customers["funded"][0]
OTHER = SANDBOX.customers["low_balance"][0]
TXN = "9b7e3f0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
Ctx = Callable[..., OpContext]


def campaign_payment(
    *,
    money: int = 1000,
    raw_points: int | None = 200,
    campaign: int = 50,
    refunded: bool = False,
    customer: str = CUSTOMER,
) -> dict[str, Any]:
    """A payment of 1,200 (1,000 money + 200 points) that earned 50 campaign points.

    TransactionDetail (partner.yaml): ``amount`` = money + points, where for a payment
    ``point_amount = raw_point_amount - campaign_point_amount``.
    """
    raw = 200 if raw_points is None else raw_points
    point_amount = raw - campaign
    transfers: list[dict[str, Any]] = [
        {"id": "t1", "type": "payment", "amount": money + raw, "money_amount": money,
         "point_amount": raw, "done_at": "2026-03-01T12:00:00+09:00"},
        {"id": "t2", "type": "campaign-topup", "amount": campaign, "money_amount": 0,
         "point_amount": campaign, "done_at": "2026-03-01T12:00:01+09:00"},
    ]  # fmt: skip
    if refunded:
        transfers += [
            {"id": "t3", "type": "refund-payment", "amount": money + raw, "money_amount": money,
             "point_amount": raw, "done_at": "2026-03-01T13:00:00+09:00"},
            {"id": "t4", "type": "refund-campaign", "amount": campaign, "money_amount": 0,
             "point_amount": campaign, "done_at": "2026-03-01T13:00:00+09:00"},
        ]  # fmt: skip
    body: dict[str, Any] = {
        "id": TXN,
        "type": "payment",
        "is_modified": refunded,
        "sender": {"id": customer, "name": "customer", "is_merchant": False},
        "receiver": {"id": SANDBOX.shop_id, "name": "shop", "is_merchant": True},
        "sender_account": {"id": "w1", "private_money": {"id": SANDBOX.private_money_id}},
        "amount": money + point_amount,
        "money_amount": money,
        "point_amount": point_amount,
        "campaign_point_amount": campaign,
        "done_at": "2026-03-01T12:00:00+09:00",
        "description": "",
        "transfers": transfers,
    }
    if raw_points is not None:
        body["raw_point_amount"] = raw_points
    return body


def wallet_req(amount: int = 1200, customer: str = CUSTOMER) -> ChargeRequest:
    return ChargeRequest(Money.jpy(amount), Wallet(customer_id=customer))


# ------------------------------------------------------------------ campaign points


@pytest.mark.parametrize("raw_points", [200, None], ids=["raw_point_amount", "rebuilt"])
def test_campaign_points_are_not_a_conflict(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any, raw_points: int | None
) -> None:
    body = campaign_payment(raw_points=raw_points)
    assert body["amount"] == 1150  # what Pokepay reports, net of the campaign
    fake.then(fake.sealed(200, body))
    charge = drive(provider.charge(wallet_req(1200), make_ctx()), fake)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.amount == Money.jpy(1200)  # what the merchant asked and the customer paid
    assert charge.raw["campaign_point_amount"] == 50


def test_lookup_with_campaign_points_finds_the_payment(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, campaign_payment()))
    found = drive(provider.lookup_charge(wallet_req(1200), make_ctx()), fake)
    assert found is not None
    assert found.amount == Money.jpy(1200)


def test_status_reports_the_paid_total(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, campaign_payment(refunded=True)))
    ref = ChargeRef("ch_1", f"transaction:{TXN}", "wallet", Money.jpy(1200))
    charge = drive(provider.status(ref, make_ctx()), fake)
    assert charge.status is ChargeStatus.REFUNDED
    assert charge.amount == Money.jpy(1200)
    assert charge.amount_refunded == Money.jpy(1200)


@pytest.mark.parametrize(
    ("request_amount", "customer", "what"),
    [(1500, CUSTOMER, "amount"), (1200, OTHER, "customer")],
    ids=["amount", "customer"],
)
def test_request_id_of_another_request_is_a_conflict(
    provider: PokepayProvider,
    make_ctx: Ctx,
    fake: Any,
    request_amount: int,
    customer: str,
    what: str,
) -> None:
    # Pokepay returns the transaction already made for the request_id: a different
    # request under the same key is told apart by what the merchant asked.
    fake.then(fake.sealed(200, campaign_payment()))
    with pytest.raises(IdempotencyConflict, match=what):
        drive(provider.charge(wallet_req(request_amount, customer), make_ctx()), fake)


# ------------------------------------------------------------------ refunds


def test_refund_counts_only_the_refund_payment_transfer(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(200, campaign_payment(refunded=True)))
    ref = ChargeRef("ch_1", f"transaction:{TXN}", "wallet", Money.jpy(1200))
    refund = drive(provider.refund(RefundRequest(ref), make_ctx()), fake)
    assert refund.amount == Money.jpy(1200)  # not 1,250: refund-campaign returns no money
    assert refund.charge_refunded_total == Money.jpy(1200)
    assert refund.provider_ref == "transfer:t3"


# ------------------------------------------------------------------ request_id


def test_request_id_is_a_v4_uuid(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(200, campaign_payment()))
    drive(provider.charge(wallet_req(), make_ctx()), fake)
    sent = uuid.UUID(fake.requests[0]["inner"]["request_data"]["request_id"])
    assert sent.version == 4
    assert sent.variant == uuid.RFC_4122
    # Deterministic for the key: a re-send after a crash sends the same id.
    assert sent == uuid.UUID(bytes=make_ctx().key_uuid("payment").bytes, version=4)


def test_recovery_also_finds_a_payment_sent_with_the_older_v5_id(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    ctx = make_ctx(recovering=True)
    fake.then(
        fake.sealed(422, {"type": "transaction_not_found", "message": "not found"}),
        fake.sealed(200, campaign_payment()),
    )
    found = drive(provider.lookup_charge(wallet_req(), ctx), fake)
    assert found is not None
    v4, v5 = (call.url.rsplit("/", 1)[-1] for call in fake.calls)
    assert uuid.UUID(v4).version == 4
    assert v5 == str(ctx.key_uuid("payment"))


def test_a_live_lookup_asks_once(provider: PokepayProvider, make_ctx: Ctx, fake: Any) -> None:
    fake.then(fake.sealed(422, {"type": "transaction_not_found", "message": "not found"}))
    assert drive(provider.lookup_charge(wallet_req(), make_ctx()), fake) is None
    assert len(fake.calls) == 1


def test_strategy_is_sent_when_configured(make_settings: Any, make_ctx: Ctx, fake: Any) -> None:
    provider = PokepayProvider(
        make_settings(strategy="money-only"), account="wallet", iv_source=lambda: bytes(16)
    )
    fake.then(fake.sealed(200, campaign_payment(money=1200, raw_points=0, campaign=0)))
    drive(provider.charge(wallet_req(), make_ctx()), fake)
    assert fake.requests[0]["inner"]["request_data"]["strategy"] == "money-only"


# ------------------------------------------------------------------ envelope expiry


EXPIRED = {"type": "partner_request_expired", "message": "This request is expired."}


def test_expired_envelope_is_rebuilt_and_sent_again(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any, clock: Any
) -> None:
    fake.then(fake.sealed(400, EXPIRED), fake.sealed(200, campaign_payment()))
    charge = drive(provider.charge(wallet_req(), make_ctx()), fake)
    assert charge.status is ChargeStatus.SUCCEEDED
    first, second = (r["inner"] for r in fake.requests)
    assert first["partner_call_id"] != second["partner_call_id"]  # a fresh envelope
    assert first["request_data"]["request_id"] == second["request_data"]["request_id"]
    assert fake.calls[0].content != fake.calls[1].content


def test_expired_twice_is_retryable_never_a_stored_failure(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(400, EXPIRED), fake.plain(400, EXPIRED))
    with pytest.raises(ProviderRejected) as info:
        drive(provider.charge(wallet_req(), make_ctx()), fake)
    assert info.value.provider_code == "partner_request_expired"
    assert provider.outcome_of(info.value) is Outcome.RETRYABLE
    assert len(fake.calls) == 2


def test_expired_refund_envelope_is_rebuilt(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    fake.then(fake.sealed(400, EXPIRED), fake.sealed(200, campaign_payment(refunded=True)))
    ref = ChargeRef("ch_1", f"transaction:{TXN}", "wallet", Money.jpy(1200))
    refund = drive(provider.refund(RefundRequest(ref), make_ctx()), fake)
    assert refund.amount == Money.jpy(1200)
    assert len(fake.calls) == 2


# ------------------------------------------------------------------ api_error


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, NotFound), (500, ProviderUnavailable), (503, ProviderUnavailable)],
)
def test_api_error_follows_the_http_status(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any, status: int, cls: type
) -> None:
    ref = ChargeRef("ch_1", f"transaction:{TXN}", "wallet", Money.jpy(1200))
    fake.then(fake.sealed(status, {"type": "api_error", "message": "error"}))
    with pytest.raises(cls):
        drive(provider.status(ref, make_ctx()), fake)


def test_payout_balance_for_a_partner_that_does_not_issue_the_money(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    page = {
        "rows": [],
        "count": 0,
        "pagination": {"current": 1, "per_page": 50, "max_page": 1, "has_prev": False,
                       "has_next": False},
    }  # fmt: skip
    fake.then(fake.sealed(200, page))
    with pytest.raises(NotFound, match="issued by the partner's own organization") as info:
        drive(provider.payout_balance(make_ctx()), fake)
    assert info.value.provider_code == "shop_account_not_visible"


def test_refund_of_a_stated_amount_compares_the_paid_total(
    provider: PokepayProvider, make_ctx: Ctx, fake: Any
) -> None:
    # paygate's record lacks the amount: the transaction is read, and the 1,200 paid
    # (not the campaign-net 1,150) is the whole that may be refunded.
    fake.then(
        fake.sealed(200, campaign_payment()), fake.sealed(200, campaign_payment(refunded=True))
    )
    ref = ChargeRef("ch_1", f"transaction:{TXN}", "wallet")
    refund = drive(provider.refund(RefundRequest(ref, Money.jpy(1200)), make_ctx()), fake)
    assert refund.amount == Money.jpy(1200)
