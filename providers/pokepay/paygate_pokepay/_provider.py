"""The Pokepay Partner API adapter: wallet payments and Cashtray QR codes.

Idempotency: a wallet payment carries ``request_id``, a UUID in the documented v4 form
derived from the merchant's idempotency key; Pokepay answers a repeated ``request_id``
with the transaction it already made (and ``request_id_conflict`` when the id belongs
to another user's transaction), and ``GET /transactions/requests/{request_id}`` tells
whether a payment whose answer was lost exists. A Cashtray has no request id and
cannot be listed, so a lost Cashtray cannot be found again; but nobody ever saw its QR
code, so nobody can pay it and it expires unused: creating a fresh one is safe (see
`lookup_charge`). A transaction is refunded at most once
(``transaction_already_refunded`` after that), which makes refunds safe to repeat;
cancelling a Cashtray twice answers ``cashtray_already_canceled``, likewise safe.

Retry: the driver re-sends the very same envelope, so the same ``partner_call_id``;
should Pokepay answer ``partner_request_already_done``, each flow recovers with a fresh
envelope (reads re-read, payments re-send under the same ``request_id``, refunds and
cancels re-read the object first). ``partner_request_expired`` refuses the envelope
before anything is done: it is rebuilt once (fresh timestamp, IV and call id) and sent
again; a second refusal is `Outcome.RETRYABLE` (the key is released).

Amounts: a payment transaction's ``amount`` is money plus points *net of point-back
campaign points* (``point_amount = raw_point_amount - campaign_point_amount``), so the
charge's amount is what the customer paid, ``money_amount + raw_point_amount``; the
campaign figures stay in ``raw``. A refund counts only its ``refund-payment`` transfers:
``refund-campaign`` and ``refund-coupon`` take back points, they return no money.

Status: a wallet payment is final when created (succeeded), refunded when the
transaction's ``is_modified`` is set. A Cashtray follows Pokepay's state machine: no
attempt -> canceled (``canceled_at``), expired (``expires_at`` passed) or waiting for
the scan (requires_action); an attempt with a transaction -> succeeded; an attempt
without -> failed with the attempt's ``error_type``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Generator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    ConfigurationError,
    DisplayQR,
    Failure,
    IdempotencyConflict,
    InvalidRequest,
    MalformedResponse,
    MethodCapabilities,
    Money,
    NotFound,
    NotSupported,
    PayoutBalance,
    PayoutItem,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    QRCode,
    Refund,
    RefundStatus,
    Wallet,
)
from paygate.adapter import (
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    Effect,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Outcome,
    Provider,
    ProviderSettings,
    RefundRequest,
    Retry,
)

from ._crypto import EnvelopeCipher, random_iv
from ._errors import PROVIDER
from ._settings import PokepaySettings
from ._wire import Answer, Wire, as_amount, as_time, field

if TYPE_CHECKING:
    from paygate.sandbox import Emulator

__all__ = ["PokepayProvider", "payment_request_id"]

MIN_AMOUNT = 1
# Not documented. Each private money has its own transfer_limit, answered with
# account_transfer_limit_exceeded; this bound only keeps absurd amounts off the wire.
MAX_AMOUNT = 99_999_999
MAX_DESCRIPTION = 200
MAX_PRODUCT_NAME = 256
MAX_PRODUCT_CODE = 64

ALREADY_DONE = "partner_request_already_done"
EXPIRED = "partner_request_expired"
#: The transfer types that move the refunded payment (or topup) back; a refund's other
#: transfers (``refund-campaign``, ``refund-coupon``) cancel points and coupons.
REFUND_TRANSFERS = ("refund-payment", "refund-topup")
_G = Generator[Effect, Any, Any]

_REF = re.compile(
    r"^(?:(?P<kind>transaction|cashtray):)?(?P<id>[0-9a-fA-F-]{36})"
    r"(?:/transaction:(?P<txn>[0-9a-fA-F-]{36}))?$"
)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, provider=PROVIDER)


def paid_amount(data: Mapping[str, Any]) -> int:
    """What the customer paid in a payment transaction: money plus the points spent.

    ``amount`` is "money + points", but ``point_amount`` is net of the point-back
    campaign (for a payment, ``point_amount = raw_point_amount -
    campaign_point_amount``), so ``amount`` falls short of the requested total when a
    campaign gives points. ``money_amount + raw_point_amount`` is the paid total under
    every reading; without ``raw_point_amount`` it is rebuilt from ``point_amount`` and
    ``campaign_point_amount``; ``amount`` is used only when neither is given.
    """
    money = data.get("money_amount")
    if money is not None:
        raw_points = data.get("raw_point_amount")
        if raw_points is not None:
            return as_amount(money, "money_amount") + as_amount(raw_points, "raw_point_amount")
        points, campaign = data.get("point_amount"), data.get("campaign_point_amount")
        if points is not None and campaign is not None:
            return (
                as_amount(money, "money_amount")
                + as_amount(points, "point_amount")
                + as_amount(campaign, "campaign_point_amount")
            )
    return as_amount(field(data, "amount"), "amount")


def payment_request_id(ctx: OpContext) -> str:
    """The ``request_id`` of the wallet payment of ``ctx``'s idempotency key.

    Documented as "UUID V4 format": the bytes of paygate's UUIDv5 of the key carry the
    v4 version and variant bits, so the id stays deterministic for the key (a re-send
    after a crash sends the same id) and is an RFC-valid v4 UUID.
    """
    return str(uuid.UUID(bytes=ctx.key_uuid("payment").bytes, version=4))


def _nested_id(data: Mapping[str, Any], *path: str) -> str | None:
    node: Any = data
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return str(node) if isinstance(node, str) and node else None


class _Ref:
    """A parsed provider_ref: ``transaction:<id>``, ``cashtray:<id>`` or
    ``cashtray:<id>/transaction:<id>`` (a bare UUID is read by the charge's method)."""

    def __init__(self, ref: ChargeRef) -> None:
        match = _REF.match(ref.provider_ref)
        if match is None or not _is_uuid(match["id"]):
            raise _invalid("not a Pokepay charge reference", "charge")
        kind = match["kind"] or ("cashtray" if ref.method == "qr" else "transaction")
        self.cashtray_id: str | None = match["id"] if kind == "cashtray" else None
        self.transaction_id: str | None = match["txn"] or (
            match["id"] if kind == "transaction" else None
        )


class PokepayProvider(Provider):
    """Pokepay: charge a customer's prepaid wallet, or show a Cashtray QR code.

    Methods: `Wallet` (immediate payment from the customer's wallet) and `QRCode`
    (a Cashtray the customer scans in the Pokepay app). Refunds are whole-transaction
    only; an unpaid Cashtray can be cancelled.

    >>> from paygate_pokepay import PokepayProvider, PokepaySettings
    >>> provider = PokepayProvider(PokepaySettings(
    ...     base_url="http://127.0.0.1:8000/pokepay",
    ...     client_id="8d1f3c50-6c1b-4f0e-9a3e-0f5b2a9c7d11", client_secret="A" * 43,
    ...     shop_id="5f9e9d8c-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
    ...     private_money_id="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"), account="wallet")
    >>> provider.capabilities().methods["wallet"].refund
    'full'
    """

    name: ClassVar[str] = PROVIDER
    display_name: ClassVar[str] = "Pokepay"
    settings_model: ClassVar[type[ProviderSettings]] = PokepaySettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        # request_id (v4-form UUID of the merchant key) in the body; GET
        # /transactions/requests/{id} finds a wallet payment whose answer was lost. How
        # long Pokepay keeps request ids is not stated ("リクエストIDは一定期間で削除されます",
        # deleted after some period): "unknown", so a recovery that finds nothing is
        # reported as OutcomeUnknown instead of re-sending blind. Cashtrays have no key;
        # see lookup_charge.
        Operation.CHARGE: OperationPolicy(key="body", key_window="unknown", lookup=True),
        # The refund addresses one transaction, refunded at most once: a repeated
        # refund is turned into the refund that stands.
        Operation.REFUND: OperationPolicy(key="path"),
        # The cancel addresses one Cashtray: a repeated cancel is answered from its state.
        Operation.CANCEL: OperationPolicy(key="path"),
    }
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        # The envelope was refused before anything was done (the flow already rebuilt it
        # once): the next call with the same key must reach Pokepay again.
        EXPIRED: Outcome.RETRYABLE,
    }

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        account: str,
        iv_source: Callable[[], bytes] = random_iv,
    ) -> None:
        if not isinstance(settings, PokepaySettings):
            raise ConfigurationError("settings must be PokepaySettings", key=account)
        super().__init__(settings, account=account)
        self.config: PokepaySettings = settings
        secret = settings.client_secret.get_secret_value()  # registered by the settings
        self.wire = Wire(
            cipher=EnvelopeCipher.from_secret(secret, iv_source=iv_source),
            client_id=settings.client_id,
            base_url=settings.base_url,
            zone=settings.zone,
            accept_language=settings.accept_language,
        )

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Wallet and Cashtray QR; whole refunds; Cashtray cancel; shop wallet balance."""
        return Capabilities(
            provider=self.name,
            methods={
                "wallet": MethodCapabilities(
                    method="wallet",
                    refund="full",
                    cancel=False,
                    cancel_alternative="refund (a wallet payment completes at once)",
                    updates="polling",
                ),
                # A Cashtray has no metadata field (Partner API CreateCashtray): paygate
                # keeps the merchant's metadata in its own store instead.
                "qr": MethodCapabilities(
                    method="qr", refund="full", cancel=True, metadata=False, updates="polling"
                ),
            },
            currencies=("JPY",),
            min_amount=MIN_AMOUNT,
            max_amount=MAX_AMOUNT,
            payout_balance=True,
        )

    def http_options(self) -> dict[str, Any]:
        """TLS options: the client certificate for mutual TLS, when configured.

        httpx 0.28 deprecates ``cert=``; the certificate (and a password-protected
        key) is loaded into the SSL context passed as ``verify`` instead.
        """
        opts = super().http_options()
        s = self.config
        if s.ssl_cert_file is None:
            return opts
        import ssl

        import certifi

        if opts.get("verify") is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif s.ca_bundle is not None:
            context = ssl.create_default_context(cafile=str(s.ca_bundle))
        else:
            context = ssl.create_default_context(cafile=certifi.where())
        password = s.ssl_key_password.get_secret_value() if s.ssl_key_password else None
        try:
            context.load_cert_chain(
                str(s.ssl_cert_file),
                str(s.ssl_key_file) if s.ssl_key_file else None,
                password,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot load the client certificate ({type(exc).__name__})", key="ssl_cert_file"
            ) from None
        opts["verify"] = context
        return opts

    @classmethod
    def emulator(cls) -> type[Emulator]:
        """The sandbox emulator of the Partner API."""
        from ._emulator import PokepayEmulator

        return PokepayEmulator

    # -- validation ------------------------------------------------------------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what Pokepay would refuse, before any I/O.

        Checks: JPY only, 1 to 99,999,999 yen, description up to 200 characters,
        flat string metadata, the customer's id (a UUID) and the product lines of a
        `Wallet`; for a `QRCode` (a Cashtray): no metadata, no product lines, and an
        ``expires_in`` of a second or more.
        """
        method = req.method
        if not isinstance(method, Wallet | QRCode):
            raise NotSupported(
                f"method {method.type}",
                provider=self.name,
                alternative="Wallet (a customer's wallet) or QRCode (a Cashtray)",
            )
        if req.amount.currency != "JPY":
            raise _invalid("Pokepay charges JPY only", "amount")
        if not MIN_AMOUNT <= req.amount.amount <= MAX_AMOUNT:
            raise _invalid(f"amount must be between {MIN_AMOUNT} and {MAX_AMOUNT} JPY", "amount")
        if req.description is not None:
            if not isinstance(req.description, str):
                raise _invalid("description must be a string", "description")
            if len(req.description) > MAX_DESCRIPTION:
                raise _invalid(
                    f"description is longer than {MAX_DESCRIPTION} characters", "description"
                )
        self._validate_metadata(req.metadata)
        if isinstance(method, Wallet):
            self._validate_wallet(method)
        else:
            if req.metadata:
                raise _invalid("a Cashtray carries no metadata (use description)", "metadata")
            if method.products:
                raise _invalid(
                    "a Cashtray carries no product lines (use description)", "method.products"
                )
            if method.expires_in is not None and method.expires_in < timedelta(seconds=1):
                raise _invalid("expires_in must be at least one second", "method.expires_in")

    @staticmethod
    def _validate_metadata(metadata: Any) -> None:
        if not isinstance(metadata, Mapping):
            raise _invalid("metadata must be a flat mapping of strings", "metadata")
        for key, value in metadata.items():
            if not isinstance(key, str) or not key:
                raise _invalid("metadata keys must be non-empty strings", "metadata")
            if not isinstance(value, str):
                raise _invalid("metadata values must be strings (flat, no nesting)", "metadata")

    @staticmethod
    def _validate_wallet(method: Wallet) -> None:
        if not method.customer_id:
            raise _invalid("the customer's id is required", "method.customer_id")
        if not _is_uuid(method.customer_id):
            raise _invalid("the customer's id must be a UUID", "method.customer_id")
        if method.private_money_id is not None and not _is_uuid(method.private_money_id):
            raise _invalid("private_money_id must be a UUID", "method.private_money_id")
        for i, product in enumerate(method.products):
            where = f"method.products[{i}]"
            if len(product.name) > MAX_PRODUCT_NAME:
                raise _invalid(f"name longer than {MAX_PRODUCT_NAME} characters", f"{where}.name")
            if product.code is not None and len(product.code) > MAX_PRODUCT_CODE:
                raise _invalid(f"code longer than {MAX_PRODUCT_CODE} characters", f"{where}.code")
            if product.unit_price < 0:
                raise _invalid("unit_price must not be negative", f"{where}.unit_price")
            if product.quantity < 1:
                raise _invalid("quantity must be at least 1", f"{where}.quantity")

    # -- plumbing --------------------------------------------------------------------

    def _send(
        self,
        ctx: OpContext,
        method: str,
        path: str,
        params: Mapping[str, Any],
        *,
        step: str,
        retry: Retry,
    ) -> Generator[Effect, Any, Answer]:
        reply = yield self.wire.call(ctx, method, path, params, step=step, retry=retry)
        try:
            return self.wire.open(reply)
        except ProviderError as exc:
            if exc.provider_code != EXPIRED:
                raise
        # The envelope was refused as too old, before anything was done: build a fresh
        # one (new timestamp, IV and partner_call_id) and send it once more. A second
        # refusal is raised (Outcome.RETRYABLE: check the clock, then retry).
        reply = yield self.wire.call(ctx, method, path, params, step=step, retry=retry)
        return self.wire.open(reply)

    def _read(
        self, ctx: OpContext, path: str, step: str, params: Mapping[str, Any] | None = None
    ) -> Generator[Effect, Any, Answer]:
        try:
            return (
                yield from self._send(ctx, "GET", path, params or {}, step=step, retry=Retry.SAFE)
            )
        except ProviderError as exc:
            if exc.provider_code != ALREADY_DONE:
                raise
        # A retried envelope was refused as a replay: read again under a fresh one.
        return (yield from self._send(ctx, "GET", path, params or {}, step=step, retry=Retry.SAFE))

    def _charge_id(self, ctx: OpContext, fallback: str) -> str:
        return ctx.charge_id or fallback

    def _now(self, ctx: OpContext, answer: Answer | None) -> datetime:
        if answer is not None and answer.server_time is not None:
            # Pokepay's state machine compares expires_at with the server's now; the
            # answer's own timestamp is that clock (and keeps replays deterministic).
            return answer.server_time
        return ctx.now()

    # -- mapping ---------------------------------------------------------------------

    def _transaction_charge(
        self,
        data: Mapping[str, Any],
        ctx: OpContext,
        *,
        method: str = "wallet",
        provider_ref: str | None = None,
        charge_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Charge:
        txn_id = str(field(data, "id"))
        amount = Money.jpy(paid_amount(data))
        refunded = bool(data.get("is_modified"))
        ref = provider_ref or f"transaction:{txn_id}"
        return Charge(
            id=charge_id or self._charge_id(ctx, ref),
            account=ctx.account,
            provider=self.name,
            provider_ref=ref,
            method=method,
            status=ChargeStatus.REFUNDED if refunded else ChargeStatus.SUCCEEDED,
            amount=amount,
            amount_refunded=amount if refunded else Money.jpy(0),
            created_at=created_at or as_time(data.get("done_at")) or ctx.now(),
            updated_at=as_time(data.get("done_at")),
            raw=data,
        )

    def _cashtray_charge(
        self,
        answer: Answer,
        ctx: OpContext,
        *,
        charge_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Charge:
        data = answer.data
        cashtray_id = str(field(data, "id"))
        amount = Money.jpy(abs(as_amount(field(data, "amount"), "amount")))
        expires_at = as_time(data.get("expires_at"))
        canceled_at = as_time(data.get("canceled_at"))
        attempt = data.get("attempt")
        transaction = data.get("transaction")
        ref = f"cashtray:{cashtray_id}"
        base: dict[str, Any] = {
            "id": charge_id or self._charge_id(ctx, ref),
            "account": ctx.account,
            "provider": self.name,
            "method": "qr",
            "amount": amount,
            "created_at": created_at or ctx.now(),
            "raw": data,
        }
        if isinstance(transaction, Mapping) and transaction.get("id"):
            refunded = bool(transaction.get("is_modified"))
            return Charge(
                provider_ref=f"{ref}/transaction:{transaction['id']}",
                status=ChargeStatus.REFUNDED if refunded else ChargeStatus.SUCCEEDED,
                amount_refunded=amount if refunded else Money.jpy(0),
                updated_at=as_time(transaction.get("done_at")),
                **base,
            )
        zero = Money.jpy(0)
        if isinstance(attempt, Mapping):
            error_type = attempt.get("error_type") or None
            message = attempt.get("error_message") or None
            updated = as_time(attempt.get("created_at"))
            # GetCashtray's own rule: an attempt without a transaction is a final
            # failure (also with status_code 200, which Pokepay should never send).
            if canceled_at is not None or error_type == "cashtray_already_canceled":
                status = ChargeStatus.CANCELED
            elif error_type == "cashtray_expired":
                status = ChargeStatus.EXPIRED
            else:
                status = ChargeStatus.FAILED
            return Charge(
                provider_ref=ref,
                status=status,
                amount_refunded=zero,
                failure=Failure(code=error_type, message=message),
                updated_at=updated,
                **base,
            )
        if canceled_at is not None:
            return Charge(
                provider_ref=ref,
                status=ChargeStatus.CANCELED,
                amount_refunded=zero,
                updated_at=canceled_at,
                **base,
            )
        if expires_at is not None and expires_at < self._now(ctx, answer):
            return Charge(
                provider_ref=ref,
                status=ChargeStatus.EXPIRED,
                amount_refunded=zero,
                updated_at=expires_at,
                **base,
            )
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise MalformedResponse(
                "pokepay: the Cashtray has no token", provider=PROVIDER, http_status=200
            )
        return Charge(
            provider_ref=ref,
            status=ChargeStatus.REQUIRES_ACTION,
            amount_refunded=zero,
            # The token is the URL the QR code encodes.
            next_action=DisplayQR(url=token, expires_at=expires_at),
            **base,
        )

    def _refund_from(
        self, data: Mapping[str, Any], req: RefundRequest, ctx: OpContext, answer: Answer
    ) -> Refund:
        txn_id = str(field(data, "id"))
        transfers = data.get("transfers")
        # Only the transfers that return the payment itself: the refund also cancels the
        # campaign points and coupons of the transaction (refund-campaign, refund-coupon),
        # which return no money to the customer.
        refunds = [
            t
            for t in (transfers if isinstance(transfers, list) else [])
            if isinstance(t, Mapping) and t.get("type") in REFUND_TRANSFERS
        ]
        if refunds:
            amount = sum(as_amount(t.get("amount", 0), "transfer amount") for t in refunds)
            last = refunds[-1]
            provider_ref = f"transfer:{last.get('id')}"
            created = as_time(last.get("done_at"))
        else:
            # No transfer list: the whole transaction was refunded (the only kind).
            amount = paid_amount(data)
            provider_ref = f"transaction:{txn_id}"
            created = None
        return Refund(
            id=f"refund:{txn_id}",
            charge_id=req.charge.charge_id,
            account=ctx.account,
            provider=self.name,
            provider_ref=provider_ref,
            amount=Money.jpy(amount),
            # Pokepay refunds whole transactions: the refund is the charge's refunded total.
            charge_refunded_total=Money.jpy(amount),
            status=RefundStatus.SUCCEEDED,
            reason=req.reason,
            created_at=created or self._now(ctx, answer),
            raw=data,
        )

    # -- charge ----------------------------------------------------------------------

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Create a wallet payment or a Cashtray."""
        self.validate_charge(req)
        if isinstance(req.method, Wallet):
            charge = yield from self._charge_wallet(req, req.method, ctx)
        else:
            charge = yield from self._charge_qr(req, ctx)
        return charge

    def _request_id(self, ctx: OpContext) -> str:
        if ctx.idempotency_key is None:
            raise _invalid("a charge needs an idempotency key", "idempotency_key")
        return payment_request_id(ctx)

    @staticmethod
    def _legacy_request_id(ctx: OpContext) -> str:
        # Earlier paygate versions sent the UUIDv5 itself; a payment started then is
        # still found under it on recovery (see lookup_charge).
        return str(ctx.key_uuid("payment"))

    def _payment_params(
        self, req: ChargeRequest, method: Wallet, request_id: str
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "shop_id": self.config.shop_id,
            "customer_id": method.customer_id,
            "private_money_id": method.private_money_id or self.config.private_money_id,
            "amount": req.amount.amount,
            "request_id": request_id,
        }
        strategy = getattr(method, "strategy", None) or self.config.strategy
        if strategy is not None:
            params["strategy"] = strategy
        if req.description:
            params["description"] = req.description
        if req.metadata:
            params["metadata"] = json.dumps(dict(req.metadata), ensure_ascii=False, sort_keys=True)
        if method.products:
            params["products"] = [
                {
                    "name": p.name,
                    "unit_price": p.unit_price,
                    "price": p.unit_price * p.quantity,
                    "quantity": p.quantity,
                    "is_discounted": False,
                    **({"jan_code": p.code} if p.code else {}),
                }
                for p in method.products
            ]
        return params

    def _charge_wallet(
        self, req: ChargeRequest, method: Wallet, ctx: OpContext
    ) -> Generator[Effect, Any, Charge]:
        request_id = self._request_id(ctx)
        params = self._payment_params(req, method, request_id)
        step = "transactions.payment"
        for _ in range(3):
            try:
                answer = yield from self._send(
                    ctx, "POST", "/transactions/payment", params, step=step, retry=Retry.KEYED
                )
            except ProviderError as exc:
                if exc.provider_code != ALREADY_DONE:
                    raise
                # An envelope of ours was processed and its answer lost: the payment may
                # exist. Ask by request_id; re-send (a fresh envelope, same request_id)
                # only if it does not.
                found = yield from self.lookup_charge(req, ctx)
                if found is not None:
                    return found
                continue
            return self._checked_payment(answer.data, req, ctx)
        raise ProviderUnavailable(
            "the payment's answers kept getting lost; retry with the same key",
            provider=self.name,
            provider_code=ALREADY_DONE,
        )

    def _checked_payment(
        self, data: Mapping[str, Any], req: ChargeRequest, ctx: OpContext
    ) -> Charge:
        """The charge of the payment a request_id found, checked against the request.

        Pokepay returns the transaction already made for a request_id. It is ours when
        what the merchant asked matches: the paid total (money + points spent, not the
        campaign-net ``amount``), the customer, the shop and the private money (each
        compared when the answer states it).
        """
        charge = self._transaction_charge(data, ctx)
        method = req.method
        assert isinstance(method, Wallet)
        money_id = method.private_money_id or self.config.private_money_id
        totals = {
            charge.amount.amount,
            as_amount(data.get("amount", charge.amount.amount), "amount"),
        }
        checks = {
            "amount": req.amount.amount in totals,
            "customer": _nested_id(data, "sender", "id") in (None, method.customer_id),
            "shop": _nested_id(data, "receiver", "id") in (None, self.config.shop_id),
            "private money": _nested_id(data, "sender_account", "private_money", "id")
            in (None, money_id),
        }
        different = [name for name, same in checks.items() if not same]
        if different:
            # request_id found a transaction made from a different request.
            raise IdempotencyConflict(
                "pokepay: the request id belongs to a payment with another " + ", ".join(different),
                provider=PROVIDER,
                provider_code="request_id_mismatch",
            )
        if charge.amount != req.amount:
            # The campaign-net amount matched: report the requested total.
            charge = charge.model_copy(update={"amount": req.amount})
        return charge

    def _charge_qr(self, req: ChargeRequest, ctx: OpContext) -> Generator[Effect, Any, Charge]:
        method = req.method
        assert isinstance(method, QRCode)
        params: dict[str, Any] = {
            "private_money_id": self.config.private_money_id,
            "shop_id": self.config.shop_id,
            # Negative: a payment from the customer (positive would top the wallet up).
            "amount": -req.amount.amount,
        }
        if req.description:
            params["description"] = req.description
        if method.expires_in is not None:
            params["expires_in"] = max(1, math.floor(method.expires_in.total_seconds()))
        created = ctx.now()
        try:
            answer = yield from self._send(
                ctx, "POST", "/cashtrays", params, step="cashtrays.create", retry=Retry.UNSAFE
            )
        except ProviderError as exc:
            if exc.provider_code != ALREADY_DONE:
                raise
            # The first Cashtray's QR code never reached anyone, so it cannot be paid.
            answer = yield from self._send(
                ctx, "POST", "/cashtrays", params, step="cashtrays.create", retry=Retry.UNSAFE
            )
        return self._cashtray_charge(answer, ctx, created_at=created)

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the charge a possibly-sent `charge` created (None: nothing payable exists).

        Wallet: ``GET /transactions/requests/{request_id}``; both the documented 422
        ``transaction_not_found`` and a 404 mean "not created".

        QRCode: Pokepay offers no way to find a Cashtray without its id. A Cashtray
        whose creation answer was lost was never displayed, so no customer can scan
        it; it expires unused. In the same call, "not created" lets the gateway create
        a fresh one, which is the outcome the merchant wants. On recovery the gateway
        would not re-send past the charge's key window (the wallet's request ids are
        kept for an unstated time), which does not concern a Cashtray: the fresh one is
        created here and returned as the charge.
        """
        self.validate_charge(req)
        if not isinstance(req.method, Wallet):
            if ctx.recovering:
                return (yield from self._charge_qr(req, ctx))
            return None
        request_ids = [self._request_id(ctx)]
        if ctx.recovering:
            # An attempt started by an older paygate may have sent the v5 form.
            request_ids.append(self._legacy_request_id(ctx))
        for request_id in request_ids:
            try:
                answer = yield from self._read(
                    ctx, f"/transactions/requests/{request_id}", "transactions.by_request_id"
                )
            except ProviderError as exc:
                if exc.http_status == 404 or exc.provider_code == "transaction_not_found":
                    continue
                raise
            return self._checked_payment(answer.data, req, ctx)
        return None

    # -- status ----------------------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """GetTransaction for a wallet payment (or a paid Cashtray), GetCashtray otherwise."""
        parsed = _Ref(ref)
        if parsed.transaction_id is not None:
            answer = yield from self._read(
                ctx, f"/transactions/{parsed.transaction_id}", "transactions.get"
            )
            return self._transaction_charge(
                answer.data,
                ctx,
                method=ref.method,
                provider_ref=ref.provider_ref if parsed.cashtray_id else None,
                charge_id=ref.charge_id,
                created_at=ref.created_at,
            )
        assert parsed.cashtray_id is not None
        answer = yield from self._read(ctx, f"/cashtrays/{parsed.cashtray_id}", "cashtrays.get")
        return self._cashtray_charge(
            answer, ctx, charge_id=ref.charge_id, created_at=ref.created_at
        )

    # -- refund ----------------------------------------------------------------------

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """RefundTransaction: the whole transaction, once."""
        whole = req.charge.amount
        if req.amount is not None:
            if req.amount.currency != "JPY":
                raise _invalid("Pokepay refunds JPY only", "amount")
            if whole is not None and req.amount != whole:
                raise self._partial_refund()
        if req.reason is not None and len(req.reason) > MAX_DESCRIPTION:
            raise _invalid(f"reason is longer than {MAX_DESCRIPTION} characters", "reason")
        parsed = _Ref(req.charge)
        txn_id = parsed.transaction_id
        if txn_id is None:
            assert parsed.cashtray_id is not None
            answer = yield from self._read(ctx, f"/cashtrays/{parsed.cashtray_id}", "cashtrays.get")
            txn = answer.data.get("transaction")
            if not isinstance(txn, Mapping) or not txn.get("id"):
                raise ProviderRejected(
                    "pokepay: the Cashtray was not paid; there is nothing to refund",
                    provider=PROVIDER,
                )
            txn_id = str(txn["id"])
            paid = abs(as_amount(field(answer.data, "amount"), "amount"))
            if req.amount is not None and whole is None and req.amount.amount != paid:
                raise self._partial_refund()
        elif req.amount is not None and whole is None:
            answer = yield from self._read(ctx, f"/transactions/{txn_id}", "transactions.get")
            if req.amount.amount != paid_amount(answer.data):
                raise self._partial_refund()
        params = {"description": req.reason} if req.reason else {}
        path = f"/transactions/{txn_id}/refund"
        try:
            answer = yield from self._send(
                ctx, "POST", path, params, step="transactions.refund", retry=Retry.KEYED
            )
        except ProviderError as exc:
            if exc.provider_code not in ("transaction_already_refunded", ALREADY_DONE):
                raise
            current = yield from self._read(ctx, f"/transactions/{txn_id}", "transactions.get")
            if current.data.get("is_modified"):
                # Refunded before (another key, or the same envelope): that refund stands.
                return self._refund_from(current.data, req, ctx, current)
            if exc.provider_code != ALREADY_DONE:
                raise
            answer = yield from self._send(
                ctx, "POST", path, params, step="transactions.refund", retry=Retry.KEYED
            )
        return self._refund_from(answer.data, req, ctx, answer)

    def _partial_refund(self) -> NotSupported:
        return NotSupported(
            "partial refund",
            provider=self.name,
            reason="Pokepay refunds whole transactions only",
            alternative="refund the whole charge (amount=None), then charge the remainder",
        )

    # -- cancel ----------------------------------------------------------------------

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """CancelCashtray: only a Cashtray nobody has paid yet can be cancelled."""
        parsed = _Ref(req.charge)
        if req.charge.method != "qr" or parsed.cashtray_id is None:
            raise NotSupported(
                "cancel",
                provider=self.name,
                reason="a wallet payment completes at once",
                alternative="refund",
            )
        if parsed.transaction_id is not None:
            raise ProviderRejected(
                "pokepay: the Cashtray was paid; it cannot be cancelled (refund it)",
                provider=PROVIDER,
                provider_code="cashtray_already_proceed",
            )
        path = f"/cashtrays/{parsed.cashtray_id}"
        try:
            answer = yield from self._send(
                ctx, "DELETE", path, {}, step="cashtrays.cancel", retry=Retry.KEYED
            )
        except ProviderError as exc:
            if exc.provider_code not in (
                "cashtray_already_canceled",
                "cashtray_expired",
                "cashtray_already_proceed",
                ALREADY_DONE,
            ):
                raise
            current = yield from self._read(ctx, path, "cashtrays.get")
            charge = self._cashtray_charge(
                current, ctx, charge_id=req.charge.charge_id, created_at=req.charge.created_at
            )
            if charge.paid:
                raise ProviderRejected(
                    "pokepay: the Cashtray was paid; it cannot be cancelled (refund it)",
                    provider=PROVIDER,
                    provider_code=exc.provider_code,
                    provider_message=exc.provider_message,
                    http_status=exc.http_status,
                ) from None
            if charge.status.is_terminal or exc.provider_code != ALREADY_DONE:
                return charge
            answer = yield from self._send(
                ctx, "DELETE", path, {}, step="cashtrays.cancel", retry=Retry.KEYED
            )
        return self._cashtray_charge(
            answer, ctx, charge_id=req.charge.charge_id, created_at=req.charge.created_at
        )

    # -- payout balance --------------------------------------------------------------

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        """The shop's wallet for the configured private money: money + points."""
        s = self.config
        page = 1
        while True:
            answer = yield from self._read(
                ctx,
                f"/users/{s.shop_id}/accounts",
                "users.accounts",
                {"page": page, "per_page": 50},
            )
            rows = answer.data.get("rows")
            if not isinstance(rows, list):
                raise MalformedResponse(
                    "pokepay: account list without rows", provider=PROVIDER, http_status=200
                )
            for row in rows:
                money = row.get("private_money") if isinstance(row, Mapping) else None
                if isinstance(money, Mapping) and money.get("id") == s.private_money_id:
                    return self._balance(row, ctx, answer)
            pagination = answer.data.get("pagination")
            more = isinstance(pagination, Mapping) and bool(pagination.get("has_next"))
            if not more or page >= 100:
                raise NotFound(
                    "pokepay: no wallet of the shop for the configured private money is "
                    "visible (ListUserAccounts shows only wallets of moneys issued by the "
                    "partner's own organization; a partner that does not issue this money "
                    "cannot read the shop's balance here)",
                    provider=PROVIDER,
                    provider_code="shop_account_not_visible",
                )
            page += 1

    def _balance(self, row: Mapping[str, Any], ctx: OpContext, answer: Answer) -> PayoutBalance:
        money = as_amount(row.get("money_balance", 0), "money_balance")
        points = as_amount(row.get("point_balance", 0), "point_balance")
        balance = as_amount(row.get("balance", money + points), "balance")
        wallet = str(row.get("id", ""))
        items = [
            PayoutItem(
                kind="money", description="money balance", amount=Money.jpy(money), reference=wallet
            ),
            PayoutItem(
                kind="point",
                description="point balance",
                amount=Money.jpy(points),
                reference=wallet,
            ),
        ]
        debt = as_amount(row.get("point_debt", 0) or 0, "point_debt")
        if debt:
            items.append(
                PayoutItem(
                    kind="point_debt",
                    description="point debt",
                    amount=Money.jpy(debt),
                    reference=wallet,
                )
            )
        zero = Money.jpy(0)
        return PayoutBalance(
            account=ctx.account,
            provider=self.name,
            currency="JPY",
            collecting=Money.jpy(balance),
            scheduled=zero,
            owed=zero,
            items=tuple(items),
            as_of=self._now(ctx, answer),
            raw=row,
        )
