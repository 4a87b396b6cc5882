"""The PAY.JP sandbox emulator (API v1), stateful and driven by the sandbox clock.

Mounted by the sandbox host under ``/payjp``; its routes are ``/v1/...``, so the
official Python SDK works with ``payjp.api_base = "http://127.0.0.1:PORT/payjp"`` (the
SDK appends ``/v1``) and paygate with ``base_url = "http://127.0.0.1:PORT/payjp"``.

Credentials (fixed, documented, test mode only): secret key `SECRET_KEY`, public key
`PUBLIC_KEY`, webhook token `WEBHOOK_TOKEN`. Any other key is answered 401.

Test card tokens (reusable, unlike real tokens): ``tok_success``; declines
``tok_card_declined``, ``tok_expired_card``, ``tok_invalid_cvc``,
``tok_incorrect_card_data``, ``tok_card_flagged``, ``tok_unacceptable_brand`` and
``tok_processing_error`` (402 ``card_error`` with that code); ``tok_3ds_failed`` (a
3-D Secure charge whose authentication fails). The ``token`` control action mints a
single-use token that behaves like real ones (``token_already_used`` on reuse).
Customers ``cus_success`` and ``cus_card_declined``; tenant ``ten_test`` (platform fee
10.00 %).

Idempotency: a POST with an ``Idempotency-Key`` seen in the last 24 hours (sandbox
time) on the same path with the same parameters gets the stored answer again, without
acting twice; the same key with other parameters gets 409 ``idempotency_conflict``
(PAY.JP's v1 behaviour is undocumented; these names are those of its v2 API). The
``reading`` control action makes keys count on charge creation only
(``idempotent_writes="create"``), the other plausible reading.

Refunds as https://pay.jp/docs/refund describes them: after any refund, partial or
full, ``refunded`` is true and ``amount_refunded`` holds the sum; the rest stays
refundable (with an ``amount`` or without one). A partial capture books the released
rest of the authorisation in ``amount_refunded`` (payjp-go ``Capture``: 400 of 500
gives ``amount_refunded = 100``); whether ``amount`` then stays the authorised amount
(default) or becomes the captured one, and whether ``refunded`` turns true, are
readings (``capture_amount``, ``refunded_after_capture``).

Authorisations (``capture=false``) expire after ``expiry_days`` (default 7) at
``expired_at``; whether PAY.JP then also marks them ``refunded`` is a reading
(``expiry_marks_refunded``, default true). 3-D Secure charges are created unpaid and
charged at ``tds_finish``, where a declining card answers 402; a flow not finished
within ``tds_timeout_minutes`` (default 30) of the charge's creation answers
``three_d_secure_expired`` there. Payouts follow `paygate_payjp._emulator_books`.

Every reading and its default is listed in docs/providers/payjp.md ("Assumptions").

Webhooks: every event is delivered through the sandbox with header
``X-Payjp-Webhook-Token`` and retried three times at three-minute intervals.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import ControlError, Emulator, EmulatorContext, LedgerEntry, WebhookDelivery

from ._emulator_books import BookConfig, Books, StatementRec
from ._webhooks import TOKEN_HEADER

__all__ = ["PUBLIC_KEY", "SECRET_KEY", "TEST_TOKENS", "WEBHOOK_TOKEN", "PayjpEmulator"]

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
_DEMO_CARD = "tok_success"
_TDS_FAILS = "tok_3ds_failed"  # its 3-D Secure page fails the authentication
SEED_CUSTOMERS = {"cus_success": "tok_success", "cus_card_declined": "tok_card_declined"}
SEED_TENANTS = {"ten_test": ("Test tenant", "10.00")}
KEY_MEMORY = timedelta(hours=24)
STATEMENT_URL_LIFETIME = 3600
WEBHOOK_RETRIES = (timedelta(minutes=3),) * 3
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An error answer in PAY.JP's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        kind: str = "client_error",
        param: str | None = None,
        charge: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "error": {
                "status": status,
                "type": kind,
                "code": code,
                "message": message,
                **({"param": param} if param else {}),
                **({"charge": charge} if charge else {}),
            }
        }


def _not_found(kind: str, oid: str) -> ApiError:
    return ApiError(404, "invalid_id", f"No such {kind}: {oid}", param="id")


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    at: datetime


@dataclass
class _Charge:
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


@dataclass
class _Form:
    """A parsed form body: flat values plus ``name[key]`` maps."""

    values: dict[str, str]
    maps: dict[str, dict[str, str]]

    @classmethod
    def parse(cls, raw: bytes) -> _Form:
        values: dict[str, str] = {}
        maps: dict[str, dict[str, str]] = {}
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            if "[" in key and key.endswith("]"):
                name, _, sub = key[:-1].partition("[")
                maps.setdefault(name, {})[sub] = value
            else:
                values[key] = value
        return cls(values, maps)

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value not in (None, "") else None

    def int(self, name: str, code: str = "invalid_param_key") -> int | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, code, f"{name} must be an integer.", param=name) from None

    def bool(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ApiError(400, "invalid_boolean", f"{name} must be a boolean.", param=name)


class PayjpEmulator(Emulator):
    """PAY.JP v1 as the sandbox serves it (see the module note for what it assumes).

    Control actions (``POST /_sandbox/payjp/<action>``):

    * ``close_term`` ``{}``: run a closing now (the current Term ends now).
    * ``configure`` ``{cycle_days, payout_days, fee_rate, transfer_fee,
      minimum_payout}``: payout rules, applied from the next Term.
    * ``token`` ``{"card": "success" | "card_declined" | ...}``: mint a single-use token.
    * ``tds`` ``{"charge": id, "result": "verified" | "attempted" | "failed"}``: the
      customer completes (or fails) 3-D Secure.
    * ``payout`` ``{"balance": id}``: pay a ``transfer`` Balance out now.
    * ``settle_claim`` ``{"balance": id}``: the merchant paid a ``claim`` Balance.
    * ``tenant`` ``{"id", "name", "platform_fee_rate"}``: create a tenant.
    * ``webhook`` ``{"type": "charge.succeeded", "id": object id}``: deliver an event
      for an existing object again.
    * ``reading`` ``{idempotent_writes: "all" | "create", capture_amount: "authorized" |
      "captured", refunded_after_capture, expiry_marks_refunded, tds_timeout_minutes,
      terms_order: "newest" | "oldest"}``:
      how facts PAY.JP does not document are played (see `Readings`); reset restores
      the defaults.
    """

    name: ClassVar[str] = "payjp"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self._signing = hashlib.sha256(f"payjp-files-{ctx.rng.getrandbits(64)}".encode()).digest()
        self.reset()

    # -- state -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; seed customers, tenants and the first Term."""
        # The host re-seeds ``ctx.rng`` before a reset, so ids repeat from run to run.
        self._rng = random.Random(self.ctx.rng.getrandbits(64))
        self.charges: dict[str, _Charge] = {}
        self.events: list[dict[str, Any]] = []
        self.tenants: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, tuple[str, bool]] = {}  # minted: token -> (behaviour, used)
        self.customers: dict[str, str] = dict(SEED_CUSTOMERS)
        self._keys: dict[str, _Stored] = {}
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
        return {
            "provider": self.name,
            "base_url": self.base_url,
            "secret_key": SECRET_KEY,
            "public_key": PUBLIC_KEY,
            "webhook_token": WEBHOOK_TOKEN,
        }

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

    def demo(self, demo: Any) -> None:
        """``paygate demo``: a card charge refunded in two parts, an authorisation captured
        in part, a 3-D Secure charge, a void, then a closing run and the payout balance."""
        from paygate import Card, ChargeStatus, Money

        gw, account = demo.gateway, demo.account
        charge = demo.step(
            "charge 12,000 JPY (tok_success)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(12_000),
                method=Card(token=_DEMO_CARD),
                idempotency_key="demo-payjp-order-1",
            ),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        demo.step(
            "refund 1,000 JPY",
            lambda: gw.refund(
                account, charge.id, amount=Money.jpy(1_000), idempotency_key="demo-payjp-r1"
            ),
        )
        demo.step(
            "refund the rest",
            lambda: gw.refund(account, charge.id, idempotency_key="demo-payjp-r2"),
        )
        demo.step(
            "status",
            lambda: gw.status(account, charge.id),
            expect=lambda c: c.status is ChargeStatus.REFUNDED,
        )
        auth = demo.step(
            "authorise 3,000 JPY",
            lambda: gw.charge(
                account,
                amount=Money.jpy(3_000),
                method=Card(token=_DEMO_CARD, capture=False),
                idempotency_key="demo-payjp-order-2",
            ),
            expect=lambda c: c.status is ChargeStatus.AUTHORIZED,
        )
        demo.step(
            "capture 2,500 JPY",
            lambda: gw.capture(
                account, auth.id, amount=Money.jpy(2_500), idempotency_key="demo-payjp-cap"
            ),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        tds = demo.step(
            "charge with 3-D Secure",
            lambda: gw.charge(
                account,
                amount=Money.jpy(8_000),
                method=Card(token=_DEMO_CARD, three_d_secure=True),
                idempotency_key="demo-payjp-order-3",
            ),
            expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
        )
        demo.step(
            "customer passes 3-D Secure",
            lambda: demo.sandbox.control(self.name, "tds", charge=tds.provider_ref),
        )
        demo.step(
            "status (tds_finish)",
            lambda: gw.status(account, tds.id),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        void = demo.step(
            "authorise 1,500 JPY",
            lambda: gw.charge(
                account,
                amount=Money.jpy(1_500),
                method=Card(token=_DEMO_CARD, capture=False),
                idempotency_key="demo-payjp-order-4",
            ),
        )
        demo.step(
            "cancel (void the authorisation)",
            lambda: gw.cancel(account, void.id, idempotency_key="demo-payjp-void"),
            expect=lambda c: c.status is ChargeStatus.CANCELED,
        )
        demo.step("closing run (close_term)", lambda: demo.sandbox.control(self.name, "close_term"))
        demo.step(
            "payout balance",
            lambda: gw.payout_balance(account),
            expect=lambda b: b.scheduled.amount > 0,
        )

    def fault_response(self, status: int) -> Response | None:
        """PAY.JP's own error body for a fault the sandbox injects (429 and 5xx)."""
        if status == 429:
            error = ApiError(
                429,
                "over_capacity",
                "The service is over capacity. Please try again later.",
            )
        elif status >= 500:
            error = ApiError(
                status, "payjp_wrong", "An unexpected error occurred.", kind="server_error"
            )
        else:
            return None
        return _json(error.status, error.body)

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Customer- and operator-side actions (see the class docstring)."""
        self._catch_up(self._ts())
        handler = {
            "close_term": self._ctl_close_term,
            "configure": self._ctl_configure,
            "token": self._ctl_token,
            "tds": self._ctl_tds,
            "payout": self._ctl_payout,
            "settle_claim": self._ctl_settle_claim,
            "tenant": self._ctl_tenant,
            "webhook": self._ctl_webhook,
            "reading": self._ctl_reading,
        }.get(action)
        if handler is None:
            raise ControlError(f"unknown action {action!r} for payjp", status=404)
        return handler(params)

    def _ctl_reading(self, params: Mapping[str, Any]) -> dict[str, Any]:
        current = self.readings.__dict__
        unknown = set(params) - set(current)
        if unknown:
            raise ControlError(f"unknown readings {sorted(unknown)}; known: {sorted(current)}")
        merged = {**current, **params}
        if merged["idempotent_writes"] not in ("all", "create"):
            raise ControlError("idempotent_writes must be all or create")
        if merged["capture_amount"] not in ("authorized", "captured"):
            raise ControlError("capture_amount must be authorized or captured")
        if merged["terms_order"] not in ("newest", "oldest"):
            raise ControlError("terms_order must be newest or oldest")
        try:
            self.readings = Readings(
                idempotent_writes=str(merged["idempotent_writes"]),
                capture_amount=str(merged["capture_amount"]),
                refunded_after_capture=bool(merged["refunded_after_capture"]),
                expiry_marks_refunded=bool(merged["expiry_marks_refunded"]),
                tds_timeout_minutes=int(merged["tds_timeout_minutes"]),
                terms_order=str(merged["terms_order"]),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad reading: {exc}") from None
        return dict(self.readings.__dict__)

    def _ctl_close_term(self, params: Mapping[str, Any]) -> dict[str, Any]:
        term, statements = self.books.close_term(self._ts())
        return {
            "term": term.wire(),
            "statements": [self.books.statement_wire(st) for st in statements],
            "balances": [self.books.balance_wire(b) for b in self.books.balances.values()],
        }

    def _ctl_configure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        current = self.books.config
        try:
            config = BookConfig(
                cycle_days=_opt_int(params.get("cycle_days", current.cycle_days)),
                payout_days=_opt_int(params.get("payout_days", current.payout_days)),
                fee_rate=str(params.get("fee_rate", current.fee_rate)),
                transfer_fee=int(params.get("transfer_fee", current.transfer_fee)),
                minimum_payout=int(params.get("minimum_payout", current.minimum_payout)),
                forfeit_threshold=int(params.get("forfeit_threshold", current.forfeit_threshold)),
            )
            config.fee_basis_points  # noqa: B018 - validates the rate
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad configuration: {exc}") from None
        self.books.configure(config)
        return {"applies_from": "next_term", **config.__dict__}

    def _ctl_token(self, params: Mapping[str, Any]) -> dict[str, Any]:
        card = str(params.get("card", "success"))
        behaviour = f"tok_{card}"
        if behaviour not in TEST_TOKENS:
            raise ControlError(f"unknown test card {card!r}; known: {sorted(TEST_TOKENS)}")
        token = self._id("tok")
        self.tokens[token] = (behaviour, False)
        return {"id": token, "card": card, "single_use": True}

    def _ctl_tds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        charge = self._charge_or_control_error(params.get("charge"))
        result = str(params.get("result", "verified"))
        if result not in ("verified", "attempted", "failed", "error"):
            raise ControlError("result must be verified, attempted, failed or error")
        if charge.wire.get("three_d_secure_status") != "unverified":
            raise ControlError("the charge is not waiting for 3-D Secure", status=409)
        charge.wire["three_d_secure_status"] = result
        return dict(charge.wire)

    def _ctl_payout(self, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            balance = self.books.pay(str(params.get("balance")), self._ts())
        except (KeyError, ValueError) as exc:
            raise ControlError(f"cannot pay out: {exc}", status=409) from None
        return self.books.balance_wire(balance)

    def _ctl_settle_claim(self, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            balance = self.books.settle_claim(str(params.get("balance")), self._ts())
        except (KeyError, ValueError) as exc:
            raise ControlError(f"cannot settle: {exc}", status=409) from None
        return self.books.balance_wire(balance)

    def _ctl_tenant(self, params: Mapping[str, Any]) -> dict[str, Any]:
        tid = str(params.get("id") or self._id("ten"))
        if tid in self.tenants:
            raise ControlError(f"tenant {tid} exists", status=409)
        tenant = self._tenant_wire(
            tid,
            str(params.get("name", tid)),
            str(params.get("platform_fee_rate", "0.00")),
            self._ts(),
        )
        self.tenants[tid] = tenant
        return tenant

    def _ctl_webhook(self, params: Mapping[str, Any]) -> dict[str, Any]:
        kind = str(params.get("type", ""))
        oid = str(params.get("id", ""))
        obj: Mapping[str, Any] | None = None
        if oid in self.charges:
            obj = self.charges[oid].wire
        elif oid in self.books.balances:
            obj = self.books.balance_wire(self.books.balances[oid])
        elif oid in self.books.statements:
            obj = self.books.statement_wire(self.books.statements[oid])
        elif self.books.term(oid) is not None:
            term = self.books.term(oid)
            assert term is not None
            obj = term.wire()
        if obj is None or "." not in kind:
            raise ControlError("give an event type and the id of an existing object")
        self._emit(kind, obj)
        return self.events[-1]

    def _charge_or_control_error(self, oid: Any) -> _Charge:
        charge = self.charges.get(str(oid))
        if charge is None:
            raise ControlError(f"no charge {oid!r}", status=404)
        return charge

    # -- HTTP plumbing ---------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """PAY.JP v1 routes, relative to the mount point."""
        r = self._endpoint
        return [
            Route("/v1/charges", r(self._list_charges), methods=["GET"]),
            Route("/v1/charges", r(self._create_charge, post=True), methods=["POST"]),
            Route("/v1/charges/{id}", r(self._get_charge), methods=["GET"]),
            Route("/v1/charges/{id}", r(self._update_charge, post=True), methods=["POST"]),
            Route("/v1/charges/{id}/capture", r(self._capture, post=True), methods=["POST"]),
            Route("/v1/charges/{id}/refund", r(self._refund, post=True), methods=["POST"]),
            Route("/v1/charges/{id}/reauth", r(self._reauth, post=True), methods=["POST"]),
            Route("/v1/charges/{id}/tds_finish", r(self._tds_finish, post=True), methods=["POST"]),
            Route("/v1/tds/{id}/start", self._tds_start, methods=["GET"]),
            Route("/v1/terms", r(self._list_terms), methods=["GET"]),
            Route("/v1/terms/{id}", r(self._get_term), methods=["GET"]),
            Route("/v1/statements", r(self._list_statements), methods=["GET"]),
            Route("/v1/statements/{id}", r(self._get_statement), methods=["GET"]),
            Route(
                "/v1/statements/{id}/statement_urls",
                r(self._statement_url, post=True),
                methods=["POST"],
            ),
            Route("/v1/balances", r(self._list_balances), methods=["GET"]),
            Route("/v1/balances/{id}", r(self._get_balance), methods=["GET"]),
            Route(
                "/v1/balances/{id}/statement_urls",
                r(self._balance_url, post=True),
                methods=["POST"],
            ),
            Route("/v1/events", r(self._list_events), methods=["GET"]),
            Route("/v1/events/{id}", r(self._get_event), methods=["GET"]),
            Route("/v1/tenants", r(self._list_tenants), methods=["GET"]),
            Route("/v1/tenants", r(self._create_tenant, post=True), methods=["POST"]),
            Route("/v1/tenants/{id}", r(self._get_tenant), methods=["GET"]),
            Route("/files/{kind}/{id}", self._download, methods=["GET"]),
        ]

    def _endpoint(
        self,
        fn: Callable[[Request, _Form], tuple[int, dict[str, Any]]],
        *,
        post: bool = False,
    ) -> Handler:
        async def endpoint(request: Request) -> Response:
            raw = await request.body() if post else b""
            try:
                self._authenticate(request)
                self._catch_up(self._ts())
                form = _Form.parse(raw if post else request.url.query.encode())
                key = request.headers.get("idempotency-key") if post else None
                if key and not self._honours_keys(request):
                    key = None
                if key:
                    return self._keyed(request, form, key, fn)
                status, body = fn(request, form)
            except ApiError as exc:
                status, body = exc.status, exc.body
            return _json(status, body)

        return endpoint

    def _honours_keys(self, request: Request) -> bool:
        if self.readings.idempotent_writes == "all":
            return True
        return request.url.path.endswith("/v1/charges")

    def _keyed(
        self,
        request: Request,
        form: _Form,
        key: str,
        fn: Callable[[Request, _Form], tuple[int, dict[str, Any]]],
    ) -> Response:
        now = self.now
        for old in [k for k, v in self._keys.items() if now - v.at > KEY_MEMORY]:
            del self._keys[old]
        fingerprint = json.dumps(
            [request.url.path, sorted(form.values.items()), sorted(form.maps.items())]
        )
        stored = self._keys.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "This Idempotency-Key was used with other parameters.",
                )
            return _json(stored.status, stored.body)
        self._current_key = key
        try:
            status, body = fn(request, form)
        except ApiError as exc:
            status, body = exc.status, exc.body
        finally:
            self._current_key = None
        self._keys[key] = _Stored(fingerprint, status, body, now)
        return _json(status, body)

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(401, "no_api_key", "No API key was given.", kind="auth_error")
        scheme, _, value = header.partition(" ")
        try:
            user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(user, SECRET_KEY):
            raise ApiError(401, "invalid_api_key", "Invalid API key.", kind="auth_error")

    # -- lists -----------------------------------------------------------------------

    def _page(
        self,
        request: Request,
        form: _Form,
        objects: list[dict[str, Any]],
        *,
        time_key: str | None = "created",
    ) -> tuple[int, dict[str, Any]]:
        limit = form.int("limit", "invalid_querystring")
        offset = form.int("offset", "invalid_querystring")
        limit = 10 if limit is None else limit
        offset = 0 if offset is None else offset
        if not 1 <= limit <= 100:
            raise ApiError(400, "invalid_querystring", "limit must be 1..100.", param="limit")
        if offset < 0:
            raise ApiError(400, "invalid_querystring", "offset must be >= 0.", param="offset")
        since, until = (
            form.int("since", "invalid_timestamp"),
            form.int("until", "invalid_timestamp"),
        )
        if time_key is not None:
            if since is not None:
                objects = [o for o in objects if o.get(time_key, 0) >= since]
            if until is not None:
                objects = [o for o in objects if o.get(time_key, 0) <= until]
        page = objects[offset : offset + limit]
        return 200, {
            "object": "list",
            "data": page,
            "has_more": offset + len(page) < len(objects),
            "count": len(page),
            "url": request.url.path[request.url.path.find("/v1/") :],
        }

    @staticmethod
    def _newest_first(objects: list[dict[str, Any]], key: str = "created") -> list[dict[str, Any]]:
        indexed = list(enumerate(objects))
        indexed.sort(key=lambda pair: (pair[1].get(key) or 0, pair[0]), reverse=True)
        return [obj for _, obj in indexed]

    # -- charges ---------------------------------------------------------------------

    def _charge(self, oid: str) -> _Charge:
        charge = self.charges.get(oid)
        if charge is None:
            raise _not_found("charge", oid)
        return charge

    def _list_charges(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        objs = [c.wire for c in self.charges.values()]
        for name, field_name in (
            ("customer", "customer"),
            ("tenant", "tenant"),
            ("term", "term_id"),
        ):
            value = form.get(name)
            if value is not None:
                objs = [o for o in objs if o.get(field_name) == value]
        return self._page(request, form, self._newest_first(objs))

    def _get_charge(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        return 200, self._charge(request.path_params["id"]).wire

    def _resolve_card(self, form: _Form) -> tuple[str, str | None]:
        """(behaviour token, customer) of a create request."""
        card = form.get("card")
        customer = form.get("customer")
        if customer is not None:
            if customer not in self.customers:
                raise ApiError(400, "invalid_id", f"No such customer: {customer}", param="customer")
            if card is not None and not card.startswith("car_"):
                raise ApiError(
                    400, "invalid_param_key", "Give a card id with a customer.", param="card"
                )
            return self.customers[customer], customer
        if card is None:
            raise ApiError(400, "missing_param", "card or customer is required.", param="card")
        if card in TEST_TOKENS:
            return card, None
        minted = self.tokens.get(card)
        if minted is None:
            raise ApiError(400, "invalid_id", f"No such token: {card}", param="card")
        behaviour, used = minted
        if used:
            raise ApiError(400, "token_already_used", "Token has already been used.", param="card")
        self.tokens[card] = (behaviour, True)
        return behaviour, None

    def _check_metadata(self, form: _Form) -> dict[str, str]:
        metadata = form.maps.get("metadata", {})
        if len(metadata) > 20:
            raise ApiError(
                400, "too_many_metadata_keys", "Too many metadata keys.", param="metadata"
            )
        for key, value in metadata.items():
            if not key or len(key) > 40:
                raise ApiError(
                    400, "invalid_metadata_key", "Invalid metadata key.", param="metadata"
                )
            if len(value) > 500:
                raise ApiError(
                    400, "invalid_metadata_value", "Invalid metadata value.", param="metadata"
                )
        return dict(metadata)

    def _create_charge(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        amount = form.int("amount", "invalid_amount")
        if amount is None:
            raise ApiError(400, "missing_param", "amount is required.", param="amount")
        if not 50 <= amount <= 9_999_999:
            raise ApiError(400, "invalid_amount", "amount must be 50..9,999,999.", param="amount")
        currency = form.get("currency")
        if currency is None:
            raise ApiError(400, "missing_param", "currency is required.", param="currency")
        if currency != "jpy":
            raise ApiError(400, "invalid_currency", "Only jpy is supported.", param="currency")
        description = form.get("description")
        if description is not None and len(description) > 255:
            raise ApiError(
                400, "invalid_string_length", "description is too long.", param="description"
            )
        metadata = self._check_metadata(form)
        capture = form.bool("capture")
        capture = True if capture is None else capture
        expiry_days = form.int("expiry_days", "invalid_expiry_days")
        if expiry_days is not None and (capture or not 1 <= expiry_days <= 60):
            code = "unnecessary_expiry_days" if capture else "invalid_expiry_days"
            raise ApiError(400, code, "Invalid expiry_days.", param="expiry_days")
        tenant = form.get("tenant")
        if tenant is not None and tenant not in self.tenants:
            raise ApiError(400, "invalid_id", f"No such tenant: {tenant}", param="tenant")
        tds = bool(form.bool("three_d_secure"))
        behaviour, customer = self._resolve_card(form)
        now = self._ts()
        cid = self._id("ch")
        failure = TEST_TOKENS.get(behaviour)
        platform_fee = form.int("platform_fee", "invalid_amount")
        if tenant is not None and platform_fee is None:
            rate = self.tenants[tenant]["platform_fee_rate"]
            platform_fee = amount * BookConfig(fee_rate=rate).fee_basis_points // 10_000
        wire: dict[str, Any] = {
            "object": "charge",
            "id": cid,
            "livemode": False,
            "created": now,
            "amount": amount,
            "currency": "jpy",
            "paid": False,
            "captured": False,
            "captured_at": None,
            "expired_at": None,
            "card": _card_wire(behaviour, customer, now),
            "customer": customer,
            "description": description,
            "failure_code": None,
            "failure_message": None,
            "fee_rate": self.books.config.fee_rate,
            "refunded": False,
            "amount_refunded": 0,
            "refund_reason": None,
            "subscription": None,
            "metadata": metadata,
            "platform_fee": platform_fee if tenant else None,
            "platform_fee_rate": self.tenants[tenant]["platform_fee_rate"] if tenant else None,
            "total_platform_fee": platform_fee or 0 if tenant else 0,
            "tenant": tenant,
            "product": None,
            "three_d_secure_status": "unverified" if tds else None,
            "term_id": None,
        }
        charge = _Charge(
            wire=wire,
            owner=tenant,
            key=self._current_key,
            capture=capture,
            behaviour=behaviour,
            platform_fee=platform_fee or 0,
            expiry_days=expiry_days or 7,
            authorized=amount,
        )
        self.charges[cid] = charge
        if tds:
            # The card is charged at tds_finish, where a decline answers 402.
            return 200, wire
        if failure is not None:
            return self._fail(charge, failure)
        self._pay(charge)
        return 200, wire

    def _fail(self, charge: _Charge, code: str) -> tuple[int, dict[str, Any]]:
        wire = charge.wire
        wire["failure_code"] = code
        wire["failure_message"] = CARD_MESSAGES.get(code, code)
        self._emit("charge.failed", wire)
        raise ApiError(
            402,
            code,
            CARD_MESSAGES.get(code, code),
            kind="card_error",
            param="card",
            charge=wire["id"],
        )

    def _pay(self, charge: _Charge) -> None:
        wire = charge.wire
        now = self._ts()
        wire["paid"] = True
        if charge.capture:
            self._fix_capture(charge, wire["amount"], now)
        else:
            wire["expired_at"] = now + charge.expiry_days * 86_400
        self._emit("charge.succeeded", wire)

    def _fix_capture(self, charge: _Charge, amount: int, now: int) -> None:
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

    def _update_charge(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        description = form.get("description")
        if description is not None:
            if len(description) > 255:
                raise ApiError(
                    400, "invalid_string_length", "description is too long.", param="description"
                )
            charge.wire["description"] = description
        if "metadata" in form.maps:
            merged = {**charge.wire["metadata"], **self._check_metadata(form)}
            charge.wire["metadata"] = {k: v for k, v in merged.items() if v != ""}
        self._emit("charge.updated", charge.wire)
        return 200, charge.wire

    def _capture(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        wire = charge.wire
        if wire["refunded"]:
            raise ApiError(
                400, "cant_capture_refunded_charge", "The charge is refunded.", charge=wire["id"]
            )
        if wire["captured"]:
            raise ApiError(400, "already_captured", "The charge is captured.", charge=wire["id"])
        if not wire["paid"]:
            code = (
                "three_d_secure_incompleted"
                if wire["three_d_secure_status"] == "unverified"
                else "failed_payment"
            )
            raise ApiError(400, code, "The charge is not authorised.", charge=wire["id"])
        if isinstance(wire["expired_at"], int) and wire["expired_at"] <= self._ts():
            raise ApiError(400, "charge_expired", "The authorisation expired.", charge=wire["id"])
        amount = form.int("amount", "invalid_amount")
        amount = wire["amount"] if amount is None else amount
        if not 50 <= amount <= 9_999_999:
            raise ApiError(400, "invalid_amount", "amount must be 50..9,999,999.", param="amount")
        if amount > wire["amount"]:
            raise ApiError(
                400,
                "capture_amount_gt_net",
                "amount exceeds the authorised amount.",
                param="amount",
            )
        self._fix_capture(charge, amount, self._ts())
        self._emit("charge.captured", wire)
        return 200, wire

    def _refund(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        wire = charge.wire
        reason = form.get("refund_reason")
        if reason is not None and len(reason) > 255:
            raise ApiError(400, "invalid_refund_reason", "refund_reason is too long.")
        if not wire["paid"]:
            raise ApiError(400, "failed_payment", "The charge is not paid.", charge=wire["id"])
        amount = form.int("amount", "invalid_refund_amount")
        if not wire["captured"]:
            if wire["refunded"]:
                raise ApiError(
                    400, "already_refunded", "The charge is refunded.", charge=wire["id"]
                )
            if amount is not None and amount != wire["amount"]:
                raise ApiError(
                    400,
                    "invalid_amount_to_not_captured",
                    "An uncaptured charge is refunded in full.",
                    param="amount",
                )
            wire["refunded"] = True
            wire["amount_refunded"] = wire["amount"]
            wire["refund_reason"] = reason
            self._emit("charge.refunded", wire)
            return 200, wire
        remaining = charge.refundable
        if remaining <= 0:
            raise ApiError(400, "already_refunded", "The charge is refunded.", charge=wire["id"])
        amount = remaining if amount is None else amount
        if amount < 1:
            raise ApiError(400, "invalid_refund_amount", "amount must be positive.", param="amount")
        if amount > remaining:
            raise ApiError(
                400, "refund_amount_gt_net", "amount exceeds what is refundable.", param="amount"
            )
        # https://pay.jp/docs/refund: refunded turns true after any refund, partial or full.
        wire["amount_refunded"] += amount
        wire["refunded"] = True
        if reason is not None:
            wire["refund_reason"] = reason
        charge.refunds.append(amount)
        captured = charge.captured_amount
        fee_back = amount * charge.fee // captured
        platform_back = amount * charge.platform_fee // captured if charge.owner else 0
        self.books.record_refund(charge.owner, amount, fee_back, platform_back)
        self._emit("charge.refunded", wire)
        return 200, wire

    def _reauth(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        wire = charge.wire
        if wire["refunded"]:
            raise ApiError(400, "cant_reauth_refunded_charge", "The charge is refunded.")
        if wire["captured"] or not wire["paid"]:
            raise ApiError(400, "already_captured", "Only an authorisation can be renewed.")
        days = form.int("expiry_days", "invalid_expiry_days") or 7
        if not 1 <= days <= 60:
            raise ApiError(400, "invalid_expiry_days", "Invalid expiry_days.", param="expiry_days")
        wire["expired_at"] = self._ts() + days * 86_400
        return 200, wire

    def _tds_finish(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        wire = charge.wire
        state = wire.get("three_d_secure_status")
        if state is None:
            raise ApiError(400, "not_in_three_d_secure_flow", "The charge has no 3-D Secure.")
        if wire["paid"] or wire["failure_code"]:
            return 200, wire
        timeout = self.readings.tds_timeout_minutes * 60
        if self._ts() >= wire["created"] + timeout:
            # https://pay.jp/info/2024/11/08/110000/ (since 2024-11-21)
            raise ApiError(
                400, "three_d_secure_expired", "3-D Secure flow expired.", charge=wire["id"]
            )
        if state == "unverified":
            raise ApiError(
                400, "three_d_secure_incompleted", "3-D Secure is not completed.", charge=wire["id"]
            )
        if state in ("failed", "error"):
            return self._fail(charge, "three_d_secure_failed")
        failure = TEST_TOKENS.get(charge.behaviour)
        if failure is not None:
            # The card is charged now: a decline is a 402 like at creation.
            return self._fail(charge, failure)
        self._pay(charge)
        return 200, wire

    async def _tds_start(self, request: Request) -> Response:
        charge = self.charges.get(request.path_params["id"])
        if request.query_params.get("publickey") != PUBLIC_KEY:
            return HTMLResponse("<p>Invalid public key.</p>", status_code=400)
        timeout = self.readings.tds_timeout_minutes * 60
        if (
            charge is None
            or charge.wire.get("three_d_secure_status") != "unverified"
            or self._ts() >= charge.wire["created"] + timeout
        ):
            return HTMLResponse("<p>This 3-D Secure request is not open.</p>", status_code=400)
        result = "failed" if charge.behaviour == _TDS_FAILS else "verified"
        charge.wire["three_d_secure_status"] = result
        return HTMLResponse(
            "<!doctype html><title>3-D Secure (sandbox)</title>"
            f"<p>3-D Secure {result}. You may return to the shop.</p>"
        )

    # -- payouts ---------------------------------------------------------------------

    def _list_terms(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        objs = [t.wire() for t in self.books.terms]
        # PAY.JP documents since_start_at / until_start_at; since / until are accepted
        # as the same filter (the references disagree).
        since = form.int("since_start_at", "invalid_timestamp") or form.int(
            "since", "invalid_timestamp"
        )
        until = form.int("until_start_at", "invalid_timestamp") or form.int(
            "until", "invalid_timestamp"
        )
        if since is not None:
            objs = [o for o in objs if o["start_at"] >= since]
        if until is not None:
            objs = [o for o in objs if o["start_at"] <= until]
        ordered = self._newest_first(objs, "start_at")
        if self.readings.terms_order == "oldest":
            ordered.reverse()
        return self._page(request, form, ordered, time_key=None)

    def _get_term(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        term = self.books.term(request.path_params["id"])
        if term is None:
            raise _not_found("term", request.path_params["id"])
        return 200, term.wire()

    def _owner_filter(
        self, form: _Form, owner_of: Callable[[Any], str | None], objs: list[Any]
    ) -> list[Any]:
        owner = form.get("owner")
        if owner is not None and owner not in ("merchant", "tenant"):
            raise ApiError(
                400, "invalid_owner_type", "owner must be merchant or tenant.", param="owner"
            )
        if owner == "merchant":
            objs = [o for o in objs if owner_of(o) is None]
        elif owner == "tenant":
            objs = [o for o in objs if owner_of(o) is not None]
        tenant = form.get("tenant")
        if tenant is not None:
            objs = [o for o in objs if owner_of(o) == tenant]
        return objs

    def _list_statements(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        recs: list[StatementRec] = list(self.books.statements.values())
        recs = self._owner_filter(form, lambda st: st.owner, recs)
        kind = form.get("type")
        if kind is not None:
            recs = [st for st in recs if st.type == kind]
        term = form.get("term")
        if term is not None:
            recs = [st for st in recs if st.term_id == term]
        if form.get("source_transfer") is not None:
            recs = []  # no Transfer objects exist since 2024-06
        objs = [self.books.statement_wire(st) for st in recs]
        return self._page(request, form, self._newest_first(objs))

    def _get_statement(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        st = self.books.statements.get(request.path_params["id"])
        if st is None:
            raise _not_found("statement", request.path_params["id"])
        return 200, self.books.statement_wire(st)

    def _list_balances(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        recs = list(self.books.balances.values())
        recs = self._owner_filter(form, lambda b: b.owner, recs)
        state = form.get("state")
        if state is not None:
            if state not in ("collecting", "transfer", "claim"):
                raise ApiError(400, "invalid_querystring", "Unknown state.", param="state")
            recs = [b for b in recs if b.state == state]
        closed = form.bool("closed")
        if closed is not None:
            recs = [b for b in recs if b.closed == closed]
        since = form.int("since_due_date", "invalid_timestamp")
        until = form.int("until_due_date", "invalid_timestamp")
        if since is not None:
            recs = [b for b in recs if b.due_date is not None and b.due_date >= since]
        if until is not None:
            recs = [b for b in recs if b.due_date is not None and b.due_date <= until]
        objs = [self.books.balance_wire(b) for b in recs]
        return self._page(request, form, self._newest_first(objs))

    def _get_balance(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        balance = self.books.balances.get(request.path_params["id"])
        if balance is None:
            raise _not_found("balance", request.path_params["id"])
        return 200, self.books.balance_wire(balance)

    def _signed_url(self, kind: str, oid: str, platformer: bool) -> dict[str, Any]:
        expires = self._ts() + STATEMENT_URL_LIFETIME
        message = f"{kind}/{oid}/{expires}/{int(platformer)}".encode()
        signature = hmac.new(self._signing, message, hashlib.sha256).hexdigest()[:32]
        url = (
            f"{self.base_url}/files/{kind}/{oid}?expires={expires}"
            f"&platformer={int(platformer)}&signature={signature}"
        )
        return {"object": "statement_url", "url": url, "expires": expires}

    def _statement_url(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        oid = request.path_params["id"]
        if oid not in self.books.statements:
            raise _not_found("statement", oid)
        return 200, self._signed_url("statements", oid, bool(form.bool("platformer")))

    def _balance_url(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        oid = request.path_params["id"]
        if oid not in self.books.balances:
            raise _not_found("balance", oid)
        return 200, self._signed_url("balances", oid, bool(form.bool("platformer")))

    async def _download(self, request: Request) -> Response:
        kind, oid = request.path_params["kind"], request.path_params["id"]
        query = request.query_params
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            return PlainTextResponse("bad link", status_code=400)
        platformer = query.get("platformer", "0")
        message = f"{kind}/{oid}/{expires}/{platformer}".encode()
        good = hmac.new(self._signing, message, hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(good, query.get("signature", "")):
            return PlainTextResponse("bad link", status_code=403)
        if self._ts() >= expires:
            return PlainTextResponse("link expired", status_code=410)
        if kind == "statements" and oid in self.books.statements:
            statements = [self.books.statements[oid]]
        elif kind == "balances" and oid in self.books.balances:
            balance = self.books.balances[oid]
            statements = [self.books.statements[s] for s in balance.statement_ids]
        else:
            return PlainTextResponse("not found", status_code=404)
        lines = ["statement_id,type,subject,name,amount,tax_rate"]
        for st in statements:
            lines += [
                f"{st.id},{st.type},{i['subject']},{i['name']},{i['amount']},{i['tax_rate']}"
                for i in st.items
            ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/csv")

    # -- events and tenants ----------------------------------------------------------

    def _list_events(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        objs = list(self.events)
        resource = form.get("resource_id")
        if resource is not None:
            objs = [e for e in objs if e["data"].get("id") == resource]
        kind = form.get("object")
        if kind is not None:
            objs = [e for e in objs if e["data"].get("object") == kind]
        etype = form.get("type")
        if etype is not None:
            objs = [e for e in objs if e["type"] == etype]
        return self._page(request, form, self._newest_first(objs))

    def _get_event(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        oid = request.path_params["id"]
        for event in self.events:
            if event["id"] == oid:
                return 200, event
        raise _not_found("event", oid)

    def _list_tenants(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        return self._page(request, form, self._newest_first(list(self.tenants.values())))

    def _create_tenant(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        name = form.get("name")
        rate = form.get("platform_fee_rate")
        if name is None or rate is None:
            raise ApiError(400, "missing_param", "name and platform_fee_rate are required.")
        tid = form.get("id") or self._id("ten")
        if tid in self.tenants:
            raise ApiError(400, "already_exist_id", f"Tenant {tid} already exists.", param="id")
        try:
            BookConfig(fee_rate=rate).fee_basis_points  # noqa: B018 - validates the rate
        except ValueError:
            raise ApiError(400, "invalid_param_key", "Invalid platform_fee_rate.") from None
        self.tenants[tid] = self._tenant_wire(tid, name, rate, self._ts())
        return 200, self.tenants[tid]

    def _get_tenant(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        tenant = self.tenants.get(request.path_params["id"])
        if tenant is None:
            raise _not_found("tenant", request.path_params["id"])
        return 200, tenant


def _json(status: int, body: Mapping[str, Any]) -> Response:
    return JSONResponse(
        dict(body), status_code=status, media_type="application/json; charset=utf-8"
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _card_wire(token: str, customer: str | None, created: int) -> dict[str, Any]:
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


def _ledger_status(charge: _Charge) -> str:
    wire = charge.wire
    if not wire["paid"]:
        return "failed" if wire["failure_code"] else "pending"
    if not wire["captured"]:
        return "canceled" if wire["refunded"] else "authorized"
    if charge.refundable <= 0:
        return "refunded"
    return "partially_refunded" if charge.merchant_refunded else "succeeded"
