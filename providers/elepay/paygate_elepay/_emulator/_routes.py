"""The elepay emulator's HTTP API: authentication, the route handlers, error bodies.

Error answers are elepay's ``{"code": "<internal string>", "errorCode": "M…",
"message": "…"}``, raised from a handler as an `EmulatorError` built by `error`; every
``M`` code is HTTP 400. Bodies are compact JSON with the exact media type
``application/json;charset=utf-8`` (the official SDK accepts exactly that).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import ControlError, EmulatorError, endpoint, json_response, paginate

from .._errors import CATALOGUE
from .._wire import (
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
    to_millis,
)
from ._state import (
    APP_ID,
    SECRET_KEY,
    ElepayState,
    StoredCharge,
    StoredCode,
    StoredRefund,
    payment_method,
)

__all__ = ["ElepayRoutes", "error"]

Handler = Callable[[Request], Awaitable[Response]]
_T = TypeVar("_T")

# elepay's internal error code (the body's ``code``): the FAQ shows "9_000_000_40022"
# for M002007; the others are not published and follow that pattern (an assumption).
_INTERNAL_CODES: Final[Mapping[str, str]] = {"M002007": "9_000_000_40022"}
_PAYER_WALLETS: Final = ("paypay", "linepay", "merpay", "rakutenpay", "aupay", "alipay")


def error(error_code: str) -> EmulatorError:
    """elepay's answer for a catalogued ``errorCode``.

    >>> e = error("M002007")
    >>> e.status, e.body["code"], e.body["errorCode"]
    (400, '9_000_000_40022', 'M002007')
    """
    info = CATALOGUE[error_code]
    status = info.http_status
    body = {
        "code": _INTERNAL_CODES.get(error_code, f"9_000_000_{status}{error_code[-2:]}"),
        "errorCode": error_code,
        "message": info.message,
    }
    return EmulatorError(status, body)


def _json(body: Any, status: int = 200) -> Response:
    # The official SDK accepts exactly this media type, without a space.
    return json_response(status, body, media_type=CONTENT_TYPE)


class ElepayRoutes(ElepayState):
    """elepay's API paths (relative to the mount) and the payer's code page."""

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

    def fault_response(self, status: int) -> Response:
        """elepay's own answer to an injected fault.

        A rate limit is elepay's ``M005000`` sent as HTTP 400 (elepay never answers
        429); other statuses get an elepay-shaped body without an ``errorCode``.
        """
        if status == 429:
            return error("M005000").response(media_type=CONTENT_TYPE)
        return _json({"code": f"9_000_000_{status}00", "message": f"HTTP {status}"}, status)

    # -- plumbing ---------------------------------------------------------------------

    def _api(self, handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            self._authenticate(request)
            if self._throttled > 0:
                self._throttled -= 1
                raise error("M005000")
            self._sweep()
            return await handler(request)

        return endpoint(checked, media_type=CONTENT_TYPE)

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if not value:
            raise error("M004002")
        key: str | None = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        elif scheme.lower() == "bearer":
            key = value
        if key != SECRET_KEY:
            raise error("M004001")

    def _check_busy(self) -> None:
        if self._busy > 0:
            self._busy -= 1
            raise error("M006001")

    # -- codes ------------------------------------------------------------------------

    async def _create_code(self, request: Request) -> Response:
        body = await _body(request)
        if "amount" not in body or "orderNo" not in body:
            raise error("M002001")
        amount = body["amount"]
        order_no = body["orderNo"]
        if not _is_int(amount) or not 1 <= amount <= MAX_AMOUNT:
            raise error("M002002")
        if not isinstance(order_no, str) or not 1 <= len(order_no) <= ORDER_NO_MAX:
            raise error("M002002")
        currency = body.get("currency", "JPY")
        if not isinstance(currency, str):
            raise error("M002002")
        if currency != "JPY":
            raise error("M002009")
        duration = body.get("expiryDuration", EXPIRY_MINUTES_DEFAULT)
        if not _is_int(duration) or not EXPIRY_MINUTES_MIN <= duration <= EXPIRY_MINUTES_MAX:
            raise error("M002002")
        front_url = body.get("frontUrl")
        if front_url is not None and not (
            isinstance(front_url, str) and FRONT_URL_PATTERN.fullmatch(front_url)
        ):
            raise error("M002002")
        description = _text(body.get("description"))
        metadata = _flat(body.get("metadata"))
        extra = _flat(body.get("extra"))
        items = _code_items(body.get("items"))
        location_id = body.get("locationId")
        if location_id is not None and not isinstance(location_id, str):
            raise error("M002002")
        if order_no in self.paid_orders or any(
            c.order_no == order_no and c.status == "pending" for c in self.codes.values()
        ):
            # Server FAQ: paid, or a code made with it is still valid.
            raise error("M002007")
        now = self.now
        code = StoredCode(
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
            raise error("M006003")
        if code.status == "closed":
            raise error("M006004" if code.expired else "M006003")
        code.status = "closed"
        code.deleted = True
        return Response(status_code=204)

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

    def _code(self, code_id: str) -> StoredCode:
        return _known(self.codes, code_id)

    # -- the payer --------------------------------------------------------------------

    async def _payer_page(self, request: Request) -> Response:
        self._sweep()
        code = self.codes.get(request.path_params["code_id"])
        if code is None:
            return HTMLResponse("<h1>Unknown code</h1>", status_code=404)
        buttons = "".join(
            f'<button name="paymentMethod" value="{m}">{m}</button>' for m in _PAYER_WALLETS
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
            result = self._pay(
                request.path_params["code_id"], payment_method({"paymentMethod": method})
            )
        except ControlError as exc:
            return HTMLResponse(f"<p>{html.escape(str(exc))}</p>", status_code=exc.status)
        code = self.codes[result["codeId"]]
        if code.front_url:
            query = f"status=captured&codeId={code.id}&chargeId={result['chargeId']}"
            sep = "&" if "?" in code.front_url else "?"
            return Response(status_code=303, headers={"location": code.front_url + sep + query})
        return HTMLResponse("<p>paid</p>")

    # -- charges ----------------------------------------------------------------------

    def _charge(self, charge_id: str) -> StoredCharge:
        return _known(self.charges, charge_id)

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
            raise error("M002002")
        date_field = query.get("dateField", "create_time")
        sort = query.get("sort", "create_time")
        order = query.get("order", "desc")
        if date_field not in ("create_time", "paid_time") or sort not in (
            "create_time",
            "paid_time",
        ):
            raise error("M002002")
        if order not in ("asc", "desc"):
            raise error("M002002")
        status = query.get("status")
        methods: set[str] = set(query.getlist("paymentMethod"))

        def stamp(charge: StoredCharge, name: str) -> int:
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
        page = paginate(found, limit=limit, offset=offset)
        return _json({"total": page.total, "charges": [c.dto() for c in page.items]})

    # -- refunds ----------------------------------------------------------------------

    async def _create_refund(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        body = await _body(request)
        if "amount" not in body:
            raise error("M002001")
        amount = body["amount"]
        if not _is_int(amount) or amount < 1:
            raise error("M002002")
        currency = body.get("currency", "JPY")
        if currency != charge.currency:
            raise error("M002009" if isinstance(currency, str) else "M002002")
        reason = _text(body.get("reason"))
        metadata = _flat(body.get("metadata"))
        self._check_busy()
        if charge.status == "refunded":
            raise error("M006002")
        if charge.status not in ("captured", "partially_refunded"):
            raise error("M006000")
        if amount > charge.amount - charge.committed_refunds:
            raise error("M002002")
        now = self.now
        refund = StoredRefund(
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
            raise error("M006000")
        was_paid = charge.paid_at is not None
        charge.status = "revoked"
        if was_paid and self._revoke_refunds == "listed":
            rest = charge.amount - charge.refunded_amount
            if rest > 0:
                now = self.now
                charge.refunds.append(
                    StoredRefund(
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

    async def _list_refunds(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        return _json({"total": len(charge.refunds), "refunds": [r.dto() for r in charge.refunds]})

    async def _get_refund(self, request: Request) -> Response:
        charge = self._charge(request.path_params["charge_id"])
        for refund in charge.refunds:
            if refund.id == request.path_params["refund_id"]:
                return _json(refund.dto())
        raise error("M002003")


# ------------------------------------------------------------------------- request parts


def _known(table: Mapping[str, _T], object_id: str) -> _T:
    """The stored object ``object_id``; ``M002003`` (not found) when there is none."""
    found = table.get(object_id)
    if found is None:
        raise error("M002003")
    return found


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise error("M002002") from None
    if not isinstance(body, dict):
        raise error("M002002")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise error("M002002")
    return value


def _flat(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > METADATA_MAX_KEYS:
        raise error("M002002")
    if not all(isinstance(v, str) and len(v.encode()) <= TEXT_MAX for v in value.values()):
        raise error("M002002")
    return {str(k): v for k, v in value.items()}


def _code_items(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise error("M002002")
    items: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise error("M002002")
        if not {"name", "price", "count"} <= item.keys():
            raise error("M002001")
        name, price, count = item["name"], item["price"], item["count"]
        if not isinstance(name, str) or not _is_int(price) or not _is_int(count):
            raise error("M002002")
        entry: dict[str, Any] = {"name": name, "price": price, "count": count}
        image = item.get("image")
        if image is not None:
            if not isinstance(image, str) or not FRONT_URL_PATTERN.fullmatch(image):
                raise error("M002002")
            entry["image"] = image
        items.append(entry)
    return items


def _query_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise error("M002002") from None
