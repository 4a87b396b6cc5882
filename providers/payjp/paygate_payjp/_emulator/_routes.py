"""The PAY.JP emulator's HTTP handlers: API v1 routes, Idempotency-Key replay, errors.

Every handler takes the request and its parsed form and answers ``(status, body)`` or
raises the `EmulatorError` that `_error` builds in PAY.JP's error shape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import EmulatorError, endpoint, json_response, paginate

from ._books import BookConfig, StatementRec
from ._state import (
    CARD_MESSAGES,
    PUBLIC_KEY,
    SECRET_KEY,
    STATEMENT_URL_LIFETIME,
    TDS_FAILS,
    TEST_TOKENS,
    ChargeRec,
    PayjpState,
    card_wire,
)

__all__ = ["PayjpRoutes"]

JSON_TYPE = "application/json; charset=utf-8"
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}

Handler = Callable[[Request], Awaitable[Response]]


def _error(
    status: int,
    code: str,
    message: str,
    *,
    kind: str = "client_error",
    param: str | None = None,
    charge: str | None = None,
) -> EmulatorError:
    """An error answer in PAY.JP's shape."""
    return EmulatorError(
        status,
        {
            "error": {
                "status": status,
                "type": kind,
                "code": code,
                "message": message,
                **({"param": param} if param else {}),
                **({"charge": charge} if charge else {}),
            }
        },
    )


def _not_found(kind: str, oid: str) -> EmulatorError:
    return _error(404, "invalid_id", f"No such {kind}: {oid}", param="id")


def _json(status: int, body: Mapping[str, Any]) -> Response:
    return json_response(status, body, media_type=JSON_TYPE)


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
            raise _error(400, code, f"{name} must be an integer.", param=name) from None

    def bool(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise _error(400, "invalid_boolean", f"{name} must be a boolean.", param=name)


class PayjpRoutes(PayjpState):
    """The PAY.JP v1 API over the emulator's state."""

    def fault_response(self, status: int) -> Response | None:
        """PAY.JP's own error body for a fault the sandbox injects (429 and 5xx)."""
        if status == 429:
            error = _error(
                429,
                "over_capacity",
                "The service is over capacity. Please try again later.",
            )
        elif status >= 500:
            error = _error(
                status, "payjp_wrong", "An unexpected error occurred.", kind="server_error"
            )
        else:
            return None
        return error.response(media_type=JSON_TYPE)

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
        async def run(request: Request) -> Response:
            raw = await request.body() if post else b""
            self._authenticate(request)
            self._catch_up(self._ts())
            form = _Form.parse(raw if post else request.url.query.encode())
            key = request.headers.get("idempotency-key") if post else None
            if key and not self._honours_keys(request):
                key = None
            if key:
                return self._keyed(request, form, key, fn)
            status, body = fn(request, form)
            return _json(status, body)

        return endpoint(run, media_type=JSON_TYPE)

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
        fingerprint = json.dumps(
            [request.url.path, sorted(form.values.items()), sorted(form.maps.items())]
        )
        kept = self._keys.get(key)
        if kept is not None:
            if kept.fingerprint != fingerprint:
                raise _error(
                    409,
                    "idempotency_conflict",
                    "This Idempotency-Key was used with other parameters.",
                )
            return _json(kept.status, kept.body)
        self._current_key = key
        try:
            status, body = fn(request, form)
        except EmulatorError as exc:
            status, body = exc.status, dict(exc.body)
        finally:
            self._current_key = None
        self._keys.keep(key, fingerprint=fingerprint, status=status, body=body)
        return _json(status, body)

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise _error(401, "no_api_key", "No API key was given.", kind="auth_error")
        scheme, _, value = header.partition(" ")
        try:
            user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(user, SECRET_KEY):
            raise _error(401, "invalid_api_key", "Invalid API key.", kind="auth_error")

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
            raise _error(400, "invalid_querystring", "limit must be 1..100.", param="limit")
        if offset < 0:
            raise _error(400, "invalid_querystring", "offset must be >= 0.", param="offset")
        since, until = (
            form.int("since", "invalid_timestamp"),
            form.int("until", "invalid_timestamp"),
        )
        if time_key is not None:
            if since is not None:
                objects = [o for o in objects if o.get(time_key, 0) >= since]
            if until is not None:
                objects = [o for o in objects if o.get(time_key, 0) <= until]
        page = paginate(objects, limit=limit, offset=offset)
        return 200, {
            "object": "list",
            "data": page.items,
            "has_more": page.has_more,
            "count": len(page.items),
            "url": request.url.path[request.url.path.find("/v1/") :],
        }

    @staticmethod
    def _newest_first(objects: list[dict[str, Any]], key: str = "created") -> list[dict[str, Any]]:
        indexed = list(enumerate(objects))
        indexed.sort(key=lambda pair: (pair[1].get(key) or 0, pair[0]), reverse=True)
        return [obj for _, obj in indexed]

    # -- charges ---------------------------------------------------------------------

    def _charge(self, oid: str) -> ChargeRec:
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
                raise _error(400, "invalid_id", f"No such customer: {customer}", param="customer")
            if card is not None and not card.startswith("car_"):
                raise _error(
                    400, "invalid_param_key", "Give a card id with a customer.", param="card"
                )
            return self.customers[customer], customer
        if card is None:
            raise _error(400, "missing_param", "card or customer is required.", param="card")
        if card in TEST_TOKENS:
            return card, None
        minted = self.tokens.get(card)
        if minted is None:
            raise _error(400, "invalid_id", f"No such token: {card}", param="card")
        behaviour, used = minted
        if used:
            raise _error(400, "token_already_used", "Token has already been used.", param="card")
        self.tokens[card] = (behaviour, True)
        return behaviour, None

    def _check_metadata(self, form: _Form) -> dict[str, str]:
        metadata = form.maps.get("metadata", {})
        if len(metadata) > 20:
            raise _error(400, "too_many_metadata_keys", "Too many metadata keys.", param="metadata")
        for key, value in metadata.items():
            if not key or len(key) > 40:
                raise _error(400, "invalid_metadata_key", "Invalid metadata key.", param="metadata")
            if len(value) > 500:
                raise _error(
                    400, "invalid_metadata_value", "Invalid metadata value.", param="metadata"
                )
        return dict(metadata)

    def _create_charge(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        amount = form.int("amount", "invalid_amount")
        if amount is None:
            raise _error(400, "missing_param", "amount is required.", param="amount")
        if not 50 <= amount <= 9_999_999:
            raise _error(400, "invalid_amount", "amount must be 50..9,999,999.", param="amount")
        currency = form.get("currency")
        if currency is None:
            raise _error(400, "missing_param", "currency is required.", param="currency")
        if currency != "jpy":
            raise _error(400, "invalid_currency", "Only jpy is supported.", param="currency")
        description = form.get("description")
        if description is not None and len(description) > 255:
            raise _error(
                400, "invalid_string_length", "description is too long.", param="description"
            )
        metadata = self._check_metadata(form)
        capture = form.bool("capture")
        capture = True if capture is None else capture
        expiry_days = form.int("expiry_days", "invalid_expiry_days")
        if expiry_days is not None and (capture or not 1 <= expiry_days <= 60):
            code = "unnecessary_expiry_days" if capture else "invalid_expiry_days"
            raise _error(400, code, "Invalid expiry_days.", param="expiry_days")
        tenant = form.get("tenant")
        if tenant is not None and tenant not in self.tenants:
            raise _error(400, "invalid_id", f"No such tenant: {tenant}", param="tenant")
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
            "card": card_wire(behaviour, customer, now),
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
        charge = ChargeRec(
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

    def _fail(self, charge: ChargeRec, code: str) -> tuple[int, dict[str, Any]]:
        wire = charge.wire
        wire["failure_code"] = code
        wire["failure_message"] = CARD_MESSAGES.get(code, code)
        self._emit("charge.failed", wire)
        raise _error(
            402,
            code,
            CARD_MESSAGES.get(code, code),
            kind="card_error",
            param="card",
            charge=wire["id"],
        )

    def _update_charge(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        description = form.get("description")
        if description is not None:
            if len(description) > 255:
                raise _error(
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
            raise _error(
                400, "cant_capture_refunded_charge", "The charge is refunded.", charge=wire["id"]
            )
        if wire["captured"]:
            raise _error(400, "already_captured", "The charge is captured.", charge=wire["id"])
        if not wire["paid"]:
            code = (
                "three_d_secure_incompleted"
                if wire["three_d_secure_status"] == "unverified"
                else "failed_payment"
            )
            raise _error(400, code, "The charge is not authorised.", charge=wire["id"])
        if isinstance(wire["expired_at"], int) and wire["expired_at"] <= self._ts():
            raise _error(400, "charge_expired", "The authorisation expired.", charge=wire["id"])
        amount = form.int("amount", "invalid_amount")
        amount = wire["amount"] if amount is None else amount
        if not 50 <= amount <= 9_999_999:
            raise _error(400, "invalid_amount", "amount must be 50..9,999,999.", param="amount")
        if amount > wire["amount"]:
            raise _error(
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
            raise _error(400, "invalid_refund_reason", "refund_reason is too long.")
        if not wire["paid"]:
            raise _error(400, "failed_payment", "The charge is not paid.", charge=wire["id"])
        amount = form.int("amount", "invalid_refund_amount")
        if not wire["captured"]:
            if wire["refunded"]:
                raise _error(400, "already_refunded", "The charge is refunded.", charge=wire["id"])
            if amount is not None and amount != wire["amount"]:
                raise _error(
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
            raise _error(400, "already_refunded", "The charge is refunded.", charge=wire["id"])
        amount = remaining if amount is None else amount
        if amount < 1:
            raise _error(400, "invalid_refund_amount", "amount must be positive.", param="amount")
        if amount > remaining:
            raise _error(
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
            raise _error(400, "cant_reauth_refunded_charge", "The charge is refunded.")
        if wire["captured"] or not wire["paid"]:
            raise _error(400, "already_captured", "Only an authorisation can be renewed.")
        days = form.int("expiry_days", "invalid_expiry_days") or 7
        if not 1 <= days <= 60:
            raise _error(400, "invalid_expiry_days", "Invalid expiry_days.", param="expiry_days")
        wire["expired_at"] = self._ts() + days * 86_400
        return 200, wire

    def _tds_finish(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        charge = self._charge(request.path_params["id"])
        wire = charge.wire
        state = wire.get("three_d_secure_status")
        if state is None:
            raise _error(400, "not_in_three_d_secure_flow", "The charge has no 3-D Secure.")
        if wire["paid"] or wire["failure_code"]:
            return 200, wire
        timeout = self.readings.tds_timeout_minutes * 60
        if self._ts() >= wire["created"] + timeout:
            # https://pay.jp/info/2024/11/08/110000/ (since 2024-11-21)
            raise _error(
                400, "three_d_secure_expired", "3-D Secure flow expired.", charge=wire["id"]
            )
        if state == "unverified":
            raise _error(
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
        result = "failed" if charge.behaviour == TDS_FAILS else "verified"
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
            raise _error(
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
                raise _error(400, "invalid_querystring", "Unknown state.", param="state")
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
            raise _error(400, "missing_param", "name and platform_fee_rate are required.")
        tid = form.get("id") or self._id("ten")
        if tid in self.tenants:
            raise _error(400, "already_exist_id", f"Tenant {tid} already exists.", param="id")
        try:
            BookConfig(fee_rate=rate).fee_basis_points  # noqa: B018 - validates the rate
        except ValueError:
            raise _error(400, "invalid_param_key", "Invalid platform_fee_rate.") from None
        self.tenants[tid] = self._tenant_wire(tid, name, rate, self._ts())
        return 200, self.tenants[tid]

    def _get_tenant(self, request: Request, form: _Form) -> tuple[int, dict[str, Any]]:
        tenant = self.tenants.get(request.path_params["id"])
        if tenant is None:
            raise _not_found("tenant", request.path_params["id"])
        return 200, tenant
