"""The elepay sandbox emulator: EasyQR codes, charges and refunds, in memory.

Faithful to what is documented (paths, camelCase JSON, the exact media type
``application/json;charset=utf-8``, 201 on create, 204 on close, ``{total, charges}``
offset pagination, M-codes as HTTP 400, webhook retries 1 min x3 then 10 min x3, and the
server FAQ's rule that an ``orderNo`` is refused with ``M002007`` while it is paid *or*
its code is still valid), and wire-compatible with the official ``elepay-python-sdk``.
There is no code list, as in elepay's API. Where elepay's documents are silent the
emulator assumes, says so in ``docs/providers/elepay.md`` ("Assumptions"), and lets a
test play each reading through a control action:

* error bodies are ``{"code": "<internal string>", "errorCode": "M…", "message": "…"}``
  (the FAQ's ``M002007`` example; other internal codes are made up in its pattern);
* a failed payment attempt leaves the code ``pending`` and creates no charge and no
  webhook; the payer may try again until the code expires;
* what ``expired`` says about a deleted code (``expired_flag``), and whether a revoke
  is listed under the charge's ``refunds`` (``revoke_refunds``);
* ``M005000`` and ``M006001`` are only sent when a test asks (``rate_limit``, ``busy``);
* closing a paid code answers ``M006003``, an expired one ``M006004``.

Control actions (``POST /_sandbox/elepay/<action>``):

``pay_code``        {code_id, payment_method="paypay"}: the payer scans the code and pays
                    with the chosen wallet brand.
``fail_payment``    {code_id, payment_method="paypay"}: a payment attempt fails; nothing
                    changes on the code and no webhook is sent.
``rate_limit``      {count=1}: the next ``count`` API calls answer ``M005000``.
``refund_mode``     {mode="immediate"|"pending"}: whether new refunds complete at once.
``complete_refund`` {refund_id}: a pending refund completes (``refund.succeeded``).
``busy``            {count=1}: the next ``count`` state changes (close, refund, revoke)
                    answer ``M006001`` (another operation is in progress).
``expired_flag``    {meaning="ran_out"|"invalid"}: a deleted code reads ``expired:
                    false`` (the flag means "ran out", default) or ``true`` (it means
                    "no longer valid").
``revoke_refunds``  {mode="empty"|"listed"}: a revoked paid charge keeps ``refunds``
                    as they were (default) or lists the returned amount there.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import ControlError, Emulator, EmulatorContext, LedgerEntry, WebhookDelivery

from ._errors import CATALOGUE
from ._wire import (
    CONTENT_TYPE,
    EXPIRY_MINUTES_DEFAULT,
    EXPIRY_MINUTES_MAX,
    EXPIRY_MINUTES_MIN,
    FRONT_URL_PATTERN,
    MAX_AMOUNT,
    METADATA_MAX_KEYS,
    ORDER_NO_MAX,
    PAYMENT_METHODS,
    TEXT_MAX,
    dumps,
    to_millis,
)

__all__ = ["ElepayEmulator"]

# Fixed, documented sandbox credential: it opens nothing outside the emulator.
SECRET_KEY: Final = "sk_test_paygate_sandbox_elepay_0001"  # noqa: S105
PUBLIC_KEY: Final = "pk_test_paygate_sandbox_elepay_0001"
APP_ID: Final = "app_paygate_sandbox"
WEBHOOK_SCHEDULE: Final = (timedelta(minutes=1),) * 3 + (timedelta(minutes=10),) * 3

Handler = Callable[[Request], Awaitable[Response]]


# elepay's internal error code (the body's ``code``): the FAQ shows "9_000_000_40022"
# for M002007; the others are not published and follow that pattern (an assumption).
_INTERNAL_CODES: Final[Mapping[str, str]] = {"M002007": "9_000_000_40022"}


def _internal_code(error_code: str, status: int) -> str:
    return _INTERNAL_CODES.get(error_code, f"9_000_000_{status}{error_code[-2:]}")


def _error_body(error_code: str, status: int, message: str) -> dict[str, Any]:
    return {
        "code": _internal_code(error_code, status),
        "errorCode": error_code,
        "message": message,
    }


class _ApiError(Exception):
    def __init__(self, code: str, *, status: int | None = None) -> None:
        info = CATALOGUE[code]
        super().__init__(info.message)
        self.code = code
        self.status = status or info.http_status
        self.message = info.message


@dataclass(slots=True)
class _Refund:
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
class _Charge:
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
    refunds: list[_Refund] = field(default_factory=list)
    refunded_at: datetime | None = None

    @property
    def refunded_amount(self) -> int:
        return sum(r.amount for r in self.refunds if r.status == "refunded")

    @property
    def committed_refunds(self) -> int:
        return sum(r.amount for r in self.refunds)

    def dto(self) -> dict[str, Any]:
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
class _Code:
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
    charge: _Charge | None = None
    attempts: int = 0
    deleted: bool = False


class ElepayEmulator(Emulator):
    """Stateful elepay EasyQR emulator (see the module notes for its assumptions).

    Test credentials are fixed: secret key ``sk_test_paygate_sandbox_elepay_0001``.

    >>> from paygate.sandbox import EmulatorContext, SandboxClock
    >>> emu = ElepayEmulator(EmulatorContext(SandboxClock(), lambda: "http://127.0.0.1:1/elepay",
    ...                                      lambda delivery: None))
    >>> emu.credentials()["secret_key"]
    'sk_test_paygate_sandbox_elepay_0001'
    """

    name: ClassVar[str] = "elepay"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.codes: dict[str, _Code] = {}
        self.charges: dict[str, _Charge] = {}
        self.paid_orders: set[str] = set()
        self._throttled = 0
        self._busy = 0
        self._refund_mode = "immediate"
        self._expired_flag = "ran_out"
        self._revoke_refunds = "empty"
        self._serial = 0

    # -- Emulator interface -----------------------------------------------------------

    def reset(self) -> None:
        """Forget every code, charge and refund."""
        self.codes.clear()
        self.charges.clear()
        self.paid_orders.clear()
        self._throttled = 0
        self._busy = 0
        self._refund_mode = "immediate"
        self._expired_flag = "ran_out"
        self._revoke_refunds = "empty"
        self._serial = 0

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
        return {"provider": self.name, "base_url": self.base_url, "secret_key": SECRET_KEY}

    def routes(self) -> Sequence[BaseRoute]:
        """elepay's API paths (relative to the mount) and the payer's code page."""
        api = self._api
        return [
            Route("/codes", api(self._create_code), methods=["POST"]),
            Route("/codes/{code_id}", api(self._get_code), methods=["GET"]),
            Route("/codes/{code_id}", api(self._close_code), methods=["DELETE"]),
            Route("/code-setting/payment-methods", api(self._code_methods), methods=["GET"]),
            Route("/charges", api(self._list_charges), methods=["GET"]),
            Route("/charges/{charge_id}", api(self._get_charge), methods=["GET"]),
            Route("/charges/{charge_id}/status", api(self._charge_status), methods=["GET"]),
            Route("/charges/{charge_id}/revoke", api(self._revoke_charge), methods=["POST"]),
            Route("/charges/{charge_id}/refunds", api(self._create_refund), methods=["POST"]),
            Route("/charges/{charge_id}/refunds", api(self._list_refunds), methods=["GET"]),
            Route(
                "/charges/{charge_id}/refunds/{refund_id}",
                api(self._get_refund),
                methods=["GET"],
            ),
            Route("/easyqr/{code_id}", self._payer_page, methods=["GET"]),
            Route("/easyqr/{code_id}", self._payer_pay, methods=["POST"]),
        ]

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Customer-side and test actions (see the module notes)."""
        self._sweep()
        if action == "pay_code":
            return self._pay(_param(params, "code_id", "codeId"), _method(params))
        if action == "fail_payment":
            code = self._control_code(_param(params, "code_id", "codeId"))
            _method(params)
            if code.status != "pending":
                raise ControlError(f"code is {code.status}", status=409)
            code.attempts += 1
            return {"codeId": code.id, "status": code.status, "attempts": code.attempts}
        if action == "rate_limit":
            count = params.get("count", 1)
            if not isinstance(count, int) or count < 0:
                raise ControlError("count must be a non-negative integer")
            self._throttled = count
            return {"throttled": count}
        if action == "refund_mode":
            mode = params.get("mode")
            if mode not in ("immediate", "pending"):
                raise ControlError("mode must be 'immediate' or 'pending'")
            self._refund_mode = str(mode)
            return {"mode": self._refund_mode}
        if action == "complete_refund":
            return self._complete_refund(_param(params, "refund_id", "refundId"))
        if action == "busy":
            count = params.get("count", 1)
            if not isinstance(count, int) or count < 0:
                raise ControlError("count must be a non-negative integer")
            self._busy = count
            return {"busy": count}
        if action == "expired_flag":
            meaning = params.get("meaning")
            if meaning not in ("ran_out", "invalid"):
                raise ControlError("meaning must be 'ran_out' or 'invalid'")
            self._expired_flag = str(meaning)
            return {"meaning": self._expired_flag}
        if action == "revoke_refunds":
            mode = params.get("mode")
            if mode not in ("empty", "listed"):
                raise ControlError("mode must be 'empty' or 'listed'")
            self._revoke_refunds = str(mode)
            return {"mode": self._revoke_refunds}
        raise ControlError(f"unknown action {action!r} for elepay", status=404)

    def on_clock_advanced(self, now: datetime) -> None:
        """Close codes whose expiry has passed."""
        self._sweep()

    def fault_response(self, status: int) -> Response:
        """elepay's own answer to an injected fault.

        A rate limit is elepay's ``M005000`` sent as HTTP 400 (elepay never answers
        429); other statuses get an elepay-shaped body without an ``errorCode``.
        """
        if status == 429:
            info = CATALOGUE["M005000"]
            return _json(_error_body("M005000", info.http_status, info.message), info.http_status)
        return _json({"code": f"9_000_000_{status}00", "message": f"HTTP {status}"}, status)

    def demo(self, demo: Any) -> None:
        """``paygate demo``: an EasyQR code paid with PayPay, refunded in two parts, and a
        second code closed unpaid."""
        from paygate import ChargeStatus, Money, QRCode

        gw, account = demo.gateway, demo.account
        charge = demo.step(
            "charge (EasyQR code)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(1200),
                method=QRCode(expires_in=timedelta(minutes=5)),
                idempotency_key="demo-elepay-order-1",
            ),
            expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
        )
        code_id = charge.provider_ref.partition(":")[2]
        demo.step(
            "payer scans, pays with PayPay",
            lambda: demo.sandbox.control(
                self.name, "pay_code", code_id=code_id, payment_method="paypay"
            ),
        )
        demo.step(
            "status",
            lambda: gw.status(account, charge.id),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        demo.step(
            "refund 200 JPY",
            lambda: gw.refund(
                account, charge.id, amount=Money.jpy(200), idempotency_key="demo-elepay-r1"
            ),
        )
        demo.step(
            "refund the rest",
            lambda: gw.refund(account, charge.id, idempotency_key="demo-elepay-r2"),
        )
        demo.step(
            "status",
            lambda: gw.status(account, charge.id),
            expect=lambda c: c.status is ChargeStatus.REFUNDED,
        )
        other = demo.step(
            "charge (second code)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(800),
                method=QRCode(),
                idempotency_key="demo-elepay-order-2",
            ),
        )
        demo.step(
            "cancel (close the code)",
            lambda: gw.cancel(account, other.id),
            expect=lambda c: c.status is ChargeStatus.CANCELED,
        )

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
                        key=refund.metadata.get("paygateRefundKey"),
                        amount=refund.amount,
                        currency=refund.currency,
                        status=refund.status,
                    )
                )
        return out

    # -- plumbing ---------------------------------------------------------------------

    def _api(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                self._authenticate(request)
                if self._throttled > 0:
                    self._throttled -= 1
                    raise _ApiError("M005000")
                self._sweep()
                return await handler(request)
            except _ApiError as exc:
                return _json(_error_body(exc.code, exc.status, exc.message), exc.status)

        return endpoint

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if not value:
            raise _ApiError("M004002")
        key: str | None = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        elif scheme.lower() == "bearer":
            key = value
        if key != SECRET_KEY:
            raise _ApiError("M004001")

    def _id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}_{self.ctx.rng.getrandbits(64):016x}{self._serial:06d}"

    def _sweep(self) -> None:
        now = self.now
        for code in self.codes.values():
            if code.status == "pending" and code.expires <= now:
                code.status = "closed"
                code.expired = True

    def _code_dto(self, code: _Code) -> dict[str, Any]:
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

    # -- codes ------------------------------------------------------------------------

    async def _create_code(self, request: Request) -> Response:
        body = await _body(request)
        if "amount" not in body or "orderNo" not in body:
            raise _ApiError("M002001")
        amount = body["amount"]
        order_no = body["orderNo"]
        if not _is_int(amount) or not 1 <= amount <= MAX_AMOUNT:
            raise _ApiError("M002002")
        if not isinstance(order_no, str) or not 1 <= len(order_no) <= ORDER_NO_MAX:
            raise _ApiError("M002002")
        currency = body.get("currency", "JPY")
        if not isinstance(currency, str):
            raise _ApiError("M002002")
        if currency != "JPY":
            raise _ApiError("M002009")
        duration = body.get("expiryDuration", EXPIRY_MINUTES_DEFAULT)
        if not _is_int(duration) or not EXPIRY_MINUTES_MIN <= duration <= EXPIRY_MINUTES_MAX:
            raise _ApiError("M002002")
        front_url = body.get("frontUrl")
        if front_url is not None and not (
            isinstance(front_url, str) and FRONT_URL_PATTERN.fullmatch(front_url)
        ):
            raise _ApiError("M002002")
        description = _text(body.get("description"))
        metadata = _flat(body.get("metadata"))
        extra = _flat(body.get("extra"))
        items = _code_items(body.get("items"))
        location_id = body.get("locationId")
        if location_id is not None and not isinstance(location_id, str):
            raise _ApiError("M002002")
        if order_no in self.paid_orders or any(
            c.order_no == order_no and c.status == "pending" for c in self.codes.values()
        ):
            # Server FAQ: paid, or a code made with it is still valid.
            raise _ApiError("M002007")
        now = self.now
        code = _Code(
            id=self._id("cd"),
            order_no=order_no,
            amount=amount,
            currency=currency,
            created=now,
            expires=now + timedelta(minutes=duration),
            description=description,
            front_url=front_url,
            metadata=metadata,
            extra=extra,
            items=items,
            location_id=location_id,
        )
        self.codes[code.id] = code
        return _json(self._code_dto(code), 201)

    async def _get_code(self, request: Request) -> Response:
        return _json(self._code_dto(self._code(request.path_params["code_id"])))

    async def _close_code(self, request: Request) -> Response:
        code = self._code(request.path_params["code_id"])
        self._check_busy()
        if code.status == "captured":
            raise _ApiError("M006003")
        if code.status == "closed":
            raise _ApiError("M006004" if code.expired else "M006003")
        code.status = "closed"
        code.deleted = True
        return Response(status_code=204)

    def _check_busy(self) -> None:
        if self._busy > 0:
            self._busy -= 1
            raise _ApiError("M006001")

    async def _code_methods(self, request: Request) -> Response:
        methods: list[dict[str, Any]] = [
            {
                "paymentMethod": method,
                "resources": ["web", "ios", "android"],
                "brand": [],
                "ua": "",
                "channelProperties": {},
            }
            for method in PAYMENT_METHODS
        ]
        return _json({"total": len(methods), "paymentMethods": methods})

    def _code(self, code_id: str) -> _Code:
        code = self.codes.get(code_id)
        if code is None:
            raise _ApiError("M002003")
        return code

    def _control_code(self, code_id: str) -> _Code:
        code = self.codes.get(code_id)
        if code is None:
            raise ControlError(f"no code {code_id!r}", status=404)
        return code

    # -- the payer --------------------------------------------------------------------

    def _pay(self, code_id: str, method: str) -> dict[str, Any]:
        code = self._control_code(code_id)
        if code.status == "captured":
            raise ControlError("the code has already been paid", status=409)
        if code.status == "closed":
            reason = "expired" if code.expired else "closed"
            raise ControlError(f"the code has {reason}", status=409)
        if code.order_no in self.paid_orders:
            raise ControlError("M002007: the order number has already been paid", status=409)
        now = self.now
        charge = _Charge(
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

    async def _payer_page(self, request: Request) -> Response:
        self._sweep()
        code = self.codes.get(request.path_params["code_id"])
        if code is None:
            return HTMLResponse("<h1>Unknown code</h1>", status_code=404)
        buttons = "".join(
            f'<button name="paymentMethod" value="{m}">{m}</button>'
            for m in ("paypay", "linepay", "merpay", "rakutenpay", "aupay", "alipay")
        )
        form = f'<form method="post">{buttons}</form>' if code.status == "pending" else ""
        page = (
            "<!doctype html><title>elepay EasyQR (sandbox)</title>"
            f"<h1>{code.amount:,} {html.escape(code.currency)}</h1>"
            f"<p>status: {html.escape(code.status)}</p>{form}"
        )
        return HTMLResponse(page)

    async def _payer_pay(self, request: Request) -> Response:
        # A plain urlencoded form; parsed here so the sandbox needs no multipart package.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        method = form.get("paymentMethod", ["paypay"])[0]
        try:
            result = self._pay(request.path_params["code_id"], _method({"paymentMethod": method}))
        except ControlError as exc:
            return HTMLResponse(f"<p>{html.escape(str(exc))}</p>", status_code=exc.status)
        code = self.codes[result["codeId"]]
        if code.front_url:
            query = f"status=captured&codeId={code.id}&chargeId={result['chargeId']}"
            sep = "&" if "?" in code.front_url else "?"
            return Response(status_code=303, headers={"location": code.front_url + sep + query})
        return HTMLResponse("<p>paid</p>")

    # -- charges ----------------------------------------------------------------------

    def _charge(self, charge_id: str) -> _Charge:
        charge = self.charges.get(charge_id)
        if charge is None:
            raise _ApiError("M002003")
        return charge

    async def _get_charge(self, request: Request) -> Response:
        return _json(self._charge(request.path_params["charge_id"]).dto())

    async def _charge_status(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        return _json({"id": charge.id, "appId": APP_ID, "liveMode": False, "status": charge.status})

    async def _list_charges(self, request: Request) -> Response:
        query = request.query_params
        start = _query_int(query.get("from"))
        end = _query_int(query.get("to"))
        limit = _query_int(query.get("limit")) or 20
        offset = _query_int(query.get("offset")) or 0
        if not 1 <= limit <= 100 or offset < 0:
            raise _ApiError("M002002")
        date_field = query.get("dateField", "create_time")
        sort = query.get("sort", "create_time")
        order = query.get("order", "desc")
        if date_field not in ("create_time", "paid_time") or sort not in (
            "create_time",
            "paid_time",
        ):
            raise _ApiError("M002002")
        if order not in ("asc", "desc"):
            raise _ApiError("M002002")
        status = query.get("status")
        methods: set[str] = set(query.getlist("paymentMethod"))

        def stamp(charge: _Charge, name: str) -> int:
            when = charge.paid_at if name == "paid_time" else charge.created
            return to_millis(when) if when is not None else 0

        found = [
            c
            for c in self.charges.values()
            if (start is None or stamp(c, date_field) >= start)
            and (end is None or stamp(c, date_field) <= end)
            and (status is None or c.status == status)
            and (not methods or c.payment_method in methods)
        ]
        found.sort(key=lambda c: (stamp(c, sort), c.id), reverse=order == "desc")
        page = found[offset : offset + limit]
        return _json({"total": len(found), "charges": [c.dto() for c in page]})

    # -- refunds ----------------------------------------------------------------------

    async def _create_refund(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        body = await _body(request)
        if "amount" not in body:
            raise _ApiError("M002001")
        amount = body["amount"]
        if not _is_int(amount) or amount < 1:
            raise _ApiError("M002002")
        currency = body.get("currency", "JPY")
        if currency != charge.currency:
            raise _ApiError("M002009" if isinstance(currency, str) else "M002002")
        reason = _text(body.get("reason"))
        metadata = _flat(body.get("metadata"))
        self._check_busy()
        if charge.status == "refunded":
            raise _ApiError("M006002")
        if charge.status not in ("captured", "partially_refunded"):
            raise _ApiError("M006000")
        if amount > charge.amount - charge.committed_refunds:
            raise _ApiError("M002002")
        now = self.now
        refund = _Refund(
            id=self._id("re"),
            charge_id=charge.id,
            amount=amount,
            currency=charge.currency,
            status="pending",
            created=now,
            reason=reason,
            metadata=metadata,
        )
        charge.refunds.append(refund)
        if self._refund_mode == "immediate":
            self._settle(charge, refund)
        return _json(refund.dto(), 201)

    async def _revoke_charge(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        self._check_busy()
        if charge.status not in ("captured", "partially_refunded", "pending", "uncaptured"):
            raise _ApiError("M006000")
        was_paid = charge.paid_at is not None
        charge.status = "revoked"
        if was_paid and self._revoke_refunds == "listed":
            rest = charge.amount - charge.refunded_amount
            if rest > 0:
                now = self.now
                charge.refunds.append(
                    _Refund(
                        id=self._id("re"),
                        charge_id=charge.id,
                        amount=rest,
                        currency=charge.currency,
                        status="refunded",
                        created=now,
                        refunded_at=now,
                    )
                )
                charge.refunded_at = now
        self._webhook("charge.revoked", charge.dto())
        return _json(charge.dto())

    def _settle(self, charge: _Charge, refund: _Refund) -> None:
        now = self.now
        refund.status = "refunded"
        refund.refunded_at = now
        charge.refunded_at = now
        charge.status = (
            "refunded" if charge.refunded_amount >= charge.amount else "partially_refunded"
        )
        self._webhook("refund.succeeded", refund.dto())

    def _complete_refund(self, refund_id: str) -> dict[str, Any]:
        for charge in self.charges.values():
            for refund in charge.refunds:
                if refund.id == refund_id:
                    if refund.status != "pending":
                        raise ControlError("the refund is not pending", status=409)
                    self._settle(charge, refund)
                    return {"refundId": refund.id, "status": refund.status}
        raise ControlError(f"no refund {refund_id!r}", status=404)

    async def _list_refunds(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        return _json({"total": len(charge.refunds), "refunds": [r.dto() for r in charge.refunds]})

    async def _get_refund(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        for refund in charge.refunds:
            if refund.id == request.path_params["refund_id"]:
                return _json(refund.dto())
        raise _ApiError("M002003")


# ------------------------------------------------------------------------- utilities


def _json(body: Any, status: int = 200) -> Response:
    # The official SDK accepts exactly this media type, without a space.
    return Response(dumps(body), status_code=status, media_type=CONTENT_TYPE)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise _ApiError("M002002") from None
    if not isinstance(body, dict):
        raise _ApiError("M002002")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise _ApiError("M002002")
    return value


def _flat(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > METADATA_MAX_KEYS:
        raise _ApiError("M002002")
    if not all(isinstance(v, str) and len(v.encode()) <= TEXT_MAX for v in value.values()):
        raise _ApiError("M002002")
    return {str(k): v for k, v in value.items()}


def _code_items(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _ApiError("M002002")
    items: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _ApiError("M002002")
        if not {"name", "price", "count"} <= item.keys():
            raise _ApiError("M002001")
        name, price, count = item["name"], item["price"], item["count"]
        if not isinstance(name, str) or not _is_int(price) or not _is_int(count):
            raise _ApiError("M002002")
        entry: dict[str, Any] = {"name": name, "price": price, "count": count}
        image = item.get("image")
        if image is not None:
            if not isinstance(image, str) or not FRONT_URL_PATTERN.fullmatch(image):
                raise _ApiError("M002002")
            entry["image"] = image
        items.append(entry)
    return items


def _query_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _ApiError("M002002") from None


def _param(params: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    raise ControlError(f"{names[0]} is required")


def _method(params: Mapping[str, Any]) -> str:
    method = params.get("payment_method", params.get("paymentMethod", "paypay"))
    if method not in PAYMENT_METHODS:
        raise ControlError(f"unknown payment method {method!r}")
    return str(method)
