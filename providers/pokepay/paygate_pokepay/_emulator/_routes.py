"""The Pokepay emulator's HTTP side: the Partner API envelope, its operations, and the
small web page a Cashtray token points at.

Every operation comes as one envelope (see the package notes); `PokepayRoutes._api`
opens it, dispatches on ``request_method`` and the path to a handler, and seals the
handler's result, or the `paygate.sandbox.EmulatorError` it raises, in the answer
envelope. Errors before the client is known are plain JSON.
"""

from __future__ import annotations

import contextlib
import html
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import EmulatorError, endpoint, json_response, paginate

from .._crypto import CryptoError
from .._validate import is_uuid
from ._state import (
    DEFAULT_CASHTRAY_TTL,
    FRESHNESS,
    Cashtray,
    PokepayState,
    StoredWallet,
    api_error,
    kind_of,
)

__all__ = ["PokepayRoutes"]

_Handler = Callable[[Mapping[str, Any], Mapping[str, str]], Any]


def _invalid(
    *,
    missing: Sequence[str] = (),
    invalid: Sequence[str] = (),
    unpermitted: Sequence[str] = (),
) -> EmulatorError:
    return api_error(
        400,
        "invalid_parameters",
        errors={
            "missing": list(missing) or None,
            "invalid": list(invalid) or None,
            "unpermitted": list(unpermitted) or None,
        },
    )


def _check(params: Mapping[str, Any], required: Sequence[str], optional: Sequence[str]) -> None:
    missing = [k for k in required if params.get(k) is None or params.get(k) == ""]
    unpermitted = sorted(k for k in params if k not in required and k not in optional)
    if missing or unpermitted:
        raise _invalid(missing=missing, unpermitted=unpermitted)


def _uuids(params: Mapping[str, Any], *names: str) -> None:
    bad = [n for n in names if params.get(n) is not None and not is_uuid(params[n])]
    if bad:
        raise _invalid(invalid=bad)


def _whole(value: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(invalid=[name])
    try:
        number = float(value)
    except ValueError:
        raise _invalid(invalid=[name]) from None
    if not number.is_integer():
        raise api_error(422, "transaction_invalid_amount")
    result = int(number)
    if minimum is not None and result < minimum:
        raise _invalid(invalid=[name])
    return result


def _text(params: Mapping[str, Any], name: str, limit: int) -> str:
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(invalid=[name])
    return value


class PokepayRoutes(PokepayState):
    """The Partner API handlers over `PokepayState`."""

    #: (method, path pattern, handler name) of every Partner API operation served.
    API: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("POST", "echo", "_echo"),
        ("POST", "transactions/payment", "_payment"),
        ("POST", "transactions/topup", "_topup"),
        ("POST", "transactions/cashtray", "_transaction_with_cashtray"),
        ("GET", "transactions/requests/{request_id}", "_get_by_request_id"),
        ("GET", "transactions/{id}", "_get_transaction"),
        ("POST", "transactions/{id}/refund", "_refund"),
        ("POST", "cashtrays", "_create_cashtray"),
        ("GET", "cashtrays/{id}", "_get_cashtray"),
        ("PATCH", "cashtrays/{id}", "_update_cashtray"),
        ("DELETE", "cashtrays/{id}", "_cancel_cashtray"),
        ("GET", "accounts/{id}", "_get_account"),
        ("GET", "accounts/{id}/balances", "_get_balances"),
        ("GET", "users/{id}/accounts", "_user_accounts"),
        ("GET", "private-moneys", "_private_moneys"),
    )

    def routes(self) -> Sequence[BaseRoute]:
        """The Partner API plus a small web page per Cashtray token."""
        methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
        return [
            Route("/ping", self._ping, methods=["GET", "POST"]),
            Route("/web/cashtrays/{id}", self._web_cashtray, methods=["GET"]),
            Route("/web/cashtrays/{id}/scan", self._web_scan, methods=["POST"]),
            Route("/{path:path}", endpoint(self._api), methods=methods),
        ]

    async def _ping(self, request: Request) -> Response:
        return json_response(200, {"pong": "ok"})

    async def _api(self, request: Request) -> Response:
        language = (
            "ja" if request.headers.get("accept-language", "").lower().startswith("ja") else "en"
        )
        outer = self._outer(await request.body(), request.headers.get("content-type", ""))
        client_id = outer.get("partner_client_id")
        if client_id != self.seed.client_id:
            raise self._plain(400, "partner_client_not_found", language)
        try:
            inner = json.loads(self.cipher.decrypt(str(outer.get("data", ""))).decode("utf-8"))
        except (CryptoError, UnicodeDecodeError, ValueError):
            raise self._plain(400, "partner_decryption_failed", language) from None
        if not isinstance(inner, dict):
            raise self._plain(400, "partner_decryption_failed", language)
        call_id = inner.get("partner_call_id")
        reply_call_id = call_id if isinstance(call_id, str) else str(uuid.uuid4())
        try:
            params = self._check_envelope(inner)
            method = str(outer.get("request_method") or request.method).upper()
            handler, path_params = self._route(method, request.path_params.get("path", ""))
            result = handler(params, path_params)
        except EmulatorError as exc:
            kind = kind_of(exc)
            body = {"type": kind, "message": self._message(kind, language), **exc.body}
            return self._sealed(exc.status, body, reply_call_id)
        return self._sealed(200, result, reply_call_id)

    @staticmethod
    def _outer(raw: bytes, content_type: str) -> dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        if "application/x-www-form-urlencoded" not in content_type:
            try:
                data = json.loads(text) if text else {}
            except ValueError:
                data = None
            if isinstance(data, dict):
                return data
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def _check_envelope(self, inner: Mapping[str, Any]) -> dict[str, Any]:
        request_data = inner.get("request_data", {})
        if request_data == [] or request_data is None:
            # The Java SDK sends [] when an operation has no parameters.
            request_data = {}
        call_id = inner.get("partner_call_id")
        stamp = inner.get("timestamp")
        if not isinstance(request_data, dict) or not is_uuid(call_id):
            raise _invalid(
                invalid=["partner_call_id"] if not is_uuid(call_id) else ["request_data"]
            )
        when = None
        if isinstance(stamp, str):
            try:
                when = datetime.fromisoformat(stamp)
            except ValueError:
                when = None
        if when is None or when.tzinfo is None:
            raise _invalid(invalid=["timestamp"])
        if self.expire_next > 0:
            self.expire_next -= 1
            raise api_error(400, "partner_request_expired")
        fresh = self.envelope_freshness
        if fresh is not None and not any(
            abs(when - now) <= fresh for now in (self.now, self.wall_clock())
        ):
            raise api_error(400, "partner_request_expired")
        self._forget_old_calls()
        assert isinstance(call_id, str)
        if call_id in self.calls:
            raise api_error(400, "partner_request_already_done")
        self.calls[call_id] = self.now
        return request_data

    def _forget_old_calls(self) -> None:
        horizon = self.now - 2 * (self.envelope_freshness or FRESHNESS)
        for call_id in [c for c, seen in self.calls.items() if seen < horizon]:
            del self.calls[call_id]

    def _route(self, method: str, path: str) -> tuple[_Handler, dict[str, str]]:
        parts = [p for p in path.strip("/").split("/") if p]
        for verb, pattern, name in self.API:
            if verb != method:
                continue
            shape = pattern.split("/")
            if len(shape) != len(parts):
                continue
            found: dict[str, str] = {}
            for want, got in zip(shape, parts, strict=True):
                if want.startswith("{"):
                    found[want[1:-1]] = got
                elif want != got:
                    break
            else:
                handler: _Handler = getattr(self, name)
                return handler, found
        raise api_error(404, "notfound")

    def _plain(self, status: int, kind: str, language: str) -> EmulatorError:
        """An error answered in clear (the client is not known yet)."""
        return EmulatorError(status, {"type": kind, "message": self._message(kind, language)})

    def _sealed(self, status: int, body: Any, call_id: str) -> Response:
        plaintext = json.dumps(body, ensure_ascii=False).encode()
        return json_response(
            status,
            {
                "response_data": self.cipher.encrypt(plaintext),
                "timestamp": self._iso(self.now),
                "partner_call_id": call_id,
            },
        )

    def _check_request_id(self, params: Mapping[str, Any]) -> None:
        value = params.get("request_id")
        if value is not None and self.request_id_v4_only and uuid.UUID(value).version != 4:
            raise _invalid(invalid=["request_id"])

    @staticmethod
    def _metadata(params: Mapping[str, Any]) -> dict[str, str]:
        raw = params.get("metadata")
        if raw is None or raw == "":
            return {}
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise api_error(422, "invalid_metadata")
        return data

    @staticmethod
    def _products(params: Mapping[str, Any]) -> list[Any]:
        raw = params.get("products")
        if raw is None:
            return []
        allowed = {
            "jan_code",
            "classification_code",
            "name",
            "unit_price",
            "price",
            "quantity",
            "is_discounted",
            "other",
        }
        if not isinstance(raw, list):
            raise _invalid(invalid=["products"])
        for item in raw:
            ok = (
                isinstance(item, dict)
                and set(item) <= allowed
                and isinstance(item.get("name", ""), str)
                and len(item.get("name", "")) <= 256
                and len(str(item.get("jan_code", ""))) <= 64
                and len(str(item.get("classification_code", ""))) <= 64
                and isinstance(item.get("unit_price", 0), int | float)
                and item.get("unit_price", 0) >= 0
                and isinstance(item.get("price", 0), int | float)
                and item.get("price", 0) >= 0
                and isinstance(item.get("quantity", 1), int)
                and item.get("quantity", 1) >= 1
            )
            if not ok:
                raise _invalid(invalid=["products"])
        return list(raw)

    def _echo(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, ["message"], [])
        return {"status": "ok", "message": p["message"]}

    def _shop_wallet(self, shop_id: str, money_id: str, *, missing: str) -> StoredWallet:
        if shop_id not in self.users or not self.users[shop_id][1]:
            raise api_error(422, missing)
        wallet = self._wallet_of(shop_id, money_id)
        if wallet is None:
            raise api_error(422, missing)
        return wallet

    def _parties(self, p: Mapping[str, Any]) -> tuple[StoredWallet, StoredWallet]:
        """The shop's and the customer's wallets named by a payment or topup."""
        if p["private_money_id"] != self.seed.private_money_id:
            raise api_error(422, "private_money_not_found")
        shop = self._shop_wallet(
            p["shop_id"], p["private_money_id"], missing="shop_account_not_found"
        )
        customer = self._wallet_of(p["customer_id"], p["private_money_id"])
        if customer is None or customer.is_merchant:
            raise api_error(422, "customer_account_not_found")
        return shop, customer

    def _payment(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(
            p,
            ["shop_id", "customer_id", "private_money_id", "amount"],
            ["description", "metadata", "products", "request_id", "strategy", "coupon_id"],
        )
        _uuids(p, "shop_id", "customer_id", "private_money_id", "request_id", "coupon_id")
        self._check_request_id(p)
        amount = _whole(p["amount"], "amount", minimum=0)
        description = _text(p, "description", 200)
        strategy = p.get("strategy") or "point-preferred"
        if strategy not in ("point-preferred", "money-only"):
            raise _invalid(invalid=["strategy"])
        metadata = self._metadata(p)
        products = self._products(p)
        request_id = p.get("request_id")
        replay = self._replayed(request_id, p["customer_id"])
        if replay is not None:
            return self._transaction(replay)
        discount = 0
        if p.get("coupon_id") is not None:
            if p["coupon_id"] not in self.coupons:
                raise api_error(422, "coupon_not_found")
            discount = self.coupons[p["coupon_id"]]
        shop, customer = self._parties(p)
        txn = self._pay(
            customer,
            shop,
            amount,
            strategy=strategy,
            description=description,
            request_id=request_id,
            metadata=metadata,
            products=products,
            coupon_discount=discount,
        )
        return self._transaction(txn)

    def _topup(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(
            p,
            ["shop_id", "customer_id", "private_money_id"],
            [
                "bear_point_shop_id",
                "money_amount",
                "point_amount",
                "point_expires_at",
                "description",
                "metadata",
                "request_id",
            ],
        )
        _uuids(p, "shop_id", "customer_id", "private_money_id", "request_id", "bear_point_shop_id")
        self._check_request_id(p)
        money = _whole(p.get("money_amount", 0), "money_amount", minimum=0)
        points = _whole(p.get("point_amount", 0), "point_amount", minimum=0)
        if money == 0 and points == 0:
            raise api_error(400, "invalid_parameter_both_point_and_money_are_zero")
        description = _text(p, "description", 200)
        metadata = self._metadata(p)
        request_id = p.get("request_id")
        replay = self._replayed(request_id, p["customer_id"])
        if replay is not None:
            return self._transaction(replay)
        shop, customer = self._parties(p)
        txn = self._issue(
            shop,
            customer,
            money,
            points,
            description=description,
            request_id=request_id,
            metadata=metadata,
        )
        return self._transaction(txn)

    def _get_transaction(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        txn = self.transactions.get(path["id"])
        if txn is None:
            raise api_error(404, "notfound")
        return self._transaction(txn)

    def _get_by_request_id(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        txn = self._by_request_id(path["request_id"])
        if txn is None:
            raise api_error(422, "transaction_not_found")
        return self._transaction(txn)

    def _refund(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["description", "returning_point_expires_at"])
        description = _text(p, "description", 200)
        txn = self.transactions.get(path["id"])
        if txn is None:
            raise api_error(422, "transaction_not_found")
        if txn.is_modified:
            raise api_error(422, "transaction_already_refunded")
        if txn.type not in ("payment", "topup"):
            raise api_error(422, "not_refundable_transaction_type")
        payer, payee = self.wallets[txn.sender], self.wallets[txn.receiver]
        if txn.type == "payment":
            if payer.status == "closed":
                raise api_error(422, "account_closed")
            if payer.status == "pre-closed":
                raise api_error(422, "account_pre_closed")
        elif payee.money < txn.money or payee.points < txn.points:
            raise api_error(422, "account_balance_not_enough")
        # Money and points go back the way they came.
        payee.money -= txn.money
        payee.points -= txn.points
        payer.money += txn.money
        payer.points += txn.points
        txn.is_modified = True
        txn.transfers.append(
            self._transfer(
                f"refund-{txn.type}", payee, payer, txn.money, txn.points, txn, description
            )
        )
        # "キャンセル対象の取引に付随するポイント還元キャンペーンやクーポン適用も取り消されます":
        # the campaign points go back, the coupon is released.
        customer = payer if txn.type == "payment" else payee
        if txn.campaign_points:
            customer.points = max(0, customer.points - txn.campaign_points)
            txn.transfers.append(
                self._transfer(
                    "refund-campaign", customer, payee, 0, txn.campaign_points, txn, description
                )
            )
        if txn.coupon_discount:
            txn.transfers.append(
                self._transfer(
                    "refund-coupon", payee, customer, txn.coupon_discount, 0, txn, description
                )
            )
        return self._transaction(txn)

    def _create_cashtray(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, ["private_money_id", "shop_id", "amount"], ["description", "expires_in"])
        _uuids(p, "private_money_id", "shop_id")
        amount = _whole(p["amount"], "amount")
        if amount == 0:
            raise _invalid(invalid=["amount"])
        description = _text(p, "description", 200)
        expires_in = _whole(p.get("expires_in", DEFAULT_CASHTRAY_TTL), "expires_in", minimum=1)
        shop_id = p["shop_id"]
        if shop_id not in self.users or not self.users[shop_id][1]:
            raise api_error(422, "shop_user_not_found")
        shop = self._wallet_of(shop_id, p["private_money_id"])
        if shop is None:
            raise api_error(422, "account_not_found")
        tray = Cashtray(
            id=str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4)),
            amount=amount,
            description=description,
            shop_wallet=shop.id,
            expires_at=self.now + timedelta(seconds=expires_in),
        )
        self.cashtrays[tray.id] = tray
        return self._cashtray(tray)

    def _get_cashtray(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        return self._cashtray(self._tray(path["id"]), with_result=True)

    def _update_cashtray(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["amount", "description", "expires_in"])
        tray = self._tray(path["id"])
        self._settled(tray)
        if p.get("amount") is not None:
            amount = _whole(p["amount"], "amount")
            if amount == 0:
                raise _invalid(invalid=["amount"])
            tray.amount = amount
        if p.get("description") is not None:
            tray.description = _text(p, "description", 200)
        if p.get("expires_in") is not None:
            tray.expires_at = self.now + timedelta(
                seconds=_whole(p["expires_in"], "expires_in", minimum=1)
            )
        return self._cashtray(tray)

    def _cancel_cashtray(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], [])
        tray = self._tray(path["id"])
        self._settled(tray)
        tray.canceled_at = self.now
        return self._cashtray(tray)

    def _transaction_with_cashtray(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, ["cashtray_id", "customer_id"], ["strategy", "request_id"])
        _uuids(p, "cashtray_id", "customer_id", "request_id")
        self._check_request_id(p)
        request_id = p.get("request_id")
        replay = self._replayed(request_id, p["customer_id"])
        if replay is not None:
            return self._transaction(replay)
        tray = self._tray(p["cashtray_id"], missing="cashtray_not_found")
        txn = self._scan(tray, p["customer_id"], p.get("strategy") or "point-preferred")
        if request_id is not None:
            txn.request_id = request_id
            self._keep_request_id(request_id, txn)
        return self._transaction(txn)

    def _get_account(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        wallet = self.wallets.get(path["id"])
        if wallet is None:
            raise api_error(404, "notfound")
        return self._account_detail(wallet)

    @staticmethod
    def _page(rows: list[Any], p: Mapping[str, Any], default_per_page: int) -> dict[str, Any]:
        page = _whole(p.get("page", 1), "page", minimum=1)
        per_page = _whole(p.get("per_page", default_per_page), "per_page", minimum=1)
        found = paginate(rows, limit=per_page, offset=(page - 1) * per_page)
        return {
            "rows": found.items,
            "count": found.total,
            "pagination": {
                "current": page,
                "per_page": per_page,
                "max_page": max(1, -(-found.total // per_page)),
                "has_prev": page > 1,
                "has_next": found.has_more,
            },
        }

    def _get_balances(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["page", "per_page", "expires_at_from", "expires_at_to", "direction"])
        wallet = self.wallets.get(path["id"])
        if wallet is None:
            raise api_error(404, "notfound")
        rows = [{"expires_at": None, "money_amount": wallet.money, "point_amount": wallet.points}]
        return self._page(rows, p, 30)

    def _user_accounts(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["page", "per_page"])
        if path["id"] not in self.users:
            raise api_error(404, "notfound")
        rows = [self._account_detail(w) for w in self.wallets.values() if w.user_id == path["id"]]
        return self._page(rows, p, 50)

    def _private_moneys(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, [], ["organization_code", "page", "per_page"])
        return self._page([self._private_money()], p, 30)

    async def _web_cashtray(self, request: Request) -> Response:
        tray = self.cashtrays.get(request.path_params["id"])
        if tray is None:
            return HTMLResponse("<h1>Not found</h1>", 404)
        state = self._tray_state(tray)
        button = (
            f'<form method="post" action="{html.escape(request.url.path)}/scan">'
            '<button type="submit">Pay as the sandbox customer</button></form>'
            if state == "pending"
            else ""
        )
        return HTMLResponse(
            "<!doctype html><title>Pokepay sandbox Cashtray</title>"
            f"<h1>¥{abs(tray.amount):,}</h1><p>{html.escape(tray.description)}</p>"
            f"<p>state: {html.escape(state)}</p>{button}"
        )

    async def _web_scan(self, request: Request) -> Response:
        tray = self.cashtrays.get(request.path_params["id"])
        if tray is None:
            return HTMLResponse("<h1>Not found</h1>", 404)
        with contextlib.suppress(EmulatorError):
            self._scan(tray, self.seed.customers["funded"][0], "point-preferred")
        return await self._web_cashtray(request)
