"""Smaregi sales and transactions mapped to and from paygate's objects.

* The ids paygate derives from the merchant's idempotency key: ``terminalTranId``
  (`terminal_tran_id`) and the receipt number ``transactionUuid`` (`transaction_uuid`),
  so a re-sent sale carries the same ones and a lookup can find it.
* The POST /transactions body of a `Sale` (`sale_body`).
* Status. A registered sale is ``succeeded`` (money was taken by the app). A sale
  reversed at Smaregi, by 取消 (``cancelDivision`` 1) or by 返品取消 (``disposeDivision``
  1 on the original), is ``refunded`` (`reversal`, `charge_from_wire`). A refund or
  cancel through paygate is a *void* (`refund_from_wire`: ``Refund.kind == "void"``).
* Which listed transaction is the sale a possibly-sent charge registered
  (`same_sale`, `search_window`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from paygate import (
    Charge,
    ChargeStatus,
    InvalidRequest,
    MalformedResponse,
    Money,
    Refund,
    RefundStatus,
)
from paygate.adapter import ChargeRef, OpContext, RefundRequest

from ._settings import SmaregiSettings
from ._validate import Sale
from ._wire import JST, PROVIDER, AppPaymentMethod, format_jst, parse_datetime, parse_int

__all__ = [
    "LOOKUP_FALLBACK",
    "LOOKUP_MARGIN",
    "charge_from_wire",
    "head_id_of",
    "refund_from_wire",
    "reversal",
    "sale_body",
    "same_sale",
    "search_window",
    "terminal_tran_id",
    "transaction_uuid",
]

#: The lookup searches this far around the recorded terminal time of the sale.
LOOKUP_MARGIN = timedelta(minutes=10)
#: Without a recorded time (another store, a purged cache), it searches this far back
#: (31 days is the longest range GET /transactions takes).
LOOKUP_FALLBACK = timedelta(days=30)

# 9-digit numbers that do not start with 0. Not 10 digits (the limit): runs of 10-13
# digits look like phone numbers to paygate's redaction, which would mask them in
# cassettes and messages and break matching on replay.
_TRAN_ID_SPACE = 900_000_000


def terminal_tran_id(ctx: OpContext) -> str:
    """The ``terminalTranId`` (1-10 characters) of this charge, derived from its key.

    A 9-digit number from 100000000 to 999999999, taken from the UUIDv5 of the account
    and the merchant's idempotency key, so a re-sent sale carries the same one. Two
    different keys collide with probability 1 in 9e8; the lookup only compares sales of
    one terminal inside a ±10 minute window and also matches store and total, so among
    n such sales a false match has odds of about n / 9e8 (1 in 9 million for 100).

    >>> from paygate.adapter import OpContext
    >>> ctx = OpContext(account="pos", provider="smaregi", idempotency_key="order-1042")
    >>> tran_id = terminal_tran_id(ctx)
    >>> len(tran_id), tran_id == terminal_tran_id(ctx)
    (9, True)
    """
    number = ctx.key_uuid("smaregi.terminalTranId").int % _TRAN_ID_SPACE
    return str(100_000_000 + number)


# 13-digit numbers that do not start with 0: the length of Smaregi's own default receipt
# number (last 9 digits of the epoch second + the terminal id in 4 digits).
_UUID_SPACE = 9 * 10**12


def transaction_uuid(ctx: OpContext) -> str:
    """The receipt number (``transactionUuid``) of this charge, derived from its key.

    Smaregi asks for a unique value: duplicates can keep the Smaregi app from calling
    the sale up. Its own default (epoch seconds + terminal id) repeats when two sales of
    one terminal fall in the same second, which paygate's single configured terminal
    makes likely under load. This is a 13-digit number from the UUIDv5 of the account
    and the idempotency key: a re-sent sale carries the same one, and two keys collide
    with probability 1 in 9e12.

    >>> from paygate.adapter import OpContext
    >>> ctx = OpContext(account="pos", provider="smaregi", idempotency_key="order-1042")
    >>> uuid = transaction_uuid(ctx)
    >>> len(uuid), uuid[0] != "0", uuid == transaction_uuid(ctx)
    (13, True, True)
    """
    number = ctx.key_uuid("smaregi.transactionUuid").int % _UUID_SPACE
    return str(10**12 + number)


def head_id_of(ref: ChargeRef) -> str:
    """The ``transactionHeadId`` a charge reference names (digits only)."""
    head_id = ref.provider_ref
    if not head_id.isascii() or not head_id.isdigit():
        raise InvalidRequest("not a Smaregi transaction id", param="charge")
    return head_id


def sale_body(
    sale: Sale,
    settings: SmaregiSettings,
    *,
    tran_id: str,
    uuid: str,
    when: datetime,
    payment_method: AppPaymentMethod,
) -> dict[str, Any]:
    """The POST /transactions body of ``sale``, paid through the app payment method."""
    total = str(sale.total)
    details = []
    # transactionDetailId is 1..999 (check_sale allows at most 999 lines).
    for i, line in enumerate(sale.lines, start=1):
        detail = {
            "transactionDetailId": str(i),
            "transactionDetailDivision": "1",
            "salesPrice": str(line.unit_price),
            "unitDiscountPrice": "0",
            "quantity": str(line.quantity),
        }
        if line.product_id is not None:
            detail["productId"] = line.product_id
        if line.name is not None:
            detail["productName"] = line.name
        details.append(detail)
    # The app payment: the amount, and the cashless slip fields Smaregi's staff place on
    # the depositOthers item (forum discussion 539).
    payment: dict[str, str] = {
        "paymentMethodId": payment_method.payment_method_id,
        "depositOthers": total,
    }
    if sale.slip_number is not None:
        payment["slipNumber"] = sale.slip_number
    if sale.card_company is not None:
        payment["cardCompany"] = sale.card_company
    if settings.denomination_code is not None:
        payment["denominationCode"] = settings.denomination_code
    body: dict[str, Any] = {
        "transactionHeadDivision": "1",
        "cancelDivision": "0",
        "subtotal": total,
        "total": total,
        # deposit = cash + credit + others; everything came through the app's method.
        "deposit": total,
        "depositCash": "0",
        "depositCredit": "0",
        "change": "0",
        "storeId": sale.store_id,
        "terminalId": sale.terminal_id,
        "terminalTranId": tran_id,
        "terminalTranDateTime": format_jst(when),
        "transactionUuid": uuid,
        "details": details,
        "depositOthers": [payment],
    }
    if settings.virtual_terminal:
        # A terminal the shop does not have cannot be settled: register the sale as
        # closed on its own (JST) date, as the official field text asks.
        body["sumDivision"] = "2"
        body["sumDate"] = when.astimezone(JST).date().isoformat()
    if sale.memo is not None:
        body["memo"] = sale.memo
    return body


def reversal(tran: Mapping[str, Any]) -> str | None:
    """How the sale was reversed in full: "cancel" (取消), "dispose" (返品取消), or None.

    取消 sets the record's ``cancelDivision`` to 1. 返品取消 leaves it 0, marks the
    original ``disposeDivision`` 1 (打消元) and adds an offsetting record with
    ``disposeDivision`` 2 (Smaregi staff, forum discussions 79, 455 and 469).

    >>> reversal({"cancelDivision": "1"}), reversal({"disposeDivision": "1"}), reversal({})
    ('cancel', 'dispose', None)
    """
    if str(tran.get("cancelDivision", "0")) == "1":
        return "cancel"
    if str(tran.get("disposeDivision", "0")) == "1":
        return "dispose"
    return None


def charge_from_wire(tran: Mapping[str, Any], ctx: OpContext, charge_id: str | None) -> Charge:
    """paygate's `Charge` of a Smaregi transaction head.

    ``charge_id``: paygate's id of the charge (None: ``smaregi_<transactionHeadId>``).
    """
    head_id = str(tran.get("transactionHeadId", ""))
    if not head_id:
        raise MalformedResponse("transaction without transactionHeadId", provider=PROVIDER)
    amount = Money.jpy(parse_int(tran.get("total"), field="total"))
    reversed_ = reversal(tran) is not None
    created = (
        parse_datetime(tran.get("terminalTranDateTime"))
        or parse_datetime(tran.get("transactionDateTime"))
        or ctx.now()
    )
    updated = parse_datetime(tran.get("cancelDateTime")) or parse_datetime(tran.get("updDateTime"))
    return ctx.charge(
        head_id,
        id=charge_id or f"smaregi_{head_id}",
        method="pos",
        # A sale reversed in full (取消 or 返品取消) is refunded (see the module note).
        status=ChargeStatus.REFUNDED if reversed_ else ChargeStatus.SUCCEEDED,
        amount=amount,
        amount_refunded=amount if reversed_ else Money.jpy(0),
        created_at=created,
        updated_at=updated,
        raw=dict(tran),
    )


def refund_from_wire(
    req: RefundRequest, head_id: str, tran: Mapping[str, Any], ctx: OpContext
) -> Refund:
    """The `Refund` (kind ``"void"``) of a whole sale voided at Smaregi."""
    charge = charge_from_wire(tran, ctx, req.charge.charge_id)
    return ctx.refund(
        req.charge.charge_id,
        head_id,
        id=f"{req.charge.charge_id}-refund",
        amount=charge.amount,
        status=RefundStatus.SUCCEEDED,
        reason=req.reason,
        created_at=charge.updated_at or ctx.now(),
        raw=dict(tran),
        # Smaregi voids the record; the customer's money is returned (or not) by the
        # payment provider that took it.
        kind="void",
        charge_refunded_total=charge.amount_refunded,
    )


def search_window(when: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The ``terminal_tran_date_time`` range a lookup searches.

    ±`LOOKUP_MARGIN` around the sale's terminal time (``when``: when the key was first
    begun, or the time an earlier paygate recorded before sending); without one the
    last `LOOKUP_FALLBACK`.
    """
    if when is not None:
        return when - LOOKUP_MARGIN, when + LOOKUP_MARGIN
    return now - LOOKUP_FALLBACK, now + LOOKUP_MARGIN


def same_sale(tran: Any, sale: Sale, tran_id: str, uuid: str) -> bool:
    """Whether a listed transaction is the sale with these derived ids.

    Its receipt number decides where the row carries one; else store, terminal,
    ``terminalTranId`` and total must match.
    """
    if not isinstance(tran, Mapping):
        return False
    # The receipt number is this key's own: decisive where the row carries it.
    if tran.get("transactionUuid") not in (None, ""):
        return str(tran["transactionUuid"]) == uuid

    def same(key: str, expected: str) -> bool:
        value = tran.get(key)
        if value is None:
            return False
        text = str(value)
        if text == expected:
            return True
        # Numeric ids may come back without leading zeros or as JSON numbers.
        return text.isdigit() and expected.isdigit() and int(text) == int(expected)

    if not same("terminalTranId", tran_id) or not same("terminalId", sale.terminal_id):
        return False
    if tran.get("storeId") is not None and not same("storeId", sale.store_id):
        return False
    total = tran.get("total")
    return total is None or same("total", str(sale.total))
