"""Checks of a POS sale (and of a refund) before anything is sent.

`check_sale` and `check_refund` are what `SmaregiProvider.validate_charge` and
``validate_refund`` run, once, before any I/O; the flows read the request with
`sale_of`, which checks nothing again.

Field limits marked "assumed" are not in any readable official text; they are set where
real Smaregi data stays well inside them, so a valid sale is never refused here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paygate import InvalidRequest, PosLine, PosSale
from paygate.adapter import ChargeRequest, RefundRequest, only_method

from ._errors import partial_refund
from ._settings import SmaregiSettings
from ._wire import PROVIDER

__all__ = [
    "MAX_LINES",
    "MAX_NUMBER",
    "Sale",
    "check_refund",
    "check_sale",
    "check_slip_number",
    "sale_of",
]

#: Smaregi's integer fields range over -999999999..999999999 (official POST /transactions).
MAX_NUMBER = 999_999_999
#: storeId 1-9 characters; terminalId /^[1-9][0-9]{0,8}$/ (official sibling operation page).
_STORE = re.compile(r"^[0-9]{1,9}$")
_TERMINAL = re.compile(r"^[1-9][0-9]{0,8}$")
#: productId is a numeric id (assumed up to 18 digits, a 64-bit id).
_PRODUCT = re.compile(r"^[0-9]{1,18}$")
MAX_PRODUCT_NAME = 85  # assumed: Smaregi's name fields hold 85 characters
MAX_MEMO = 1000  # assumed
MAX_SLIP_NUMBER = 20  # assumed
_SLIP = re.compile(r"^[\x21-\x7e]+$")
MAX_CARD_COMPANY = 20  # assumed
#: transactionDetailId is 1..999 when set (the POST /transactions field text); paygate
#: numbers the lines 1..n.
MAX_LINES = 999


def check_slip_number(value: str, *, param: str) -> None:
    """A (cancel) slip number: 1..20 printable ASCII characters (assumed limits)."""
    if not (len(value) <= MAX_SLIP_NUMBER and _SLIP.match(value)):
        raise InvalidRequest(
            f"{param.rsplit('.', 1)[-1]} must be 1..{MAX_SLIP_NUMBER} printable ASCII characters",
            param=param,
        )


@dataclass(frozen=True, slots=True)
class Sale:
    """A validated sale, ready to be put on the wire."""

    store_id: str
    terminal_id: str
    lines: tuple[PosLine, ...]
    total: int
    memo: str | None
    slip_number: str | None
    card_company: str | None


def _pos_sale(req: ChargeRequest) -> PosSale:
    return only_method(
        req,
        PosSale,
        provider=PROVIDER,
        reason="Smaregi registers POS sales only",
        alternative="PosSale",
    )


def sale_of(req: ChargeRequest, settings: SmaregiSettings) -> Sale:
    """The `Sale` of a request `check_sale` accepted (store and terminal from the
    settings where the method leaves them empty; the description as memo); no checks.

    >>> from paygate import Money, PosLine
    >>> settings = SmaregiSettings(client_id="c", client_secret="s", contract_id="c1",
    ...                            store_id="1", terminal_id="2")
    >>> line = PosLine(product_id="8000001", unit_price=500, quantity=2)
    >>> req = ChargeRequest(amount=Money.jpy(1000), description="table 4",
    ...     method=PosSale(store_id="", terminal_id="", lines=(line,)))
    >>> sale = sale_of(req, settings)
    >>> sale.store_id, sale.terminal_id, sale.total, sale.memo
    ('1', '2', 1000, 'table 4')
    """
    method = _pos_sale(req)
    memo = method.memo if method.memo is not None else req.description
    return Sale(
        store_id=method.store_id or settings.store_id or "",
        terminal_id=method.terminal_id or settings.terminal_id or "",
        lines=method.lines,
        total=sum(line.total for line in method.lines),
        memo=memo or None,
        slip_number=method.slip_number,
        card_company=method.card_company,
    )


def check_sale(req: ChargeRequest, settings: SmaregiSettings) -> None:
    """Validate ``req`` for Smaregi; raise `InvalidRequest` (with ``param``) if bad."""
    method = _pos_sale(req)
    amount = req.amount
    if amount.currency != "JPY":
        raise InvalidRequest("Smaregi takes JPY only", param="amount.currency")
    if not 1 <= amount.amount <= MAX_NUMBER:
        raise InvalidRequest(f"amount must be 1..{MAX_NUMBER} yen", param="amount")
    metadata: Mapping[Any, Any] = req.metadata  # typed flat, but callers may pass anything
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest("metadata must be flat string pairs", param="metadata")

    sale = sale_of(req, settings)
    if not _STORE.match(sale.store_id):
        raise InvalidRequest("store_id must be 1-9 digits", param="method.store_id")
    if not _TERMINAL.match(sale.terminal_id):
        raise InvalidRequest(
            "terminal_id must be 1-9 digits, not starting with 0", param="method.terminal_id"
        )

    if len(method.lines) > MAX_LINES:
        raise InvalidRequest(f"at most {MAX_LINES} lines", param="method.lines")
    for i, line in enumerate(method.lines):
        param = f"method.lines[{i}]"
        if line.product_id is None and not line.name:
            raise InvalidRequest("a line needs product_id or name", param=param)
        if line.product_id is not None and not _PRODUCT.match(line.product_id):
            raise InvalidRequest("product_id must be a numeric id", param=f"{param}.product_id")
        if line.name is not None and not 1 <= len(line.name) <= MAX_PRODUCT_NAME:
            raise InvalidRequest(
                f"name must be 1..{MAX_PRODUCT_NAME} characters", param=f"{param}.name"
            )
        if not 1 <= line.quantity <= MAX_NUMBER:
            raise InvalidRequest("quantity must be positive", param=f"{param}.quantity")
        if abs(line.unit_price) > MAX_NUMBER or abs(line.total) > MAX_NUMBER:
            raise InvalidRequest("line amount out of range", param=f"{param}.unit_price")
    if sale.total != amount.amount:
        raise InvalidRequest(
            f"lines sum to {sale.total} yen, the amount is {amount.amount} yen",
            param="method.lines",
        )

    memo = method.memo if method.memo is not None else req.description
    if memo is not None and len(memo) > MAX_MEMO:
        param = "method.memo" if method.memo is not None else "description"
        raise InvalidRequest(f"memo is limited to {MAX_MEMO} characters", param=param)
    if method.slip_number is not None:
        check_slip_number(method.slip_number, param="method.slip_number")
    if method.card_company is not None and not 1 <= len(method.card_company) <= MAX_CARD_COMPANY:
        raise InvalidRequest(
            f"card_company must be 1..{MAX_CARD_COMPANY} characters", param="method.card_company"
        )


def check_refund(req: RefundRequest) -> None:
    """Refuse what Smaregi cannot do: a refund in another currency, or of part of a sale.

    A sale is voided as a whole; where the reference does not carry the sale's amount,
    the refund flow compares against the transaction it reads.
    """
    if req.amount is None:
        return
    if req.amount.currency != "JPY":
        raise InvalidRequest("Smaregi takes JPY only", param="amount.currency")
    if req.charge.amount is not None and req.amount != req.charge.amount:
        raise partial_refund()
