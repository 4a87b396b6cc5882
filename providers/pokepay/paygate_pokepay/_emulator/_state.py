"""The Pokepay emulator's state: seed identities, wallets, transactions, Cashtrays.

`PokepayState` holds the tables (``wallets``, ``transactions``, ``cashtrays``, the
request ids in a `paygate.sandbox.KeyedReplies`), renders them as the Partner API's
objects and moves money between wallets; `._routes` and `._control` act on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from paygate.sandbox import (
    Emulator,
    EmulatorContext,
    EmulatorError,
    KeyedReplies,
    LedgerEntry,
    account_table,
)

from .._crypto import EnvelopeCipher, decode_client_secret

__all__ = [
    "DEFAULT_CASHTRAY_TTL",
    "FRESHNESS",
    "MESSAGES",
    "SANDBOX",
    "SCAN_ERRORS",
    "Cashtray",
    "PokepayState",
    "Seed",
    "StoredWallet",
    "Transaction",
    "Transfer",
    "api_error",
    "kind_of",
]

JST = ZoneInfo("Asia/Tokyo")
FRESHNESS = timedelta(seconds=300)
REQUEST_ID_RETENTION = timedelta(days=1)
DEFAULT_CASHTRAY_TTL = 1800


@dataclass(frozen=True)
class Seed:
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


SANDBOX = Seed()

#: type -> (ja, en): the messages of docs/error-response.csv for the types emitted here.
MESSAGES: Mapping[str, tuple[str, str]] = {
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

#: Errors a customer's scan can end in (CashtrayAttempt.error_type), besides the
#: Cashtray's own state errors.
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


def api_error(status: int, kind: str, **extra: Any) -> EmulatorError:
    """A Partner API error ``{type, **extra}``; the message is added in the request's
    language when the answer is sealed.

    >>> api_error(422, "cashtray_expired").body
    {'type': 'cashtray_expired'}
    """
    return EmulatorError(status, {"type": kind, **extra})


def kind_of(error: EmulatorError) -> str:
    """The Pokepay ``type`` of an `api_error`."""
    return str(error.body.get("type", ""))


@dataclass
class StoredWallet:
    """A wallet (Pokepay "account"): one user's balance in the sandbox's money."""

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
class Transfer:
    """One transfer of a transaction (payment, topup, refund-payment, campaign-topup...)."""

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
class Transaction:
    """A payment or topup with its transfers; ``points`` are the raw points spent."""

    id: str
    type: str
    sender: str
    receiver: str
    money: int
    points: int
    done_at: datetime
    description: str
    request_id: str | None
    transfers: list[Transfer]
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
class Cashtray:
    """A Cashtray: ``amount`` negative for a payment; one ``attempt`` at most."""

    id: str
    amount: int
    description: str
    shop_wallet: str
    expires_at: datetime
    canceled_at: datetime | None = None
    attempt: dict[str, Any] | None = None
    transaction_id: str | None = None


class PokepayState(Emulator):
    """The emulator's tables and the money moves the API and the controls share."""

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
        self.reset()

    def reset(self) -> None:
        """Forget everything and restore the seed data."""
        s = self.seed
        self.wallets: dict[str, StoredWallet] = {
            s.shop_account_id: StoredWallet(
                s.shop_account_id, s.shop_id, "paygate sandbox shop", True, 0, 0
            )
        }
        self.users: dict[str, tuple[str, bool]] = {s.shop_id: ("paygate sandbox shop", True)}
        for label, (user_id, wallet_id, money, points, status) in s.customers.items():
            name = f"sandbox customer ({label})"
            self.users[user_id] = (name, False)
            if wallet_id is not None:
                self.wallets[wallet_id] = StoredWallet(
                    wallet_id, user_id, name, False, money, points, status
                )
        self.transactions: dict[str, Transaction] = {}
        # request_id -> the transaction's id, with the customer as fingerprint, kept
        # for the retention (its window; the set_request_id_retention control sets it).
        self.request_ids = KeyedReplies(self.ctx.clock, REQUEST_ID_RETENTION)
        self.cashtrays: dict[str, Cashtray] = {}
        self.calls: dict[str, datetime] = {}
        # Settings a control action changes (see the control actions).
        self.campaign_percent = 0
        self.campaign_fixed = 0
        self.coupons: dict[str, int] = {}
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
        return account_table(
            self, "base_url", "client_id", "client_secret", "shop_id", "private_money_id"
        )

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

    def _message(self, kind: str, language: str) -> str:
        ja, en = MESSAGES.get(kind, ("エラー", kind))
        return ja if language == "ja" else en

    @staticmethod
    def _iso(when: datetime | None) -> str | None:
        return when.astimezone(JST).isoformat() if when is not None else None

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

    def _account(self, wallet: StoredWallet) -> dict[str, Any]:
        return {
            "id": wallet.id,
            "name": wallet.user_name,
            "is_suspended": wallet.status == "suspended",
            "status": wallet.status,
            "private_money": self._private_money(),
        }

    def _account_brief(self, wallet: StoredWallet) -> dict[str, Any]:
        return {
            "id": wallet.id,
            "name": wallet.user_name,
            "is_suspended": wallet.status == "suspended",
            "status": wallet.status,
            "private_money_id": self.seed.private_money_id,
            "user": self._user(wallet.user_id),
        }

    def _account_detail(self, wallet: StoredWallet) -> dict[str, Any]:
        return {
            **self._account(wallet),
            "balance": wallet.balance,
            "money_balance": wallet.money,
            "point_balance": wallet.points,
            "point_debt": 0,
            "user": self._user(wallet.user_id),
            "external_id": None,
        }

    def _transaction(self, txn: Transaction, *, detail: bool = True) -> dict[str, Any]:
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

    def _cashtray(self, tray: Cashtray, *, with_result: bool = False) -> dict[str, Any]:
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

    def _wallet_of(self, user_id: str, money_id: str | None = None) -> StoredWallet | None:
        if money_id is not None and money_id != self.seed.private_money_id:
            return None
        for wallet in self.wallets.values():
            if wallet.user_id == user_id:
                return wallet
        return None

    @staticmethod
    def _usable(wallet: StoredWallet) -> None:
        if wallet.status == "suspended":
            raise api_error(422, "account_suspended")
        if wallet.status == "closed":
            raise api_error(422, "account_closed")
        if wallet.status == "pre-closed":
            raise api_error(422, "account_pre_closed")

    def _pay(
        self,
        customer: StoredWallet,
        shop: StoredWallet,
        amount: int,
        *,
        strategy: str,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None = None,
        products: list[Any] | None = None,
        coupon_discount: int = 0,
    ) -> Transaction:
        self._usable(customer)
        if amount > self.seed.transfer_limit:
            raise api_error(422, "account_transfer_limit_exceeded")
        due = max(0, amount - coupon_discount)
        points = 0 if strategy == "money-only" else min(customer.points, due)
        money = due - points
        if money > customer.money:
            raise api_error(422, "account_balance_not_enough")
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
        sender: StoredWallet,
        receiver: StoredWallet,
        money: int,
        points: int,
        txn: Transaction,
        description: str,
    ) -> Transfer:
        return Transfer(
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
        shop: StoredWallet,
        customer: StoredWallet,
        money: int,
        points: int,
        *,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Transaction:
        self._usable(customer)
        if money > self.seed.money_topup_transfer_limit:
            raise api_error(422, "account_money_topup_transfer_limit_exceeded")
        if customer.balance + money + points > self.seed.max_balance:
            raise api_error(422, "account_balance_exceeded")
        customer.money += money
        customer.points += points
        return self._record(
            "topup", shop, customer, money, points, description, request_id, metadata, None
        )

    def _record(
        self,
        kind: str,
        sender: StoredWallet,
        receiver: StoredWallet,
        money: int,
        points: int,
        description: str,
        request_id: str | None,
        metadata: dict[str, str] | None,
        products: list[Any] | None,
    ) -> Transaction:
        txn_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        now = self.now
        transfer = Transfer(
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
        txn = Transaction(
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
            self._keep_request_id(request_id, txn)
        return txn

    def _keep_request_id(self, request_id: str, txn: Transaction) -> None:
        self.request_ids.keep(
            request_id, fingerprint=self._customer_of(txn), status=200, body=txn.id
        )

    def _by_request_id(self, request_id: str | None) -> Transaction | None:
        """The transaction of a request id Pokepay still keeps (purged after the
        retention period)."""
        kept = self.request_ids.get(request_id) if request_id is not None else None
        return None if kept is None else self.transactions[kept.body]

    def _customer_of(self, txn: Transaction) -> str:
        wallet = self.wallets[txn.receiver if txn.type == "topup" else txn.sender]
        return wallet.user_id

    def _replayed(self, request_id: str | None, customer_user: str) -> Transaction | None:
        """The documented rule: a known request id returns its transaction; only one
        made by another user is a ``request_id_conflict``."""
        txn = self._by_request_id(request_id)
        if txn is None:
            return None
        if self._customer_of(txn) != customer_user:
            raise api_error(422, "request_id_conflict")
        return txn

    def _tray(self, cashtray_id: str, *, missing: str = "notfound") -> Cashtray:
        tray = self.cashtrays.get(cashtray_id)
        if tray is None:
            raise api_error(404 if missing == "notfound" else 422, missing)
        return tray

    def _settled(self, tray: Cashtray) -> None:
        if tray.attempt is not None:
            raise api_error(422, "cashtray_already_proceed")
        if tray.canceled_at is not None:
            raise api_error(422, "cashtray_already_canceled")
        if self.now > tray.expires_at:
            raise api_error(422, "cashtray_expired")

    def _scan(
        self, tray: Cashtray, customer_id: str, strategy: str, *, forced: str | None = None
    ) -> Transaction:
        """The customer's scan: one attempt, recorded; later scans are refused."""
        if tray.attempt is not None:
            raise api_error(422, "cashtray_already_proceed")
        wallet = self._wallet_of(customer_id)
        try:
            if tray.canceled_at is not None:
                raise api_error(422, "cashtray_already_canceled")
            if self.now > tray.expires_at:
                raise api_error(422, "cashtray_expired")
            if forced is not None:
                raise api_error(422, forced)
            if wallet is None or wallet.is_merchant:
                raise api_error(422, "account_not_found")
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
        except EmulatorError as exc:
            tray.attempt = self._attempt(wallet, exc.status, kind_of(exc))
            raise
        tray.attempt = self._attempt(wallet, 200, "")
        tray.transaction_id = txn.id
        return txn

    def _attempt(self, wallet: StoredWallet | None, status: int, kind: str) -> dict[str, Any]:
        return {
            "account": self._account_detail(wallet) if wallet is not None else None,
            "status_code": status,
            "error_type": kind,
            "error_message": self._message(kind, "en") if kind else "",
            "created_at": self._iso(self.now),
        }

    def _tray_state(self, tray: Cashtray) -> str:
        if tray.attempt is not None:
            return "succeeded" if tray.transaction_id else f"failed ({tray.attempt['error_type']})"
        if tray.canceled_at is not None:
            return "canceled"
        if self.now > tray.expires_at:
            return "expired"
        return "pending"
