"""A provider whose answers a test scripts: classy, over a scripted transport.

`Classy` declares one error code per outcome class; `Script` answers each request with
the next scripted response or exception. Used by the outcome-class and public-surface
tests (no sockets, no sandbox).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    MethodCapabilities,
    Money,
    PaymentDeclined,
    Refund,
    RefundStatus,
)
from paygate.adapter import (
    Call,
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    ErrorMap,
    Flow,
    KeyWindow,
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
)
from paygate.testing import ScriptedResponder

BASE = "https://classy.invalid"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class ClassySettings(ProviderSettings):
    base_url: str = BASE


_ERRORS = ErrorMap("classy", by_status={402: PaymentDeclined})


class Classy(Provider):
    """A provider whose error codes say what they mean for the key."""

    name: ClassVar[str] = "classy"
    settings_model = ClassySettings
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        "busy": Outcome.RETRYABLE,
        "already_done": Outcome.MAYBE_DONE,
        "nope": Outcome.REFUSED,
        "weird": Outcome.UNKNOWN,
    }

    def __init__(self, *, lookup: bool = True, window: KeyWindow = timedelta(hours=1)) -> None:
        super().__init__(ClassySettings(), account="acct")
        self._policy = OperationPolicy(key="header", key_window=window, lookup=lookup)

    def policy(self, operation: Operation) -> OperationPolicy:
        return self._policy

    def capabilities(self) -> Capabilities:
        return Capabilities(
            provider=self.name,
            methods={
                "card": MethodCapabilities(
                    method="card", refund="partial", multiple_refunds=True, cancel=True
                )
            },
            min_amount=1,
            webhooks=True,
        )

    def _error(self, reply: Reply) -> Exception:
        body = reply.json_object()
        return _ERRORS.error(
            reply,
            f"classy answered HTTP {reply.status}",
            code=body.get("code"),
            provider_message=body.get("message", ""),
            retryable=True if body.get("temporary") else None,
        )

    def _charge(self, data: Mapping[str, Any], ctx: OpContext) -> Charge:
        return ctx.charge(
            data["id"],
            method="card",
            status=ChargeStatus(data["status"]),
            amount=Money.jpy(data["amount"]),
            amount_refunded=Money.jpy(data.get("refunded", 0)),
            created_at=T0,
            raw=dict(data),
        )

    def _post(self, path: str, ctx: OpContext, body: Mapping[str, Any]) -> Flow[Reply]:
        reply: Reply = yield Call(
            "POST",
            f"{BASE}{path}",
            headers={"idempotency-key": ctx.provider_key(path), "content-type": "application/json"},
            content=json.dumps(body).encode(),
            retry=Retry.KEYED,
            step=path,
        )
        if not reply.ok:
            raise self._error(reply)
        return reply

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        reply = yield from self._post("/charges", ctx, {"amount": req.amount.amount})
        return self._charge(reply.json_object(), ctx)

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        reply: Reply = yield Call("GET", f"{BASE}/lookup", step="lookup")
        if reply.status == 404:
            return None
        return self._charge(reply.json_object(), ctx)

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        reply: Reply = yield Call("GET", f"{BASE}/charges/{ref.provider_ref}", step="get")
        return self._charge(reply.json_object(), ctx)

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        reply = yield from self._post(f"/charges/{req.charge.provider_ref}/cancel", ctx, {})
        return self._charge(reply.json_object(), ctx)

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        amount = req.amount.amount if req.amount else req.charge.amount.amount  # type: ignore[union-attr]
        reply = yield from self._post("/refunds", ctx, {"amount": amount})
        data = reply.json_object()
        total = data.get("charge_refunded")
        return ctx.refund(
            req.charge.charge_id,
            data["id"],
            amount=Money.jpy(amount),
            status=RefundStatus.SUCCEEDED,
            created_at=T0,
            charge_refunded_total=None if total is None else Money.jpy(total),
        )

    def lookup_refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund | None]:
        reply: Reply = yield Call("GET", f"{BASE}/refund-lookup", step="lookup")
        if reply.status == 404:
            return None
        data = reply.json_object()
        return ctx.refund(
            req.charge.charge_id,
            data["id"],
            amount=Money.jpy(data["amount"]),
            status=RefundStatus.SUCCEEDED,
            created_at=T0,
        )

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[list[ParsedEvent]]:
        data = json.loads(body)
        refunded = data.get("amount_refunded")
        yield from ()
        return [
            ParsedEvent(
                provider_event_type=data["type"],
                type="charge.refunded",
                provider_event_id=data["id"],
                provider_ref=data["charge"],
                status=ChargeStatus(data["status"]),
                amount_refunded=None if refunded is None else Money.jpy(refunded),
            )
        ]


# ----------------------------------------------------------------------------- the script


class Script(ScriptedResponder):
    """Answers each request with the next scripted answer (an exception is raised)."""


def ok(**data: Any) -> httpx.Response:
    return httpx.Response(200, json={"id": "ch_1", "status": "succeeded", "amount": 1200, **data})


def err(status: int, code: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"{code} said", **extra})


LOST = httpx.ReadTimeout  # sent, no answer
NOT_FOUND = httpx.Response(404, json={})
