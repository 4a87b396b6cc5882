"""The UnivaPay emulator's HTTP API: authentication, idempotency, the route handlers.

Error answers are UnivaPay's ``{"status": "error", "code", "errors": [{field,
reason}]}``, raised from a handler as an `EmulatorError` built by `error` or
`invalid`. Replies to POST and PATCH are kept by ``Idempotency-Key`` in
`paygate.sandbox.KeyedReplies` for 24 hours of sandbox time; a key counts as the same
request when method, path and JSON body (keys sorted) match.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import EmulatorError, endpoint, paginate_after

from .._wire import CONVENIENCE_STORES, parse_duration, parse_time
from ._state import (
    DEFAULT_EXPIRY,
    JWT,
    KONBINI_MAX_AMOUNT,
    MERCHANT_ID,
    SECRET,
    SEED_TOKEN_IDS,
    STORE_ID,
    TIME_SHIFT,
    TOO_QUICK,
    StoredCharge,
    StoredWebhook,
    UnivapayState,
    public,
    ts,
)

__all__ = ["UnivapayRoutes", "error", "invalid"]

_REFUND_REASONS = frozenset({"duplicate", "fraud", "customer_request"})
_FAULT_CODES = {
    500: "UNKNOWN_ERROR",
    502: "TIMEOUT",
    503: "SERVICE_UNAVAILABLE_TRY_AGAIN",
    504: "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST",
}


def error(status: int, code: str, errors: Sequence[Mapping[str, str]] = ()) -> EmulatorError:
    """UnivaPay's error answer with ``code`` (and the ``errors`` list).

    >>> error(404, "NOT_FOUND").body
    {'status': 'error', 'code': 'NOT_FOUND', 'errors': []}
    """
    return EmulatorError(status, {"status": "error", "code": code, "errors": list(errors)})


def invalid(field: str, reason: str = "INVALID_FORMAT") -> EmulatorError:
    """400 ``VALIDATION_ERROR`` naming ``field`` and ``reason``."""
    return error(400, "VALIDATION_ERROR", [{"field": field, "reason": reason}])


Handler = Callable[[Request, bytes], Awaitable[Response]]


class UnivapayRoutes(UnivapayState):
    """UnivaPay's API routes over the emulator's state."""

    def fault_response(self, status: int) -> Response:
        """UnivaPay's own error body for an injected fault.

        429 comes with an empty body (``Content-Length: 0``, UnivaPay's error-code page);
        502 and 504 as a proxy in front of the API sends them, without UnivaPay's body.
        """
        if status == 429:
            if self.over_limit == 400:
                # The older api-limits page: over the limit is a "BadRequest".
                return error(400, "RATE_LIMIT_EXCEEDED").response()
            return Response(b"", status_code=429)
        if status in (502, 504):
            return Response(b"", status_code=status)
        code = _FAULT_CODES.get(status, "UNKNOWN_ERROR" if status >= 500 else "BAD_REQUEST")
        return error(status, code).response()

    # -- HTTP plumbing ---------------------------------------------------------------------------

    def _authenticate(self, request: Request, *, widget_ok: bool = False) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise error(401, "AUTH_HEADER_MISSING")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise error(401, "INVALID_APP_TOKEN")
        value = value.strip()
        if value == JWT:
            if widget_ok:
                return
            raise error(401, "INVALID_CREDENTIALS")
        secret, _, jwt = value.partition(".")
        if jwt != JWT:
            raise error(401, "INVALID_APP_TOKEN")
        if not hmac.compare_digest(secret.encode(), SECRET.encode()):
            raise error(401, "INVALID_CREDENTIALS")

    def _route(
        self, path: str, methods: list[str], handler: Handler, *, widget_ok: bool = False
    ) -> Route:
        async def handle(request: Request) -> Response:
            self._authenticate(request, widget_ok=widget_ok)
            self._expire(self.now)
            store_id = request.path_params.get("store_id")
            if store_id is not None and store_id != STORE_ID:
                raise error(404, "NOT_FOUND")
            body = await request.body()
            if request.method in ("POST", "PATCH"):
                return await self._idempotent(request, body, handler)
            return await handler(request, body)

        return Route(path, endpoint(handle), methods=methods)

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
        stored = self.replies.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                response = error(409, "IDEMPOTENCY_KEY_CONFLICT").response()
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
            self.replies.keep(
                key, fingerprint=fingerprint, status=response.status_code, body=bytes(response.body)
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
        except EmulatorError as err:
            return err.response()

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise error(
                400, "VALIDATION_ERROR", [{"field": "body", "reason": "INVALID_JSON"}]
            ) from exc
        if not isinstance(data, dict):
            raise invalid("body")
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
            raise invalid("limit") from exc
        direction = params.get("cursor_direction", "desc")
        if direction not in ("asc", "desc"):
            raise invalid("cursor_direction")
        ordered = sorted(items, key=lambda i: (i.get("created_on", ""), i["id"]))
        if direction == "desc":
            ordered.reverse()
        cursor = params.get("cursor") or None
        try:
            page = paginate_after(ordered, cursor=cursor, key=lambda i: str(i["id"]), limit=limit)
        except LookupError as exc:
            raise invalid("cursor") from exc
        out: dict[str, Any] = {"items": page.items, "has_more": page.has_more}
        if not cursor:
            out["total_hits"] = len(items)
        return JSONResponse(out)

    # -- tokens ---------------------------------------------------------------------------------

    async def _create_token(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        payment_type = data.get("payment_type")
        kind = data.get("type", "one_time")
        if kind not in ("one_time", "subscription", "recurring"):
            raise invalid("type")
        details = data.get("data")
        if not isinstance(details, dict):
            raise invalid("data", "REQUIRED_VALUE")
        email = data.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise invalid("email")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid("metadata")
        if payment_type == "konbini":
            wire_data = self._konbini_data(details)
            if kind != "one_time":
                raise invalid("type", "NOT_SUPPORTED")
            token_id = self._new_id()
            now = ts(self.now)
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
                raise invalid("card_number")
            for name in ("cardholder", "exp_month", "exp_year", "cvv"):
                if details.get(name) in (None, ""):
                    raise invalid(name, "REQUIRED_VALUE")
            wire = self._card_token(number, kind=kind)
            wire["email"] = email
            wire["metadata"] = metadata
            return JSONResponse(wire, status_code=201)
        if payment_type is None:
            raise invalid("payment_type", "REQUIRED_VALUE")
        raise error(400, "NOT_SUPPORTED_BY_PROCESSOR")

    def _konbini_data(self, details: Mapping[str, Any]) -> dict[str, Any]:
        name = details.get("customer_name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("customer_name", "REQUIRED_VALUE")
        store = details.get("convenience_store")
        if store not in CONVENIENCE_STORES:
            raise invalid("convenience_store", "INVALID_FORMAT")
        phone = details.get("phone_number")
        if not isinstance(phone, dict):
            raise invalid("phone_number", "REQUIRED_VALUE")
        country = str(phone.get("country_code") or "")
        local = str(phone.get("local_number") or "")
        if not country.isdigit() or not local.isdigit() or not 1 <= len(local) <= 15:
            raise invalid("phone_number", "INVALID_FORMAT")
        period = details.get("expiration_period")
        if period is not None and (parse_duration(period) or timedelta(0)) <= timedelta(0):
            raise invalid("expiration_period", "INVALID_FORMAT")
        shift = details.get("expiration_time_shift")
        if shift is not None and not (isinstance(shift, str) and TIME_SHIFT.match(shift)):
            raise invalid("expiration_time_shift", "INVALID_FORMAT")
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
            raise error(404, "NOT_FOUND")
        return JSONResponse(token)

    # -- charges --------------------------------------------------------------------------------

    def _find_charge(self, request: Request) -> StoredCharge:
        charge = self.charges.get(request.path_params["charge_id"])
        if charge is None:
            raise error(404, "NOT_FOUND")
        return charge

    async def _create_charge(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        token_id = data.get("transaction_token_id")
        if not isinstance(token_id, str) or not token_id:
            raise invalid("transaction_token_id", "REQUIRED_VALUE")
        amount_raw = data.get("amount")
        if isinstance(amount_raw, bool) or not (
            isinstance(amount_raw, int) or (isinstance(amount_raw, str) and amount_raw.isdigit())
        ):
            raise invalid("amount")
        amount = int(amount_raw)
        currency = data.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise invalid("currency")
        currency = currency.upper()
        if amount < 1:
            raise invalid("amount", "NOT_WITHIN_BOUNDS")
        metadata = data.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError as exc:
                raise invalid("metadata") from exc
        if not isinstance(metadata, dict) or any(
            isinstance(v, dict | list) for v in metadata.values()
        ):
            raise invalid("metadata")
        token = self.tokens.get(token_id)
        if token is None:
            raise error(404, "NOT_FOUND")
        payment_type = token["payment_type"]
        if payment_type == "konbini":
            if currency != "JPY":
                raise invalid("currency", "NOT_SUPPORTED")
            if amount > KONBINI_MAX_AMOUNT:
                raise invalid("amount", "NOT_WITHIN_BOUNDS")
        if not token.get("active", True) or (
            token["type"] == "one_time" and token.get("last_used_on")
        ):
            raise error(400, "TRANSACTION_ALREADY_PROCESSED")
        now = self.now
        if token["type"] != "one_time" and token_id not in SEED_TOKEN_IDS:
            last = self._last_charge.get((token_id, amount))
            if last is not None and now - last < TOO_QUICK:
                raise error(400, "CHARGE_TOO_QUICK")
            self._last_charge[(token_id, amount)] = now
        token["last_used_on"] = ts(now)
        capture = data.get("capture", True)
        if not isinstance(capture, bool):
            raise invalid("capture")
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
            "created_on": ts(now),
        }
        charge = StoredCharge(
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
            wire["capture_at"] = ts(requested) if requested is not None else None
        else:
            charge.card_number = self.token_cards.get(token_id)
            wire["_capture"] = capture
            if not capture:
                wire["capture_status"] = "not_authorized"
        self.charges[charge_id] = charge
        response = JSONResponse(public(wire), status_code=201)
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
            raise error(404, "NOT_FOUND")
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
        return JSONResponse(public(charge.wire))

    async def _patch_charge(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            raise invalid("metadata")
        charge.wire["metadata"] = {**(charge.wire.get("metadata") or {}), **metadata}
        return JSONResponse(public(charge.wire))

    async def _list_charges(self, request: Request, body: bytes) -> Response:
        items = [public(c.wire) for c in self.charges.values()]
        token_id = request.query_params.get("transaction_token_id")
        if token_id:
            items = [i for i in items if i["transaction_token_id"] == token_id]
        wanted = request.query_params.get("metadata")
        if wanted:
            # The Ruby SDK's example filter is "order_id: 12345" (key, colon, value).
            key, sep, value = wanted.partition(":")
            if not sep or not key.strip():
                raise invalid("metadata")
            items = [
                i for i in items if str((i.get("metadata") or {}).get(key.strip())) == value.strip()
            ]
        return self._page(request, items)

    async def _capture(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        wire = charge.wire
        if charge.payment_type != "card":
            raise error(400, "NOT_SUPPORTED_BY_PROCESSOR")
        if wire["status"] == "successful":
            raise error(400, "ALREADY_CAPTURED")
        if wire["status"] != "authorized":
            raise invalid("status", "NOT_AUTHORIZED")
        amount = data.get("amount", wire["requested_amount"])
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise invalid("amount")
        if (
            str(data.get("currency", wire["requested_currency"])).upper()
            != wire["requested_currency"]
        ):
            raise error(400, "CURRENCY_MUST_MATCH_CHARGE")
        if amount > int(wire["requested_amount"]):
            raise error(400, "CAPTURE_AMOUNT_TOO_LARGE")
        self._succeed(charge, amount)
        return JSONResponse({})

    # -- refunds and cancels --------------------------------------------------------------------

    async def _create_refund(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        data = self._json(body)
        wire = charge.wire
        if charge.payment_type == "konbini":
            raise error(400, "REFUND_NOT_ALLOWED")
        if wire["status"] != "successful":
            raise error(400, "CANNOT_REFUND_UNSUCCESSFUL_CHARGE")
        amount = data.get("amount")
        if isinstance(amount, str) and amount.isdigit():
            amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise invalid("amount", "REQUIRED_VALUE")
        currency = data.get("currency")
        if not isinstance(currency, str):
            raise invalid("currency", "REQUIRED_VALUE")
        if currency.upper() != wire["charged_currency"]:
            raise error(400, "CURRENCY_MUST_MATCH_CHARGE")
        if amount < 1:
            raise error(400, "REFUND_NOT_WITHIN_BOUNDS")
        taken = sum(
            int(self.refunds[r]["amount"])
            for r in charge.refunds
            if self.refunds[r]["status"] in ("pending", "successful")
        )
        if taken + amount > int(wire["charged_amount"]):
            raise error(400, "REFUND_EXCEEDS_CHARGE_AMOUNT")
        reason = data.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise invalid("reason")
        refund_id = self._new_id()
        now = ts(self.now)
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
        response = JSONResponse(public(refund), status_code=201)
        if self.auto_complete:
            self._complete_refund(refund)
        return response

    def _find_child(
        self, request: Request, table: dict[str, dict[str, Any]], key: str
    ) -> dict[str, Any]:
        charge = self._find_charge(request)
        item = table.get(request.path_params[key])
        if item is None or item["charge_id"] != charge.wire["id"]:
            raise error(404, "NOT_FOUND")
        return item

    async def _get_refund(self, request: Request, body: bytes) -> Response:
        refund = self._find_child(request, self.refunds, "refund_id")
        if request.query_params.get("polling", "").lower() == "true":
            await self._hold(refund["id"], lambda: refund["status"] == "pending")
        return JSONResponse(public(refund))

    async def _list_refunds(self, request: Request, body: bytes) -> Response:
        charge = self._find_charge(request)
        return self._page(request, [public(self.refunds[r]) for r in charge.refunds])

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
            raise error(400, "CANCEL_NOT_ALLOWED")
        cancel_id = self._new_id()
        now = ts(self.now)
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
            raise error(404, "NOT_FOUND")
        return JSONResponse(transfer)

    async def _list_ledgers(self, request: Request, body: bytes) -> Response:
        transfer_id = request.path_params["transfer_id"]
        if transfer_id not in self.transfers:
            raise error(404, "NOT_FOUND")
        items = [i for i in self.ledgers.values() if i["transfer_id"] == transfer_id]
        return self._page(request, items)

    # -- webhooks (management) ------------------------------------------------------------------

    async def _create_webhook(self, request: Request, body: bytes) -> Response:
        data = self._json(body)
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid("url", "REQUIRED_VALUE")
        if any(h.wire["url"] == url for h in self.webhooks.values()):
            raise error(409, "WEBHOOK_URL_EXISTS")
        triggers = data.get("triggers")
        if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
            raise invalid("triggers", "REQUIRED_VALUE")
        hook_id = self._new_id()
        now = ts(self.now)
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
        self.webhooks[hook_id] = StoredWebhook(wire)
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
            ("pay by", ts(charge.deadline) if charge.deadline else ""),
            ("status", wire["status"]),
        ]
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        page = f"<html><body><h1>Sandbox payment slip</h1><table>{cells}</table></body></html>"
        return HTMLResponse(page)
