"""fakepay: a tiny provider and its emulator that exercise every core path.

Not shipped: it lives under tests/ and registers in-process. ``mode`` in the settings
selects how the provider protects creates against duplicates, so the same tests cover
the three recovery policies: "keyed" (Idempotency-Key header), "lookup" (find by order
key) and "none" (neither: unknown outcomes must stay unknown).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    DisplayQR,
    MethodCapabilities,
    Money,
    PaymentDeclined,
    PayoutBalance,
    Refund,
    RefundStatus,
)
from paygate.adapter import Call as HttpCall
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    ErrorMap,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Outcome,
    ParsedEvent,
    Provider,
    ProviderSettings,
    RefundRequest,
    Reply,
    Retry,
    check_webhook_token,
    no_call,
)
from paygate.sandbox import Emulator, LedgerEntry, WebhookDelivery

SECRET = "fk_test_0123456789abcdef"
WEBHOOK_TOKEN = "whk_fake_token_abcdef"


class FakeSettings(ProviderSettings):
    api_key: SecretStr
    mode: Literal["keyed", "lookup", "none"] = "keyed"
    webhook_token: SecretStr | None = None


_STATUS = {
    "succeeded": ChargeStatus.SUCCEEDED,
    "pending": ChargeStatus.REQUIRES_ACTION,
    "canceled": ChargeStatus.CANCELED,
    "failed": ChargeStatus.FAILED,
    "expired": ChargeStatus.EXPIRED,
}


# Codes pick nothing here: fakepay's status says it all (402 is its decline).
_ERRORS = ErrorMap("fakepay", by_status={402: PaymentDeclined})


class FakeProvider(Provider):
    name: ClassVar[str] = "fakepay"
    settings_model = FakeSettings
    # One code per outcome class; the emulator answers them on request (answer_classes).
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        "busy": Outcome.RETRYABLE,
        "already_done": Outcome.MAYBE_DONE,
        "weird": Outcome.UNKNOWN,
        "declined_for_good": Outcome.REFUSED,
    }

    def __init__(self, settings: ProviderSettings, *, account: str) -> None:
        assert isinstance(settings, FakeSettings)
        super().__init__(settings, account=account)
        self.s = settings
        self.base = settings.base_url  # checked (https or loopback) by ProviderSettings

    @property
    def policies(self) -> Mapping[Operation, OperationPolicy]:  # type: ignore[override]
        keyed = OperationPolicy(key="header", key_window=timedelta(hours=24))
        charge = {
            "keyed": keyed,
            "lookup": OperationPolicy(key="none", lookup=True),
            "none": OperationPolicy(),
        }[self.s.mode]
        return {Operation.CHARGE: charge, Operation.REFUND: keyed, Operation.CANCEL: keyed}

    @classmethod
    def emulator(cls) -> type[Emulator]:
        return FakeEmulator

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.name,
            methods={
                "card": MethodCapabilities(method="card", refund="partial", multiple_refunds=True),
                "qr": MethodCapabilities(
                    method="qr",
                    refund="none",
                    cancel=True,
                    refund_alternative="cancel the unpaid code",
                ),
            },
            min_amount=1,
            max_amount=1_000_000,
            webhooks=True,
            webhook_auth="token",
        )

    def _headers(self, key: str | None = None) -> dict[str, str]:
        h = {
            "authorization": f"Bearer {self.s.api_key.get_secret_value()}",
            "content-type": "application/json",
        }
        if key is not None:
            h["idempotency-key"] = key
        return h

    def _error(self, reply: Reply) -> Exception:
        body = reply.json_object().get("error", {})
        return _ERRORS.error(
            reply,
            f"fakepay answered HTTP {reply.status}",
            code=body.get("code"),
            provider_message=body.get("message", ""),
        )

    def _charge(self, data: dict[str, Any], ctx: OpContext) -> Charge:
        amount = Money(amount=data["amount"], currency=data["currency"])
        status = _STATUS[data["status"]]
        if data["refunded"] and status is ChargeStatus.SUCCEEDED:
            status = (
                ChargeStatus.REFUNDED
                if data["refunded"] >= data["amount"]
                else ChargeStatus.PARTIALLY_REFUNDED
            )
        return ctx.charge(
            data["id"],
            method=data["method"],
            status=status,
            amount=amount,
            amount_refunded=Money(amount=data["refunded"], currency=data["currency"]),
            next_action=DisplayQR(url=f"{self.base}/qr/{data['id']}")
            if status is ChargeStatus.REQUIRES_ACTION
            else None,
            created_at=datetime.fromtimestamp(data["created"], UTC),
            raw=data,
        )

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        keyed = self.s.mode == "keyed"
        body = {
            "amount": req.amount.amount,
            "currency": req.amount.currency,
            "method": req.method.type,
            "order": ctx.provider_key("charge"),
            "metadata": dict(req.metadata),
        }
        reply = yield HttpCall(
            "POST",
            f"{self.base}/charges",
            headers=self._headers(ctx.provider_key("charge") if keyed else None),
            content=json.dumps(body).encode(),
            retry=Retry.KEYED if keyed else Retry.UNSAFE,
            step="charges.create",
        )
        if not reply.ok:
            raise self._error(reply)
        return self._charge(reply.json_object(), ctx)

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        reply = yield HttpCall(
            "GET",
            f"{self.base}/charges?order={ctx.provider_key('charge')}",
            headers=self._headers(),
            step="charges.lookup",
        )
        if not reply.ok:
            raise self._error(reply)
        items = reply.json_object()["data"]
        return self._charge(items[0], ctx) if items else None

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        reply = yield HttpCall(
            "GET",
            f"{self.base}/charges/{ref.provider_ref}",
            headers=self._headers(),
            step="charges.get",
        )
        if not reply.ok:
            raise self._error(reply)
        return self._charge(reply.json_object(), ctx)

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        # No amount: fakepay refunds what is left (the same body on every re-send).
        body = {} if req.amount is None else {"amount": req.amount.amount}
        currency = req.amount.currency if req.amount else "JPY"
        if req.charge.amount is not None:
            currency = req.charge.amount.currency
        reply = yield HttpCall(
            "POST",
            f"{self.base}/charges/{req.charge.provider_ref}/refunds",
            headers=self._headers(ctx.provider_key("refund")),
            content=json.dumps(body).encode(),
            retry=Retry.KEYED,
            step="refunds.create",
        )
        if not reply.ok:
            raise self._error(reply)
        data = reply.json_object()
        return ctx.refund(
            req.charge.charge_id,
            data["id"],
            amount=Money(amount=data["amount"], currency=currency),
            status=RefundStatus.SUCCEEDED,
            reason=req.reason,
            created_at=ctx.now(),
            raw=data,
        )

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        reply = yield HttpCall(
            "POST",
            f"{self.base}/charges/{req.charge.provider_ref}/cancel",
            headers=self._headers(ctx.provider_key("cancel")),
            retry=Retry.KEYED,
            step="charges.cancel",
        )
        if not reply.ok:
            raise self._error(reply)
        return self._charge(reply.json_object(), ctx)

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        reply = yield HttpCall(
            "GET", f"{self.base}/balance", headers=self._headers(), step="balance.get"
        )
        if not reply.ok:
            raise self._error(reply)
        data = reply.json_object()
        zero = Money.jpy(0)
        return PayoutBalance(
            account=ctx.account,
            provider=self.name,
            currency="JPY",
            collecting=Money.jpy(data["collecting"]),
            scheduled=zero,
            owed=zero,
            as_of=ctx.now(),
        )

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        check_webhook_token(
            headers,
            self.s.webhook_token,
            header="x-fake-token",
            provider=self.name,
            setting="webhook_token",
        )

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        data = json.loads(body)
        obj = data["data"]
        status = _STATUS[obj["status"]]
        return no_call(
            [
                ParsedEvent(
                    provider_event_type=data["type"],
                    type=f"charge.{status.value}" if status.is_final else "charge.updated",
                    provider_event_id=data["id"],
                    provider_ref=obj["id"],
                    status=status,
                    amount=Money(amount=obj["amount"], currency=obj["currency"]),
                    raw=data,
                )
            ]
        )


class FakeEmulator(Emulator):
    """The fakepay server: charges, refunds, cancel, a balance."""

    name: ClassVar[str] = "fakepay"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.reset()

    def reset(self) -> None:
        self.charges: dict[str, dict[str, Any]] = {}
        self.by_key: dict[
            str, tuple[str, str]
        ] = {}  # idempotency key -> (body hash, response json)
        self.requests: list[tuple[str, str]] = []
        self.counter = 0
        # answer_classes: the next `forced` codes, or a random class with `probability`.
        self.forced: list[str] = []
        self.class_probability = 0.0
        self.class_rng = random.Random(0)
        self.class_counts: dict[str, int] = {}

    def credentials(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key": SECRET, "webhook_token": WEBHOOK_TOKEN}

    def account_settings(self) -> dict[str, Any]:
        return {
            "provider": "fakepay",
            "base_url": self.base_url,
            "api_key": SECRET,
            "webhook_token": WEBHOOK_TOKEN,
        }

    def ledger(self) -> list[LedgerEntry]:
        return [
            LedgerEntry(
                kind="charge",
                id=c["id"],
                key=c["order"],
                amount=c["amount"],
                refunded=c["refunded"],
                status=c["status"],
            )
            for c in self.charges.values()
        ]

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/charges", self._create, methods=["POST"]),
            Route("/charges", self._list, methods=["GET"]),
            Route("/charges/{cid}", self._get, methods=["GET"]),
            Route("/charges/{cid}/refunds", self._refund, methods=["POST"]),
            Route("/charges/{cid}/cancel", self._cancel, methods=["POST"]),
            Route("/balance", self._balance, methods=["GET"]),
        ]

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if action == "pay":
            charge = self.charges[str(params["id"])]
            charge["status"] = "succeeded"
            self.ctx.deliver(
                WebhookDelivery(
                    provider="fakepay",
                    body=json.dumps(
                        {"id": f"evt_{charge['id']}", "type": "charge.paid", "data": charge}
                    ).encode(),
                    headers={"x-fake-token": WEBHOOK_TOKEN, "content-type": "application/json"},
                    schedule=[timedelta(minutes=1)] * 3,
                    event_id=f"evt_{charge['id']}",
                )
            )
            return charge
        if action == "answer_classes":
            # {"codes": [...]} forces the next answers; {"probability": p, "seed": s}
            # answers a random class to that share of mutating requests.
            self.forced = [str(c) for c in params.get("codes", [])]
            self.class_probability = float(params.get("probability", 0.0))
            self.class_rng = random.Random(int(params.get("seed", 0)))
            return {"forced": self.forced, "probability": self.class_probability}
        if action == "class_counts":
            return dict(self.class_counts)
        return await super().control(action, params)

    def _class(self, replay: bool) -> str | None:
        """The outcome-class answer for this mutating request, if any."""
        if self.forced:
            code = self.forced.pop(0)
        elif self.class_probability and self.class_rng.random() < self.class_probability:
            code = self.class_rng.choice(["busy", "already_done", "weird", "declined_for_good"])
        else:
            return None
        if code == "already_done" and not replay:
            return None  # truthful: only a request that did get through earlier
        self.class_counts[code] = self.class_counts.get(code, 0) + 1
        return code

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse(
                {"error": {"code": "unauthorized", "message": "bad key"}}, status_code=401
            )
        return None

    async def _keyed(self, request: Request, make: Any) -> Response:
        key = request.headers.get("idempotency-key")
        body = await request.body()
        code = self._class(replay=key is not None and key in self.by_key)
        if code in ("busy", "declined_for_good", "already_done"):
            # Refused, nothing done now (already_done: it was done by an earlier request).
            return JSONResponse(
                {"error": {"code": code, "message": f"{code} (outcome class)"}}, status_code=409
            )
        if key is not None and key in self.by_key:
            seen_body, response = self.by_key[key]
            if seen_body != body.decode():
                return JSONResponse(
                    {"error": {"code": "idempotency_conflict", "message": "key reused"}},
                    status_code=409,
                )
            return Response(
                response, media_type="application/json", headers={"idempotent-replayed": "true"}
            )
        status, data = make(json.loads(body) if body else {})
        text = json.dumps(data)
        if key is not None and status < 400:
            self.by_key[key] = (body.decode(), text)
        if code == "weird" and status < 400:
            # Done, but answered in words that do not say so: the outcome is unknown.
            return JSONResponse(
                {"error": {"code": "weird", "message": "weird (outcome class)"}}, status_code=400
            )
        return Response(text, status_code=status, media_type="application/json")

    async def _create(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        self.requests.append(("POST", "/charges"))

        def make(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if data["amount"] == 666:
                return 402, {
                    "error": {"code": "card_declined", "message": "カードが拒否されました"}
                }
            self.counter += 1
            cid = f"fch_{self.counter:06d}"
            charge = {
                "id": cid,
                "amount": data["amount"],
                "currency": data["currency"],
                "method": data["method"],
                "order": data.get("order"),
                "status": "pending" if data["method"] == "qr" else "succeeded",
                "refunded": 0,
                "created": int(self.now.timestamp()),
            }
            self.charges[cid] = charge
            return 200, charge

        return await self._keyed(request, make)

    async def _list(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        order = request.query_params.get("order")
        return JSONResponse({"data": [c for c in self.charges.values() if c["order"] == order]})

    async def _get(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        charge = self.charges.get(request.path_params["cid"])
        if charge is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no such charge"}}, status_code=404
            )
        return JSONResponse(charge)

    async def _refund(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        charge = self.charges.get(request.path_params["cid"])
        if charge is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no such charge"}}, status_code=404
            )

        def make(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            amount = data.get("amount", charge["amount"] - charge["refunded"])
            if amount <= 0 or charge["refunded"] + amount > charge["amount"]:
                return 400, {"error": {"code": "refund_too_large", "message": "too much"}}
            charge["refunded"] += amount
            return 200, {"id": f"frf_{charge['id']}_{charge['refunded']}", "amount": amount}

        return await self._keyed(request, make)

    async def _cancel(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        charge = self.charges.get(request.path_params["cid"])
        if charge is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no such charge"}}, status_code=404
            )

        def make(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if charge["status"] != "pending":
                return 400, {"error": {"code": "not_cancelable", "message": "already paid"}}
            charge["status"] = "canceled"
            return 200, charge

        return await self._keyed(request, make)

    async def _balance(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        total = sum(
            c["amount"] - c["refunded"] for c in self.charges.values() if c["status"] == "succeeded"
        )
        return JSONResponse({"collecting": total})
