"""The elepay emulator's state: fixed credentials, stored codes, charges and refunds.

The tables ``codes``, ``charges`` and ``paid_orders`` are plain attributes of the
emulator: the sandbox dashboard reads ``codes`` and ``charges`` directly. Everything
that moves an object on (expiring a code, a payment, settling a refund) lives here and
emits the webhook elepay would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from paygate.sandbox import (
    ControlError,
    Emulator,
    EmulatorContext,
    LedgerEntry,
    WebhookDelivery,
    account_table,
)

from .._wire import CONTENT_TYPE, PAYMENT_METHODS, REFUND_KEY_FIELD, dumps, to_millis

__all__ = [
    "APP_ID",
    "PUBLIC_KEY",
    "SECRET_KEY",
    "WEBHOOK_SCHEDULE",
    "ElepayState",
    "StoredCharge",
    "StoredCode",
    "StoredRefund",
    "payment_method",
]

# Fixed, documented sandbox credential: it opens nothing outside the emulator.
SECRET_KEY: Final = "sk_test_paygate_sandbox_elepay_0001"  # noqa: S105
PUBLIC_KEY: Final = "pk_test_paygate_sandbox_elepay_0001"
APP_ID: Final = "app_paygate_sandbox"
WEBHOOK_SCHEDULE: Final = (timedelta(minutes=1),) * 3 + (timedelta(minutes=10),) * 3


@dataclass(slots=True)
class StoredRefund:
    """A refund of a charge (``pending`` until settled, then ``refunded``)."""

    id: str
    charge_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    refunded_at: datetime | None = None

    def dto(self) -> dict[str, Any]:
        """elepay's ``RefundDto``."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "refund",
            "chargeId": self.charge_id,
            "liveMode": False,
            "amount": self.amount,
            "currency": self.currency,
            "metadata": dict(self.metadata),
            "status": self.status,
            "createTime": to_millis(self.created),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.refunded_at is not None:
            out["refundedTime"] = to_millis(self.refunded_at)
        return out


@dataclass(slots=True)
class StoredCharge:
    """The charge a paid code made."""

    id: str
    code_id: str
    order_no: str
    amount: int
    currency: str
    payment_method: str
    status: str
    created: datetime
    paid_at: datetime | None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    refunds: list[StoredRefund] = field(default_factory=list)
    refunded_at: datetime | None = None

    @property
    def refunded_amount(self) -> int:
        """What the settled refunds returned."""
        return sum(r.amount for r in self.refunds if r.status == "refunded")

    @property
    def committed_refunds(self) -> int:
        """What every refund, pending ones too, returns."""
        return sum(r.amount for r in self.refunds)

    def dto(self) -> dict[str, Any]:
        """elepay's ``ChargeDto``."""
        out: dict[str, Any] = {
            "id": self.id,
            "appId": APP_ID,
            "object": "charge",
            "liveMode": False,
            "amount": self.amount,
            "currency": self.currency,
            "authorize": False,
            "paymentMethod": self.payment_method,
            "resource": "web",
            "orderNo": self.order_no,
            "metadata": dict(self.metadata),
            "extra": dict(self.extra),
            "cardInfo": {"wallet": self.payment_method},
            "paid": self.paid_at is not None,
            "refunded": self.status == "refunded",
            "disputed": False,
            "refunds": {
                "amount": self.refunded_amount,
                "totalCount": len(self.refunds),
                "data": [r.dto() for r in self.refunds],
            },
            "status": self.status,
            "createTime": to_millis(self.created),
        }
        if self.description is not None:
            out["description"] = self.description
        if self.paid_at is not None:
            out["paidTime"] = to_millis(self.paid_at)
        if self.refunded_at is not None:
            out["refundTime"] = to_millis(self.refunded_at)
        return out


@dataclass(slots=True)
class StoredCode:
    """An EasyQR code (``pending``, ``captured`` once paid, ``closed``)."""

    id: str
    order_no: str
    amount: int
    currency: str
    created: datetime
    expires: datetime
    status: str = "pending"
    expired: bool = False
    description: str | None = None
    front_url: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    location_id: str | None = None
    charge: StoredCharge | None = None
    attempts: int = 0
    deleted: bool = False


def payment_method(params: Mapping[str, Any]) -> str:
    """The wallet brand a payer picks (``payment_method`` or ``paymentMethod``,
    PayPay by default)."""
    method = params.get("payment_method", params.get("paymentMethod", "paypay"))
    if method not in PAYMENT_METHODS:
        raise ControlError(f"unknown payment method {method!r}")
    return str(method)


class ElepayState(Emulator):
    """The emulator's tables, settings a test may change, and lifecycle."""

    name: ClassVar[str] = "elepay"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.codes: dict[str, StoredCode] = {}
        self.charges: dict[str, StoredCharge] = {}
        self.paid_orders: set[str] = set()
        self._serial = 0
        self._set_defaults()

    def _set_defaults(self) -> None:
        self._throttled = 0
        self._busy = 0
        self._refund_mode = "immediate"
        self._expired_flag = "ran_out"
        self._revoke_refunds = "empty"

    # -- Emulator interface -----------------------------------------------------------

    def reset(self) -> None:
        """Forget every code, charge and refund."""
        self.codes.clear()
        self.charges.clear()
        self.paid_orders.clear()
        self._serial = 0
        self._set_defaults()

    def credentials(self) -> dict[str, Any]:
        """The fixed test credentials of the emulated application."""
        return {
            "secret_key": SECRET_KEY,
            "public_key": PUBLIC_KEY,
            "app_id": APP_ID,
            "base_url": self.base_url,
            "payment_methods": list(PAYMENT_METHODS),
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account pointing at this emulator."""
        return account_table(self, "base_url", "secret_key")

    def on_clock_advanced(self, now: datetime) -> None:
        """Close codes whose expiry has passed."""
        self._sweep()

    def ledger(self) -> list[LedgerEntry]:
        """Every charge and refund, keyed by order number / refund key."""
        out: list[LedgerEntry] = []
        for charge in self.charges.values():
            out.append(
                LedgerEntry(
                    kind="charge",
                    id=charge.id,
                    key=charge.order_no,
                    amount=charge.amount,
                    currency=charge.currency,
                    refunded=charge.refunded_amount,
                    status=charge.status,
                )
            )
            for refund in charge.refunds:
                out.append(
                    LedgerEntry(
                        kind="refund",
                        id=refund.id,
                        key=refund.metadata.get(REFUND_KEY_FIELD),
                        amount=refund.amount,
                        currency=refund.currency,
                        status=refund.status,
                    )
                )
        return out

    # -- lifecycle ----------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}_{self.ctx.rng.getrandbits(64):016x}{self._serial:06d}"

    def _sweep(self) -> None:
        """Close the pending codes whose expiry time has passed."""
        now = self.now
        for code in self.codes.values():
            if code.status == "pending" and code.expires <= now:
                code.status = "closed"
                code.expired = True

    def _code_dto(self, code: StoredCode) -> dict[str, Any]:
        """elepay's ``CodeDto`` of ``code``, now."""
        now = self.now
        out: dict[str, Any] = {
            "id": code.id,
            "object": "code",
            "liveMode": False,
            "codeUrl": f"{self.base_url}/easyqr/{code.id}",
            "amount": code.amount,
            "currency": code.currency,
            "orderNo": code.order_no,
            "metadata": dict(code.metadata),
            "extra": dict(code.extra),
            "status": code.status,
            "items": [dict(item) for item in code.items],
            "expired": code.expired or (code.deleted and self._expired_flag == "invalid"),
            "expiryTime": to_millis(code.expires),
            "expiryPeriod": max(0, to_millis(code.expires) - to_millis(now))
            if code.status == "pending"
            else 0,
            "createTime": to_millis(code.created),
        }
        if code.description is not None:
            out["description"] = code.description
        if code.front_url is not None:
            out["frontUrl"] = code.front_url
        if code.location_id is not None:
            out["locationId"] = code.location_id
        if code.charge is not None:
            out["charge"] = code.charge.dto()
        return out

    def _webhook(self, event_type: str, obj: dict[str, Any]) -> None:
        event_id = self._id("evt")
        body = {
            "id": event_id,
            "object": "event",
            "liveMode": False,
            "createTime": to_millis(self.now),
            "type": event_type,
            "data": {"object": obj},
        }
        self.ctx.deliver(
            WebhookDelivery(
                provider=self.name,
                body=dumps(body),
                headers={"Content-Type": CONTENT_TYPE},
                schedule=WEBHOOK_SCHEDULE,
                event_id=event_id,
            )
        )

    def _control_code(self, code_id: str) -> StoredCode:
        code = self.codes.get(code_id)
        if code is None:
            raise ControlError(f"no code {code_id!r}", status=404)
        return code

    def _pay(self, code_id: str, method: str) -> dict[str, Any]:
        """The payer pays ``code_id`` with wallet ``method`` (``charge.succeeded``)."""
        code = self._control_code(code_id)
        if code.status == "captured":
            raise ControlError("the code has already been paid", status=409)
        if code.status == "closed":
            reason = "expired" if code.expired else "closed"
            raise ControlError(f"the code has {reason}", status=409)
        if code.order_no in self.paid_orders:
            raise ControlError("M002007: the order number has already been paid", status=409)
        now = self.now
        charge = StoredCharge(
            id=self._id("ch"),
            code_id=code.id,
            order_no=code.order_no,
            amount=code.amount,
            currency=code.currency,
            payment_method=method,
            status="captured",
            created=now,
            paid_at=now,
            description=code.description,
            metadata=dict(code.metadata),
            extra=dict(code.extra),
        )
        self.charges[charge.id] = charge
        self.paid_orders.add(code.order_no)
        code.charge = charge
        code.status = "captured"
        self._webhook("charge.succeeded", charge.dto())
        return {
            "codeId": code.id,
            "chargeId": charge.id,
            "status": charge.status,
            "paymentMethod": method,
        }

    def _settle(self, charge: StoredCharge, refund: StoredRefund) -> None:
        """A refund completes (``refund.succeeded``)."""
        now = self.now
        refund.status = "refunded"
        refund.refunded_at = now
        charge.refunded_at = now
        charge.status = (
            "refunded" if charge.refunded_amount >= charge.amount else "partially_refunded"
        )
        self._webhook("refund.succeeded", refund.dto())
