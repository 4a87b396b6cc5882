"""Public data models. All frozen; provider wire models stay inside each provider."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import InvalidRequest
from ._money import Money

__all__ = [
    "Capabilities",
    "Card",
    "Charge",
    "ChargeStatus",
    "ChargeTransition",
    "DisplayQR",
    "Event",
    "EventName",
    "EventType",
    "Failure",
    "Konbini",
    "KonbiniSlip",
    "MethodCapabilities",
    "NextAction",
    "Page",
    "PaymentMethod",
    "PayoutBalance",
    "PayoutItem",
    "PosLine",
    "PosSale",
    "Product",
    "QRCode",
    "Redirect",
    "Refund",
    "RefundStatus",
    "Wallet",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def invalid_from(exc: ValidationError, what: str) -> InvalidRequest:
    """A merchant-facing `InvalidRequest` for a validation failure, naming the fields only
    (the values may be personal data or secrets)."""
    fields = sorted({".".join(str(p) for p in err["loc"]) or what for err in exc.errors()})
    reasons = sorted({err["msg"] for err in exc.errors()})
    return InvalidRequest(
        f"invalid {what}: {', '.join(fields)} ({'; '.join(reasons)})",
        param=fields[0] if len(fields) == 1 else what,
    )


class _Input(_Frozen):
    """A model merchants build: bad input is an `InvalidRequest`, like every other
    refusal before I/O (never a bare pydantic error)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_from(exc, type(self).__name__) from None


class ChargeStatus(enum.StrEnum):
    """Where a charge stands. Only an explicit provider terminal state maps to a terminal
    status, and a terminal status never goes back."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"

    @property
    def is_terminal(self) -> bool:
        """No further change is possible except refunds of a succeeded charge."""
        return self in _FINAL

    @property
    def is_final(self) -> bool:
        """The payment outcome is known (it may still be refunded)."""
        return self in _FINAL or self in _PAID

    def can_become(self, new: ChargeStatus) -> bool:
        """Whether a transition from ``self`` to ``new`` is a move forward.

        >>> ChargeStatus.SUCCEEDED.can_become(ChargeStatus.PENDING)
        False
        >>> ChargeStatus.REQUIRES_ACTION.can_become(ChargeStatus.SUCCEEDED)
        True
        """
        if new == self:
            return False
        if self in _FINAL:
            return False
        if self in _PAID:
            return new in _PAID and _RANK[new] > _RANK[self]
        return _RANK[new] > _RANK[self]


_RANK: dict[ChargeStatus, int] = {
    ChargeStatus.PENDING: 0,
    ChargeStatus.REQUIRES_ACTION: 1,
    ChargeStatus.AUTHORIZED: 2,
    ChargeStatus.SUCCEEDED: 3,
    ChargeStatus.PARTIALLY_REFUNDED: 4,
    ChargeStatus.REFUNDED: 5,
    ChargeStatus.FAILED: 3,
    ChargeStatus.CANCELED: 3,
    ChargeStatus.EXPIRED: 3,
}
_FINAL = frozenset(
    {ChargeStatus.FAILED, ChargeStatus.CANCELED, ChargeStatus.EXPIRED, ChargeStatus.REFUNDED}
)
_PAID = frozenset({ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED, ChargeStatus.REFUNDED})


class RefundStatus(enum.StrEnum):
    """Where a refund stands."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# --------------------------------------------------------------------------- methods

Metadata = Mapping[str, str]


class Card(_Input):
    """A card payment (PAY.JP, UnivaPay cards).

    Give exactly one of ``token`` (from the provider's JS tokeniser) or ``customer``
    (a stored customer's default card). ``capture=False`` authorises only.

    >>> Card(token="tok_success")
    Card(capture=True, three_d_secure=False)
    """

    type: Literal["card"] = Field(default="card", repr=False)
    token: str | None = Field(default=None, repr=False)
    customer: str | None = Field(default=None, repr=False)
    capture: bool = True
    three_d_secure: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Card:
        if (self.token is None) == (self.customer is None):
            raise ValueError("give exactly one of token or customer")
        return self


class Konbini(_Input):
    """A convenience-store payment slip (UnivaPay).

    Personal data (name, phone, e-mail) never appears in reprs.

    >>> Konbini(store="family_mart", customer_name="テスト 太郎", phone="0364413400")
    Konbini(store='family_mart', expires_in=None)
    """

    type: Literal["konbini"] = Field(default="konbini", repr=False)
    store: str
    customer_name: str = Field(repr=False, min_length=1)
    phone: str = Field(repr=False, min_length=1)
    email: str | None = Field(default=None, repr=False)
    expires_in: timedelta | None = None


class Product(_Input):
    """A product line passed to providers that take one (Pokepay, elepay items)."""

    name: str = Field(min_length=1)
    unit_price: StrictInt
    quantity: StrictInt = 1
    code: str | None = None


class QRCode(_Input):
    """A QR code the customer scans (elepay EasyQR, Pokepay Cashtray).

    ``products`` are passed to providers that itemise a QR payment (elepay ``items``).

    >>> QRCode(expires_in=timedelta(minutes=10))
    QRCode(expires_in=datetime.timedelta(seconds=600), return_url=None, products=())
    """

    type: Literal["qr"] = Field(default="qr", repr=False)
    expires_in: timedelta | None = None
    return_url: str | None = None
    products: tuple[Product, ...] = ()


class Wallet(_Input):
    """A payment from a customer's prepaid wallet (Pokepay).

    >>> Wallet(customer_id="c1")
    Wallet(private_money_id=None, products=(), strategy=None)
    """

    type: Literal["wallet"] = Field(default="wallet", repr=False)
    customer_id: str = Field(repr=False)
    private_money_id: str | None = None
    products: tuple[Product, ...] = ()
    #: How the payment is split between points and money, where the provider lets the
    #: merchant choose (Pokepay: points first, or money only); None: the account's default.
    strategy: Literal["point-preferred", "money-only"] | None = None


class PosLine(_Input):
    """One line of a POS sale."""

    product_id: str | None = None
    name: str | None = None
    unit_price: StrictInt
    quantity: StrictInt = 1

    @property
    def total(self) -> int:
        """``unit_price * quantity``."""
        return self.unit_price * self.quantity


class PosSale(_Input):
    """A sale registered in a POS under the app's own payment method (Smaregi).

    >>> PosSale(store_id="1", terminal_id="1", lines=(PosLine(unit_price=500, quantity=2),))
    PosSale(store_id='1', terminal_id='1', slip_number=None, card_company=None)
    """

    type: Literal["pos"] = Field(default="pos", repr=False)
    store_id: str
    terminal_id: str
    lines: tuple[PosLine, ...] = Field(min_length=1, repr=False)
    slip_number: str | None = None
    card_company: str | None = None
    memo: str | None = Field(default=None, repr=False)


PaymentMethod = Annotated[Card | Konbini | QRCode | Wallet | PosSale, Field(discriminator="type")]

# ----------------------------------------------------------------------- next actions


class KonbiniSlip(_Frozen):
    """Pay at the store: ``payment_number`` at ``store`` before ``expires_at``.

    ``issued`` is False until the provider has issued the slip; the other fields are
    then still None.
    """

    type: Literal["konbini_slip"] = "konbini_slip"
    store: str
    issued: bool = True
    payment_number: str | None = None
    confirmation_number: str | None = None
    #: Pay-easy only: the collecting institution's number (収納機関番号) the customer
    #: enters at the ATM or bank site, beside the payment number.
    institution_number: str | None = None
    url: str | None = None
    expires_at: datetime | None = None


class DisplayQR(_Frozen):
    """Show the QR code behind ``url`` to the customer until ``expires_at``."""

    type: Literal["display_qr"] = "display_qr"
    url: str
    expires_at: datetime | None = None

    def svg(self, *, scale: int = 4, border: int = 4, dark: str = "#000") -> str:
        """The QR code of ``url`` as an inline ``<svg>`` element, for a checkout page.

        ``scale`` is the size of one module in pixels, ``border`` the quiet zone in
        modules (4, as the QR standard asks).

        >>> DisplayQR(url="https://pay.example/c/1").svg().startswith("<svg")
        True
        """
        import segno

        code = segno.make(self.url, error="m", micro=False)
        return str(code.svg_inline(scale=scale, border=border, dark=dark, light="#fff"))

    def png(self, *, scale: int = 4, border: int = 4) -> bytes:
        """The QR code of ``url`` as PNG bytes (black on white).

        >>> DisplayQR(url="https://pay.example/c/1").png()[:4]
        b'\\x89PNG'
        """
        import io

        import segno

        code = segno.make(self.url, error="m", micro=False)
        out = io.BytesIO()
        code.save(out, kind="png", scale=scale, border=border, dark="#000", light="#fff")
        return out.getvalue()


class Redirect(_Frozen):
    """Send the customer to ``url`` (3-D Secure, a wallet app, ...).

    ``method="POST"`` with ``form``: the customer's browser must submit ``form`` to
    ``url`` (an auto-submitting HTML form), as some 3-D Secure steps require.

    >>> Redirect(url="https://acs.example/3ds", method="POST", form={"token": "..."}).method
    'POST'
    """

    type: Literal["redirect"] = "redirect"
    url: str
    return_url: str | None = None
    method: Literal["GET", "POST"] = "GET"
    form: Mapping[str, str] | None = Field(default=None, repr=False)


NextAction = Annotated[KonbiniSlip | DisplayQR | Redirect, Field(discriminator="type")]


class Failure(_Frozen):
    """Why a charge failed, in the provider's own words."""

    code: str | None = None
    message: str | None = None


class Charge(_Frozen):
    """A charge, the same shape for every provider.

    ``id`` is paygate's stable id (derived from the account and idempotency key);
    ``provider_ref`` is the provider's reference. ``raw`` holds the provider's object as an
    escape hatch and never appears in reprs.
    """

    id: str
    account: str
    provider: str
    provider_ref: str
    method: str
    status: ChargeStatus
    amount: Money
    amount_refunded: Money
    amount_captured: Money | None = None
    next_action: NextAction | None = None
    failure: Failure | None = None
    created_at: datetime
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False)
    #: The merchant's metadata for this charge: the provider's copy where it carries
    #: metadata, else the one paygate keeps in its own store (`MethodCapabilities.metadata`).
    metadata: Mapping[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("raw", mode="before")
    @classmethod
    def _raw_dict(cls, value: Any) -> Any:
        return dict(value) if isinstance(value, Mapping) else value

    @property
    def paid(self) -> bool:
        """True once money moved (succeeded, partly or fully refunded)."""
        return self.status in _PAID

    @property
    def refundable(self) -> Money:
        """What may still be refunded."""
        if not self.paid:
            return Money.zero(self.amount.currency)
        captured = self.amount_captured or self.amount
        return captured - self.amount_refunded


class Refund(_Frozen):
    """A refund of (part of) a charge, or a void.

    ``kind`` says whether money went back to the payer: ``"refund"`` (it did) or
    ``"void"`` (the sale was reversed where it was recorded, e.g. at a POS, and no
    money moved: refund the customer through the provider that took the money).
    ``charge_refunded_total`` is the charge's refunded total when the provider's answer
    states it (paygate records that figure instead of adding the refund itself).

    >>> refund = gw.refund("card", charge.id, idempotency_key="order-7-r1")  # doctest: +SKIP
    >>> refund.money_returned  # doctest: +SKIP
    True
    """

    id: str
    charge_id: str
    account: str
    provider: str
    provider_ref: str
    amount: Money
    status: RefundStatus
    # Free text merchants often fill with the customer's words: never in reprs.
    reason: str | None = Field(default=None, repr=False)
    created_at: datetime
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False)
    kind: Literal["refund", "void"] = "refund"
    charge_refunded_total: Money | None = None

    @property
    def money_returned(self) -> bool:
        """True when money went back to the payer (False for a void)."""
        return self.kind == "refund"


# --------------------------------------------------------------------------- payouts


class PayoutItem(_Frozen):
    """One line of a payout balance: a statement line, a ledger entry, a wallet balance."""

    kind: str
    description: str | None = None
    amount: Money
    state: str | None = None
    reference: str | None = None
    due_date: date | None = None


class PayoutBalance(_Frozen):
    """What the provider will pay out, and when.

    ``collecting``: accruing, not yet fixed. ``scheduled``: fixed and due to be paid on
    ``next_payout_date``. ``owed``: what the merchant owes the provider (a claim).
    """

    account: str
    provider: str
    currency: str
    collecting: Money
    scheduled: Money
    owed: Money
    next_payout_date: date | None = None
    next_payout_amount: Money | None = None
    items: tuple[PayoutItem, ...] = ()
    as_of: datetime
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False)


# ----------------------------------------------------------------------- capabilities

RefundKind = Literal["none", "full", "partial"]


class MethodCapabilities(_Frozen):
    """What one payment method supports at one provider."""

    method: str
    refund: RefundKind = "none"
    multiple_refunds: bool = False
    cancel: bool = False
    capture: bool = False
    #: False where a "refund" only reverses the record (a POS void): no money moves.
    refund_moves_money: bool = True
    #: Whether the provider stores the charge's metadata. Where it cannot, paygate keeps
    #: the metadata in its own store and returns it on every `Charge` all the same, so
    #: the same merchant code runs on either provider.
    metadata: bool = True
    #: Whether the provider takes a description; where it cannot, none is sent.
    description: bool = True
    #: How paygate learns of the customer's payment: ``"webhooks"`` (and polling) or
    #: ``"polling"`` only.
    updates: Literal["webhooks", "polling"] = "webhooks"
    refund_alternative: str | None = None
    cancel_alternative: str | None = None


class Capabilities(_Frozen):
    """Machine-readable description of what an account's provider can do.

    >>> caps = gw.capabilities("card")  # doctest: +SKIP
    >>> caps.methods["card"].refund
    'partial'
    """

    provider: str
    methods: Mapping[str, MethodCapabilities]
    currencies: tuple[str, ...] = ("JPY",)
    min_amount: int | None = None
    max_amount: int | None = None
    payout_balance: bool = False
    webhooks: bool = False
    webhook_auth: Literal["token", "refetch", "none"] = "none"
    long_poll: bool = False

    def method(self, name: str) -> MethodCapabilities | None:
        """Capabilities of ``name`` or None when the method is not offered."""
        return self.methods.get(name)


# ----------------------------------------------------------------------------- events


class EventType(enum.StrEnum):
    """The normalised webhook event types (compare equal to their strings).

    >>> EventType("charge.succeeded") is EventType.CHARGE_SUCCEEDED
    True
    """

    CHARGE_SUCCEEDED = "charge.succeeded"
    CHARGE_FAILED = "charge.failed"
    CHARGE_EXPIRED = "charge.expired"
    CHARGE_CANCELED = "charge.canceled"
    CHARGE_UPDATED = "charge.updated"
    CHARGE_REFUNDED = "charge.refunded"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    PAYOUT_BALANCE_FIXED = "payout.balance_fixed"
    PAYOUT_UPDATED = "payout.updated"
    PROVIDER_OTHER = "provider.other"


#: An event type as a string literal (``gw.webhooks.on("charge.succeeded")``): a typo is
#: a type error under mypy and a `ConfigurationError` at run time.
EventName = Literal[
    "charge.succeeded",
    "charge.failed",
    "charge.expired",
    "charge.canceled",
    "charge.updated",
    "charge.refunded",
    "refund.succeeded",
    "refund.failed",
    "payout.balance_fixed",
    "payout.updated",
    "provider.other",
]


class ChargeTransition(_Frozen):
    """One change of a charge's status or refunded amount, as paygate recorded it.

    ``source`` says what brought it: ``response`` (an operation's answer), ``poll``,
    ``webhook`` or ``reconcile``.
    """

    charge_id: str
    from_status: ChargeStatus | None
    to_status: ChargeStatus
    amount_refunded: int
    source: str
    observed_at: datetime
    recorded_at: datetime
    note: str | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a ledger listing, newest first; pass ``next`` as ``after`` for the
    following page (None: this is the last).

    >>> page = gw.charges("card", status="succeeded", limit=50)  # doctest: +SKIP
    >>> more = gw.charges("card", status="succeeded", after=page.next)  # doctest: +SKIP
    """

    items: tuple[T, ...]
    next: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Event(_Frozen):
    """A normalised webhook event.

    ``type`` is an `EventType`: ``charge.succeeded``, ``charge.failed``,
    ``charge.expired``, ``charge.canceled``, ``charge.updated``, ``charge.refunded``,
    ``refund.succeeded``, ``refund.failed``, ``payout.balance_fixed``, ``payout.updated``
    or ``provider.other``.
    """

    id: str
    type: EventType
    account: str
    provider: str
    provider_event_id: str | None = None
    provider_event_type: str
    charge_id: str | None = None
    provider_ref: str | None = None
    status: ChargeStatus | None = None
    amount: Money | None = None
    occurred_at: datetime | None = None
    received_at: datetime
    duplicate: bool = False
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False)
