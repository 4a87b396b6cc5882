"""A stateful, in-memory emulator of the Pokepay Partner API for the paygate sandbox.

Wire compatibility: it reads every request form the official SDKs send (JSON or form
body; the real HTTP method, or POST with ``request_method``; base64url with or without
``=``; any throw-away block and IV) and answers ``{response_data, timestamp,
partner_call_id}`` with a throw-away block inside the ciphertext, as every SDK expects.

What it assumes where Pokepay's documentation is silent (the "Assumptions" table of
docs/providers/pokepay.md names each, with what would change it):

* Freshness (undocumented; O-P4): a request's ``timestamp`` must be within
  ``envelope_freshness`` (300 seconds unless changed with the ``set_envelope``
  control; None turns the check off) of the emulator's clock (the sandbox clock or the
  real clock, whichever is closer), else 400 ``partner_request_expired``. A
  ``partner_call_id`` seen before (within twice that window) is answered 400
  ``partner_request_already_done`` and not processed again. ``expire_envelopes`` (a
  count, set with the same control) refuses that many next envelopes as expired.
* Error bodies (O-P7): errors before the client is known (``partner_client_not_found``,
  ``partner_decryption_failed``) are plain JSON; all later errors are encrypted.
* Method (O-P5): ``request_method`` wins over the HTTP verb when both are present;
  query strings are ignored.
* Not found (O-P2, O-P3): GET /transactions/requests/{id} answers 422
  ``transaction_not_found``; other unknown objects answer 404 ``notfound``.
* request_id (documented): a repeated ``request_id`` returns the existing transaction,
  whatever else the request says; only a transaction of another customer gives 422
  ``request_id_conflict``. Request ids are "deleted after some period": here after
  ``request_id_retention`` (one day unless changed with the ``set_request_id_retention``
  control; None keeps them for ever); a purged id is unknown to the lookup and to a
  new payment.
* request_id form (whether Pokepay enforces it is not documented): a ``request_id``
  sent to create a transaction must be a UUID of version 4, as documented ("UUID
  V4フォーマット"), else 400 ``invalid_parameters`` (``invalid: [request_id]``);
  ``set_request_id_check`` with ``v4_only`` false accepts any UUID.
* Campaigns (documented fields, configurable amounts): with ``set_campaign`` a
  point-back campaign gives each payment ``percent`` % (rounded down) or ``points``
  points, issued to the customer as a ``campaign-topup`` transfer. The transaction then
  reports ``point_amount = raw_point_amount - campaign_point_amount`` and
  ``amount = money_amount + point_amount``, as the Partner API's schema says. A refund
  adds ``refund-payment`` and ``refund-campaign`` (and ``refund-coupon``) transfers.
* Coupons (shape assumed): ``add_coupon`` registers a coupon with a
  ``discount_amount``; a payment with its ``coupon_id`` charges the customer the
  amount less the discount and records a ``use-coupon`` transfer of the discount.
* Cashtray: one-shot. The first scan (success or error) is recorded as ``attempt``;
  a later scan is refused with ``cashtray_already_proceed`` and does not overwrite it.
  Cancelling a Cashtray whose scan failed answers ``cashtray_already_proceed``.
* Language (O-P8): messages are Japanese when ``Accept-Language`` starts with ``ja``,
  English otherwise.
* The shop's wallet receives payments and pays refunds; topups issue new money and
  do not draw on the shop's wallet.
"""

from __future__ import annotations

import contextlib
import html
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import ControlError, Emulator, EmulatorContext, LedgerEntry

from ._crypto import CryptoError, EnvelopeCipher, decode_client_secret

__all__ = ["SANDBOX", "PokepayEmulator"]

JST = ZoneInfo("Asia/Tokyo")
FRESHNESS = timedelta(seconds=300)
REQUEST_ID_RETENTION = timedelta(days=1)
DEFAULT_CASHTRAY_TTL = 1800


@dataclass(frozen=True)
class _Seed:
    """The fixed, documented sandbox identities."""

    client_id: str = "060c237a-a03d-55c8-9997-ce739b2ab7a5"
    # base64url (unpadded) of 32 fixed bytes; public, for the sandbox only.
    client_secret: str = "LHx39OLMRh1oXlT8n79ede5DJZjdAWLjdt84ybAIzmM"  # noqa: S105
    organization_code: str = "paygate-sandbox"
    private_money_id: str = "34998584-7931-5d26-ab44-e70e994f2d6e"
    shop_id: str = "6524415e-b36f-50c9-8639-057b9aaee11f"
    shop_account_id: str = "0ee15016-72dc-5a7a-a8e9-5f4b40025f19"
    # name -> (user id, wallet id or None, money, points, status)
    customers: Mapping[str, tuple[str, str | None, int, int, str]] = field(
        default_factory=lambda: {
            "funded": (
                "e78337d7-5aae-5629-b261-b8f63de20cb7",
                "3fd2c809-c8ac-528b-b3a1-ca537b6709b1",
                100_000,
                1_000,
                "active",
            ),
            "low_balance": (
                "6a100b66-3b49-518b-8604-dde7dabd5e97",
                "ebc0dff4-e431-5794-9222-f5a6772ed761",
                300,
                0,
                "active",
            ),
            "suspended": (
                "1aab00b5-99a7-5ba5-9127-6fe80eb0a8be",
                "5e80393c-5888-51b2-aa8c-05f2dda6e373",
                10_000,
                0,
                "suspended",
            ),
            "closed": (
                "eac27588-6df1-53e8-90b1-49c2f3f66f4c",
                "23d113c1-d789-535f-8e9d-9953a746b7e4",
                0,
                0,
                "closed",
            ),
            "no_wallet": ("d8a310df-59e4-5f0a-ba91-a8e285f61bc9", None, 0, 0, "active"),
        }
    )
    max_balance: int = 1_000_000
    transfer_limit: int = 500_000
    money_topup_transfer_limit: int = 500_000


SANDBOX = _Seed()

# type -> (ja, en): the messages of docs/error-response.csv for the types emitted here.
_MESSAGES: Mapping[str, tuple[str, str]] = {
    "partner_client_not_found": (
        "パートナークライアントが見つかりません",
        "Partner client not found",
    ),
    "partner_decryption_failed": ("復号に失敗しました", "Decryption failed"),
    "partner_request_expired": ("リクエストの有効期限が切れています", "This request is expired."),
    "partner_request_already_done": (
        "このリクエストは既に処理されています",
        "This request is already done.",
    ),
    "invalid_parameters": ("項目が無効です", "Invalid parameters"),
    "invalid_parameter_both_point_and_money_are_zero": (
        "マネー額とポイント額のどちらかは正の数である必要があります",
        "One of 'money_amount' or 'point_amount' must be a positive (>0) number",
    ),
    "notfound": ("見つかりません", "Not found"),
    "transaction_not_found": ("取引が見つかりません", "Transaction not found"),
    "coupon_not_found": ("クーポンが見つかりませんでした。", "The coupon is not found."),
    "transaction_already_refunded": (
        "取引は既に払い戻されています",
        "Transaction already refunded.",
    ),
    "not_refundable_transaction_type": (
        "キャンセルできるのは取引種別が支払いかチャージのときのみです。",
        "The transaction can refund when its type is payment or topup only",
    ),
    "account_balance_not_enough": ("口座残高が不足してます", "The account balance is not enough"),
    "account_balance_exceeded": (
        "口座残高が上限を超えました",
        "The account balance exceeded the limit",
    ),
    "account_transfer_limit_exceeded": (
        "取引金額が上限を超えました",
        "Too much amount to transfer",
    ),
    "account_money_topup_transfer_limit_exceeded": (
        "マネーチャージ金額が上限を超えました",
        "Too much amount to money topup transfer",
    ),
    "account_suspended": ("アカウントは停止されています", "The account is suspended"),
    "account_closed": ("アカウントは退会しています", "The account is closed"),
    "account_pre_closed": ("アカウントは退会準備中です", "The account is pre-closed"),
    "account_not_found": ("アカウントが見つかりません", "The account is not found"),
    "customer_account_not_found": (
        "顧客アカウントが見つかりません",
        "The customer account is not found",
    ),
    "shop_account_not_found": ("店舗アカウントが見つかりません", "The shop account is not found"),
    "shop_user_not_found": ("店舗が見つかりません", "The shop user is not found"),
    "private_money_not_found": ("マネーが見つかりません", "Private money not found"),
    "request_id_conflict": (
        "このリクエストIDは他の取引ですでに使用されています。"
        "お手数ですが、別のリクエストIDで最初からやり直してください。",
        "The request_id is already used by another transaction. Try again with new request id",
    ),
    "invalid_metadata": ("メタデータの形式が不正です", "Invalid metadata format"),
    "transaction_invalid_amount": (
        "取引金額が数値ではないか、受け入れられない桁数です",
        "Transaction amount is not a number or cannot be accepted for this currency",
    ),
    "cashtray_not_found": ("決済QRコードが見つかりません", "Cashtray is not found"),
    "cashtray_already_proceed": (
        "この決済QRコードは既に処理されています",
        "Cashtray is already proceed",
    ),
    "cashtray_expired": ("この決済QRコードは有効期限が切れています", "Cashtray is expired"),
    "cashtray_already_canceled": (
        "この決済QRコードは既に無効化されています",
        "Cashtray is already canceled",
    ),
}

# Errors a customer's scan can end in (CashtrayAttempt.error_type), besides the
# Cashtray's own state errors.
SCAN_ERRORS = (
    "account_balance_not_enough",
    "account_balance_exceeded",
    "account_transfer_limit_exceeded",
    "account_money_topup_transfer_limit_exceeded",
    "account_not_found",
    "account_suspended",
    "account_closed",
    "account_pre_closed",
)


class _ApiError(Exception):
    def __init__(self, status: int, kind: str, **extra: Any) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind
        self.extra = extra


def _invalid(
    *,
    missing: Sequence[str] = (),
    invalid: Sequence[str] = (),
    unpermitted: Sequence[str] = (),
) -> _ApiError:
    return _ApiError(
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


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _uuids(params: Mapping[str, Any], *names: str) -> None:
    bad = [n for n in names if params.get(n) is not None and not _is_uuid(params[n])]
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
        raise _ApiError(422, "transaction_invalid_amount")
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


@dataclass
class _Wallet:
    id: str
    user_id: str
    user_name: str
    is_merchant: bool
    money: int
    points: int
    status: str = "active"

    @property
    def balance(self) -> int:
        return self.money + self.points


@dataclass
class _Transfer:
    id: str
    type: str
    sender: str
    receiver: str
    money: int
    points: int
    done_at: datetime
    description: str
    transaction_id: str


@dataclass
class _Transaction:
    id: str
    type: str
    sender: str
    receiver: str
    money: int
    points: int
    done_at: datetime
    description: str
    request_id: str | None
    transfers: list[_Transfer]
    metadata: dict[str, str] = field(default_factory=dict)
    products: list[Any] = field(default_factory=list)
    is_modified: bool = False
    campaign_points: int = 0
    coupon_discount: int = 0

    @property
    def amount(self) -> int:
        """What moved between the wallets: money plus the points spent (raw)."""
        return self.money + self.points

    @property
    def point_amount(self) -> int:
        """The documented ``point_amount``: for a payment, raw points less campaign
        points; for a topup, raw points plus them."""
        if self.type == "payment":
            return self.points - self.campaign_points
        return self.points + self.campaign_points


@dataclass
class _Cashtray:
    id: str
    amount: int
    description: str
    shop_wallet: str
    expires_at: datetime
    canceled_at: datetime | None = None
    attempt: dict[str, Any] | None = None
    transaction_id: str | None = None


_Handler = Callable[[Mapping[str, Any], Mapping[str, str]], Any]


class PokepayEmulator(Emulator):
    """The Pokepay Partner API, in memory, served by the paygate sandbox under /pokepay.

    Seed data (fixed; see `SANDBOX` and docs/providers/pokepay.md): one organization,
    one private money, one shop with a wallet, and customers ``funded`` (¥100,000 and
    1,000 points), ``low_balance`` (¥300), ``suspended``, ``closed`` and ``no_wallet``.

    Control actions (``POST /_sandbox/pokepay/<action>``):

    * ``scan_cashtray``: the customer scans a Cashtray. Params ``cashtray_id`` (or
      ``token``), ``customer_id`` (default: the funded customer), ``strategy``, and
      ``error`` to force one of `SCAN_ERRORS`.
    * ``topup``: add ``money_amount`` / ``point_amount`` to ``customer_id``'s wallet.
    * ``set_account_status``: ``customer_id`` and ``status`` (active, suspended,
      pre-closed, closed).
    * ``account``: the wallet of ``customer_id`` (or the shop when omitted).
    * ``set_campaign``: a point-back campaign on every payment, ``percent`` or
      ``points`` (both 0 or absent: no campaign).
    * ``add_coupon``: a coupon of ``discount_amount`` yen; answers its ``coupon_id``.
    * ``set_request_id_retention``: ``seconds`` request ids are kept (null: for ever).
    * ``set_request_id_check``: ``v4_only`` (default true): refuse request ids that are
      not version-4 UUIDs.
    * ``set_envelope``: ``freshness_seconds`` (null: no freshness check) and
      ``expire_next`` (that many next envelopes are refused as expired).
    """

    name: ClassVar[str] = "pokepay"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.seed = SANDBOX
        self.cipher = EnvelopeCipher(
            decode_client_secret(self.seed.client_secret),
            iv_source=lambda: self.ctx.rng.randbytes(16),
        )
        # The real clock, for the freshness check of clients that stamp real time.
        self.wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._routes: list[tuple[str, str, _Handler]] = [
            ("POST", "echo", self._echo),
            ("POST", "transactions/payment", self._payment),
            ("POST", "transactions/topup", self._topup),
            ("POST", "transactions/cashtray", self._transaction_with_cashtray),
            ("GET", "transactions/requests/{request_id}", self._get_by_request_id),
            ("GET", "transactions/{id}", self._get_transaction),
            ("POST", "transactions/{id}/refund", self._refund),
            ("POST", "cashtrays", self._create_cashtray),
            ("GET", "cashtrays/{id}", self._get_cashtray),
            ("PATCH", "cashtrays/{id}", self._update_cashtray),
            ("DELETE", "cashtrays/{id}", self._cancel_cashtray),
            ("GET", "accounts/{id}", self._get_account),
            ("GET", "accounts/{id}/balances", self._get_balances),
            ("GET", "users/{id}/accounts", self._user_accounts),
            ("GET", "private-moneys", self._private_moneys),
        ]
        self.reset()

    # -- host interface ------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and restore the seed data."""
        s = self.seed
        self.wallets: dict[str, _Wallet] = {
            s.shop_account_id: _Wallet(
                s.shop_account_id, s.shop_id, "paygate sandbox shop", True, 0, 0
            )
        }
        self.users: dict[str, tuple[str, bool]] = {s.shop_id: ("paygate sandbox shop", True)}
        for label, (user_id, wallet_id, money, points, status) in s.customers.items():
            name = f"sandbox customer ({label})"
            self.users[user_id] = (name, False)
            if wallet_id is not None:
                self.wallets[wallet_id] = _Wallet(
                    wallet_id, user_id, name, False, money, points, status
                )
        self.transactions: dict[str, _Transaction] = {}
        self.by_request_id: dict[str, str] = {}
        self.cashtrays: dict[str, _Cashtray] = {}
        self.calls: dict[str, datetime] = {}
        # Settings a control action changes (see the class docstring).
        self.campaign_percent = 0
        self.campaign_fixed = 0
        self.coupons: dict[str, int] = {}
        self.request_id_retention: timedelta | None = REQUEST_ID_RETENTION
        self.request_id_v4_only = True
        self.envelope_freshness: timedelta | None = FRESHNESS
        self.expire_next = 0

    def credentials(self) -> dict[str, Any]:
        """The fixed test credentials and seed ids."""
        s = self.seed
        return {
            "base_url": self.base_url,
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "shop_id": s.shop_id,
            "shop_account_id": s.shop_account_id,
            "private_money_id": s.private_money_id,
            "customers": {label: c[0] for label, c in s.customers.items()},
        }

    def account_settings(self) -> dict[str, Any]:
        """A paygate account table pointing at this emulator."""
        s = self.seed
        return {
            "provider": "pokepay",
            "base_url": self.base_url,
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "shop_id": s.shop_id,
            "private_money_id": s.private_money_id,
        }

    def routes(self) -> Sequence[BaseRoute]:
        """The Partner API plus a small web page per Cashtray token."""
        methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
        return [
            Route("/ping", self._ping, methods=["GET", "POST"]),
            Route("/web/cashtrays/{id}", self._web_cashtray, methods=["GET"]),
            Route("/web/cashtrays/{id}/scan", self._web_scan, methods=["POST"]),
            Route("/{path:path}", self._api, methods=methods),
        ]

    def ledger(self) -> list[LedgerEntry]:
        """Every transaction, refunded ones with their refunded amount."""
        return [
            LedgerEntry(
                kind=t.type,
                id=t.id,
                key=t.request_id,
                amount=t.amount + t.coupon_discount,
                refunded=t.amount + t.coupon_discount if t.is_modified else 0,
                status="refunded" if t.is_modified else "done",
            )
            for t in self.transactions.values()
        ]

    async def control(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Customer-side actions: scan a Cashtray, top a wallet up, change a status."""
        if action == "scan_cashtray":
            return self._control_scan(params)
        if action == "topup":
            wallet = self._control_wallet(params)
            money = self._control_int(params, "money_amount")
            points = self._control_int(params, "point_amount")
            wallet.money += money
            wallet.points += points
            return self._account_detail(wallet)
        if action == "set_account_status":
            wallet = self._control_wallet(params)
            status = params.get("status")
            if status not in ("active", "suspended", "pre-closed", "closed"):
                raise ControlError("status must be active, suspended, pre-closed or closed")
            wallet.status = str(status)
            return self._account_detail(wallet)
        if action == "account":
            if params.get("customer_id") is None:
                return self._account_detail(self.wallets[self.seed.shop_account_id])
            return self._account_detail(self._control_wallet(params))
        if action == "set_campaign":
            self.campaign_percent = self._control_int(params, "percent")
            self.campaign_fixed = self._control_int(params, "points")
            return {"percent": self.campaign_percent, "points": self.campaign_fixed}
        if action == "add_coupon":
            discount = self._control_int(params, "discount_amount")
            coupon_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
            self.coupons[coupon_id] = discount
            return {"coupon_id": coupon_id, "discount_amount": discount}
        if action == "set_request_id_retention":
            seconds = params.get("seconds")
            self.request_id_retention = (
                None if seconds is None else timedelta(seconds=self._control_int(params, "seconds"))
            )
            return {"seconds": seconds}
        if action == "set_request_id_check":
            v4_only = params.get("v4_only", True)
            if not isinstance(v4_only, bool):
                raise ControlError("v4_only must be true or false")
            self.request_id_v4_only = v4_only
            return {"v4_only": v4_only}
        if action == "set_envelope":
            if "freshness_seconds" in params:
                fresh = params.get("freshness_seconds")
                self.envelope_freshness = (
                    None
                    if fresh is None
                    else timedelta(seconds=self._control_int(params, "freshness_seconds"))
                )
            if "expire_next" in params:
                self.expire_next = self._control_int(params, "expire_next")
            freshness = self.envelope_freshness
            return {
                "freshness_seconds": None if freshness is None else freshness.total_seconds(),
                "expire_next": self.expire_next,
            }
        raise ControlError(f"unknown action {action!r} for pokepay", status=404)

    def demo(self, demo: Any) -> None:
        """``paygate demo``: a wallet payment refunded, a Cashtray paid by a scan, a
        second Cashtray cancelled, and the shop wallet's balance."""
        from paygate import ChargeStatus, Money, QRCode, Wallet

        gw, account = demo.gateway, demo.account
        customer = self.seed.customers["funded"][0]
        paid = demo.step(
            "charge (wallet)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(1200),
                method=Wallet(customer_id=customer),
                metadata={"order": "demo-1"},
                idempotency_key="demo-pokepay-order-1",
            ),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        demo.step(
            "refund (whole)",
            lambda: gw.refund(account, paid.id, idempotency_key="demo-pokepay-r1"),
        )
        demo.step(
            "status",
            lambda: gw.status(account, paid.id),
            expect=lambda c: c.status is ChargeStatus.REFUNDED,
        )
        tray = demo.step(
            "charge (Cashtray QR)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(1500),
                method=QRCode(expires_in=timedelta(minutes=5)),
                idempotency_key="demo-pokepay-order-2",
            ),
            expect=lambda c: c.status is ChargeStatus.REQUIRES_ACTION,
        )
        demo.step(
            "customer scans the QR",
            lambda: demo.sandbox.control(self.name, "scan_cashtray", token=tray.next_action.url),
        )
        demo.step(
            "status",
            lambda: gw.status(account, tray.id),
            expect=lambda c: c.status is ChargeStatus.SUCCEEDED,
        )
        other = demo.step(
            "charge (second Cashtray)",
            lambda: gw.charge(
                account,
                amount=Money.jpy(800),
                method=QRCode(),
                idempotency_key="demo-pokepay-order-3",
            ),
        )
        demo.step(
            "cancel (CancelCashtray)",
            lambda: gw.cancel(account, other.id),
            expect=lambda c: c.status is ChargeStatus.CANCELED,
        )
        demo.step("payout balance (shop wallet)", lambda: gw.payout_balance(account))

    # -- control helpers -------------------------------------------------------------

    def _control_wallet(self, params: Mapping[str, Any]) -> _Wallet:
        customer = params.get("customer_id") or self.seed.customers["funded"][0]
        wallet = self._wallet_of(str(customer))
        if wallet is None:
            raise ControlError("no wallet for this customer and money", status=404)
        return wallet

    @staticmethod
    def _control_int(params: Mapping[str, Any], name: str) -> int:
        value = params.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ControlError(f"{name} must be a non-negative integer")
        return value

    def _control_scan(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cashtray_id = params.get("cashtray_id")
        token = params.get("token")
        if cashtray_id is None and isinstance(token, str):
            cashtray_id = token.rstrip("/").rsplit("/", 1)[-1]
        cashtray = self.cashtrays.get(str(cashtray_id))
        if cashtray is None:
            raise ControlError("unknown Cashtray", status=404)
        customer = str(params.get("customer_id") or self.seed.customers["funded"][0])
        forced = params.get("error")
        if forced is not None and forced not in SCAN_ERRORS:
            raise ControlError(f"error must be one of {', '.join(SCAN_ERRORS)}")
        strategy = str(params.get("strategy") or "point-preferred")
        try:
            txn = self._scan(cashtray, customer, strategy, forced=forced)
        except _ApiError as exc:
            return {
                "status_code": exc.status,
                "error_type": exc.kind,
                "error_message": self._message(exc.kind, "en"),
                "transaction_id": None,
            }
        return {"status_code": 200, "error_type": "", "error_message": "", "transaction_id": txn.id}

    # -- envelope --------------------------------------------------------------------

    async def _ping(self, request: Request) -> Response:
        return JSONResponse({"pong": "ok"})

    async def _api(self, request: Request) -> Response:
        language = (
            "ja" if request.headers.get("accept-language", "").lower().startswith("ja") else "en"
        )
        outer = self._outer(await request.body(), request.headers.get("content-type", ""))
        client_id = outer.get("partner_client_id")
        if client_id != self.seed.client_id:
            return self._plain(400, "partner_client_not_found", language)
        try:
            inner = json.loads(self.cipher.decrypt(str(outer.get("data", ""))).decode("utf-8"))
        except (CryptoError, UnicodeDecodeError, ValueError):
            return self._plain(400, "partner_decryption_failed", language)
        if not isinstance(inner, dict):
            return self._plain(400, "partner_decryption_failed", language)
        call_id = inner.get("partner_call_id")
        reply_call_id = call_id if isinstance(call_id, str) else str(uuid.uuid4())
        try:
            params = self._check_envelope(inner)
            method = str(outer.get("request_method") or request.method).upper()
            handler, path_params = self._route(method, request.path_params.get("path", ""))
            result = handler(params, path_params)
        except _ApiError as exc:
            body = {"type": exc.kind, "message": self._message(exc.kind, language), **exc.extra}
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
        if not isinstance(request_data, dict) or not _is_uuid(call_id):
            raise _invalid(
                invalid=["partner_call_id"] if not _is_uuid(call_id) else ["request_data"]
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
            raise _ApiError(400, "partner_request_expired")
        fresh = self.envelope_freshness
        if fresh is not None and not any(
            abs(when - now) <= fresh for now in (self.now, self.wall_clock())
        ):
            raise _ApiError(400, "partner_request_expired")
        self._forget_old_calls()
        assert isinstance(call_id, str)
        if call_id in self.calls:
            raise _ApiError(400, "partner_request_already_done")
        self.calls[call_id] = self.now
        return request_data

    def _forget_old_calls(self) -> None:
        horizon = self.now - 2 * (self.envelope_freshness or FRESHNESS)
        for call_id in [c for c, seen in self.calls.items() if seen < horizon]:
            del self.calls[call_id]

    def _route(self, method: str, path: str) -> tuple[_Handler, dict[str, str]]:
        parts = [p for p in path.strip("/").split("/") if p]
        for verb, pattern, handler in self._routes:
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
                return handler, found
        raise _ApiError(404, "notfound")

    def _message(self, kind: str, language: str) -> str:
        ja, en = _MESSAGES.get(kind, ("エラー", kind))
        return ja if language == "ja" else en

    def _plain(self, status: int, kind: str, language: str) -> Response:
        return JSONResponse({"type": kind, "message": self._message(kind, language)}, status)

    def _sealed(self, status: int, body: Any, call_id: str) -> Response:
        plaintext = json.dumps(body, ensure_ascii=False).encode()
        return JSONResponse(
            {
                "response_data": self.cipher.encrypt(plaintext),
                "timestamp": self._iso(self.now),
                "partner_call_id": call_id,
            },
            status,
        )

    @staticmethod
    def _iso(when: datetime | None) -> str | None:
        return when.astimezone(JST).isoformat() if when is not None else None

    # -- objects -------------------------------------------------------------------

    def _private_money(self) -> dict[str, Any]:
        s = self.seed
        return {
            "id": s.private_money_id,
            "name": "paygate sandbox money",
            "unit": "円",
            "is_exclusive": False,
            "description": "",
            "oneline_message": "",
            "organization": {"code": s.organization_code, "name": "paygate sandbox"},
            "max_balance": s.max_balance,
            "transfer_limit": s.transfer_limit,
            "money_topup_transfer_limit": s.money_topup_transfer_limit,
            "type": "own",
            "expiration_type": "static",
            "enable_topup_by_member": None,
            "display_money_and_point": "both",
        }

    def _user(self, user_id: str) -> dict[str, Any]:
        name, merchant = self.users[user_id]
        return {"id": user_id, "name": name, "is_merchant": merchant}

    def _account(self, wallet: _Wallet) -> dict[str, Any]:
        return {
            "id": wallet.id,
            "name": wallet.user_name,
            "is_suspended": wallet.status == "suspended",
            "status": wallet.status,
            "private_money": self._private_money(),
        }

    def _account_brief(self, wallet: _Wallet) -> dict[str, Any]:
        return {
            "id": wallet.id,
            "name": wallet.user_name,
            "is_suspended": wallet.status == "suspended",
            "status": wallet.status,
            "private_money_id": self.seed.private_money_id,
            "user": self._user(wallet.user_id),
        }

    def _account_detail(self, wallet: _Wallet) -> dict[str, Any]:
        return {
            **self._account(wallet),
            "balance": wallet.balance,
            "money_balance": wallet.money,
            "point_balance": wallet.points,
            "point_debt": 0,
            "user": self._user(wallet.user_id),
            "external_id": None,
        }

    def _transaction(self, txn: _Transaction, *, detail: bool = True) -> dict[str, Any]:
        sender, receiver = self.wallets[txn.sender], self.wallets[txn.receiver]
        body: dict[str, Any] = {
            "id": txn.id,
            "type": txn.type,
            "is_modified": txn.is_modified,
            "sender": self._user(sender.user_id),
            "sender_account": self._account(sender),
            "receiver": self._user(receiver.user_id),
            "receiver_account": self._account(receiver),
            "amount": txn.money + txn.point_amount,
            "money_amount": txn.money,
            "point_amount": txn.point_amount,
            "raw_point_amount": txn.points,
            "campaign_point_amount": txn.campaign_points,
            "done_at": self._iso(txn.done_at),
            "description": txn.description,
        }
        if detail:
            body["transfers"] = [
                {
                    "id": t.id,
                    "sender_account": self._account_brief(self.wallets[t.sender]),
                    "receiver_account": self._account_brief(self.wallets[t.receiver]),
                    "amount": t.money + t.points,
                    "money_amount": t.money,
                    "point_amount": t.points,
                    "done_at": self._iso(t.done_at),
                    "type": t.type,
                    "description": t.description,
                    "transaction_id": t.transaction_id,
                }
                for t in txn.transfers
            ]
        return body

    def _cashtray(self, tray: _Cashtray, *, with_result: bool = False) -> dict[str, Any]:
        shop = self.wallets[tray.shop_wallet]
        body: dict[str, Any] = {
            "id": tray.id,
            "amount": tray.amount,
            "description": tray.description,
            "account": {**self._account(shop), "user": self._user(shop.user_id)},
            "expires_at": self._iso(tray.expires_at),
            "canceled_at": self._iso(tray.canceled_at),
            "token": f"{self.base_url}/web/cashtrays/{tray.id}",
        }
        if with_result:
            body["attempt"] = dict(tray.attempt) if tray.attempt is not None else None
            txn = self.transactions.get(tray.transaction_id or "")
            body["transaction"] = self._transaction(txn, detail=False) if txn else None
        return body

    # -- wallets and money ---------------------------------------------------------

    def _wallet_of(self, user_id: str, money_id: str | None = None) -> _Wallet | None:
        if money_id is not None and money_id != self.seed.private_money_id:
            return None
        for wallet in self.wallets.values():
            if wallet.user_id == user_id:
                return wallet
        return None

    @staticmethod
    def _usable(wallet: _Wallet) -> None:
        if wallet.status == "suspended":
            raise _ApiError(422, "account_suspended")
        if wallet.status == "closed":
            raise _ApiError(422, "account_closed")
        if wallet.status == "pre-closed":
            raise _ApiError(422, "account_pre_closed")

    def _pay(
        self,
        customer: _Wallet,
        shop: _Wallet,
        amount: int,
        *,
        strategy: str,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None = None,
        products: list[Any] | None = None,
        coupon_discount: int = 0,
    ) -> _Transaction:
        self._usable(customer)
        if amount > self.seed.transfer_limit:
            raise _ApiError(422, "account_transfer_limit_exceeded")
        due = max(0, amount - coupon_discount)
        points = 0 if strategy == "money-only" else min(customer.points, due)
        money = due - points
        if money > customer.money:
            raise _ApiError(422, "account_balance_not_enough")
        customer.points -= points
        customer.money -= money
        shop.points += points
        shop.money += money
        txn = self._record(
            "payment", customer, shop, money, points, description, request_id, metadata, products
        )
        if coupon_discount:
            txn.coupon_discount = amount - due
            txn.transfers.append(
                self._transfer("use-coupon", customer, shop, amount - due, 0, txn, description)
            )
        campaign = self.campaign_fixed + (due * self.campaign_percent) // 100
        if campaign:
            # Point-back: new points issued to the customer (the shop's wallet is named
            # as the sender; its balance is not drawn).
            customer.points += campaign
            txn.campaign_points = campaign
            txn.transfers.append(
                self._transfer("campaign-topup", shop, customer, 0, campaign, txn, description)
            )
        return txn

    def _transfer(
        self,
        kind: str,
        sender: _Wallet,
        receiver: _Wallet,
        money: int,
        points: int,
        txn: _Transaction,
        description: str,
    ) -> _Transfer:
        return _Transfer(
            str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4)),
            kind,
            sender.id,
            receiver.id,
            money,
            points,
            self.now,
            description,
            txn.id,
        )

    def _issue(
        self,
        shop: _Wallet,
        customer: _Wallet,
        money: int,
        points: int,
        *,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None = None,
    ) -> _Transaction:
        self._usable(customer)
        if money > self.seed.money_topup_transfer_limit:
            raise _ApiError(422, "account_money_topup_transfer_limit_exceeded")
        if customer.balance + money + points > self.seed.max_balance:
            raise _ApiError(422, "account_balance_exceeded")
        customer.money += money
        customer.points += points
        return self._record(
            "topup", shop, customer, money, points, description, request_id, metadata, None
        )

    def _record(
        self,
        kind: str,
        sender: _Wallet,
        receiver: _Wallet,
        money: int,
        points: int,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None,
        products: list[Any] | None,
    ) -> _Transaction:
        txn_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        now = self.now
        transfer = _Transfer(
            str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4)),
            kind,
            sender.id,
            receiver.id,
            money,
            points,
            now,
            description,
            txn_id,
        )
        txn = _Transaction(
            txn_id,
            kind,
            sender.id,
            receiver.id,
            money,
            points,
            now,
            description,
            request_id,
            [transfer],
            dict(metadata or {}),
            list(products or []),
        )
        self.transactions[txn_id] = txn
        if request_id is not None:
            self.by_request_id[request_id] = txn_id
        return txn

    def _by_request_id(self, request_id: str | None) -> _Transaction | None:
        """The transaction of a request id Pokepay still keeps (purged after the
        retention period)."""
        if request_id is None or request_id not in self.by_request_id:
            return None
        txn = self.transactions[self.by_request_id[request_id]]
        retention = self.request_id_retention
        if retention is not None and txn.done_at + retention < self.now:
            del self.by_request_id[request_id]
            return None
        return txn

    def _check_request_id(self, params: Mapping[str, Any]) -> None:
        value = params.get("request_id")
        if value is not None and self.request_id_v4_only and uuid.UUID(value).version != 4:
            raise _invalid(invalid=["request_id"])

    def _customer_of(self, txn: _Transaction) -> str:
        wallet = self.wallets[txn.receiver if txn.type == "topup" else txn.sender]
        return wallet.user_id

    def _replayed(self, request_id: str | None, customer_user: str) -> _Transaction | None:
        """The documented rule: a known request id returns its transaction; only one
        made by another user is a ``request_id_conflict``."""
        txn = self._by_request_id(request_id)
        if txn is None:
            return None
        if self._customer_of(txn) != customer_user:
            raise _ApiError(422, "request_id_conflict")
        return txn

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
            raise _ApiError(422, "invalid_metadata")
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

    # -- API handlers --------------------------------------------------------------

    def _echo(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, ["message"], [])
        return {"status": "ok", "message": p["message"]}

    def _shop_wallet(self, shop_id: str, money_id: str, *, missing: str) -> _Wallet:
        if shop_id not in self.users or not self.users[shop_id][1]:
            raise _ApiError(422, missing)
        wallet = self._wallet_of(shop_id, money_id)
        if wallet is None:
            raise _ApiError(422, missing)
        return wallet

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
                raise _ApiError(422, "coupon_not_found")
            discount = self.coupons[p["coupon_id"]]
        if p["private_money_id"] != self.seed.private_money_id:
            raise _ApiError(422, "private_money_not_found")
        shop = self._shop_wallet(
            p["shop_id"], p["private_money_id"], missing="shop_account_not_found"
        )
        customer = self._wallet_of(p["customer_id"], p["private_money_id"])
        if customer is None or customer.is_merchant:
            raise _ApiError(422, "customer_account_not_found")
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
            raise _ApiError(400, "invalid_parameter_both_point_and_money_are_zero")
        description = _text(p, "description", 200)
        metadata = self._metadata(p)
        request_id = p.get("request_id")
        replay = self._replayed(request_id, p["customer_id"])
        if replay is not None:
            return self._transaction(replay)
        if p["private_money_id"] != self.seed.private_money_id:
            raise _ApiError(422, "private_money_not_found")
        shop = self._shop_wallet(
            p["shop_id"], p["private_money_id"], missing="shop_account_not_found"
        )
        customer = self._wallet_of(p["customer_id"], p["private_money_id"])
        if customer is None or customer.is_merchant:
            raise _ApiError(422, "customer_account_not_found")
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
            raise _ApiError(404, "notfound")
        return self._transaction(txn)

    def _get_by_request_id(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        txn = self._by_request_id(path["request_id"])
        if txn is None:
            raise _ApiError(422, "transaction_not_found")
        return self._transaction(txn)

    def _refund(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["description", "returning_point_expires_at"])
        description = _text(p, "description", 200)
        txn = self.transactions.get(path["id"])
        if txn is None:
            raise _ApiError(422, "transaction_not_found")
        if txn.is_modified:
            raise _ApiError(422, "transaction_already_refunded")
        if txn.type not in ("payment", "topup"):
            raise _ApiError(422, "not_refundable_transaction_type")
        payer, payee = self.wallets[txn.sender], self.wallets[txn.receiver]
        if txn.type == "payment":
            if payer.status == "closed":
                raise _ApiError(422, "account_closed")
            if payer.status == "pre-closed":
                raise _ApiError(422, "account_pre_closed")
        elif payee.money < txn.money or payee.points < txn.points:
            raise _ApiError(422, "account_balance_not_enough")
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
            raise _ApiError(422, "shop_user_not_found")
        shop = self._wallet_of(shop_id, p["private_money_id"])
        if shop is None:
            raise _ApiError(422, "account_not_found")
        tray = _Cashtray(
            id=str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4)),
            amount=amount,
            description=description,
            shop_wallet=shop.id,
            expires_at=self.now + timedelta(seconds=expires_in),
        )
        self.cashtrays[tray.id] = tray
        return self._cashtray(tray)

    def _tray(self, cashtray_id: str, *, missing: str = "notfound") -> _Cashtray:
        tray = self.cashtrays.get(cashtray_id)
        if tray is None:
            raise _ApiError(404 if missing == "notfound" else 422, missing)
        return tray

    def _get_cashtray(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        return self._cashtray(self._tray(path["id"]), with_result=True)

    def _settled(self, tray: _Cashtray) -> None:
        if tray.attempt is not None:
            raise _ApiError(422, "cashtray_already_proceed")
        if tray.canceled_at is not None:
            raise _ApiError(422, "cashtray_already_canceled")
        if self.now > tray.expires_at:
            raise _ApiError(422, "cashtray_expired")

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

    def _scan(
        self, tray: _Cashtray, customer_id: str, strategy: str, *, forced: str | None = None
    ) -> _Transaction:
        """The customer's scan: one attempt, recorded; later scans are refused."""
        if tray.attempt is not None:
            raise _ApiError(422, "cashtray_already_proceed")
        wallet = self._wallet_of(customer_id)
        try:
            if tray.canceled_at is not None:
                raise _ApiError(422, "cashtray_already_canceled")
            if self.now > tray.expires_at:
                raise _ApiError(422, "cashtray_expired")
            if forced is not None:
                raise _ApiError(422, forced)
            if wallet is None or wallet.is_merchant:
                raise _ApiError(422, "account_not_found")
            shop = self.wallets[tray.shop_wallet]
            if tray.amount < 0:
                txn = self._pay(
                    wallet,
                    shop,
                    -tray.amount,
                    strategy=strategy,
                    description=tray.description,
                    request_id=None,
                )
            else:
                txn = self._issue(
                    shop, wallet, tray.amount, 0, description=tray.description, request_id=None
                )
        except _ApiError as exc:
            tray.attempt = self._attempt(wallet, exc.status, exc.kind)
            raise
        tray.attempt = self._attempt(wallet, 200, "")
        tray.transaction_id = txn.id
        return txn

    def _attempt(self, wallet: _Wallet | None, status: int, kind: str) -> dict[str, Any]:
        return {
            "account": self._account_detail(wallet) if wallet is not None else None,
            "status_code": status,
            "error_type": kind,
            "error_message": self._message(kind, "en") if kind else "",
            "created_at": self._iso(self.now),
        }

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
            self.by_request_id[request_id] = txn.id
        return self._transaction(txn)

    def _get_account(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        wallet = self.wallets.get(path["id"])
        if wallet is None:
            raise _ApiError(404, "notfound")
        return self._account_detail(wallet)

    @staticmethod
    def _page(rows: list[Any], p: Mapping[str, Any], default_per_page: int) -> dict[str, Any]:
        page = _whole(p.get("page", 1), "page", minimum=1)
        per_page = _whole(p.get("per_page", default_per_page), "per_page", minimum=1)
        max_page = max(1, -(-len(rows) // per_page))
        start = (page - 1) * per_page
        return {
            "rows": rows[start : start + per_page],
            "count": len(rows),
            "pagination": {
                "current": page,
                "per_page": per_page,
                "max_page": max_page,
                "has_prev": page > 1,
                "has_next": page < max_page,
            },
        }

    def _get_balances(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["page", "per_page", "expires_at_from", "expires_at_to", "direction"])
        wallet = self.wallets.get(path["id"])
        if wallet is None:
            raise _ApiError(404, "notfound")
        rows = [{"expires_at": None, "money_amount": wallet.money, "point_amount": wallet.points}]
        return self._page(rows, p, 30)

    def _user_accounts(self, p: Mapping[str, Any], path: Mapping[str, str]) -> Any:
        _check(p, [], ["page", "per_page"])
        if path["id"] not in self.users:
            raise _ApiError(404, "notfound")
        rows = [self._account_detail(w) for w in self.wallets.values() if w.user_id == path["id"]]
        return self._page(rows, p, 50)

    def _private_moneys(self, p: Mapping[str, Any], _: Mapping[str, str]) -> Any:
        _check(p, [], ["organization_code", "page", "per_page"])
        return self._page([self._private_money()], p, 30)

    # -- the token's web page ------------------------------------------------------

    def _tray_state(self, tray: _Cashtray) -> str:
        if tray.attempt is not None:
            return "succeeded" if tray.transaction_id else f"failed ({tray.attempt['error_type']})"
        if tray.canceled_at is not None:
            return "canceled"
        if self.now > tray.expires_at:
            return "expired"
        return "pending"

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
        with contextlib.suppress(_ApiError):
            self._scan(tray, self.seed.customers["funded"][0], "point-preferred")
        return await self._web_cashtray(request)
