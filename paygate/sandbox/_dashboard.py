"""The sandbox dashboard: every emulator's objects in a browser, and the customer's pages.

Served by `SandboxHost` at the sandbox's root (``/``), on the same loopback port as the
emulators. Plain HTML forms, no JavaScript: each button posts to ``/_dashboard/...`` and
the answer redirects back with a one-line message. Labels are English or Japanese
(``?lang=ja`` / ``?lang=en``, remembered in a cookie).

What it shows and drives:

* per provider, every object the emulator holds (EasyQR codes, Cashtrays, charges,
  refunds, POS transactions) with status and amounts, and the customer-side actions the
  control API has for it (pay a slip, scan a code with a chosen wallet, pass or fail
  3-D Secure, void or 返品取消 at the register, expire by moving the clock);
* the webhook log: each delivery with its attempts on the provider's retry schedule,
  the answer's status code, and a replay button;
* the sandbox clock (advance by ``90s``, ``15m``, ``2h``, ``1d``, ...), the fault rules,
  and any control action by name with JSON parameters;
* customer pages at ``/customer/...``: the EasyQR and Cashtray pages with the QR code
  drawn, the konbini slip with its payment number and deadline, the 3-D Secure challenge.

Objects are read from the emulators' `Emulator.ledger` and, for the providers shipped
with paygate, from their in-memory tables: instance attributes only (``codes``,
``cashtrays``, ``charges``, Pokepay's ``SCAN_ERRORS``), read only, never the emulator's
module; an unknown emulator shows its ledger and the generic control form.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ._emulator import ControlError, Emulator
from ._faults import FaultParamError

if TYPE_CHECKING:
    from ._host import SandboxHost

__all__ = ["Dashboard", "parse_duration"]

logger = logging.getLogger("paygate.sandbox")

JST = timezone(timedelta(hours=9), "JST")
_TEMPLATES = Path(__file__).parent / "templates"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

ELEPAY_WALLETS = ("paypay", "linepay", "merpay", "rakutenpay", "aupay", "alipay", "wechatpay")

LABELS: dict[str, tuple[str, str]] = {
    "title": ("paygate sandbox", "paygate サンドボックス"),
    "objects": ("Objects", "オブジェクト"),
    "kind": ("Kind", "種類"),
    "id": ("ID", "ID"),
    "amount": ("Amount", "金額"),
    "refunded": ("Refunded", "返金額"),
    "status": ("Status", "ステータス"),
    "key": ("Key", "キー"),
    "deadline": ("Deadline", "期限"),
    "actions": ("Customer actions", "顧客側の操作"),
    "nothing": ("Nothing yet.", "まだありません。"),
    "clock": ("Clock", "時計"),
    "now": ("Sandbox time", "サンドボックス時刻"),
    "advance": ("Advance", "進める"),
    "advance_hint": ("e.g. 90s, 15m, 2h, 1d", "例: 90s, 15m, 2h, 1d"),
    "webhooks": ("Webhook log", "Webhook 送信履歴"),
    "delivery": ("Delivery", "配信"),
    "event": ("Event", "イベント"),
    "attempt": ("Attempt", "試行"),
    "at": ("At", "時刻"),
    "response": ("Response", "応答"),
    "outcome": ("Outcome", "結果"),
    "next_attempt": ("Next attempt", "次回試行"),
    "replay": ("Replay", "再送"),
    "flush": ("Send what is due", "期限の来た配信を送る"),
    "webhook_url": ("Webhook URL", "Webhook 送信先"),
    "set": ("Set", "設定"),
    "faults": ("Faults", "障害注入"),
    "add_fault": ("Add rule", "ルール追加"),
    "clear_faults": ("Clear all", "すべて解除"),
    "remove": ("Remove", "削除"),
    "control": ("Control action", "コントロール操作"),
    "provider": ("Provider", "プロバイダ"),
    "action": ("Action", "操作"),
    "params": ("Parameters (JSON)", "パラメータ (JSON)"),
    "run": ("Run", "実行"),
    "reset": ("Reset everything", "すべてリセット"),
    "pay_code": ("Scan and pay with", "QR を読み取り支払う:"),
    "fail_payment": ("Payment fails", "支払い失敗"),
    "scan_cashtray": ("Scan and pay", "QR を読み取り支払う"),
    "scan_error": ("Scan fails", "読み取りエラー"),
    "pay_konbini": ("Pay the slip", "コンビニで支払う"),
    "issue_konbini": ("Issue the slip", "払込票を発行"),
    "three_ds_pass": ("Pass 3-D Secure", "3-D セキュア成功"),
    "three_ds_fail": ("Fail 3-D Secure", "3-D セキュア失敗"),
    "void": ("Void at the register (取消)", "レジで取消"),
    "dispose": ("Reverse at the register (返品取消)", "レジで返品取消"),
    "complete_refund": ("Complete the refund", "返金を完了"),
    "expire": ("Expire (move the clock past the deadline)", "期限切れにする (時計を進める)"),
    "customer_page": ("Customer page", "顧客画面"),
    "scan_with_wallet": ("Scan with your wallet app", "ウォレットアプリで読み取ってください"),
    "pay_with": ("Pay with", "支払い方法"),
    "pay": ("Pay", "支払う"),
    "slip": ("Konbini payment slip", "コンビニ払込票"),
    "store": ("Store", "店舗"),
    "payment_number": ("Payment number", "お支払い番号"),
    "pay_by": ("Pay by", "お支払い期限"),
    "slip_not_issued": ("The slip is not issued yet.", "払込票はまだ発行されていません。"),
    "challenge": ("3-D Secure authentication", "3-D セキュア本人認証"),
    "challenge_text": (
        "Your card issuer asks you to confirm this payment.",
        "カード発行会社がこのお支払いの確認を求めています。",
    ),
    "authenticate": ("Authenticate", "認証する"),
    "cancel": ("Cancel", "キャンセル"),
    "back": ("Back to the dashboard", "ダッシュボードへ戻る"),
    "done": ("Done", "完了"),
    "error": ("Refused", "拒否されました"),
    "skipped": ("Not mounted", "未搭載"),
}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1d 2h"``, or a plain number of seconds.

    >>> parse_duration("1d 2h")
    datetime.timedelta(days=1, seconds=7200)
    >>> parse_duration("30")
    datetime.timedelta(seconds=30)
    """
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r} (write e.g. 90s, 15m, 2h, 1d)")
    return timedelta(seconds=sum(float(n) * _UNITS[u.lower()] for n, u in parts))


@dataclass(slots=True)
class Act:
    """One button: a control action with fixed parameters (and maybe a choice)."""

    label: str
    action: str
    params: dict[str, str] = field(default_factory=dict)
    choice: str | None = None  # the parameter a drop-down sets
    choices: tuple[str, ...] = ()
    danger: bool = False


@dataclass(slots=True)
class Row:
    """One object of one provider, as the dashboard lists it."""

    kind: str
    id: str
    amount: int
    currency: str = "JPY"
    status: str = ""
    refunded: int = 0
    key: str | None = None
    deadline: datetime | None = None
    detail: str = ""
    acts: list[Act] = field(default_factory=list)
    page: str | None = None


class Dashboard:
    """The dashboard's routes on a `SandboxHost`."""

    def __init__(self, host: SandboxHost) -> None:
        self.host = host
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["yen"] = _yen
        self.env.filters["jst"] = _jst
        self.env.globals["qr_svg"] = _qr_svg

    def routes(self) -> list[BaseRoute]:
        """``/`` and the form endpoints under ``/_dashboard``; customer pages."""
        return [
            Route("/", self._index, methods=["GET"]),
            Route("/_dashboard/act", self._act, methods=["POST"]),
            Route("/_dashboard/clock", self._clock, methods=["POST"]),
            Route("/_dashboard/reset", self._reset, methods=["POST"]),
            Route("/_dashboard/faults", self._faults, methods=["POST"]),
            Route("/_dashboard/webhooks", self._webhooks, methods=["POST"]),
            Route("/customer/{provider}/{kind}/{object_id}", self._customer, methods=["GET"]),
        ]

    # -- pages ------------------------------------------------------------------------------

    async def _index(self, request: Request) -> Response:
        lang = _lang(request)
        providers = {
            name: _rows(name, emulator, self.host.clock.now())
            for name, emulator in self.host.emulators.items()
        }
        deliveries: dict[int, dict[str, Any]] = {}
        for attempt in self.host.webhooks.log():
            entry = deliveries.setdefault(
                attempt.delivery_id,
                {
                    "id": attempt.delivery_id,
                    "provider": attempt.provider,
                    "event_id": attempt.event_id,
                    "attempts": [],
                    "replayable": self.host.sent_webhook(attempt.delivery_id) is not None,
                },
            )
            entry["attempts"].append(attempt)
        return self._page(
            request,
            "index.html",
            lang,
            providers=providers,
            skipped=self.host.skipped,
            now=self.host.clock.now(),
            deliveries=sorted(deliveries.values(), key=lambda d: -int(d["id"])),
            pending=self.host.webhooks.pending(),
            urls=self.host.webhooks.urls(),
            faults=[rule.to_json() for rule in self.host.faults.rules()],
        )

    async def _customer(self, request: Request) -> Response:
        lang = _lang(request)
        provider = request.path_params["provider"]
        kind = request.path_params["kind"]
        object_id = request.path_params["object_id"]
        emulator = self.host.emulators.get(provider)
        page = None if emulator is None else _customer_page(provider, kind, object_id, emulator)
        if page is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        return self._page(request, "customer.html", lang, provider=provider, **page)

    def _page(self, request: Request, name: str, lang: str, **context: Any) -> Response:
        def t(key: str) -> str:
            en, ja = LABELS.get(key, (key, key))
            return ja if lang == "ja" else en

        template = self.env.get_template(name)
        body = template.render(
            t=t,
            lang=lang,
            here=request.url.path,
            message=request.query_params.get("msg"),
            failed=request.query_params.get("ok") == "0",
            **context,
        )
        response = HTMLResponse(body)
        if request.query_params.get("lang") in ("ja", "en"):
            response.set_cookie("paygate_lang", lang, samesite="strict")
        return response

    # -- form endpoints ---------------------------------------------------------------------

    async def _act(self, request: Request) -> Response:
        form, refused = await _form(request)
        if refused is not None:
            return refused
        provider = form.get("provider", "")
        action = form.get("action", "").strip()
        emulator = self.host.emulators.get(provider)
        if emulator is None or not action:
            return _back(form, False, f"no emulator {provider!r} or no action")
        params: dict[str, Any] = {k[2:]: v for k, v in form.items() if k.startswith("p.") and v}
        raw = form.get("json", "").strip()
        if raw:
            try:
                extra = json.loads(raw)
            except ValueError:
                return _back(form, False, "parameters: not JSON")
            if not isinstance(extra, dict):
                return _back(form, False, "parameters: must be a JSON object")
            params.update(extra)
        try:
            result = await emulator.control(action, params)
        except ControlError as exc:
            return _back(form, False, f"{provider} {action}: {exc}")
        result = result or {}
        if "status" in result:
            summary = f"status {result['status']}"
        else:
            summary = json.dumps(result, ensure_ascii=False, default=str)[:200]
        return _back(form, True, f"{provider} {action}: {summary}")

    async def _clock(self, request: Request) -> Response:
        form, refused = await _form(request)
        if refused is not None:
            return refused
        try:
            if form.get("until"):
                target = datetime.fromisoformat(form["until"])
                delta = max(target - self.host.clock.now(), timedelta(0)) + timedelta(seconds=1)
            else:
                delta = parse_duration(form.get("by", ""))
            now = self.host.advance_clock(delta)
        except (ValueError, OverflowError) as exc:
            return _back(form, False, f"clock: {exc}")
        return _back(form, True, f"clock: {_jst(now)}")

    async def _reset(self, request: Request) -> Response:
        form, refused = await _form(request)
        if refused is not None:
            return refused
        names = self.host.reset(form.get("provider") or None)
        return _back(form, True, f"reset: {', '.join(names)}")

    async def _faults(self, request: Request) -> Response:
        form, refused = await _form(request)
        if refused is not None:
            return refused
        op = form.get("op")
        if op == "clear":
            self.host.faults.clear(None)
            return _back(form, True, "faults: cleared")
        if op == "remove":
            removed = self.host.faults.remove(form.get("id", ""))
            return _back(form, removed, f"faults: {'removed' if removed else 'no such rule'}")
        try:
            rule = json.loads(form.get("rule", ""))
        except ValueError:
            return _back(form, False, "faults: the rule must be a JSON object")
        if not isinstance(rule, dict):
            return _back(form, False, "faults: the rule must be a JSON object")
        if isinstance(rule.get("provider"), str) and rule["provider"] not in self.host.emulators:
            return _back(form, False, f"faults: no emulator {rule['provider']!r}")
        try:
            added = self.host.faults.add(rule)
        except FaultParamError as exc:
            return _back(form, False, f"faults: {exc}")
        return _back(form, True, f"faults: added {added.id}")

    async def _webhooks(self, request: Request) -> Response:
        form, refused = await _form(request)
        if refused is not None:
            return refused
        op = form.get("op")
        if op == "replay":
            try:
                delivery_id = int(form.get("delivery_id", ""))
            except ValueError:
                return _back(form, False, "webhooks: no delivery id")
            if not self.host.replay_webhook(delivery_id):
                return _back(form, False, f"webhooks: delivery {delivery_id} cannot be replayed")
            await self.host.webhooks.settle()
            return _back(form, True, f"webhooks: delivery {delivery_id} sent again")
        if op == "url":
            url = form.get("url", "").strip() or None
            if url is not None and not url.startswith(("http://", "https://")):
                return _back(form, False, "webhooks: the URL must be http(s)")
            self.host.webhooks.set_url(url, form.get("provider") or None)
            return _back(form, True, f"webhooks: URL {'set' if url else 'removed'}")
        await self.host.webhooks.flush()
        return _back(form, True, "webhooks: due deliveries sent")


# -- reading the emulators ------------------------------------------------------------------


def _rows(name: str, emulator: Emulator, now: datetime) -> list[Row]:
    reader = _READERS.get(name)
    if reader is not None:
        try:
            rows: list[Row] = reader(emulator, now)
        except Exception:  # an emulator whose tables changed shape: show its ledger
            logger.warning("dashboard: cannot read %s's tables; showing its ledger", name)
            return _ledger_rows(emulator, None)
        return rows
    return _ledger_rows(emulator, None)


def _ledger_rows(emulator: Emulator, kinds: tuple[str, ...] | None) -> list[Row]:
    return [
        Row(
            kind=e.kind,
            id=e.id,
            amount=e.amount,
            currency=e.currency,
            status=e.status,
            refunded=e.refunded,
            key=e.key,
        )
        for e in emulator.ledger()
        if kinds is None or e.kind in kinds
    ]


def _elepay(emulator: Any, now: datetime) -> list[Row]:
    rows: list[Row] = []
    for code in reversed(list(emulator.codes.values())):
        pending = code.status == "pending" and code.expires > now and not code.deleted
        status = code.status
        if code.status == "pending" and code.expires <= now:
            status = "expired"
        row = Row(
            kind="EasyQR",
            id=code.id,
            amount=code.amount,
            currency=code.currency,
            status=status,
            key=code.order_no,
            deadline=code.expires,
            page=f"/customer/elepay/easyqr/{code.id}",
        )
        if pending:
            row.acts = [
                Act("pay_code", "pay_code", {"code_id": code.id}, "payment_method", ELEPAY_WALLETS),
                Act("fail_payment", "fail_payment", {"code_id": code.id}, danger=True),
                Act("expire", "", {"until": code.expires.isoformat()}),
            ]
        rows.append(row)
    for row in _ledger_rows(emulator, ("charge", "refund")):
        if row.kind == "refund" and row.status == "pending":
            row.acts = [Act("complete_refund", "complete_refund", {"refund_id": row.id})]
        rows.append(row)
    return rows


def _pokepay(emulator: Any, now: datetime) -> list[Row]:
    # The failures a scan can be forced into, as the emulator lists them.
    from_scan_errors: tuple[str, ...] = tuple(emulator.SCAN_ERRORS)
    rows: list[Row] = []
    for tray in reversed(list(emulator.cashtrays.values())):
        if tray.transaction_id:
            status = "paid"
        elif tray.canceled_at is not None:
            status = "canceled"
        elif tray.attempt is not None:
            status = "failed"
        elif tray.expires_at <= now:
            status = "expired"
        else:
            status = "waiting"
        row = Row(
            kind="Cashtray",
            id=tray.id,
            amount=abs(tray.amount),
            status=status,
            deadline=tray.expires_at,
            detail=tray.description or "",
            page=f"/customer/pokepay/cashtray/{tray.id}",
        )
        if status == "waiting":
            row.acts = [Act("scan_cashtray", "scan_cashtray", {"cashtray_id": tray.id})]
            if from_scan_errors:
                row.acts.append(
                    Act(
                        "scan_error",
                        "scan_cashtray",
                        {"cashtray_id": tray.id},
                        "error",
                        from_scan_errors,
                        danger=True,
                    )
                )
            row.acts.append(Act("expire", "", {"until": tray.expires_at.isoformat()}))
        rows.append(row)
    return rows + _ledger_rows(emulator, ("payment", "topup", "cashback", "exchange"))


def _univapay(emulator: Any, now: datetime) -> list[Row]:
    rows: list[Row] = []
    for charge in reversed(list(emulator.charges.values())):
        wire = charge.wire
        status = str(wire["status"])
        row = Row(
            kind=f"charge ({charge.payment_type})",
            id=str(wire["id"]),
            amount=int(wire["requested_amount"]),
            currency=str(wire["requested_currency"]),
            status=status,
            key=charge.key,
            deadline=charge.deadline if charge.payment_type == "konbini" else None,
            detail=str(charge.store or ""),
        )
        cid = {"charge_id": row.id}
        if charge.payment_type == "konbini":
            row.page = f"/customer/univapay/slip/{row.id}"
            if status == "pending":
                row.acts = [Act("issue_konbini", "issue_konbini", cid)]
            elif status == "awaiting":
                row.acts = [Act("pay_konbini", "pay_konbini", cid)]
                if charge.deadline is not None:
                    row.acts.append(Act("expire", "", {"until": charge.deadline.isoformat()}))
        elif charge.payment_type == "card":
            row.page = f"/customer/univapay/3ds/{row.id}"
        if charge.payment_type == "card" and status == "awaiting":
            row.acts = [
                Act("three_ds_pass", "finish_three_ds", {**cid, "result": "success"}),
                Act("three_ds_fail", "finish_three_ds", {**cid, "result": "fail"}, danger=True),
            ]
        rows.append(row)
    return rows + _ledger_rows(emulator, ("refund",))


def _payjp(emulator: Any, now: datetime) -> list[Row]:
    rows = _ledger_rows(emulator, ("charge", "balance"))
    for row in rows:
        charge = emulator.charges.get(row.id) if row.kind == "charge" else None
        if charge is not None and charge.wire.get("three_d_secure_status") == "unverified":
            row.status = f"{row.status} (3DS unverified)"
            row.page = f"/customer/payjp/3ds/{row.id}"
            row.acts = [
                Act("three_ds_pass", "tds", {"charge": row.id, "result": "verified"}),
                Act("three_ds_fail", "tds", {"charge": row.id, "result": "failed"}, danger=True),
            ]
    return rows


def _smaregi(emulator: Any, now: datetime) -> list[Row]:
    rows = _ledger_rows(emulator, ("transaction",))
    for row in rows:
        if row.status == "registered":
            head = {"transaction_head_id": row.id}
            row.acts = [
                Act("void", "void_transaction", head, danger=True),
                Act("dispose", "dispose_transaction", head, danger=True),
            ]
    return rows


_READERS: dict[str, Any] = {
    "elepay": _elepay,
    "pokepay": _pokepay,
    "univapay": _univapay,
    "payjp": _payjp,
    "smaregi": _smaregi,
}


def _customer_page(
    provider: str, kind: str, object_id: str, emulator: Any
) -> dict[str, Any] | None:
    now = emulator.now
    if (provider, kind) == ("elepay", "easyqr"):
        code = emulator.codes.get(object_id)
        if code is None:
            return None
        open_ = code.status == "pending" and code.expires > now and not code.deleted
        return {
            "kind": "qr",
            "brand": "elepay EasyQR",
            "qr_url": f"{emulator.base_url}/easyqr/{code.id}",
            "amount": code.amount,
            "state": code.status if code.expires > now else "expired",
            "deadline": code.expires,
            "description": code.description or "",
            "acts": [Act("pay", "pay_code", {"code_id": code.id}, "payment_method", ELEPAY_WALLETS)]
            if open_
            else [],
        }
    if (provider, kind) == ("pokepay", "cashtray"):
        tray = emulator.cashtrays.get(object_id)
        if tray is None:
            return None
        open_ = (
            tray.transaction_id is None
            and tray.canceled_at is None
            and tray.attempt is None
            and tray.expires_at > now
        )
        return {
            "kind": "qr",
            "brand": "Pokepay Cashtray",
            "qr_url": f"{emulator.base_url}/web/cashtrays/{tray.id}",
            "amount": abs(tray.amount),
            "state": "paid" if tray.transaction_id else ("waiting" if open_ else "closed"),
            "deadline": tray.expires_at,
            "description": tray.description or "",
            "acts": [Act("pay", "scan_cashtray", {"cashtray_id": tray.id})] if open_ else [],
        }
    if (provider, kind) == ("univapay", "slip"):
        charge = emulator.charges.get(object_id)
        if charge is None or charge.payment_type != "konbini":
            return None
        wire = charge.wire
        metadata = wire.get("metadata") or {}
        return {
            "kind": "slip",
            "brand": "UnivaPay",
            "amount": int(wire["requested_amount"]),
            "state": str(wire["status"]),
            "store": charge.store or "",
            "payment_number": metadata.get("internal_convenience_payment_number"),
            "deadline": charge.deadline,
            "description": "",
            "acts": [Act("pay_konbini", "pay_konbini", {"charge_id": object_id})]
            if wire["status"] == "awaiting"
            else [],
        }
    if (provider, kind) == ("univapay", "3ds"):
        charge = emulator.charges.get(object_id)
        if charge is None or charge.payment_type != "card":
            return None
        waiting = charge.wire["status"] == "awaiting"
        cid = {"charge_id": object_id}
        return {
            "kind": "3ds",
            "brand": "UnivaPay",
            "amount": int(charge.wire["requested_amount"]),
            "state": str(charge.wire["status"]),
            "deadline": None,
            "description": "",
            "acts": [
                Act("authenticate", "finish_three_ds", {**cid, "result": "success"}),
                Act("cancel", "finish_three_ds", {**cid, "result": "fail"}, danger=True),
            ]
            if waiting
            else [],
        }
    if (provider, kind) == ("payjp", "3ds"):
        charge = emulator.charges.get(object_id)
        if charge is None:
            return None
        waiting = charge.wire.get("three_d_secure_status") == "unverified"
        return {
            "kind": "3ds",
            "brand": "PAY.JP",
            "amount": int(charge.wire.get("amount") or 0),
            "state": str(charge.wire.get("three_d_secure_status")),
            "deadline": None,
            "description": "",
            "acts": [
                Act("authenticate", "tds", {"charge": object_id, "result": "verified"}),
                Act("cancel", "tds", {"charge": object_id, "result": "failed"}, danger=True),
            ]
            if waiting
            else [],
        }
    return None


# -- helpers --------------------------------------------------------------------------------


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("paygate_lang")
    if lang in ("ja", "en"):
        return lang
    accepted = request.headers.get("accept-language", "")
    return "ja" if accepted.lower().startswith("ja") else "en"


async def _form(request: Request) -> tuple[dict[str, str], Response | None]:
    # The sandbox listens on loopback, but a page on another site could still make the
    # developer's browser post here: refuse a form that comes from another origin.
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return {}, HTMLResponse("cross-origin form refused", status_code=403)
    if request.headers.get("sec-fetch-site") == "cross-site":
        return {}, HTMLResponse("cross-origin form refused", status_code=403)
    # The pages' forms are url-encoded; parsed here (Starlette's parser needs an extra).
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}, None


def _back(form: Mapping[str, str], ok: bool, message: str) -> Response:
    target = form.get("back", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    query = urlencode({"msg": message, "ok": "1" if ok else "0"})
    return RedirectResponse(f"{path}?{query}", status_code=303)


def _yen(amount: int | None, currency: str = "JPY") -> str:
    if amount is None:
        return ""
    return f"¥{amount:,}" if currency.upper() == "JPY" else f"{amount:,} {currency}"


def _jst(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")


def _qr_svg(data: str, scale: int = 5) -> Markup:
    from .._models import DisplayQR

    # segno draws only paths (the data is not written into the SVG).
    return Markup(DisplayQR(url=data).svg(scale=scale))  # noqa: S704
