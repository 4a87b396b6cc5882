"""The Smaregi emulator's HTTP handlers: the ID host's token endpoint and the POS API
(app payment method, transactions), with Smaregi's problem-JSON error bodies.

A handler refuses a request by raising `_error(...)` (a `paygate.sandbox.EmulatorError`
carrying the problem body); `endpoint` turns it into the answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import EmulatorError, endpoint, json_response, paginate

from .._errors import ALREADY_REGISTERED
from .._wire import JST, format_jst
from ._state import READ, WRITE, App, Contract, SmaregiState, Token

__all__ = ["SmaregiRoutes", "problem"]

_NUMBER = re.compile(r"^-?[0-9]{1,10}$")
_TERMINAL = re.compile(r"^[1-9][0-9]{0,8}$")
_MAX = 999_999_999
_HEAD_DIVISIONS = {"1", "2", "3", "4", "5", "6", "7", "13", "14"}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: What a depositOthers request item may carry: the method and amount (the response
#: item's names), and the three fields Smaregi's staff name for an app payment method.
_DEPOSIT_OTHERS_KEYS = frozenset(
    {"paymentMethodId", "depositOthers", "slipNumber", "cardCompany", "denominationCode"}
)
_RANGES = (
    "transaction_head_id",
    "transaction_date_time",
    "terminal_tran_date_time",
    "sum_date",
    "upd_date_time",
)
_RANGE_FIELDS = {
    "transaction_head_id": "transactionHeadId",
    "transaction_date_time": "transactionDateTime",
    "terminal_tran_date_time": "terminalTranDateTime",
    "sum_date": "sumDate",
    "upd_date_time": "updDateTime",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "Too Many Requests",
}
_NOT_FOUND = "指定されたIDのリソースが見つかりません"


def _problem_body(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "detail": detail,
        "status": status,
    }


def problem(status: int, detail: str, *, title: str | None = None) -> Response:
    """An RFC 7807-style Smaregi error response.

    >>> problem(404, "指定されたIDのリソースが見つかりません").status_code
    404
    """
    return json_response(status, _problem_body(status, detail, title))


def _error(status: int, detail: str, *, title: str | None = None) -> EmulatorError:
    """A refusal in Smaregi's problem-JSON shape, to raise from a handler (a 401 names
    the Bearer realm, a 429 says Retry-After)."""
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="smaregi"'
    if status == 429:
        headers["Retry-After"] = "1"
    return EmulatorError(status, _problem_body(status, detail, title), headers)


def _oauth_error(status: int, error: str, description: str) -> EmulatorError:
    """A refusal of the token endpoint: problem JSON plus OAuth's error fields."""
    body = {
        **_problem_body(status, description),
        "error": error,
        "error_description": description,
    }
    headers = {"WWW-Authenticate": 'Basic realm="smaregi"'} if status == 401 else None
    return EmulatorError(status, body, headers)


class SmaregiRoutes(SmaregiState):
    """The handlers, on the emulator's state."""

    def routes(self) -> Sequence[BaseRoute]:
        """ID host under ``/id``, API host under ``/api``."""
        pos = "/api/{contract_id}/pos"
        return [
            Route("/id/app/{contract_id}/token", endpoint(self._token), methods=["POST"]),
            Route(
                f"{pos}/app_payment_method", endpoint(self._app_methods), methods=["GET", "POST"]
            ),
            Route(f"{pos}/transactions", endpoint(self._transactions), methods=["GET", "POST"]),
            Route(f"{pos}/transactions/{{head_id}}", endpoint(self._transaction), methods=["GET"]),
            Route(
                f"{pos}/transactions/{{head_id}}/cancel", endpoint(self._cancel), methods=["POST"]
            ),
            # Any other API path: the documented NotFound problem body.
            Route(f"{pos}/{{rest:path}}", self._no_such_path, methods=["GET", "POST"]),
        ]

    async def _no_such_path(self, request: Request) -> Response:
        return problem(404, _NOT_FOUND)

    def fault_response(self, status: int) -> Response:
        """Injected faults answer in Smaregi's problem-JSON shape."""
        titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        # The host adds Retry-After from the fault rule.
        return problem(
            status,
            "サーバーが一時的に応答できません。" if status >= 500 else "エラーが発生しました。",
            title=titles.get(status) or _TITLES.get(status),
        )

    # -- token --------------------------------------------------------------------------

    def _basic_client(self, request: Request) -> App | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        value = value.strip()
        # Some production clients copy the placeholder braces of the docs literally.
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1]
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        app = self._apps.get(client_id)
        if not sep or app is None or not secrets.compare_digest(secret, app.client_secret):
            return None
        return app

    async def _token(self, request: Request) -> Response:
        contract_id = request.path_params["contract_id"]
        self._stats.token_requests += 1
        app = self._basic_client(request)
        if app is None:
            raise _oauth_error(401, "invalid_client", "クライアント認証に失敗しました。")
        if self._readings["token_calls_count"]:
            self._count(app.client_id, contract_id, "read")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _oauth_error(
                400, "invalid_request", "Content-Type は application/x-www-form-urlencoded です。"
            )
        form = urllib.parse.parse_qs((await request.body()).decode(), keep_blank_values=True)
        grant = form.get("grant_type", [""])[0]
        if grant != "client_credentials":
            raise _oauth_error(
                400, "unsupported_grant_type", "grant_type は client_credentials です。"
            )
        if contract_id not in self._contracts or contract_id not in app.contracts:
            raise _oauth_error(400, "invalid_grant", "契約が見つかりません。")
        requested = frozenset(form.get("scope", [""])[0].split())
        if not requested:
            raise _oauth_error(400, "invalid_scope", "scope を指定してください。")
        if not requested <= app.scopes:
            missing = " ".join(sorted(requested - app.scopes))
            raise _oauth_error(
                400, "invalid_scope", f"アプリに許可されていないスコープです: {missing}"
            )
        value = secrets.token_urlsafe(32)
        self._tokens[value] = Token(
            client_id=app.client_id,
            contract_id=contract_id,
            scopes=requested,
            expires_at=self.now + timedelta(seconds=self._readings["token_lifetime"]),
        )
        return json_response(
            200,
            {
                "access_token": value,
                "token_type": "Bearer",
                "expires_in": self._readings["token_lifetime"],
                "scope": " ".join(sorted(requested)),
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- API guard ----------------------------------------------------------------------

    def _guard(self, request: Request, scope: str, kind: str) -> tuple[App, Contract]:
        """Bearer check, scope check and rate limit; raises the refusal."""
        contract_id = request.path_params["contract_id"]
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.contract_id != contract_id:
            raise _error(401, "アクセストークンが不正です。")
        if self.now >= token.expires_at:
            del self._tokens[value.strip()]
            raise _error(401, "アクセストークンの有効期限が切れています。")
        if scope not in token.scopes:
            raise _error(403, f"スコープが不足しています: {scope}")
        contract = self._contracts.get(contract_id)
        if contract is None:
            raise _error(404, "契約が見つかりません。")
        self._count(token.client_id, contract_id, kind)
        return self._apps[token.client_id], contract

    def _count(self, who: str, contract_id: str, kind: str) -> None:
        """One request against the per-second quota of (app, contract) (C518)."""
        limit = self._limits.get(kind)
        if limit is None:
            return
        second = int(self.now.timestamp())
        key = (who, contract_id, kind, second)
        # Only the current second matters; older counters are dropped as time moves.
        self._hits = {k: v for k, v in self._hits.items() if k[3] == second}
        count = self._hits.get(key, 0)
        if count >= limit:
            raise _error(
                429, "リクエスト数が上限を超えました。しばらくしてから再度お試しください。"
            )
        self._hits[key] = count + 1

    @staticmethod
    async def _json_object(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _error(400, "リクエストボディが JSON ではありません。") from None
        if not isinstance(data, dict):
            raise _error(400, "リクエストボディはオブジェクトです。")
        return data

    # -- app payment method -------------------------------------------------------------

    async def _app_methods(self, request: Request) -> Response:
        write = request.method == "POST"
        app, contract = self._guard(request, WRITE if write else READ, "write" if write else "read")
        if not write:
            existing = contract.app_methods.get(app.client_id)
            if self._stale_reads > 0:
                self._stale_reads -= 1
                existing = None
            answer = json_response(200, [existing] if existing else [])
            seconds, left = self._slow_reads
            if left > 0:
                # The answer is fixed now and delivered late: racing readers all see the
                # state as it was when they asked.
                self._slow_reads = (seconds, left - 1)
                await asyncio.sleep(seconds)
            return answer
        self._stats.app_payment_method_posts += 1
        body = await self._json_object(request)
        if app.client_id in contract.app_methods:
            raise _error(403, ALREADY_REGISTERED)
        name = body.get("paymentMethodName")
        if name is None and self._readings["payment_method_name"] == "optional":
            name = app.app_name
        if name is None:
            raise _error(400, "paymentMethodName: 必須項目です。")
        if not isinstance(name, str) or not 1 <= len(name) <= 85:
            raise _error(400, "paymentMethodName: 1〜85文字の文字列です。")
        code = body.get("appPaymentCode")
        if code is not None and (not isinstance(code, str) or not 1 <= len(code) <= 20):
            raise _error(400, "appPaymentCode: 20文字以内の文字列です。")
        stamp = format_jst(self.now)
        # O-S1: the object's shape is not published; these are the fields the adapter
        # needs (paymentMethodId, paymentMethodName) and the ids and stamps every
        # Smaregi master record carries.
        method = {
            "appPaymentMethodId": str(self._next_app_payment_method_id),
            "paymentMethodId": str(self._next_payment_method_id),
            "paymentMethodName": name,
            "insDateTime": stamp,
            "updDateTime": stamp,
        }
        if code is not None:
            method["appPaymentCode"] = code
        self._next_app_payment_method_id += 1
        self._next_payment_method_id += 1
        contract.app_methods[app.client_id] = method
        self._stats.app_payment_methods_created += 1
        return json_response(200, method)

    # -- transactions -------------------------------------------------------------------

    async def _transactions(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._create(request)
        _, contract = self._guard(request, READ, "read")
        return json_response(200, self._search(contract, request.query_params))

    async def _create(self, request: Request) -> Response:
        _, contract = self._guard(request, WRITE, "write")
        body = await self._json_object(request)
        head, details = self._check_sale(contract, body)
        head_id = str(self._next_head_id)
        self._next_head_id += 1
        now = format_jst(self.now)
        head["transactionHeadId"] = head_id
        head["transactionDateTime"] = now
        head["updDateTime"] = now
        for item in head["depositOthers"]:
            item["transactionHeadId"] = head_id
        contract.transactions[head_id] = head
        contract.details[head_id] = [{**d, "transactionHeadId": head_id} for d in details]
        self._stats.transactions_created += 1
        return json_response(200, self._present(contract, head_id, details=False))

    def _check_sale(
        self, contract: Contract, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        def number(source: Mapping[str, Any], key: str, path: str, *, required: bool) -> int:
            value = source.get(key)
            if value is None:
                if required:
                    raise _error(400, f"{path}: 必須項目です。")
                return 0
            if not isinstance(value, str):
                raise _error(400, f"{path}: 文字列で指定してください。")
            if not _NUMBER.match(value) or abs(int(value)) > _MAX:
                raise _error(400, f"{path}: -999999999〜999999999の整数です。")
            return int(value)

        def text(key: str, *, required: bool, max_len: int) -> str | None:
            value = body.get(key)
            if value is None:
                if required:
                    raise _error(400, f"{key}: 必須項目です。")
                return None
            if not isinstance(value, str) or not 1 <= len(value) <= max_len:
                raise _error(400, f"{key}: {max_len}文字以内の文字列です。")
            return value

        division = text("transactionHeadDivision", required=True, max_len=2)
        if division not in _HEAD_DIVISIONS:
            raise _error(400, "transactionHeadDivision: 許可されていない値です。")
        cancel = text("cancelDivision", required=False, max_len=1) or "0"
        if cancel not in ("0", "1"):
            raise _error(400, "cancelDivision: 0 または 1 です。")
        subtotal = number(body, "subtotal", "subtotal", required=True)
        total = number(body, "total", "total", required=True)
        store_id = text("storeId", required=True, max_len=9)
        if store_id not in contract.stores:
            raise _error(400, "storeId: 指定された店舗が存在しません。")
        terminal_id = text("terminalId", required=True, max_len=9)
        if not _TERMINAL.match(terminal_id or ""):
            raise _error(400, "terminalId: 形式が不正です。")
        tran_id = text("terminalTranId", required=True, max_len=10)
        when = text("terminalTranDateTime", required=True, max_len=32)
        try:
            parsed = datetime.fromisoformat(when or "")
        except ValueError:
            raise _error(400, "terminalTranDateTime: 日時の形式が不正です。") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=JST)
        memo = text("memo", required=False, max_len=1000)
        sum_division = text("sumDivision", required=False, max_len=1)
        if sum_division is not None and sum_division not in ("0", "1", "2"):
            raise _error(400, "sumDivision: 0, 1, 2 のいずれかです。")
        sum_date = text("sumDate", required=False, max_len=10)
        if sum_division == "2" and sum_date is None:
            raise _error(400, "sumDate: 締め区分が2:締め処理済みの場合は必須です。")
        if sum_division in (None, "0") and sum_date is not None:
            raise _error(400, "sumDate: 締め区分が0:未処理の場合は設定できません。")
        if sum_date is not None and not _DATE.match(sum_date):
            raise _error(400, "sumDate: YYYY-MM-DD 形式です。")
        register = terminal_id in contract.terminals.get(store_id or "", frozenset())
        if not register and sum_division != "2" and self._readings["sum_division"] == "enforced":
            raise _error(
                400, "sumDivision: 存在しない端末IDの場合は2:締め処理済みを設定してください。"
            )
        uuid = text("transactionUuid", required=False, max_len=36)
        if uuid is None:
            # Smaregi's default: the last 9 digits of the epoch second + the terminal id
            # zero-padded to 4 digits.
            uuid = f"{int(parsed.timestamp()) % 10**9:09d}{int(terminal_id or '0'):04d}"

        raw_details = body.get("details")
        if not isinstance(raw_details, list) or not raw_details:
            raise _error(400, "details: 必須項目です。")
        details: list[dict[str, str]] = []
        line_sum = 0
        for i, raw in enumerate(raw_details):
            path = f"details[{i}]"
            if not isinstance(raw, dict):
                raise _error(400, f"{path}: オブジェクトです。")
            detail_id = number(
                raw, "transactionDetailId", f"{path}.transactionDetailId", required=True
            )
            if not 1 <= detail_id <= 999:
                raise _error(400, f"{path}.transactionDetailId: 1〜999 です。")
            if raw.get("transactionDetailDivision") not in ("1", "2", "3"):
                raise _error(400, f"{path}.transactionDetailDivision: 許可されていない値です。")
            price = number(raw, "salesPrice", f"{path}.salesPrice", required=True)
            discount = number(raw, "unitDiscountPrice", f"{path}.unitDiscountPrice", required=False)
            quantity = number(raw, "quantity", f"{path}.quantity", required=True)
            if raw.get("productId") is None and not raw.get("productName"):
                raise _error(400, f"{path}: productId か productName が必要です。")
            line_sum += (price - discount) * quantity
            details.append({k: str(v) for k, v in raw.items() if v is not None})
        if subtotal != line_sum:
            raise _error(400, "subtotal: 小計が明細の合計と一致しません。")
        expected_total = (
            subtotal
            - number(body, "subtotalDiscountPrice", "subtotalDiscountPrice", required=False)
            - number(body, "pointDiscount", "pointDiscount", required=False)
            - number(body, "couponDiscount", "couponDiscount", required=False)
            + number(body, "roundingPrice", "roundingPrice", required=False)
            + number(body, "taxExclude", "taxExclude", required=False)
            + number(body, "commission", "commission", required=False)
            + number(body, "carriage", "carriage", required=False)
        )
        if total != expected_total:
            raise _error(400, "total: 合計が小計・値引き等から計算した値と一致しません。")

        known = {m["paymentMethodId"]: m for m in contract.app_methods.values()}
        raw_others = body.get("depositOthers", [])
        if not isinstance(raw_others, list) or len(raw_others) > 3:
            raise _error(400, "depositOthers: 3件以内の配列です。")
        others: list[dict[str, str | None]] = []
        others_sum = 0
        # Head-level slipNumber / cardCompany are the transaction's credit-card fields;
        # the app payment's own slip fields go on its depositOthers item (forum 539).
        slip = text("slipNumber", required=False, max_len=20)
        company = text("cardCompany", required=False, max_len=20)
        for i, raw in enumerate(raw_others, start=1):
            path = f"depositOthers[{i - 1}]"
            if not isinstance(raw, dict):
                raise _error(400, f"{path}: オブジェクトです。")
            unknown = sorted(set(raw) - _DEPOSIT_OTHERS_KEYS)
            if unknown:
                raise _error(400, f"{path}.{unknown[0]}: 指定できない項目です。")
            pm_id = raw.get("paymentMethodId")
            if not isinstance(pm_id, str) or pm_id not in known:
                raise _error(400, f"{path}.paymentMethodId: 支払方法が存在しません。")
            amount = number(raw, "depositOthers", f"{path}.depositOthers", required=True)
            others_sum += amount
            item: dict[str, str | None] = {
                "no": str(i),
                "paymentMethodId": pm_id,
                "paymentMethodName": known[pm_id]["paymentMethodName"],
                "depositOthers": str(amount),
            }
            for key in ("slipNumber", "cardCompany", "denominationCode"):
                value = raw.get(key)
                if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 20):
                    raise _error(400, f"{path}.{key}: 20文字以内の文字列です。")
                item[key] = value
            item["cancelSlipNumber"] = None
            others.append(item)
        cash = number(body, "depositCash", "depositCash", required=False)
        credit = number(body, "depositCredit", "depositCredit", required=False)
        deposit = cash + credit + others_sum
        if body.get("deposit") is not None:
            given = number(body, "deposit", "deposit", required=False)
            if given != deposit:
                raise _error(400, "deposit: 預り金が現金・クレジット・その他の合計と一致しません。")
        change = number(body, "change", "change", required=False)

        head: dict[str, Any] = {
            "transactionHeadDivision": division,
            "cancelDivision": cancel,
            "subtotal": str(subtotal),
            "total": str(total),
            "deposit": str(deposit),
            "depositCash": str(cash),
            "depositCredit": str(credit),
            "change": str(change),
            "storeId": store_id,
            "terminalId": terminal_id,
            "terminalTranId": tran_id,
            "terminalTranDateTime": format_jst(parsed),
            "memo": memo,
            "slipNumber": slip,
            "cardCompany": company,
            "cancelSlipNumber": None,
            "cancelDateTime": None,
            "sumDivision": sum_division or "0",
            "sumDate": sum_date,
            "transactionUuid": uuid,
            "disposeDivision": "0",
            "disposeServerTransactionHeadId": None,
            "depositOthers": others,
        }
        return head, details

    def _present(self, contract: Contract, head_id: str, *, details: bool) -> dict[str, Any]:
        head = dict(contract.transactions[head_id])
        head["depositOthers"] = [dict(item) for item in head["depositOthers"]]
        if details:
            head["details"] = [dict(d) for d in contract.details[head_id]]
        return head

    def _search(self, contract: Contract, query: Mapping[str, str]) -> list[dict[str, Any]]:
        bounds: list[tuple[str, str, str]] = []
        for name in _RANGES:
            low, high = query.get(f"{name}-from"), query.get(f"{name}-to")
            if low is None and high is None:
                continue
            if name == "transaction_head_id":
                bounds.append((_RANGE_FIELDS[name], low or "", high or ""))
                continue
            low_dt, high_dt = _query_time(name, low), _query_time(name, high)
            if low_dt and high_dt and high_dt - low_dt > timedelta(days=31):
                raise _error(400, f"{name}: 検索範囲は31日以内で指定してください。")
            bounds.append(
                (
                    _RANGE_FIELDS[name],
                    low_dt.isoformat() if low_dt else "",
                    high_dt.isoformat() if high_dt else "",
                )
            )
        if not bounds:
            raise _error(400, "検索範囲（-from / -to）のいずれかを指定してください。")
        uuid = query.get("transaction_uuid")
        if uuid is not None and self._readings["transaction_uuid_filter"] == "refused":
            raise _error(400, "transaction_uuid: 指定できない検索パラメータです。")
        if self._readings["transaction_uuid_filter"] != "exact":
            uuid = None
        limit = _query_int(query, "limit", 100, 1, 1000)
        page = _query_int(query, "page", 1, 1, 10**9)

        def inside(head: Mapping[str, Any]) -> bool:
            for key, low, high in bounds:
                value = head.get(key)
                if value is None:
                    return False
                if key == "transactionHeadId":
                    if (low and int(value) < int(low)) or (high and int(value) > int(high)):
                        return False
                    continue
                moment = datetime.fromisoformat(str(value))
                if low and moment < datetime.fromisoformat(low):
                    return False
                if high and moment > datetime.fromisoformat(high):
                    return False
            return True

        rows = [
            h
            for h in contract.transactions.values()
            if inside(h) and (uuid is None or h["transactionUuid"] == uuid)
        ]
        for part in reversed([p for p in query.get("sort", "").split(",") if p]):
            key, _, order = part.partition(":")
            rows.sort(key=_by(key), reverse=order == "desc")
        if not query.get("sort"):
            rows.sort(key=lambda h: int(h["transactionHeadId"]))
        chosen = paginate(rows, limit=limit, offset=(page - 1) * limit).items
        with_others = query.get("with_deposit_others") == "all"
        with_details = query.get("with_details") == "all"
        out = []
        for head in chosen:
            row = self._present(contract, head["transactionHeadId"], details=with_details)
            if not with_others:
                row.pop("depositOthers")
            out.append(row)
        return out

    async def _transaction(self, request: Request) -> Response:
        _, contract = self._guard(request, READ, "read")
        head_id = request.path_params["head_id"]
        if head_id not in contract.transactions:
            raise _error(404, _NOT_FOUND)
        with_details = request.query_params.get("with_details") == "all"
        return json_response(200, self._present(contract, head_id, details=with_details))

    async def _cancel(self, request: Request) -> Response:
        _, contract = self._guard(request, WRITE, "write")
        body = await self._json_object(request)
        head_id = request.path_params["head_id"]
        head = contract.transactions.get(head_id)
        if head is None:
            raise _error(404, _NOT_FOUND)
        if head["cancelDivision"] == "1":
            raise _error(400, "既に取消済みの取引です。")
        if head["disposeDivision"] != "0":
            raise _error(400, "打消済みの取引は取消できません。")
        when = body.get("cancelDateTime")
        if when is None and self._readings["cancel_time"] == "required":
            raise _error(400, "cancelDateTime: 必須項目です。")
        if when is not None:
            if not isinstance(when, str):
                raise _error(400, "cancelDateTime: 日時の形式が不正です。")
            try:
                datetime.fromisoformat(when)
            except ValueError:
                raise _error(400, "cancelDateTime: 日時の形式が不正です。") from None
        others = body.get("depositOthers", [])
        if not isinstance(others, list) or len(others) > 1:
            raise _error(400, "depositOthers: 1件以内の配列です。")
        slip = None
        for item in others:
            if not isinstance(item, dict) or item.get("no") not in ("1", "2", "3"):
                raise _error(400, "depositOthers[0].no: 1〜3 です。")
            index = int(item["no"]) - 1
            target = head["depositOthers"][index] if index < len(head["depositOthers"]) else None
            if target is None:
                raise _error(400, "depositOthers[0].no: 該当する支払がありません。")
            value = item.get("cancelSlipNumber")
            if not isinstance(value, str) or not 1 <= len(value) <= 20:
                raise _error(400, "depositOthers[0].cancelSlipNumber: 20文字以内です。")
            slip = (index, value)
        self._void(head, slip, when if isinstance(when, str) else None)
        return json_response(200, {"message": "取消が完了しました"})


def _query_time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    # An unencoded '+' of "+09:00" arrives as a space: Smaregi refuses it, so do we.
    if " " in value:
        raise _error(400, f"{name}: 日時の形式が不正です（+ は %2B と指定してください）。")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _error(400, f"{name}: 日時の形式が不正です。") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


def _query_int(query: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    value = query.get(key)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise _error(400, f"{key}: {low}〜{high}の整数です。")
    return int(value)


def _by(key: str) -> Callable[[Mapping[str, Any]], tuple[int, int, str]]:
    def sort_key(head: Mapping[str, Any]) -> tuple[int, int, str]:
        return _sort_key(head.get(key))

    return sort_key


def _sort_key(value: Any) -> tuple[int, int, str]:
    if value is None:
        return (1, 0, "")
    text = str(value)
    if text.lstrip("-").isdigit():
        return (0, int(text), "")
    return (0, 0, text)
