"""Pokepay's transactions, Cashtrays and wallets mapped onto paygate's objects.

Amounts: a payment transaction's ``amount`` is money plus points *net of point-back
campaign points* (``point_amount = raw_point_amount - campaign_point_amount``), so the
charge's amount is what the customer paid, ``money_amount + raw_point_amount``; the
campaign figures stay in ``raw``. A refund counts only its ``refund-payment`` transfers:
``refund-campaign`` and ``refund-coupon`` take back points, they return no money.

Status: a wallet payment is final when created (succeeded), refunded when the
transaction's ``is_modified`` is set. A Cashtray follows Pokepay's state machine: no
attempt -> canceled (``canceled_at``), expired (``expires_at`` passed) or waiting for
the scan (requires_action); an attempt with a transaction -> succeeded; an attempt
without -> failed with the attempt's ``error_type``.

``provider_ref`` is ``transaction:<id>``, ``cashtray:<id>`` or
``cashtray:<id>/transaction:<id>`` once the Cashtray is paid (`ChargeRef` parses it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from paygate import (
    Charge,
    ChargeStatus,
    DisplayQR,
    Failure,
    IdempotencyConflict,
    MalformedResponse,
    Money,
    PayoutBalance,
    PayoutItem,
    Refund,
    RefundStatus,
    Wallet,
)
from paygate.adapter import ChargeRef, ChargeRequest, OpContext, RefundRequest

from ._errors import PROVIDER
from ._validate import invalid, is_uuid
from ._wire import Answer, as_amount, as_time, field

__all__ = [
    "REFUND_TRANSFERS",
    "ParsedRef",
    "balance_from",
    "cashtray_charge",
    "checked_payment",
    "paid_amount",
    "refund_from",
    "transaction_charge",
    "wallet_of",
]

#: The transfer types that move the refunded payment (or topup) back; a refund's other
#: transfers (``refund-campaign``, ``refund-coupon``) cancel points and coupons.
REFUND_TRANSFERS = ("refund-payment", "refund-topup")

_REF = re.compile(
    r"^(?:(?P<kind>transaction|cashtray):)?(?P<id>[0-9a-fA-F-]{36})"
    r"(?:/transaction:(?P<txn>[0-9a-fA-F-]{36}))?$"
)


class ParsedRef:
    """A parsed provider_ref: ``transaction:<id>``, ``cashtray:<id>`` or
    ``cashtray:<id>/transaction:<id>`` (a bare UUID is read by the charge's method).

    >>> from paygate.adapter import ChargeRef
    >>> tray = "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b"
    >>> ParsedRef(ChargeRef("ch_1", f"cashtray:{tray}", "qr")).transaction_id is None
    True
    """

    def __init__(self, ref: ChargeRef) -> None:
        match = _REF.match(ref.provider_ref)
        if match is None or not is_uuid(match["id"]):
            raise invalid("not a Pokepay charge reference", "charge")
        kind = match["kind"] or ("cashtray" if ref.method == "qr" else "transaction")
        self.cashtray_id: str | None = match["id"] if kind == "cashtray" else None
        self.transaction_id: str | None = match["txn"] or (
            match["id"] if kind == "transaction" else None
        )


def paid_amount(data: Mapping[str, Any]) -> int:
    """What the customer paid in a payment transaction: money plus the points spent.

    ``amount`` is "money + points", but ``point_amount`` is net of the point-back
    campaign (for a payment, ``point_amount = raw_point_amount -
    campaign_point_amount``), so ``amount`` falls short of the requested total when a
    campaign gives points. ``money_amount + raw_point_amount`` is the paid total under
    every reading; without ``raw_point_amount`` it is rebuilt from ``point_amount`` and
    ``campaign_point_amount``; ``amount`` is used only when neither is given.

    >>> paid_amount({"amount": 1150, "money_amount": 1000, "raw_point_amount": 200})
    1200
    """
    money = data.get("money_amount")
    if money is not None:
        raw_points = data.get("raw_point_amount")
        if raw_points is not None:
            return as_amount(money, "money_amount") + as_amount(raw_points, "raw_point_amount")
        points, campaign = data.get("point_amount"), data.get("campaign_point_amount")
        if points is not None and campaign is not None:
            return (
                as_amount(money, "money_amount")
                + as_amount(points, "point_amount")
                + as_amount(campaign, "campaign_point_amount")
            )
    return as_amount(field(data, "amount"), "amount")


def _nested_id(data: Mapping[str, Any], *path: str) -> str | None:
    node: Any = data
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return str(node) if isinstance(node, str) and node else None


def transaction_charge(
    data: Mapping[str, Any],
    ctx: OpContext,
    *,
    method: str = "wallet",
    provider_ref: str | None = None,
    charge_id: str | None = None,
    created_at: datetime | None = None,
) -> Charge:
    """The charge of a payment transaction (succeeded, or refunded once modified)."""
    txn_id = str(field(data, "id"))
    amount = Money.jpy(paid_amount(data))
    refunded = bool(data.get("is_modified"))
    ref = provider_ref or f"transaction:{txn_id}"
    return ctx.charge(
        ref,
        id=charge_id,
        method=method,
        status=ChargeStatus.REFUNDED if refunded else ChargeStatus.SUCCEEDED,
        amount=amount,
        amount_refunded=amount if refunded else Money.jpy(0),
        created_at=created_at or as_time(data.get("done_at")) or ctx.now(),
        updated_at=as_time(data.get("done_at")),
        raw=data,
    )


def checked_payment(
    data: Mapping[str, Any],
    req: ChargeRequest,
    ctx: OpContext,
    *,
    shop_id: str,
    private_money_id: str,
) -> Charge:
    """The charge of the payment a request_id found, checked against the request.

    Pokepay returns the transaction already made for a request_id. It is ours when
    what the merchant asked matches: the paid total (money + points spent, not the
    campaign-net ``amount``), the customer, the shop and the private money (each
    compared when the answer states it).
    """
    charge = transaction_charge(data, ctx)
    method = req.method
    assert isinstance(method, Wallet)
    money_id = method.private_money_id or private_money_id
    totals = {
        charge.amount.amount,
        as_amount(data.get("amount", charge.amount.amount), "amount"),
    }
    checks = {
        "amount": req.amount.amount in totals,
        "customer": _nested_id(data, "sender", "id") in (None, method.customer_id),
        "shop": _nested_id(data, "receiver", "id") in (None, shop_id),
        "private money": _nested_id(data, "sender_account", "private_money", "id")
        in (None, money_id),
    }
    different = [name for name, same in checks.items() if not same]
    if different:
        # request_id found a transaction made from a different request.
        raise IdempotencyConflict(
            "pokepay: the request id belongs to a payment with another " + ", ".join(different),
            provider=PROVIDER,
            provider_code="request_id_mismatch",
        )
    if charge.amount != req.amount:
        # The campaign-net amount matched: report the requested total.
        charge = charge.model_copy(update={"amount": req.amount})
    return charge


def cashtray_charge(
    answer: Answer,
    ctx: OpContext,
    *,
    charge_id: str | None = None,
    created_at: datetime | None = None,
) -> Charge:
    """The charge of a Cashtray, by Pokepay's state machine (see the module)."""
    data = answer.data
    cashtray_id = str(field(data, "id"))
    amount = Money.jpy(abs(as_amount(field(data, "amount"), "amount")))
    expires_at = as_time(data.get("expires_at"))
    canceled_at = as_time(data.get("canceled_at"))
    attempt = data.get("attempt")
    transaction = data.get("transaction")
    ref = f"cashtray:{cashtray_id}"
    created = created_at or ctx.now()
    zero = Money.jpy(0)
    provider_ref, refunded = ref, zero
    updated: datetime | None = None
    failure: Failure | None = None
    next_action: DisplayQR | None = None
    if isinstance(transaction, Mapping) and transaction.get("id"):
        provider_ref = f"{ref}/transaction:{transaction['id']}"
        modified = bool(transaction.get("is_modified"))
        status = ChargeStatus.REFUNDED if modified else ChargeStatus.SUCCEEDED
        refunded = amount if modified else zero
        updated = as_time(transaction.get("done_at"))
    elif isinstance(attempt, Mapping):
        error_type = attempt.get("error_type") or None
        message = attempt.get("error_message") or None
        updated = as_time(attempt.get("created_at"))
        # GetCashtray's own rule: an attempt without a transaction is a final
        # failure (also with status_code 200, which Pokepay should never send).
        if canceled_at is not None or error_type == "cashtray_already_canceled":
            status = ChargeStatus.CANCELED
        elif error_type == "cashtray_expired":
            status = ChargeStatus.EXPIRED
        else:
            status = ChargeStatus.FAILED
        failure = Failure(code=error_type, message=message)
    elif canceled_at is not None:
        status, updated = ChargeStatus.CANCELED, canceled_at
    elif expires_at is not None and expires_at < answer.now(ctx):
        status, updated = ChargeStatus.EXPIRED, expires_at
    else:
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                "pokepay: the Cashtray has no token", provider=PROVIDER, http_status=200
            )
        status = ChargeStatus.REQUIRES_ACTION
        # The token is the URL the QR code encodes.
        next_action = DisplayQR(url=token, expires_at=expires_at)
    return ctx.charge(
        provider_ref,
        id=charge_id,
        method="qr",
        status=status,
        amount=amount,
        amount_refunded=refunded,
        next_action=next_action,
        failure=failure,
        created_at=created,
        updated_at=updated,
        raw=data,
    )


def refund_from(answer: Answer, req: RefundRequest, ctx: OpContext) -> Refund:
    """The refund of a refunded transaction (RefundTransaction's answer, or the
    transaction read after ``transaction_already_refunded``)."""
    data = answer.data
    txn_id = str(field(data, "id"))
    transfers = data.get("transfers")
    # Only the transfers that return the payment itself: the refund also cancels the
    # campaign points and coupons of the transaction (refund-campaign, refund-coupon),
    # which return no money to the customer.
    refunds = [
        t
        for t in (transfers if isinstance(transfers, list) else [])
        if isinstance(t, Mapping) and t.get("type") in REFUND_TRANSFERS
    ]
    if refunds:
        amount = sum(as_amount(t.get("amount", 0), "transfer amount") for t in refunds)
        last = refunds[-1]
        provider_ref = f"transfer:{last.get('id')}"
        created = as_time(last.get("done_at"))
    else:
        # No transfer list: the whole transaction was refunded (the only kind).
        amount = paid_amount(data)
        provider_ref = f"transaction:{txn_id}"
        created = None
    return ctx.refund(
        req.charge.charge_id,
        provider_ref,
        id=f"refund:{txn_id}",
        amount=Money.jpy(amount),
        # Pokepay refunds whole transactions: the refund is the charge's refunded total.
        charge_refunded_total=Money.jpy(amount),
        status=RefundStatus.SUCCEEDED,
        reason=req.reason,
        created_at=created or answer.now(ctx),
        raw=data,
    )


def wallet_of(rows: Any, private_money_id: str) -> Mapping[str, Any] | None:
    """The row of ListUserAccounts for ``private_money_id`` (None: not on this page).

    ``rows`` not being a list is a `MalformedResponse`.
    """
    if not isinstance(rows, list):
        raise MalformedResponse(
            "pokepay: account list without rows", provider=PROVIDER, http_status=200
        )
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        money = row.get("private_money")
        if isinstance(money, Mapping) and money.get("id") == private_money_id:
            return row
    return None


def balance_from(row: Mapping[str, Any], ctx: OpContext, answer: Answer) -> PayoutBalance:
    """The shop's wallet as a payout balance: money + points (and any point debt)."""
    money = as_amount(row.get("money_balance", 0), "money_balance")
    points = as_amount(row.get("point_balance", 0), "point_balance")
    balance = as_amount(row.get("balance", money + points), "balance")
    wallet = str(row.get("id", ""))
    items = [
        PayoutItem(
            kind="money", description="money balance", amount=Money.jpy(money), reference=wallet
        ),
        PayoutItem(
            kind="point",
            description="point balance",
            amount=Money.jpy(points),
            reference=wallet,
        ),
    ]
    debt = as_amount(row.get("point_debt", 0) or 0, "point_debt")
    if debt:
        items.append(
            PayoutItem(
                kind="point_debt",
                description="point debt",
                amount=Money.jpy(debt),
                reference=wallet,
            )
        )
    zero = Money.jpy(0)
    return PayoutBalance(
        account=ctx.account,
        provider=PROVIDER,
        currency="JPY",
        collecting=Money.jpy(balance),
        scheduled=zero,
        owed=zero,
        items=tuple(items),
        as_of=answer.now(ctx),
        raw=row,
    )
