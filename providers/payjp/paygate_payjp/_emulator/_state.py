"""The PAY.JP emulator's state: stored charges, events, tenants, tokens, the payout
books, seed data and what happens when the sandbox clock moves."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paygate.sandbox import (
    Emulator,
    EmulatorContext,
    KeyedReplies,
    LedgerEntry,
    WebhookDelivery,
    account_table,
)

from .._webhooks import TOKEN_HEADER
from ._books import Books

__all__ = [
    "CARD_MESSAGES",
    "PUBLIC_KEY",
    "SECRET_KEY",
    "TEST_TOKENS",
    "WEBHOOK_TOKEN",
    "ChargeRec",
    "PayjpState",
    "Readings",
    "card_wire",
]


SECRET_KEY = "sk_test_paygate0sandbox0000000000"  # noqa: S105 - documented test key
PUBLIC_KEY = "pk_test_paygate0sandbox0000000000"
WEBHOOK_TOKEN = "whook_test_paygate0sandbox00000000"  # noqa: S105 - documented test token

# token -> failure code (None: the card works)
TEST_TOKENS: dict[str, str | None] = {
    "tok_success": None,
    "tok_card_declined": "card_declined",
    "tok_expired_card": "expired_card",
    "tok_invalid_cvc": "invalid_cvc",
    "tok_incorrect_card_data": "incorrect_card_data",
    "tok_card_flagged": "card_flagged",
    "tok_unacceptable_brand": "unacceptable_brand",
    "tok_processing_error": "processing_error",
    "tok_3ds_failed": None,
}
CARD_MESSAGES = {
    "card_declined": "Card declined.",
    "expired_card": "Card has expired.",
    "invalid_cvc": "Invalid card cvc.",
    "incorrect_card_data": "The card data is incorrect.",
    "card_flagged": "The card is temporarily locked.",
    "unacceptable_brand": "The card brand is not accepted.",
    "processing_error": "An error occurred while processing the card.",
}
TDS_FAILS = "tok_3ds_failed"  # its 3-D Secure page fails the authentication
SEED_CUSTOMERS = {"cus_success": "tok_success", "cus_card_declined": "tok_card_declined"}
SEED_TENANTS = {"ten_test": ("Test tenant", "10.00")}
KEY_MEMORY = timedelta(hours=24)
STATEMENT_URL_LIFETIME = 3600
WEBHOOK_RETRIES = (timedelta(minutes=3),) * 3


@dataclass
class ChargeRec:
    """A charge as the emulator stores it: the wire object and what PAY.JP keeps aside."""

    wire: dict[str, Any]
    owner: str | None
    key: str | None
    capture: bool
    behaviour: str
    fee: int = 0
    platform_fee: int = 0
    expiry_days: int = 7
    refunds: list[int] = field(default_factory=list)
    authorized: int = 0
    captured_amount: int = 0
    released: int = 0  # what a partial capture booked in amount_refunded

    @property
    def merchant_refunded(self) -> int:
        """What the merchant refunded (amount_refunded less a capture's release)."""
        return int(self.wire["amount_refunded"]) - self.released

    @property
    def refundable(self) -> int:
        return self.captured_amount - self.merchant_refunded


@dataclass
class Readings:
    """How the emulator plays facts PAY.JP's documents leave open (``reading`` action)."""

    idempotent_writes: str = "all"  # "all" POSTs honour Idempotency-Key, or "create" only
    capture_amount: str = "authorized"  # ``amount`` after a partial capture
    refunded_after_capture: bool = False  # a partial capture sets ``refunded``
    expiry_marks_refunded: bool = True  # an expired authorisation is marked refunded
    tds_timeout_minutes: int = 30
    terms_order: str = "newest"  # GET /v1/terms newest first, or "oldest" first


class PayjpState(Emulator):
    """The emulator's tables and the state changes its routes and actions share.

    The tables the sandbox dashboard reads (``charges``) are instance attributes.
    """

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self._signing = hashlib.sha256(f"payjp-files-{ctx.rng.getrandbits(64)}".encode()).digest()
        self.reset()

    # -- state -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; seed customers, tenants and the first Term."""
        # The host re-seeds ``ctx.rng`` before a reset, so ids repeat from run to run.
        self._rng = random.Random(self.ctx.rng.getrandbits(64))
        self.charges: dict[str, ChargeRec] = {}
        self.events: list[dict[str, Any]] = []
        self.tenants: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, tuple[str, bool]] = {}  # minted: token -> (behaviour, used)
        self.customers: dict[str, str] = dict(SEED_CUSTOMERS)
        self._keys = KeyedReplies(self.ctx.clock, KEY_MEMORY)
        self._current_key: str | None = None
        self.readings = Readings()
        now = self._ts()
        for tid, (name, rate) in SEED_TENANTS.items():
            self.tenants[tid] = self._tenant_wire(tid, name, rate, now)
        self.books = Books(now, new_id=self._id, emit=self._emit)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self._rng.getrandbits(116):029x}"

    def _ts(self) -> int:
        return int(self.now.timestamp())

    def _tenant_wire(self, tid: str, name: str, rate: str, now: int) -> dict[str, Any]:
        return {
            "object": "tenant",
            "id": tid,
            "livemode": False,
            "created": now,
            "name": name,
            "platform_fee_rate": rate,
            "metadata": {},
        }

    def _emit(self, kind: str, obj: Mapping[str, Any], at: int | None = None) -> None:
        """Record an event and hand it to the sandbox for delivery.

        ``at`` is when it happened: a closing run processed late (the clock jumped over
        it) dates its events at the run's time, not at "now".
        """
        event_id = self._id("evnt")
        event = {
            "object": "event",
            "id": event_id,
            "livemode": False,
            "created": self._ts() if at is None else at,
            "type": kind,
            "data": copy.deepcopy(dict(obj)),
            "pending_webhooks": 1,
        }
        self.events.append(event)
        body = json.dumps(event, ensure_ascii=False).encode()
        self.ctx.deliver(
            WebhookDelivery(
                provider=self.name,
                body=body,
                headers={TOKEN_HEADER: WEBHOOK_TOKEN, "Content-Type": "application/json"},
                schedule=WEBHOOK_RETRIES,
                event_id=event_id,
            )
        )

    def on_clock_advanced(self, now: datetime) -> None:
        """Run closings, deferral ends, payouts and authorisation expiries now due."""
        self._catch_up(int(now.timestamp()))

    def _catch_up(self, now: int) -> None:
        for charge in self.charges.values():
            wire = charge.wire
            expired_at = wire.get("expired_at")
            if (
                wire["paid"]
                and not wire["captured"]
                and not wire["refunded"]
                and isinstance(expired_at, int)
                and expired_at <= now
            ):
                if not self.readings.expiry_marks_refunded:
                    continue
                wire["refunded"] = True
                wire["amount_refunded"] = wire["amount"]
                self._emit("charge.updated", wire)
        self.books.run_until(now)

    # -- sandbox interface -----------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        """Fixed test keys, tokens, customers and tenants of this emulator."""
        return {
            "base_url": self.base_url,
            "secret_key": SECRET_KEY,
            "public_key": PUBLIC_KEY,
            "webhook_token": WEBHOOK_TOKEN,
            "tokens": sorted(TEST_TOKENS),
            "customers": sorted(SEED_CUSTOMERS),
            "tenants": sorted(SEED_TENANTS),
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account table pointing at this emulator."""
        return account_table(self, "base_url", "secret_key", "public_key", "webhook_token")

    def ledger(self) -> list[LedgerEntry]:
        """Every charge (captured or authorised amount) and every balance (net)."""
        entries = [
            LedgerEntry(
                kind="charge",
                id=charge.wire["id"],
                key=charge.key,
                amount=charge.captured_amount if charge.wire["captured"] else charge.authorized,
                refunded=charge.merchant_refunded if charge.wire["captured"] else 0,
                status=_ledger_status(charge),
            )
            for charge in self.charges.values()
        ]
        entries += [
            LedgerEntry(
                kind="balance",
                id=balance.id,
                key=None,
                amount=self.books.net(balance),
                status=f"{balance.state}{'/closed' if balance.closed else ''}",
            )
            for balance in self.books.balances.values()
        ]
        return entries

    def _pay(self, charge: ChargeRec) -> None:
        wire = charge.wire
        now = self._ts()
        wire["paid"] = True
        if charge.capture:
            self._fix_capture(charge, wire["amount"], now)
        else:
            wire["expired_at"] = now + charge.expiry_days * 86_400
        self._emit("charge.succeeded", wire)

    def _fix_capture(self, charge: ChargeRec, amount: int, now: int) -> None:
        wire = charge.wire
        wire["captured"] = True
        wire["captured_at"] = now
        wire["expired_at"] = None
        charge.captured_amount = amount
        charge.released = charge.authorized - amount
        # payjp-go Capture: the released rest of the authorisation is in amount_refunded.
        wire["amount_refunded"] = charge.released
        if self.readings.capture_amount == "captured":
            wire["amount"] = amount
        if charge.released and self.readings.refunded_after_capture:
            wire["refunded"] = True
        if charge.owner is not None and charge.platform_fee:
            charge.platform_fee = min(charge.platform_fee, amount)
            wire["platform_fee"] = charge.platform_fee
            wire["total_platform_fee"] = charge.platform_fee
        charge.fee = self.books.fee(amount)
        wire["term_id"] = self.books.record_capture(
            charge.owner, amount, charge.fee, charge.platform_fee if charge.owner else 0
        )


def card_wire(token: str, customer: str | None, created: int) -> dict[str, Any]:
    """The card object of a charge made with test token ``token``."""
    last4 = {"tok_success": "4242", "tok_card_declined": "0002"}.get(token, "0000")
    return {
        "object": "card",
        "id": f"car_{hashlib.sha256(token.encode()).hexdigest()[:29]}",
        "livemode": False,
        "created": created,
        "name": None,
        "address_city": None,
        "address_line1": None,
        "address_line2": None,
        "address_state": None,
        "address_zip": None,
        "address_zip_check": "unchecked",
        "brand": "Visa",
        "last4": last4,
        "exp_month": 12,
        "exp_year": 2030,
        "country": "JP",
        "customer": customer,
        "cvc_check": "passed",
        "fingerprint": hashlib.sha256(f"fp-{token}".encode()).hexdigest()[:32],
        "three_d_secure_status": None,
        "metadata": {},
    }


def _ledger_status(charge: ChargeRec) -> str:
    wire = charge.wire
    if not wire["paid"]:
        return "failed" if wire["failure_code"] else "pending"
    if not wire["captured"]:
        return "canceled" if wire["refunded"] else "authorized"
    if charge.refundable <= 0:
        return "refunded"
    return "partially_refunded" if charge.merchant_refunded else "succeeded"
