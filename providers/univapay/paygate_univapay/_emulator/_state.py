"""The UnivaPay emulator's state: fixed credentials, stored objects, their lifecycle.

The tables (``tokens``, ``charges``, ``refunds``, ``cancels``, ``ledgers``,
``transfers``, ``webhooks``) are plain attributes of the emulator: the sandbox
dashboard reads ``charges`` directly. Everything that moves an object on (issuing a
slip, charging a card, completing a refund or cancel, expiring a slip) lives here and
emits the webhook UnivaPay would send.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any, ClassVar

from paygate.sandbox import (
    Emulator,
    EmulatorContext,
    KeyedReplies,
    LedgerEntry,
    WebhookDelivery,
    account_table,
)

__all__ = [
    "BANK_ACCOUNT_ID",
    "CARD_ALIASES",
    "JWT",
    "MERCHANT_ID",
    "SECRET",
    "SEED_CARD_TOKENS",
    "STORE_ID",
    "TEST_CARDS",
    "WEBHOOK_AUTH_TOKEN",
    "StoredCharge",
    "StoredWebhook",
    "UnivapayState",
    "public",
    "ts",
]

MERCHANT_ID = "11f0c0de-0000-4000-8000-70617967a7e0"
STORE_ID = "11f0c0de-5702-4000-8000-70617967a7e0"
BANK_ACCOUNT_ID = "11f0c0de-ba2c-4000-8000-70617967a7e0"
SECRET = "sandbox_univapay_secret"  # noqa: S105 - the documented sandbox test secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _make_jwt() -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "iss": "jp.univapay.sandbox",
        "sub": "app_token",
        "merchant_id": MERCHANT_ID,
        "store_id": STORE_ID,
        "creator_id": MERCHANT_ID,
        "version": 1,
        "jti": "11f0c0de-a770-4000-8000-70617967a7e0",
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(b"paygate-sandbox", f"{header}.{payload}".encode(), "sha256").digest()
    return f"{header}.{payload}.{_b64(signature)}"


JWT = _make_jwt()
WEBHOOK_AUTH_TOKEN = "sandbox_univapay_webhook_token"  # noqa: S105 - documented test token

# Card numbers with a fixed outcome; any other well-formed number succeeds.
TEST_CARDS: dict[str, tuple[str, int | None, str | None]] = {
    "4000020000000000": ("successful", None, None),
    "4111111111111111": ("successful", None, None),
    "4000000000000002": ("failed", 306, "CARD_REJECTED"),
    "4000000000000069": ("failed", 304, "CARD_EXPIRED"),
    "4000000000000119": ("error", 309, "PROCESSING_ERROR"),
    # A card whose charge waits for the customer's 3-D Secure step (``awaiting``).
    "4000000000003220": ("awaiting", None, None),
}
CARD_ALIASES = {
    "three_ds": "4000000000003220",
    "success": "4000020000000000",
    "declined": "4000000000000002",
    "expired": "4000000000000069",
    "error": "4000000000000119",
}
SEED_CARD_TOKENS = {
    "success": "11f0c0de-70c1-4000-8000-70617967a7e0",
    "declined": "11f0c0de-70c2-4000-8000-70617967a7e0",
}

# The seed tokens are reusable test fixtures (like other sandboxes' ``tok_success``) and
# exempt from the CHARGE_TOO_QUICK guard; tokens made over the API are not.
SEED_TOKEN_IDS = frozenset(SEED_CARD_TOKENS.values())

KEY_WINDOW = timedelta(hours=24)
TOO_QUICK = timedelta(seconds=30)
KONBINI_MAX_AMOUNT = 299_999
DEFAULT_EXPIRY = timedelta(days=30)
JST = timezone(timedelta(hours=9))
WEBHOOK_SCHEDULE = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))
TRANSFER_STATUSES = frozenset(
    {"created", "approved", "canceled", "processing", "paid", "failed", "blank"}
)
TIME_SHIFT = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([+-]\d{2}):?(\d{2})$")


def ts(moment: datetime) -> str:
    """UnivaPay's timestamp form (UTC, microseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def public(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The wire object without the emulator's private bookkeeping keys."""
    return {k: v for k, v in wire.items() if not k.startswith("_")}


@dataclass
class StoredCharge:
    """A charge: its wire object and what the emulator keeps beside it."""

    wire: dict[str, Any]
    payment_type: str
    store: str | None = None
    card_number: str | None = None
    key: str | None = None
    deadline: datetime | None = None
    refunds: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    capture_after_3ds: bool = True


@dataclass
class StoredWebhook:
    """A webhook registered through ``POST /stores/{storeId}/webhooks``."""

    wire: dict[str, Any]


class UnivapayState(Emulator):
    """The tables and the lifecycle of UnivaPay's objects on the sandbox clock."""

    name: ClassVar[str] = "univapay"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.replies = KeyedReplies(ctx.clock, KEY_WINDOW)
        self.poll_hold_seconds = 10.0
        self.auto_issue = True
        self.auto_complete = True
        self.webhook_envelope = "openapi"
        self.expiry_error: dict[str, Any] | None = None
        self.over_limit = 429
        self.idempotency_error = False
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; restore the seed card tokens."""
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token_cards: dict[str, str] = {}
        self.charges: dict[str, StoredCharge] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.cancels: dict[str, dict[str, Any]] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, StoredWebhook] = {}
        self.replies.clear()
        self._last_charge: dict[tuple[str, int], datetime] = {}
        self.poll_hold_seconds = 10.0
        self.auto_issue = True
        self.auto_complete = True
        self.webhook_envelope = "openapi"
        self.expiry_error = None
        self.over_limit = 429
        self.idempotency_error = False
        for alias, token_id in SEED_CARD_TOKENS.items():
            self._card_token(CARD_ALIASES[alias], kind="recurring", token_id=token_id)
        self._notify_all()

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))

    def credentials(self) -> dict[str, Any]:
        """The fixed test credentials, seed tokens and test cards."""
        return {
            "base_url": self.base_url,
            "merchant_id": MERCHANT_ID,
            "store_id": STORE_ID,
            "secret": SECRET,
            "jwt": JWT,
            "webhook_auth_token": WEBHOOK_AUTH_TOKEN,
            "card_tokens": dict(SEED_CARD_TOKENS),
            "test_cards": dict(CARD_ALIASES),
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account pointing at this emulator."""
        return account_table(self, "base_url", "store_id", "secret", "jwt", "webhook_auth_token")

    def ledger(self) -> list[LedgerEntry]:
        """Charges and refunds, with the idempotency key that created them."""
        out: list[LedgerEntry] = []
        for charge in self.charges.values():
            wire = charge.wire
            refunded = sum(
                int(self.refunds[r]["amount"])
                for r in charge.refunds
                if self.refunds[r]["status"] == "successful"
            )
            out.append(
                LedgerEntry(
                    kind="charge",
                    id=wire["id"],
                    key=charge.key,
                    amount=int(wire["requested_amount"]),
                    currency=wire["requested_currency"],
                    refunded=refunded,
                    status=wire["status"],
                )
            )
        for refund in self.refunds.values():
            out.append(
                LedgerEntry(
                    kind="refund",
                    id=refund["id"],
                    key=refund.get("_key"),
                    amount=int(refund["amount"]),
                    currency=refund["currency"],
                    status=refund["status"],
                )
            )
        return out

    # -- waiting (polling=true) ------------------------------------------------------------

    def _notify(self, object_id: str) -> None:
        for loop, event in self._waiters.pop(object_id, []):
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(event.set)

    def _notify_all(self) -> None:
        for object_id in list(self._waiters):
            self._notify(object_id)

    async def _hold(self, object_id: str, still_pending: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_hold_seconds
        while still_pending():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event = asyncio.Event()
            self._waiters.setdefault(object_id, []).append((loop, event))
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return

    # -- webhooks ------------------------------------------------------------------------------

    def _emit(self, trigger: str, data: Mapping[str, Any]) -> None:
        event_id = self._new_id()
        envelope: dict[str, Any] = {
            "id": event_id,
            "event": trigger,
            "data": public(data),
            "created_on": ts(self.now),
        }
        if self.webhook_envelope == "reference":
            envelope = {"event": trigger, "data": envelope["data"]}
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        targets = [
            hook.wire
            for hook in self.webhooks.values()
            if hook.wire.get("active", True) and trigger in hook.wire.get("triggers", [])
        ]
        if not targets:
            targets = [{"url": None, "auth_token": WEBHOOK_AUTH_TOKEN}]
        for target in targets:
            headers = {"Content-Type": "application/json"}
            if target.get("auth_token"):
                headers["Authorization"] = str(target["auth_token"])
            self.ctx.deliver(
                WebhookDelivery(
                    provider=self.name,
                    body=body,
                    headers=headers,
                    schedule=WEBHOOK_SCHEDULE,
                    url=target.get("url"),
                    event_id=event_id,
                )
            )

    # -- lifecycle -------------------------------------------------------------------------------

    def _deadline(self, created: datetime, period: timedelta, shift: str | None) -> datetime:
        if period % timedelta(days=1):
            return created + period
        local = created.astimezone(JST)
        tz: timezone = JST
        at = time(23, 59, 59)
        if shift:
            match = TIME_SHIFT.match(shift)
            if match:
                hh, mm, ss, oh, om = match.groups()
                sign = -1 if oh.startswith("-") else 1
                tz = timezone(sign * timedelta(hours=abs(int(oh)), minutes=int(om)))
                local = created.astimezone(tz)
                at = time(int(hh), int(mm), int(ss))
        day = local.date() + timedelta(days=period.days)
        return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)

    def _issue(self, charge: StoredCharge) -> None:
        wire = charge.wire
        if wire["status"] != "pending" or charge.payment_type != "konbini":
            return
        rng = self.ctx.rng
        metadata = dict(wire.get("metadata") or {})
        digits = 13 if charge.store == "seven_eleven" else 11
        number = "".join(str(rng.randrange(10)) for _ in range(digits))
        if charge.store != "seven_eleven":
            # The guide's example number has a prefix: "20020-123456789012".
            number = f"{rng.randrange(10000, 100000)}-{number}"
        metadata["internal_convenience_payment_number"] = number
        if charge.store == "seven_eleven":
            metadata["internal_convenience_payment_url"] = f"{self.base_url}/_slips/{wire['id']}"
        wire["metadata"] = metadata
        wire["status"] = "awaiting"
        # The guide's awaiting charge already states the charged amount.
        wire["charged_amount"] = wire["requested_amount"]
        wire["charged_currency"] = wire["requested_currency"]
        wire["charged_amount_formatted"] = wire["requested_amount_formatted"]
        self._notify(wire["id"])
        self._emit("charge_updated", wire)

    def _process_card(self, charge: StoredCharge, capture: bool) -> None:
        wire = charge.wire
        if wire["status"] != "pending":
            return
        outcome, code, name = TEST_CARDS.get(charge.card_number or "", ("successful", None, None))
        if outcome == "awaiting":
            # 3-D Secure: the customer's browser must POST the issuer token's payload
            # (Ruby SDK doc "Get Charge Three Ds Issuer Token"); finish_three_ds ends it.
            wire["status"] = "awaiting"
            charge.capture_after_3ds = capture
            self._notify(wire["id"])
            self._emit("charge_updated", wire)
            return
        if outcome != "successful":
            wire["status"] = outcome
            wire["error"] = {
                "code": code,
                "message": name,
                "detail": "sandbox test card outcome",
            }
            self._notify(wire["id"])
            self._emit("charge_finished", wire)
            return
        if capture:
            self._succeed(charge, int(wire["requested_amount"]))
        else:
            wire["status"] = "authorized"
            wire["capture_status"] = "authorized"
            self._notify(wire["id"])
            self._emit("charge_updated", wire)

    def _succeed(self, charge: StoredCharge, amount: int) -> None:
        wire = charge.wire
        wire["status"] = "successful"
        wire["charged_amount"] = amount
        wire["charged_currency"] = wire["requested_currency"]
        wire["charged_amount_formatted"] = amount
        if charge.payment_type == "card":
            wire["capture_status"] = "captured"
        self._add_ledger(charge, amount, origin="charge")
        self._notify(wire["id"])
        self._emit("charge_finished", wire)

    def _add_ledger(self, charge: StoredCharge, amount: int, *, origin: str) -> None:
        ledger_id = self._new_id()
        currency = charge.wire["requested_currency"]
        self.ledgers[ledger_id] = {
            "id": ledger_id,
            "merchant_id": MERCHANT_ID,
            "store_id": STORE_ID,
            "transfer_id": None,
            "amount": amount,
            "currency": currency,
            "amount_formatted": amount,
            "percent_fee": 0,
            "flat_fee": 0,
            "flat_fee_currency": currency,
            "flat_fee_formatted": 0,
            "exchange_rate": 1,
            "origin": origin,
            "note": None,
            "created_on": ts(self.now),
        }

    def _complete_refund(self, refund: dict[str, Any]) -> None:
        if refund["status"] != "pending":
            return
        refund["status"] = "successful"
        refund["updated_on"] = ts(self.now)
        charge = self.charges[refund["charge_id"]]
        self._add_ledger(charge, -int(refund["amount"]), origin="refund")
        self._notify(refund["id"])
        self._emit("refund_finished", refund)

    def _complete_cancel(self, cancel: dict[str, Any]) -> None:
        if cancel["status"] != "pending":
            return
        charge = self.charges[cancel["charge_id"]]
        now = ts(self.now)
        cancel["updated_on"] = now
        if charge.wire["status"] in ("pending", "awaiting", "authorized"):
            cancel["status"] = "successful"
            charge.wire["status"] = "canceled"
            self._notify(charge.wire["id"])
            self._emit("charge_finished", charge.wire)
        else:
            cancel["status"] = "failed"
            cancel["error"] = {"code": 312, "message": "CANCEL_UNAVAILABLE", "detail": None}
        self._notify(cancel["id"])
        self._emit("cancel_finished", cancel)

    def _expire(self, now: datetime) -> None:
        for charge in self.charges.values():
            wire = charge.wire
            if (
                charge.payment_type == "konbini"
                and wire["status"] in ("pending", "awaiting")
                and charge.deadline is not None
                and charge.deadline <= now
            ):
                wire["status"] = "failed"
                wire["error"] = dict(self.expiry_error) if self.expiry_error else None
                self._notify(wire["id"])
                self._emit("charge_finished", wire)

    def on_clock_advanced(self, now: datetime) -> None:
        """Expire unpaid slips whose deadline passed."""
        self._expire(now)

    def _complete_pending(self) -> None:
        for charge in list(self.charges.values()):
            if charge.payment_type == "konbini":
                self._issue(charge)
            else:
                self._process_card(charge, bool(charge.wire.get("_capture", True)))
        for refund in list(self.refunds.values()):
            self._complete_refund(refund)
        for cancel in list(self.cancels.values()):
            self._complete_cancel(cancel)

    # -- tokens ----------------------------------------------------------------------

    def _card_token(
        self, number: str, *, kind: str = "one_time", token_id: str | None = None
    ) -> dict[str, Any]:
        token_id = token_id or self._new_id()
        now = ts(self.now)
        wire = {
            "id": token_id,
            "store_id": STORE_ID,
            "email": "test@example.com",
            "active": True,
            "mode": "test",
            "type": kind,
            "usage_limit": None,
            "confirmed": None,
            "payment_type": "card",
            "metadata": {},
            "created_on": now,
            "updated_on": now,
            "last_used_on": None,
            "data": {
                "card": {
                    "cardholder": "TARO TEST",
                    "exp_month": 12,
                    "exp_year": 2099,
                    "card_bin": number[:6],
                    "last_four": number[-4:],
                    "brand": "visa" if number.startswith("4") else "unknown",
                    "card_type": "credit",
                    "country": "JP",
                    "category": None,
                    "issuer": None,
                    "sub_brand": "none",
                },
                "billing": None,
                "cvv_authorize": None,
                "three_ds": None,
            },
        }
        self.tokens[token_id] = wire
        self.token_cards[token_id] = number
        return wire
