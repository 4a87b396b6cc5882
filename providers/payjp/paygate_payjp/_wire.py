"""PAY.JP v1 wire format: form encoding, timestamps, list envelopes, payout objects.

PAY.JP v1 takes ``application/x-www-form-urlencoded`` bodies with nested objects as
``metadata[key]=value`` and answers JSON with Unix-second timestamps. Payout objects
(Term / Statement / Balance) are read tolerantly: older fixtures name the Balance state
``type`` and wrap ``statements`` in a list object, current ones use ``state`` and a plain
array; both shapes are accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from paygate import Money
from paygate._errors import MalformedResponse

__all__ = [
    "JST",
    "Balance",
    "Statement",
    "StatementItem",
    "StatementUrl",
    "Term",
    "encode_form",
    "from_ts",
    "to_ts",
]

# PAY.JP closes terms and pays out on Japanese calendar days. A fixed offset avoids a
# tzdata dependency; Japan has no daylight saving time.
JST = timezone(timedelta(hours=9), "JST")


def encode_form(params: Mapping[str, Any]) -> bytes:
    """Encode ``params`` the way PAY.JP expects (``metadata[k]=v``, ``key[]=v``).

    None values are left out; booleans become ``true`` / ``false``.

    >>> encode_form({"amount": 500, "capture": False, "metadata": {"order": "7"}})
    b'amount=500&capture=false&metadata%5Border%5D=7'
    """
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        _encode(pairs, key, value)
    return urlencode(pairs).encode("ascii")


def _encode(pairs: list[tuple[str, str]], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        pairs.append((key, "true" if value else "false"))
    elif isinstance(value, Mapping):
        for sub, subvalue in value.items():
            _encode(pairs, f"{key}[{sub}]", subvalue)
    elif isinstance(value, list | tuple):
        for item in value:
            _encode(pairs, f"{key}[]", item)
    else:
        pairs.append((key, str(value)))


def query(params: Mapping[str, Any]) -> str:
    """A query string (with leading ``?``) of the non-None ``params``, or ``""``."""
    encoded = encode_form(params).decode("ascii")
    return f"?{encoded}" if encoded else ""


def from_ts(value: Any) -> datetime | None:
    """A Unix-seconds timestamp as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(f"expected a Unix timestamp, got {type(value).__name__}")
    return datetime.fromtimestamp(int(value), UTC)


def to_ts(value: datetime) -> int:
    """An aware datetime as Unix seconds."""
    return int(value.timestamp())


def jst_date(value: Any) -> date | None:
    """The Japanese calendar day of a Unix timestamp (PAY.JP due dates are days)."""
    moment = from_ts(value)
    return moment.astimezone(JST).date() if moment is not None else None


def jpy(value: Any, currency: str = "JPY") -> Money:
    """Money from a wire integer; refuses anything but an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse(f"expected an integer amount, got {type(value).__name__}")
    return Money(amount=value, currency=currency.upper())


def list_data(envelope: Any) -> list[dict[str, Any]]:
    """The ``data`` of a list envelope (or a plain array) as a list of objects."""
    data = envelope.get("data") if isinstance(envelope, Mapping) else envelope
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise MalformedResponse("expected a list of objects")
    return data


# --------------------------------------------------------------------- payout objects


@dataclass(frozen=True, slots=True)
class Term:
    """A PAY.JP aggregation interval ``[start_at, end_at)``; ``end_at`` None: not fixed."""

    id: str
    start_at: datetime | None
    end_at: datetime | None
    closed: bool | None
    charge_count: int = 0
    refund_count: int = 0
    dispute_count: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Term:
        """Parse a ``term`` object (``closed`` may be absent in older shapes)."""
        closed = obj.get("closed")
        return cls(
            id=str(obj.get("id", "")),
            start_at=from_ts(obj.get("start_at")),
            end_at=from_ts(obj.get("end_at")),
            closed=bool(closed) if closed is not None else None,
            charge_count=int(obj.get("charge_count") or 0),
            refund_count=int(obj.get("refund_count") or 0),
            dispute_count=int(obj.get("dispute_count") or 0),
            raw=dict(obj),
        )


@dataclass(frozen=True, slots=True)
class StatementItem:
    """One statement line. Positive amounts are payable to the merchant."""

    subject: str
    name: str | None
    amount: Money
    tax_rate: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A PAY.JP statement (``sales``, ``transfer_fee``, ``forfeit``, ...).

    >>> st = Statement.from_wire({"id": "st_1", "type": "sales", "net": 925,
    ...     "items": [{"subject": "gross_sales", "name": "売上", "amount": 1000}]})
    >>> st.net
    Money.jpy(925)
    """

    id: str
    type: str
    net: Money
    items: tuple[StatementItem, ...]
    balance_id: str | None = None
    tenant_id: str | None = None
    term: Term | None = None
    title: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Statement:
        """Parse a ``statement`` object."""
        items = tuple(
            StatementItem(
                subject=str(item.get("subject", "other")),
                name=item.get("name"),
                amount=jpy(item.get("amount")),
                tax_rate=item.get("tax_rate"),
            )
            for item in list_data(obj.get("items") or [])
        )
        term = obj.get("term")
        return cls(
            id=str(obj.get("id", "")),
            type=str(obj.get("type", "")),
            net=jpy(obj.get("net", 0)),
            items=items,
            balance_id=obj.get("balance_id"),
            tenant_id=obj.get("tenant_id"),
            term=Term.from_wire(term) if isinstance(term, Mapping) else None,
            title=obj.get("title"),
            created=from_ts(obj.get("created")),
            updated=from_ts(obj.get("updated")),
            raw=dict(obj),
        )


@dataclass(frozen=True, slots=True)
class Balance:
    """A PAY.JP balance: ``collecting``, ``transfer`` (payout) or ``claim`` (owed)."""

    id: str
    state: str
    net: Money
    closed: bool
    statements: tuple[Statement, ...]
    due_date: date | None = None
    closed_date: datetime | None = None
    tenant_id: str | None = None
    created: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Balance:
        """Parse a ``balance`` object in either known shape (``state`` / ``type``)."""
        state = obj.get("state") or obj.get("type")
        if state not in ("collecting", "transfer", "claim"):
            raise MalformedResponse(f"unknown balance state {state!r}")
        return cls(
            id=str(obj.get("id", "")),
            state=str(state),
            net=jpy(obj.get("net", 0)),
            closed=bool(obj.get("closed")),
            statements=tuple(
                Statement.from_wire(st) for st in list_data(obj.get("statements") or [])
            ),
            due_date=jst_date(obj.get("due_date")),
            closed_date=from_ts(obj.get("closed_date")),
            tenant_id=obj.get("tenant_id"),
            created=from_ts(obj.get("created")),
            raw=dict(obj),
        )


@dataclass(frozen=True, slots=True)
class StatementUrl:
    """A one-off download URL; PAY.JP keeps it valid for one hour."""

    url: str = field(repr=False)
    expires_at: datetime | None

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> StatementUrl:
        """Parse a ``statement_url`` object."""
        url = obj.get("url")
        if not isinstance(url, str):
            raise MalformedResponse("statement_url without url")
        return cls(url=url, expires_at=from_ts(obj.get("expires")))


def statements_of(balances: Iterable[Balance]) -> list[Statement]:
    """Every statement of ``balances``, in order."""
    return [st for balance in balances for st in balance.statements]
