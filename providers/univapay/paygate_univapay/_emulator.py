"""The UnivaPay sandbox emulator: tokens, charges, cancels, refunds, transfers, webhooks.

Served by the paygate sandbox under ``/univapay``; the official ``univapay-client-sdk``
works against it with ``base_url`` pointing there.

What it does, and what it assumes where UnivaPay's documentation is silent:

* Authentication: ``Authorization: Bearer {secret}.{jwt}`` with the fixed test
  credentials below; ``Bearer {jwt}`` alone (the browser widget form) may only create
  tokens. Missing header: 401 ``AUTH_HEADER_MISSING``; wrong token: 401
  ``INVALID_APP_TOKEN`` / ``INVALID_CREDENTIALS``.
* Idempotency: every POST and PATCH honours ``Idempotency-Key`` for 24 hours of sandbox
  time. First use answers ``Idempotency-Status: successfully_stored``; the same key with
  the same method, path and JSON body replays the stored answer with
  ``retrieved_idempotent_response``; the same key with anything else is 409
  ``IDEMPOTENCY_KEY_CONFLICT`` with ``conflicting_key``. A POST or PATCH without a key
  answers ``not_stored`` (assumption: UnivaPay documents the value, not when it is sent).
  5xx answers are not stored.
* Lifecycle: charges, refunds and cancels are created ``pending`` (the 201 body says
  so, as UnivaPay documents) and move on the moment after that answer is built, so
  every later read sees the next state: a konbini charge becomes ``awaiting`` with its
  slip issued (``charge_updated``), a card charge ``successful``, ``authorized`` or
  ``failed``, refunds and cancels ``successful``. The control action ``configure``
  (``auto_issue`` / ``auto_complete`` false) keeps them pending until ``issue_konbini``
  or ``complete_pending``, to exercise the ``polling=true`` hold and unissued slips.
* Konbini slip (UnivaPay's konbini guide): once the charge is ``awaiting`` its metadata
  holds ``internal_convenience_payment_number`` and, for 7-Eleven only,
  ``internal_convenience_payment_url`` (a slip page served at ``/_slips/{id}``).
  ``capture_at`` is null unless the charge request set it (the documented ``awaiting``
  charge has ``capture_at: null``). The deadline is the requested ``capture_at``, else
  the application date plus ``expiration_period`` (default 30 days) at 23:59:59 JST, or
  at ``expiration_time_shift`` when given; a period with a time part is added exactly.
* Expiry: when the sandbox clock passes the deadline of an unpaid slip the charge
  becomes ``failed`` (UnivaPay: an expired application "becomes failed"). Its ``error``
  is not documented: null by default, or the object set with ``configure
  {expiry_error}``.
* ``polling=true`` holds a GET of a pending charge, refund or cancel until it leaves
  ``pending`` or ``poll_hold_seconds`` (default 10) pass, waiting on an asyncio event.
* Cards: see `TEST_CARDS`; the same recurring token and amount again within 30 seconds
  is 400 ``CHARGE_TOO_QUICK`` (the two seed tokens, reusable test fixtures, are exempt).
  Konbini charges cannot be refunded (400 ``REFUND_NOT_ALLOWED``) and, once paid, not
  cancelled (400 ``CANCEL_NOT_ALLOWED``).
* Webhooks: ``{"id", "event", "data", "created_on"}`` (the OpenAPI envelope) or, with
  ``configure {webhook_envelope: "reference"}``, ``{"event", "data"}`` (the reference
  page's example and the Java SDK model), sent to every webhook registered
  through ``POST /stores/{storeId}/webhooks`` whose triggers match, with its
  ``auth_token`` as the whole ``Authorization`` header; when none is registered, to the
  sandbox's webhook URL with `WEBHOOK_AUTH_TOKEN`. Retries after 1, 5 and 15 minutes of
  sandbox time (assumption: UnivaPay documents only that retries depend on the answer).
* Ledgers and transfers: each paid charge adds a ledger line (each refund a negative
  one) without fees; the control action ``run_transfer`` gathers unassigned lines into a
  ``created`` transfer and ``set_transfer_status`` moves it on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import (
    ControlError,
    Emulator,
    EmulatorContext,
    LedgerEntry,
    WebhookDelivery,
)

from ._wire import CONVENIENCE_STORES, parse_duration, parse_time

__all__ = [
    "JWT",
    "MERCHANT_ID",
    "SECRET",
    "STORE_ID",
    "TEST_CARDS",
    "WEBHOOK_AUTH_TOKEN",
    "UnivapayEmulator",
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
_CARD_ALIASES = {
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
_SEED_TOKEN_IDS = frozenset(SEED_CARD_TOKENS.values())

KEY_WINDOW = timedelta(hours=24)
TOO_QUICK = timedelta(seconds=30)
KONBINI_MAX_AMOUNT = 299_999
DEFAULT_EXPIRY = timedelta(days=30)
JST = timezone(timedelta(hours=9))
WEBHOOK_SCHEDULE = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))
_REFUND_REASONS = frozenset({"duplicate", "fraud", "customer_request"})
_TRANSFER_STATUSES = frozenset(
    {"created", "approved", "canceled", "processing", "paid", "failed", "blank"}
)
_TIME_SHIFT = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([+-]\d{2}):?(\d{2})$")
_FAULT_CODES = {
    500: "UNKNOWN_ERROR",
    502: "TIMEOUT",
    503: "SERVICE_UNAVAILABLE_TRY_AGAIN",
    504: "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST",
}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, errors: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.errors = list(errors)

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"status": "error", "code": self.code, "errors": self.errors}, status_code=self.status
        )


def _invalid(field: str, reason: str = "INVALID_FORMAT") -> _ApiError:
    return _ApiError(400, "VALIDATION_ERROR", [{"field": field, "reason": reason}])


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Charge:
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
class _Stored:
    fingerprint: str
    status: int
    body: bytes
    at: datetime


@dataclass
class _Webhook:
    wire: dict[str, Any]


Handler = Callable[[Request, bytes], Awaitable[Response]]


class UnivapayEmulator(Emulator):
    """A stateful UnivaPay API on the sandbox clock (see the module notes)."""

    name: ClassVar[str] = "univapay"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
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
        self.charges: dict[str, _Charge] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.cancels: dict[str, dict[str, Any]] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, _Webhook] = {}
        self._idem: dict[str, _Stored] = {}
        self._last_charge: dict[tuple[str, int], datetime] = {}
        self.poll_hold_seconds = 10.0
        self.auto_issue = True
        self.auto_complete = True
        self.webhook_envelope = "openapi"
        self.expiry_error = None
        self.over_limit = 429
        self.idempotency_error = False
        for alias, token_id in SEED_CARD_TOKENS.items():
            self._card_token(_CARD_ALIASES[alias], kind="recurring", token_id=token_id)
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
            "test_cards": dict(_CARD_ALIASES),
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account pointing at this emulator."""
        return {
            "provider": self.name,
            "base_url": self.base_url,
            "store_id": STORE_ID,
            "secret": SECRET,
            "jwt": JWT,
            "webhook_auth_token": WEBHOOK_AUTH_TOKEN,
        }

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
            "data": _public(data),
            "created_on": _ts(self.now),
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
            match = _TIME_SHIFT.match(shift)
            if match:
                hh, mm, ss, oh, om = match.groups()
                sign = -1 if oh.startswith("-") else 1
                tz = timezone(sign * timedelta(hours=abs(int(oh)), minutes=int(om)))
                local = created.astimezone(tz)
                at = time(int(hh), int(mm), int(ss))
        day = local.date() + timedelta(days=period.days)
        return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)

    def _issue(self, charge: _Charge) -> None:
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

    def _process_card(self, charge: _Charge, capture: bool) -> None:
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

    def _succeed(self, charge: _Charge, amount: int) -> None:
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

    def _add_ledger(self, charge: _Charge, amount: int, *, origin: str) -> None:
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
            "created_on": _ts(self.now),
        }

    def _complete_refund(self, refund: dict[str, Any]) -> None:
        if refund["status"] != "pending":
            return
        refund["status"] = "successful"
        refund["updated_on"] = _ts(self.now)
        charge = self.charges[refund["charge_id"]]
        self._add_ledger(charge, -int(refund["amount"]), origin="refund")
        self._notify(refund["id"])
        self._emit("refund_finished", refund)

    def _complete_cancel(self, cancel: dict[str, Any]) -> None:
        if cancel["status"] != "pending":
            return
        charge = self.charges[cancel["charge_id"]]
        now = _ts(self.now)
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

    def fault_response(self, status: int) -> Response:
        """UnivaPay's own error body for an injected fault.

        429 comes with an empty body (``Content-Length: 0``, UnivaPay's error-code page);
        502 and 504 as a proxy in front of the API sends them, without UnivaPay's body.
        """
        if status == 429:
            if self.over_limit == 400:
                # The older api-limits page: over the limit is a "BadRequest".
                return _ApiError(400, "RATE_LIMIT_EXCEEDED").response()
            return Response(b"", status_code=429)
        if status in (502, 504):
            return Response(b"", status_code=status)
        code = _FAULT_CODES.get(status, "UNKNOWN_ERROR" if status >= 500 else "BAD_REQUEST")
        return _ApiError(status, code).response()

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

    # -- HTTP plumbing ---------------------------------------------------------------------------

    def _authenticate(self, request: Request, *, widget_ok: bool = False) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise _ApiError(401, "AUTH_HEADER_MISSING")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise _ApiError(401, "INVALID_APP_TOKEN")
        value = value.strip()
        if value == JWT:
            if widget_ok:
                return
            raise _ApiError(401, "INVALID_CREDENTIALS")
        secret, _, jwt = value.partition(".")
        if jwt != JWT:
            raise _ApiError(401, "INVALID_APP_TOKEN")
        if not hmac.compare_digest(secret.encode(), SECRET.encode()):
            raise _ApiError(401, "INVALID_CREDENTIALS")

    def _route(
        self, path: str, methods: list[str], handler: Handler, *, widget_ok: bool = False
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                self._authenticate(request, widget_ok=widget_ok)
                self._expire(self.now)
                store_id = request.path_params.get("store_id")
                if store_id is not None and store_id != STORE_ID:
                    raise _ApiError(404, "NOT_FOUND")
                body = await request.body()
                if request.method in ("POST", "PATCH"):
                    return await self._idempotent(request, body, handler)
                return await handler(request, body)
            except _ApiError as err:
                return err.response()

        return Route(path, endpoint, methods=methods)

    async def _idempotent(self, request: Request, body: bytes, handler: Handler) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and self.idempotency_error:
            # Best effort (UnivaPay's idempotency page): the key could not be used,
            # "the request will be processed" and nothing is stored.
            response = await self._run(handler, request, body, key=key)
            response.headers["Idempotency-Status"] = "error"
            return response
        if key is None:
            response = await self._run(handler, request, body)
            response.headers["Idempotency-Status"] = "not_stored"
            return response
        try:
            canonical = json.dumps(json.loads(body or b"{}"), sort_keys=True).encode()
        except ValueError:
            canonical = body
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical
        ).hexdigest()
        stored = self._idem.get(key)
        if stored is not None and self.now - stored.at < KEY_WINDOW:
            if stored.fingerprint != fingerprint:
                response = _ApiError(409, "IDEMPOTENCY_KEY_CONFLICT").response()
                response.headers["Idempotency-Status"] = "conflicting_key"
                return response
            return Response(
                stored.body,
                status_code=stored.status,
                media_type="application/json",
                headers={"Idempotency-Status": "retrieved_idempotent_response"},
            )
        response = await self._run(handler, request, body, key=key)
        if response.status_code < 500:
            self._idem[key] = _Stored(
                fingerprint, response.status_code, bytes(response.body), self.now
            )
            response.headers["Idempotency-Status"] = "successfully_stored"
        else:
            response.headers["Idempotency-Status"] = "not_stored"
        return response

    async def _run(
        self, handler: Handler, request: Request, body: bytes, *, key: str | None = None
    ) -> Response:
        request.state.idempotency_key = key
        try:
            return await handler(request, body)
        except _ApiError as err:
            return err.response()

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _ApiError(
                400, "VALIDATION_ERROR", [{"field": "body", "reason": "INVALID_JSON"}]
            ) from exc
        if not isinstance(data, dict):
            raise _invalid("body")
        return data

    def routes(self) -> Sequence[BaseRoute]:
        """UnivaPay's payment routes (relative to the mount point)."""
        r = self._route
        base = "/stores/{store_id}/charges/{charge_id}"
        return [
            Route("/heartbeat", self._heartbeat, methods=["GET"]),
            Route("/_slips/{charge_id}", self._slip_page, methods=["GET"]),
            r("/tokens", ["POST"], self._create_token, widget_ok=True),
            r("/stores/{store_id}/tokens/{token_id}", ["GET"], self._get_token),
            r("/charges", ["POST"], self._create_charge),
            r("/charges", ["GET"], self._list_charges),
            r("/stores/{store_id}/charges", ["GET"], self._list_charges),
            r(base, ["GET"], self._get_charge),
            r(base, ["PATCH"], self._patch_charge),
            r(f"{base}/capture", ["POST"], self._capture),
            r(f"{base}/three_ds/issuer_token", ["GET"], self._issuer_token),
            r(f"{base}/refunds", ["POST"], self._create_refund),
            r(f"{base}/refunds", ["GET"], self._list_refunds),
            r(f"{base}/refunds/{{refund_id}}", ["GET"], self._get_refund),
            r(f"{base}/cancels", ["POST"], self._create_cancel),
            r(f"{base}/cancels", ["GET"], self._list_cancels),
            r(f"{base}/cancels/{{cancel_id}}", ["GET"], self._get_cancel),
            r("/transfers", ["GET"], self._list_transfers),
            r("/transfers/{transfer_id}", ["GET"], self._get_transfer),
            r("/transfers/{transfer_id}/ledgers", ["GET"], self._list_ledgers),
            r("/stores/{store_id}/webhooks", ["POST"], self._create_webhook),
            r("/stores/{store_id}/webhooks", ["GET"], self._list_webhooks),
        ]

    def _page(self, request: Request, items: list[dict[str, Any]]) -> JSONResponse:
        params = request.query_params
        try:
            limit = max(1, min(100, int(params.get("limit", "10"))))
        except ValueError as exc:
            raise _invalid("limit") from exc
        direction = params.get("cursor_direction", "desc")
        if direction not in ("asc", "desc"):
            raise _invalid("cursor_direction")
        ordered = sorted(items, key=lambda i: (i.get("created_on", ""), i["id"]))
        if direction == "desc":
            ordered.reverse()
        cursor = params.get("cursor")
        if cursor:
            ids = [i["id"] for i in ordered]
            if cursor not in ids:
                raise _invalid("cursor")
            ordered = ordered[ids.index(cursor) + 1 :]
        page = ordered[:limit]
        out: dict[str, Any] = {"items": page, "has_more": len(ordered) > limit}
        if not cursor:
            out["total_hits"] = len(items)
        return JSONResponse(out)

    # -- tokens ---------------------------------------------------------------------------------

    def _card_token(
        self, number: str, *, kind: str = "one_time", token_id: str | None = None
    ) -> dict[str, Any]:
        token_id = token_id or self._new_id()
        now = _ts(self.now)
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

    async def _create_token(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        payment_type = data.get("payment_type")
        kind = data.get("type", "one_time")
        if kind not in ("one_time", "subscription", "recurring"):
            raise _invalid("type")
        details = data.get("data")
        if not isinstance(details, dict):
            raise _invalid("data", "REQUIRED_VALUE")
        email = data.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise _invalid("email")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _invalid("metadata")
        if payment_type == "konbini":
            wire_data = self._konbini_data(details)
            if kind != "one_time":
                raise _invalid("type", "NOT_SUPPORTED")
            token_id = self._new_id()
            now = _ts(self.now)
            wire = {
                "id": token_id,
                "store_id": STORE_ID,
                "email": email,
                "active": True,
                "mode": "test",
                "type": kind,
                "usage_limit": None,
                "confirmed": None,
                "payment_type": "konbini",
                "metadata": metadata,
                "created_on": now,
                "updated_on": now,
                "last_used_on": None,
                "data": wire_data,
            }
            self.tokens[token_id] = wire
            return JSONResponse(wire, status_code=201)
        if payment_type == "card":
            number = re.sub(r"\D", "", str(details.get("card_number") or ""))
            if not 12 <= len(number) <= 19:
                raise _invalid("card_number")
            for name in ("cardholder", "exp_month", "exp_year", "cvv"):
                if details.get(name) in (None, ""):
                    raise _invalid(name, "REQUIRED_VALUE")
            wire = self._card_token(number, kind=kind)
            wire["email"] = email
            wire["metadata"] = metadata
            return JSONResponse(wire, status_code=201)
        if payment_type is None:
            raise _invalid("payment_type", "REQUIRED_VALUE")
        raise _ApiError(400, "NOT_SUPPORTED_BY_PROCESSOR")

    def _konbini_data(self, details: Mapping[str, Any]) -> dict[str, Any]:
        name = details.get("customer_name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("customer_name", "REQUIRED_VALUE")
        store = details.get("convenience_store")
        if store not in CONVENIENCE_STORES:
            raise _invalid("convenience_store", "INVALID_FORMAT")
        phone = details.get("phone_number")
        if not isinstance(phone, dict):
            raise _invalid("phone_number", "REQUIRED_VALUE")
        country = str(phone.get("country_code") or "")
        local = str(phone.get("local_number") or "")
        if not country.isdigit() or not local.isdigit() or not 1 <= len(local) <= 15:
            raise _invalid("phone_number", "INVALID_FORMAT")
        period = details.get("expiration_period")
        if period is not None and (parse_duration(period) or timedelta(0)) <= timedelta(0):
            raise _invalid("expiration_period", "INVALID_FORMAT")
        shift = details.get("expiration_time_shift")
        if shift is not None and not (isinstance(shift, str) and _TIME_SHIFT.match(shift)):
            raise _invalid("expiration_time_shift", "INVALID_FORMAT")
        return {
            "customer_name": name,
            "convenience_store": store,
            # The token answer's country_code is a number (Ruby SDK
            # TokenResponsePhoneNumber), the request's a string (the konbini guide).
            "phone_number": {"country_code": int(country), "local_number": local},
            "expiration_period": period or "P30D",
            "expiration_time_shift": shift,
        }

    async def _get_token(self, request: Request, body: bytes) -> Response:
        token = self.tokens.get(request.path_params["token_id"])
        if token is None:
            raise _ApiError(404, "NOT_FOUND")
        return JSONResponse(token)

    # -- charges --------------------------------------------------------------------------------

    def _find_charge(self, request: Request) -> _Charge:
        charge = self.charges.get(request.path_params["charge_id"])
        if charge is None:
            raise _ApiError(404, "NOT_FOUND")
        return charge

    async def _create_charge(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        token_id = data.get("transaction_token_id")
        if not isinstance(token_id, str) or not token_id:
            raise _invalid("transaction_token_id", "REQUIRED_VALUE")
        amount_raw = data.get("amount")
        if isinstance(amount_raw, bool) or not (
            isinstance(amount_raw, int) or (isinstance(amount_raw, str) and amount_raw.isdigit())
        ):
            raise _invalid("amount")
        amount = int(amount_raw)
        currency = data.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise _invalid("currency")
        currency = currency.upper()
        if amount < 1:
            raise _invalid("amount", "NOT_WITHIN_BOUNDS")
        metadata = data.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError as exc:
                raise _invalid("metadata") from exc
        if not isinstance(metadata, dict) or any(
            isinstance(v, dict | list) for v in metadata.values()
        ):
            raise _invalid("metadata")
        token = self.tokens.get(token_id)
        if token is None:
            raise _ApiError(404, "NOT_FOUND")
        payment_type = token["payment_type"]
        if payment_type == "konbini":
            if currency != "JPY":
                raise _invalid("currency", "NOT_SUPPORTED")
            if amount > KONBINI_MAX_AMOUNT:
                raise _invalid("amount", "NOT_WITHIN_BOUNDS")
        if not token.get("active", True) or (
            token["type"] == "one_time" and token.get("last_used_on")
        ):
            raise _ApiError(400, "TRANSACTION_ALREADY_PROCESSED")
        now = self.now
        if token["type"] != "one_time" and token_id not in _SEED_TOKEN_IDS:
            last = self._last_charge.get((token_id, amount))
            if last is not None and now - last < TOO_QUICK:
                raise _ApiError(400, "CHARGE_TOO_QUICK")
            self._last_charge[(token_id, amount)] = now
        token["last_used_on"] = _ts(now)
        capture = data.get("capture", True)
        if not isinstance(capture, bool):
            raise _invalid("capture")
        charge_id = self._new_id()
        wire: dict[str, Any] = {
            "id": charge_id,
            "merchant_id": MERCHANT_ID,
            "store_id": STORE_ID,
            "transaction_token_id": token_id,
            "transaction_token_type": token["type"],
            "subscription_id": None,
            "merchant_transaction_id": data.get("merchant_transaction_id"),
            "requested_amount": amount,
            "requested_currency": currency,
            "requested_amount_formatted": amount,
            "charged_amount": None,
            "charged_currency": None,
            "charged_amount_formatted": None,
            "fee_amount": None,
            "fee_currency": None,
            "fee_amount_formatted": None,
            "only_direct_currency": bool(data.get("only_direct_currency", False)),
            "capture_at": None,
            "descriptor": data.get("descriptor"),
            "descriptor_phone_number": None,
            "status": "pending",
            "error": None,
            "metadata": metadata,
            "mode": "test",
            "created_on": _ts(now),
        }
        charge = _Charge(
            wire=wire,
            payment_type=payment_type,
            key=request.state.idempotency_key,
        )
        if payment_type == "konbini":
            konbini = token["data"]
            charge.store = konbini["convenience_store"]
            requested = parse_time(data.get("capture_at"))
            period = parse_duration(konbini.get("expiration_period") or "") or DEFAULT_EXPIRY
            charge.deadline = requested or self._deadline(
                now, period, konbini.get("expiration_time_shift")
            )
            # Echoed when the request set it; null otherwise (the guide's example).
            wire["capture_at"] = _ts(requested) if requested is not None else None
        else:
            charge.card_number = self.token_cards.get(token_id)
            wire["_capture"] = capture
            if not capture:
                wire["capture_status"] = "not_authorized"
        self.charges[charge_id] = charge
        response = JSONResponse(_public(wire), status_code=201)
        # The slip is issued (or the card charged) the moment after the 201 is built.
        if payment_type == "konbini":
            if self.auto_issue:
                self._issue(charge)
        elif self.auto_complete:
            self._process_card(charge, capture)
        return response

    async def _issuer_token(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        if charge.payment_type != "card" or charge.wire["status"] != "awaiting":
            raise _ApiError(404, "NOT_FOUND")
        charge_id = charge.wire["id"]
        return JSONResponse(
            {
                "payment_type": "card",
                "issuer_token": f"{self.base_url}/_3ds/{charge_id}",
                "call_method": "http_post",
                # The documented payload fields (Ruby SDK IssuerTokenPayload).
                "payload": {
                    "request_data": charge_id,
                    "s_spcd": "sandbox",
                    "s_cptok": f"sandbox-{charge_id[:8]}",
                    "s_terkn": "sandbox",
                },
                "content_type": "application/x-www-form-urlencoded; charset=UTF-8",
            }
        )

    async def _get_charge(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        if request.query_params.get("polling", "").lower() == "true":
            await self._hold(charge.wire["id"], lambda: charge.wire["status"] == "pending")
        return JSONResponse(_public(charge.wire))

    async def _patch_charge(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            raise _invalid("metadata")
        charge.wire["metadata"] = {**(charge.wire.get("metadata") or {}), **metadata}
        return JSONResponse(_public(charge.wire))

    async def _list_charges(self, request: Request, body: bytes) -> Response:
        items = [_public(c.wire) for c in self.charges.values()]
        token_id = request.query_params.get("transaction_token_id")
        if token_id:
            items = [i for i in items if i["transaction_token_id"] == token_id]
        wanted = request.query_params.get("metadata")
        if wanted:
            # The Ruby SDK's example filter is "order_id: 12345" (key, colon, value).
            key, sep, value = wanted.partition(":")
            if not sep or not key.strip():
                raise _invalid("metadata")
            items = [
                i for i in items if str((i.get("metadata") or {}).get(key.strip())) == value.strip()
            ]
        return self._page(request, items)

    async def _capture(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        wire = charge.wire
        if charge.payment_type != "card":
            raise _ApiError(400, "NOT_SUPPORTED_BY_PROCESSOR")
        if wire["status"] == "successful":
            raise _ApiError(400, "ALREADY_CAPTURED")
        if wire["status"] != "authorized":
            raise _invalid("status", "NOT_AUTHORIZED")
        amount = data.get("amount", wire["requested_amount"])
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise _invalid("amount")
        if (
            str(data.get("currency", wire["requested_currency"])).upper()
            != wire["requested_currency"]
        ):
            raise _ApiError(400, "CURRENCY_MUST_MATCH_CHARGE")
        if amount > int(wire["requested_amount"]):
            raise _ApiError(400, "CAPTURE_AMOUNT_TOO_LARGE")
        self._succeed(charge, amount)
        return JSONResponse({})

    # -- refunds and cancels --------------------------------------------------------------------

    async def _create_refund(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        wire = charge.wire
        if charge.payment_type == "konbini":
            raise _ApiError(400, "REFUND_NOT_ALLOWED")
        if wire["status"] != "successful":
            raise _ApiError(400, "CANNOT_REFUND_UNSUCCESSFUL_CHARGE")
        amount = data.get("amount")
        if isinstance(amount, str) and amount.isdigit():
            amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _invalid("amount", "REQUIRED_VALUE")
        currency = data.get("currency")
        if not isinstance(currency, str):
            raise _invalid("currency", "REQUIRED_VALUE")
        if currency.upper() != wire["charged_currency"]:
            raise _ApiError(400, "CURRENCY_MUST_MATCH_CHARGE")
        if amount < 1:
            raise _ApiError(400, "REFUND_NOT_WITHIN_BOUNDS")
        taken = sum(
            int(self.refunds[r]["amount"])
            for r in charge.refunds
            if self.refunds[r]["status"] in ("pending", "successful")
        )
        if taken + amount > int(wire["charged_amount"]):
            raise _ApiError(400, "REFUND_EXCEEDS_CHARGE_AMOUNT")
        reason = data.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise _invalid("reason")
        refund_id = self._new_id()
        now = _ts(self.now)
        refund: dict[str, Any] = {
            "id": refund_id,
            "store_id": STORE_ID,
            "charge_id": wire["id"],
            "ledger_id": None,
            "status": "pending",
            "amount": amount,
            "currency": wire["charged_currency"],
            "amount_formatted": amount,
            "reason": reason,
            "message": data.get("message"),
            "error": None,
            "metadata": data.get("metadata") or {},
            "mode": "test",
            "created_on": now,
            "updated_on": now,
            "_key": request.state.idempotency_key,
        }
        self.refunds[refund_id] = refund
        charge.refunds.append(refund_id)
        response = JSONResponse(_public(refund), status_code=201)
        if self.auto_complete:
            self._complete_refund(refund)
        return response

    def _find_child(
        self, request: Request, table: dict[str, dict[str, Any]], key: str
    ) -> dict[str, Any]:
        charge = self._find_charge(request)
        item = table.get(request.path_params[key])
        if item is None or item["charge_id"] != charge.wire["id"]:
            raise _ApiError(404, "NOT_FOUND")
        return item

    async def _get_refund(self, request: Request, body: bytes) -> Response:
        refund = self._find_child(request, self.refunds, "refund_id")
        if request.query_params.get("polling", "").lower() == "true":
            await self._hold(refund["id"], lambda: refund["status"] == "pending")
        return JSONResponse(_public(refund))

    async def _list_refunds(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        return self._page(request, [_public(self.refunds[r]) for r in charge.refunds])

    async def _create_cancel(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        status = charge.wire["status"]
        allowed = (
            ("pending", "awaiting")
            if charge.payment_type == "konbini"
            else (
                "pending",
                "awaiting",
                "authorized",
            )
        )
        if status not in allowed:
            raise _ApiError(400, "CANCEL_NOT_ALLOWED")
        cancel_id = self._new_id()
        now = _ts(self.now)
        cancel: dict[str, Any] = {
            "id": cancel_id,
            "charge_id": charge.wire["id"],
            "store_id": STORE_ID,
            "status": "pending",
            "error": None,
            "metadata": data.get("metadata") or {},
            "mode": "test",
            "created_on": now,
            "updated_on": now,
        }
        self.cancels[cancel_id] = cancel
        charge.cancels.append(cancel_id)
        response = JSONResponse(cancel, status_code=201)
        if self.auto_complete:
            self._complete_cancel(cancel)
        return response

    async def _get_cancel(self, request: Request, body: bytes) -> Response:
        cancel = self._find_child(request, self.cancels, "cancel_id")
        if request.query_params.get("polling", "").lower() == "true":
            await self._hold(cancel["id"], lambda: cancel["status"] == "pending")
        return JSONResponse(cancel)

    async def _list_cancels(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        return self._page(request, [self.cancels[c] for c in charge.cancels])

    # -- transfers and ledgers ------------------------------------------------------------------

    async def _list_transfers(self, request: Request, body: bytes) -> Response:
        items = list(self.transfers.values())
        status = request.query_params.get("status")
        if status:
            items = [t for t in items if t["status"] == status]
        return self._page(request, items)

    async def _get_transfer(self, request: Request, body: bytes) -> Response:
        transfer = self.transfers.get(request.path_params["transfer_id"])
        if transfer is None:
            raise _ApiError(404, "NOT_FOUND")
        return JSONResponse(transfer)

    async def _list_ledgers(self, request: Request, body: bytes) -> Response:
        transfer_id = request.path_params["transfer_id"]
        if transfer_id not in self.transfers:
            raise _ApiError(404, "NOT_FOUND")
        items = [i for i in self.ledgers.values() if i["transfer_id"] == transfer_id]
        return self._page(request, items)

    # -- webhooks (management) ------------------------------------------------------------------

    async def _create_webhook(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("url", "REQUIRED_VALUE")
        if any(h.wire["url"] == url for h in self.webhooks.values()):
            raise _ApiError(409, "WEBHOOK_URL_EXISTS")
        triggers = data.get("triggers")
        if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
            raise _invalid("triggers", "REQUIRED_VALUE")
        hook_id = self._new_id()
        now = _ts(self.now)
        wire = {
            "id": hook_id,
            "merchant_id": MERCHANT_ID,
            "store_id": STORE_ID,
            "triggers": triggers,
            "url": url,
            "auth_token": data.get("auth_token"),
            "active": True,
            "created_on": now,
            "updated_on": now,
        }
        self.webhooks[hook_id] = _Webhook(wire)
        return JSONResponse(wire, status_code=201)

    async def _list_webhooks(self, request: Request, body: bytes) -> Response:
        return self._page(request, [h.wire for h in self.webhooks.values()])

    # -- unauthenticated pages -------------------------------------------------------------------

    async def _heartbeat(self, request: Request) -> Response:
        return JSONResponse({})

    async def _slip_page(self, request: Request) -> Response:
        charge = self.charges.get(request.path_params["charge_id"])
        if charge is None or charge.payment_type != "konbini":
            return HTMLResponse("<h1>slip not found</h1>", status_code=404)
        wire = charge.wire
        meta = wire.get("metadata") or {}
        rows = [
            ("store", charge.store or ""),
            ("payment number", str(meta.get("internal_convenience_payment_number", "-"))),
            ("amount", f"{wire['requested_amount']} {wire['requested_currency']}"),
            ("pay by", _ts(charge.deadline) if charge.deadline else ""),
            ("status", wire["status"]),
        ]
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        page = f"<html><body><h1>Sandbox payment slip</h1><table>{cells}</table></body></html>"
        return HTMLResponse(page)

    # -- demo ------------------------------------------------------------------------------------

    def demo(self, demo: Any) -> None:
        """``paygate demo``: a FamilyMart slip paid by the customer, the refund UnivaPay
        cannot do, a second slip cancelled unpaid, and the payout that follows."""
        from types import SimpleNamespace

        from paygate import ChargeStatus, Konbini, Money, NotSupported

        gw, account = demo.gateway, demo.account

        def slip(key: str, amount: int) -> Any:
            method = Konbini(
                store="family_mart",
                customer_name="テスト 太郎",
                phone="03-6441-3400",
                email="demo@example.com",
                expires_in=timedelta(days=7),
            )
            return gw.charge(account, amount=Money.jpy(amount), method=method, idempotency_key=key)

        def refund_refused() -> Any:
            try:
                gw.refund(account, charge.id, idempotency_key="demo-univapay-r1")
            except NotSupported as exc:
                return SimpleNamespace(status=f"not supported; {exc.alternative}")
            raise AssertionError("a konbini refund must be refused")

        charge = demo.step(
            "charge (konbini slip)",
            lambda: slip("demo-univapay-order-1", 1200),
            expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
        )
        demo.step(
            "customer pays at FamilyMart",
            lambda: demo.sandbox.control(self.name, "pay_konbini", charge_id=charge.provider_ref),
        )
        demo.step(
            "status",
            lambda: gw.status(account, charge.id),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        demo.step("refund (konbini)", refund_refused)
        other = demo.step(
            "charge (second slip)",
            lambda: slip("demo-univapay-order-2", 800),
            expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
        )
        demo.step(
            "cancel the unpaid slip",
            lambda: gw.cancel(account, other.id),
            expect=lambda c: c.status is ChargeStatus.CANCELED,
        )
        demo.step("transfer created", lambda: demo.sandbox.control(self.name, "run_transfer"))
        demo.step(
            "payout balance",
            lambda: gw.payout_balance(account),
            expect=lambda b: b.scheduled == Money.jpy(1200),
        )

    # -- control ---------------------------------------------------------------------------------

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Customer and operator actions.

        ``pay_konbini {charge_id}``: the customer pays the slip.
        ``issue_konbini {charge_id}``: issue a slip held back by ``auto_issue=false``.
        ``complete_pending {}``: move every pending charge, refund and cancel on.
        ``card_token {card}``: a fresh one-time card token (``success``, ``declined``,
        ``expired``, ``error``, ``three_ds`` or a card number).
        ``finish_three_ds {charge_id, result}``: the customer's 3-D Secure step ends
        (``success`` or ``fail``).
        ``configure {auto_issue, auto_complete, poll_hold_seconds, webhook_envelope,
        expiry_error, over_limit}``: ``webhook_envelope`` is ``"openapi"`` or
        ``"reference"``; ``expiry_error`` the ``error`` object of an expired slip (null:
        none); ``over_limit`` 429 (an empty 429) or 400 (``RATE_LIMIT_EXCEEDED``) for an
        injected rate limit; ``idempotency_error`` true answers every keyed request
        ``Idempotency-Status: error`` and stores nothing (best effort).
        ``run_transfer {}``: gather unassigned ledger lines into a ``created`` transfer.
        ``set_transfer_status {transfer_id, status}``.
        """
        self._expire(self.now)
        if action == "pay_konbini":
            charge = self._control_charge(params)
            if charge.wire["status"] == "pending":
                raise ControlError("the slip is not issued yet", status=409)
            if charge.wire["status"] != "awaiting":
                raise ControlError(f"the charge is {charge.wire['status']}", status=409)
            self._succeed(charge, int(charge.wire["requested_amount"]))
            return _public(charge.wire)
        if action == "issue_konbini":
            charge = self._control_charge(params)
            if charge.wire["status"] != "pending":
                raise ControlError(f"the charge is {charge.wire['status']}", status=409)
            self._issue(charge)
            return _public(charge.wire)
        if action == "finish_three_ds":
            charge = self._control_charge(params, "card")
            if charge.wire["status"] != "awaiting":
                raise ControlError(f"the charge is {charge.wire['status']}", status=409)
            if str(params.get("result", "success")) == "success":
                if charge.capture_after_3ds:
                    self._succeed(charge, int(charge.wire["requested_amount"]))
                else:
                    charge.wire["status"] = "authorized"
                    charge.wire["capture_status"] = "authorized"
                    self._notify(charge.wire["id"])
                    self._emit("charge_updated", charge.wire)
            else:
                charge.wire["status"] = "failed"
                charge.wire["error"] = {
                    "code": 309,
                    "message": "THREE_DS_AUTHENTICATION_FAILED",
                    "detail": "sandbox 3-D Secure failed",
                }
                self._notify(charge.wire["id"])
                self._emit("charge_finished", charge.wire)
            return _public(charge.wire)
        if action == "complete_pending":
            self._complete_pending()
            return {}
        if action == "card_token":
            card = str(params.get("card", "success"))
            number = _CARD_ALIASES.get(card, re.sub(r"\D", "", card))
            if not 12 <= len(number) <= 19:
                raise ControlError(
                    "card must be success, declined, expired, error, three_ds or a number"
                )
            return {"id": self._card_token(number)["id"]}
        if action == "configure":
            return self._configure(params)
        if action == "run_transfer":
            return self._run_transfer()
        if action == "set_transfer_status":
            transfer = self.transfers.get(str(params.get("transfer_id")))
            if transfer is None:
                raise ControlError("unknown transfer", status=404)
            status = str(params.get("status"))
            if status not in _TRANSFER_STATUSES:
                raise ControlError(f"status must be one of {sorted(_TRANSFER_STATUSES)}")
            transfer["status"] = status
            return dict(transfer)
        raise ControlError(f"unknown action {action!r} for {self.name}", status=404)

    def _control_charge(self, params: Mapping[str, Any], kind: str = "konbini") -> _Charge:
        charge = self.charges.get(str(params.get("charge_id")))
        if charge is None:
            raise ControlError("unknown charge", status=404)
        if charge.payment_type != kind:
            raise ControlError(f"not a {kind} charge", status=409)
        return charge

    def _configure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        for name in ("auto_issue", "auto_complete"):
            if name in params:
                value = params[name]
                if not isinstance(value, bool):
                    raise ControlError(f"{name} must be true or false")
                setattr(self, name, value)
        if "poll_hold_seconds" in params:
            hold = params["poll_hold_seconds"]
            if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 <= hold <= 60:
                raise ControlError("poll_hold_seconds must be between 0 and 60")
            self.poll_hold_seconds = float(hold)
        if "webhook_envelope" in params:
            envelope = params["webhook_envelope"]
            if envelope not in ("openapi", "reference"):
                raise ControlError('webhook_envelope must be "openapi" or "reference"')
            self.webhook_envelope = envelope
        if "over_limit" in params:
            if params["over_limit"] not in (400, 429):
                raise ControlError("over_limit must be 429 or 400")
            self.over_limit = int(params["over_limit"])
        if "idempotency_error" in params:
            if not isinstance(params["idempotency_error"], bool):
                raise ControlError("idempotency_error must be true or false")
            self.idempotency_error = params["idempotency_error"]
        if "expiry_error" in params:
            error = params["expiry_error"]
            if error is not None and not isinstance(error, dict):
                raise ControlError("expiry_error must be an object or null")
            self.expiry_error = dict(error) if error else None
        return {
            "auto_issue": self.auto_issue,
            "auto_complete": self.auto_complete,
            "poll_hold_seconds": self.poll_hold_seconds,
            "webhook_envelope": self.webhook_envelope,
            "expiry_error": self.expiry_error,
            "over_limit": self.over_limit,
            "idempotency_error": self.idempotency_error,
        }

    def _run_transfer(self) -> dict[str, Any]:
        lines = [i for i in self.ledgers.values() if i["transfer_id"] is None]
        if not lines:
            raise ControlError("no ledger lines to transfer", status=409)
        transfer_id = self._new_id()
        amount = sum(int(i["amount"]) for i in lines)
        for line in lines:
            line["transfer_id"] = transfer_id
        now = _ts(self.now)
        transfer = {
            "id": transfer_id,
            "merchant_id": MERCHANT_ID,
            "bank_account_id": BANK_ACCOUNT_ID,
            "amount": amount,
            "currency": "JPY",
            "amount_formatted": amount,
            "status": "created",
            "error_code": None,
            "error_text": None,
            "metadata": {},
            "started_by": "system",
            "created_on": now,
            "from": min(i["created_on"] for i in lines),
            "to": now,
        }
        self.transfers[transfer_id] = transfer
        return dict(transfer)


def _public(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The wire object without the emulator's private bookkeeping keys."""
    return {k: v for k, v in wire.items() if not k.startswith("_")}
