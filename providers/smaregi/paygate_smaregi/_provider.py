"""The Smaregi adapter: POS sales registered under the app's own payment method.

Semantics, in short:

* Idempotency. POST /transactions has no documented duplicate protection (O-S7). paygate
  derives ``terminalTranId`` deterministically from the merchant's idempotency key and
  records the sale's terminal time in the entity cache *before* sending, so after an
  unknown outcome `SmaregiProvider.lookup_charge` can search that time window for the
  terminal id + ``terminalTranId`` (+ store and total) and tell whether the sale exists.
  The create itself is `Retry.UNSAFE`: only failures that surely did not reach Smaregi
  are retried blindly; anything else goes through the lookup.
* The app payment method is created at most once per (client id, contract): the adapter
  GETs first, POSTs only when absent, and treats the 403 "limit reached" answer as "it
  exists": GET again and use it. The id is cached in the store.
* Retry. 429 and 5xx are retried by the driver (generic rule); a 401 refreshes the
  access token once and repeats the call (a 401 means the request was not processed).
* Status. A registered sale is ``succeeded`` (money was taken at the POS). Smaregi's
  cancel (取消, ``cancelDivision`` 1) of a completed sale is ``refunded``: the sale is
  voided in full; Smaregi itself moves no money. There is no partial refund through the
  API (a return is a separate POS transaction), so only whole-sale refunds are offered.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    InvalidRequest,
    MalformedResponse,
    MethodCapabilities,
    Money,
    NotSupported,
    OutcomeUnknown,
    ProviderRejected,
    Refund,
    RefundStatus,
)
from paygate._redact import register_secret
from paygate.adapter import (
    CacheGet,
    CachePut,
    Call,
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Provider,
    RefundRequest,
    Reply,
    Retry,
    Sleep,
    cache_claim,
)

from ._auth import TokenKeeper
from ._settings import SmaregiSettings
from ._validate import Sale, check_sale
from ._wire import (
    PROVIDER,
    error_from_reply,
    format_jst,
    is_already_registered,
    parse_datetime,
    parse_int,
    problem_of,
)

if TYPE_CHECKING:
    from paygate.sandbox import Emulator

__all__ = ["AppPaymentMethod", "SmaregiProvider", "terminal_tran_id"]

#: The lookup searches this far around the recorded terminal time of the sale.
LOOKUP_MARGIN = timedelta(minutes=10)
#: Without a recorded time (another store, a purged cache), it searches this far back.
LOOKUP_FALLBACK = timedelta(days=1)
LOOKUP_PAGE_SIZE = 1000
LOOKUP_MAX_PAGES = 10

# 9-digit numbers that do not start with 0. Not 10 digits (the limit): runs of 10-13
# digits look like phone numbers to paygate's redaction, which would mask them in
# cassettes and messages and break matching on replay.
_TRAN_ID_SPACE = 900_000_000


def terminal_tran_id(ctx: OpContext) -> str:
    """The ``terminalTranId`` (1-10 characters) of this charge, derived from its key.

    A 9-digit number from 100000000 to 999999999, taken from the UUIDv5 of the account
    and the merchant's idempotency key, so a re-sent sale carries the same one. Two
    different keys collide with probability 1 in 9e8; the lookup only compares sales of
    one terminal inside a ±10 minute window and also matches store and total, so among
    n such sales a false match has odds of about n / 9e8 (1 in 9 million for 100).

    >>> from paygate.adapter import OpContext
    >>> ctx = OpContext(account="pos", provider="smaregi", idempotency_key="order-1042")
    >>> tran_id = terminal_tran_id(ctx)
    >>> len(tran_id), tran_id == terminal_tran_id(ctx)
    (9, True)
    """
    number = ctx.key_uuid("smaregi.terminalTranId").int % _TRAN_ID_SPACE
    return str(100_000_000 + number)


@dataclass(frozen=True, slots=True)
class AppPaymentMethod:
    """The app's own payment method (個別アプリ専用支払方法) on one contract.

    ``payment_method_id`` is what sales reference in ``depositOthers``.
    """

    payment_method_id: str
    name: str | None = None
    app_payment_method_id: str | None = None
    code: str | None = None

    @property
    def id(self) -> str:
        """The ``paymentMethodId`` (what sales reference)."""
        return self.payment_method_id

    def to_cache(self) -> dict[str, str | None]:
        """The entity-cache value."""
        return {
            "paymentMethodId": self.payment_method_id,
            "paymentMethodName": self.name,
            "appPaymentMethodId": self.app_payment_method_id,
            "appPaymentCode": self.code,
        }

    @classmethod
    def from_wire(cls, item: Any) -> AppPaymentMethod | None:
        """Read a Smaregi (or cached) object; None when it carries no paymentMethodId."""
        if not isinstance(item, Mapping):
            return None
        pm_id = item.get("paymentMethodId")
        if isinstance(pm_id, bool) or not isinstance(pm_id, str | int) or pm_id == "":
            return None

        def text(key: str) -> str | None:
            value = item.get(key)
            return str(value) if isinstance(value, str | int) and value != "" else None

        return cls(
            payment_method_id=str(pm_id),
            name=text("paymentMethodName"),
            app_payment_method_id=text("appPaymentMethodId"),
            code=text("appPaymentCode"),
        )


def _items(data: Any, *keys: str) -> list[Any]:
    """A list from a bare JSON array (what Smaregi returns) or a wrapping object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return value
        return [data]
    return []


class SmaregiProvider(Provider):
    """Smaregi Platform API (POS): register a sale paid through the app's payment method.

    Example::

        gw.charge(
            "pos",
            amount=Money.jpy(1000),
            method=PosSale(
                store_id="1", terminal_id="1",
                lines=(PosLine(product_id="8000001", unit_price=500, quantity=2),),
            ),
            idempotency_key="order-1042",
        )
    """

    name: ClassVar[str] = PROVIDER
    display_name: ClassVar[str] = "Smaregi"
    settings_model: ClassVar[type[SmaregiSettings]] = SmaregiSettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        Operation.CHARGE: OperationPolicy(key="none", lookup=True),
        # A cancel addresses one transaction and a repeat is answered with an error the
        # flow resolves by reading it back (voided: done), so re-sending is harmless.
        Operation.REFUND: OperationPolicy(key="path"),
        Operation.CANCEL: OperationPolicy(key="path"),
    }

    settings: SmaregiSettings

    def __init__(self, settings: SmaregiSettings, *, account: str) -> None:
        super().__init__(settings, account=account)
        register_secret(settings.client_secret.get_secret_value())
        self.tokens = TokenKeeper(settings)
        self.payment_method_cache_key = (
            f"smaregi:app_payment_method:{settings.client_id}:{settings.contract_id}"
        )

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """A sale can be cancelled (voided) or refunded, both only as a whole."""
        return Capabilities(
            provider=PROVIDER,
            methods={
                "pos": MethodCapabilities(
                    method="pos",
                    refund="full",
                    multiple_refunds=False,
                    cancel=True,
                    refund_alternative=(
                        "refund the whole sale; a partial return is a return transaction "
                        "entered at the POS"
                    ),
                )
            },
            currencies=("JPY",),
            min_amount=1,
            max_amount=999_999_999,
            payout_balance=False,
            webhooks=False,
        )

    @classmethod
    def emulator(cls) -> type[Emulator]:
        """The local sandbox's Smaregi emulator."""
        from ._emulator import SmaregiEmulator

        return SmaregiEmulator

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse a sale Smaregi would refuse (currency, sums, id formats, lengths)."""
        check_sale(req, self.settings)

    # -- URLs and calls --------------------------------------------------------------

    @property
    def _pos(self) -> str:
        contract = urllib.parse.quote(self.settings.contract_id, safe="")
        return f"{self.settings.base_url}/{contract}/pos"

    @property
    def _pm_url(self) -> str:
        return f"{self._pos}/{self.settings.app_payment_method_path}"

    def _transaction_url(self, head_id: str, suffix: str = "") -> str:
        return f"{self._pos}/transactions/{urllib.parse.quote(head_id, safe='')}{suffix}"

    @staticmethod
    def _call(method: str, url: str, token: str, body: Any, retry: Retry, step: str) -> Call:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Call(method, url, headers=headers, content=content, retry=retry, step=step)

    def _send(
        self,
        ctx: OpContext,
        method: str,
        url: str,
        *,
        body: Any = None,
        retry: Retry = Retry.SAFE,
        step: str,
    ) -> Flow[Reply]:
        """One API call with the app token; a 401 refreshes the token once and repeats.

        Repeating after 401 is safe even for a create: Smaregi did not process it.
        """
        token = yield from self.tokens.token(ctx)
        reply: Reply = yield self._call(method, url, token, body, retry, step)
        if reply.status == 401:
            token = yield from self.tokens.token(ctx, rejected=token)
            reply = yield self._call(method, url, token, body, retry, step)
        return reply

    # -- the app payment method --------------------------------------------------------

    def ensure_payment_method(self, ctx: OpContext) -> Flow[AppPaymentMethod]:
        """The app payment method of this contract, created on first use.

        Order: the store's entity cache; else GET; POST only if Smaregi has none; a 403
        "limit reached" answer means another process created it first: GET again and
        use that one. Smaregi allows one per (client id, contract), so racing callers
        all end with the same id. The result is cached in the store.

        O-S1: the path and fields are not officially confirmed. The adapter (and the
        emulator) assume ``/{contract_id}/pos/app_payment_methods`` (setting
        ``app_payment_method_path``), a GET answering a bare array of objects with
        ``appPaymentMethodId``, ``paymentMethodId``, ``paymentMethodName``,
        ``appPaymentCode`` and ``status``, and a POST taking ``paymentMethodName``
        (omitted: Smaregi names it after the app), ``appPaymentCode`` and ``status``.
        A single object or a wrapping object are read too.
        """
        pm, _ = yield from self._ensure(ctx)
        return pm

    def _ensure(self, ctx: OpContext) -> Flow[tuple[AppPaymentMethod, bool]]:
        cached = AppPaymentMethod.from_wire((yield CacheGet(self.payment_method_cache_key)))
        if cached is not None:
            return cached, True
        pm = yield from self._find_payment_method(ctx)
        if pm is None:
            pm = yield from self._create_once(ctx)
        yield CachePut(self.payment_method_cache_key, pm.to_cache())
        return pm, False

    def _create_once(self, ctx: OpContext) -> Flow[AppPaymentMethod]:
        """POST the app payment method from one worker only.

        Workers sharing a store claim the creation in it; the others wait for the
        winner's result (cache or GET). A claim left by a worker that died is taken over
        after `_CLAIM_STALE`. Workers on different stores cannot see each other's claim:
        for them the 403 "already registered" answer is the fallback (GET again).
        """
        now = ctx.now()
        mine = {"owner": str(ctx.new_uuid()), "at": now.isoformat()}
        claim_key = f"{self.payment_method_cache_key}:creating"
        holder = yield cache_claim(claim_key, mine)
        if holder != mine and not _claim_stale(holder, now):
            for delay in _CLAIM_WAITS:
                yield Sleep(delay)
                cached = AppPaymentMethod.from_wire((yield CacheGet(self.payment_method_cache_key)))
                if cached is not None:
                    return cached
                found = yield from self._find_payment_method(ctx)
                if found is not None:
                    return found
        if holder != mine:
            # The claim was finished or abandoned: a finished one left its result here.
            cached = AppPaymentMethod.from_wire((yield CacheGet(self.payment_method_cache_key)))
            if cached is not None:
                return cached
            yield CachePut(claim_key, mine)
        created = yield from self._create_payment_method(ctx)
        yield CachePut(self.payment_method_cache_key, created.to_cache())
        # Done: a later re-creation (the method was deleted) need not wait on this claim.
        yield CachePut(claim_key, {"done": created.payment_method_id})
        return created

    def _find_payment_method(self, ctx: OpContext) -> Flow[AppPaymentMethod | None]:
        reply = yield from self._send(ctx, "GET", self._pm_url, step="app_payment_methods.get")
        if reply.status == 404:
            return None
        if not reply.ok:
            raise error_from_reply(reply, action="reading the app payment method")
        found = [
            pm
            for pm in (
                AppPaymentMethod.from_wire(item)
                for item in _items(reply.json(), "appPaymentMethods", "data")
            )
            if pm is not None
        ]
        if not found:
            return None
        # One per client id is the rule; if a contract shows several, prefer ours by code.
        for pm in found:
            if pm.code == self.settings.app_payment_code:
                return pm
        return found[0]

    def _create_payment_method(self, ctx: OpContext) -> Flow[AppPaymentMethod]:
        body: dict[str, str] = {"appPaymentCode": self.settings.app_payment_code, "status": "1"}
        if self.settings.payment_method_name is not None:
            body["paymentMethodName"] = self.settings.payment_method_name
        # The POST is safe to repeat: Smaregi keeps one per client id and answers a
        # repeat with the 403 handled below, so it is declared KEYED (deduplicated).
        reply = yield from self._send(
            ctx,
            "POST",
            self._pm_url,
            body=body,
            retry=Retry.KEYED,
            step="app_payment_methods.create",
        )
        if reply.ok:
            created = None
            try:
                created = AppPaymentMethod.from_wire(
                    next(iter(_items(reply.json(), "appPaymentMethods", "data")), None)
                )
            except MalformedResponse:
                created = None
            if created is not None:
                return created
        elif not is_already_registered(reply):
            raise error_from_reply(reply, action="registering the app payment method")
        # Registered already (by a racing process, or the body did not say): read it.
        pm = yield from self._find_payment_method(ctx)
        if pm is None:
            problem = problem_of(reply)
            raise ProviderRejected(
                "Smaregi reports an app payment method that it does not list",
                provider=PROVIDER,
                provider_code=problem.code,
                provider_message=problem.message,
                http_status=reply.status,
            )
        return pm

    # -- charge ------------------------------------------------------------------------

    def _intent_key(self, ctx: OpContext) -> str:
        s = self.settings
        return f"smaregi:sale:{s.client_id}:{s.contract_id}:{ctx.key_uuid('smaregi.sale')}"

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Register the sale (validated now, before any I/O)."""
        sale = check_sale(req, self.settings)
        if ctx.idempotency_key is None:
            raise InvalidRequest("a Smaregi sale needs an idempotency key", param="idempotency_key")
        return self._charge(sale, ctx)

    def _charge(self, sale: Sale, ctx: OpContext) -> Flow[Charge]:
        tran_id = terminal_tran_id(ctx)
        intent_key = self._intent_key(ctx)
        intent = yield CacheGet(intent_key)
        when = (
            parse_datetime(intent.get("terminalTranDateTime")) if isinstance(intent, dict) else None
        )
        if when is None:
            when = ctx.now()
            # Written before sending: the lookup searches around this time.
            yield CachePut(
                intent_key, {"terminalTranId": tran_id, "terminalTranDateTime": format_jst(when)}
            )
        pm, from_cache = yield from self._ensure(ctx)
        body = self._sale_body(sale, tran_id, when, pm)
        url = f"{self._pos}/transactions"
        reply = yield from self._send(
            ctx, "POST", url, body=body, retry=Retry.UNSAFE, step="transactions.create"
        )
        if reply.status == 400 and from_cache and _mentions_payment_method(reply):
            # The cached method is gone (only possible where methods can be deleted, as
            # in the local sandbox): forget it, ensure again, and re-send once if the id
            # changed. A 400 means nothing was registered, so re-sending is safe.
            yield CachePut(self.payment_method_cache_key, None)
            fresh, _ = yield from self._ensure(ctx)
            if fresh.payment_method_id != pm.payment_method_id:
                body = self._sale_body(sale, tran_id, when, fresh)
                reply = yield from self._send(
                    ctx, "POST", url, body=body, retry=Retry.UNSAFE, step="transactions.create"
                )
        if not reply.ok:
            raise error_from_reply(reply, action="registering the sale")
        data = reply.json()
        created = data if isinstance(data, dict) else {}
        head_id = created.get("transactionHeadId", created.get("id"))
        if isinstance(head_id, bool) or not isinstance(head_id, str | int) or head_id == "":
            raise MalformedResponse(
                "sale registered without transactionHeadId",
                provider=PROVIDER,
                http_status=reply.status,
            )
        # O-S6: the response may hold only the id; what was sent fills the rest.
        merged = {**body, **created, "transactionHeadId": str(head_id)}
        return self._to_charge(merged, ctx, ctx.charge_id)

    @staticmethod
    def _sale_body(
        sale: Sale, tran_id: str, when: datetime, pm: AppPaymentMethod
    ) -> dict[str, Any]:
        total = str(sale.total)
        details = []
        for i, line in enumerate(sale.lines, start=1):
            detail = {
                "transactionDetailId": str(i),
                "transactionDetailDivision": "1",
                "salesPrice": str(line.unit_price),
                "unitDiscountPrice": "0",
                "quantity": str(line.quantity),
            }
            if line.product_id is not None:
                detail["productId"] = line.product_id
            if line.name is not None:
                detail["productName"] = line.name
            details.append(detail)
        body: dict[str, Any] = {
            "transactionHeadDivision": "1",
            "cancelDivision": "0",
            "subtotal": total,
            "total": total,
            # deposit = cash + credit + others; everything came through the app's method.
            "deposit": total,
            "depositCash": "0",
            "depositCredit": "0",
            "change": "0",
            "storeId": sale.store_id,
            "terminalId": sale.terminal_id,
            "terminalTranId": tran_id,
            "terminalTranDateTime": format_jst(when),
            "details": details,
            # O-S2: the request item shape is unconfirmed; this is the best guess (the
            # response items carry paymentMethodId and the amount as depositOthers).
            "depositOthers": [{"paymentMethodId": pm.payment_method_id, "depositOthers": total}],
        }
        if sale.memo is not None:
            body["memo"] = sale.memo
        # Slip number and card company are head-level fields of a transaction.
        if sale.slip_number is not None:
            body["slipNumber"] = sale.slip_number
        if sale.card_company is not None:
            body["cardCompany"] = sale.card_company
        return body

    def _to_charge(self, tran: Mapping[str, Any], ctx: OpContext, charge_id: str | None) -> Charge:
        head_id = str(tran.get("transactionHeadId", ""))
        if not head_id:
            raise MalformedResponse("transaction without transactionHeadId", provider=PROVIDER)
        amount = Money.jpy(parse_int(tran.get("total"), field="total"))
        canceled = str(tran.get("cancelDivision", "0")) == "1"
        created = (
            parse_datetime(tran.get("terminalTranDateTime"))
            or parse_datetime(tran.get("transactionDateTime"))
            or ctx.now()
        )
        updated = parse_datetime(tran.get("cancelDateTime")) or parse_datetime(
            tran.get("updDateTime")
        )
        return Charge(
            id=charge_id or f"smaregi_{head_id}",
            account=ctx.account,
            provider=PROVIDER,
            provider_ref=head_id,
            method="pos",
            # A voided completed sale is a full refund (see the module note).
            status=ChargeStatus.REFUNDED if canceled else ChargeStatus.SUCCEEDED,
            amount=amount,
            amount_refunded=amount if canceled else Money.jpy(0),
            created_at=created,
            updated_at=updated,
            raw=dict(tran),
        )

    # -- lookup ------------------------------------------------------------------------

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the sale a possibly-sent charge registered.

        Lists transactions whose ``terminalTranDateTime`` lies within ±10 minutes of the
        time recorded before sending (without a record: the last day), and matches
        store id, terminal id, ``terminalTranId`` and total. None: not registered. Two
        or more matches (a duplicate at Smaregi) raise `OutcomeUnknown` for
        reconciliation rather than pick one.
        """
        sale = check_sale(req, self.settings)
        if ctx.idempotency_key is None:
            raise InvalidRequest("a Smaregi sale needs an idempotency key", param="idempotency_key")
        return self._lookup(sale, ctx)

    def _lookup(self, sale: Sale, ctx: OpContext) -> Flow[Charge | None]:
        tran_id = terminal_tran_id(ctx)
        intent = yield CacheGet(self._intent_key(ctx))
        when = (
            parse_datetime(intent.get("terminalTranDateTime")) if isinstance(intent, dict) else None
        )
        if when is not None:
            start, end = when - LOOKUP_MARGIN, when + LOOKUP_MARGIN
        else:
            now = ctx.now()
            start, end = now - LOOKUP_FALLBACK, now + LOOKUP_MARGIN
        matches: list[Mapping[str, Any]] = []
        for page in range(1, LOOKUP_MAX_PAGES + 1):
            query = urllib.parse.urlencode(
                {
                    "terminal_tran_date_time-from": format_jst(start),
                    "terminal_tran_date_time-to": format_jst(end),
                    "limit": str(LOOKUP_PAGE_SIZE),
                    "page": str(page),
                    "sort": "transactionHeadId",
                }
            )
            reply = yield from self._send(
                ctx, "GET", f"{self._pos}/transactions?{query}", step="transactions.list"
            )
            if not reply.ok:
                raise error_from_reply(reply, action="searching for the sale")
            items = _items(reply.json(), "transactions", "data")
            matches.extend(t for t in items if _same_sale(t, sale, tran_id))
            if len(items) < LOOKUP_PAGE_SIZE:
                break
        else:
            if not matches:
                raise OutcomeUnknown(
                    "too many Smaregi transactions in the search window to tell",
                    provider=PROVIDER,
                )
        if not matches:
            return None
        if len(matches) > 1:
            raise OutcomeUnknown(
                f"{len(matches)} Smaregi transactions carry this sale's terminalTranId",
                provider=PROVIDER,
            )
        return self._to_charge(matches[0], ctx, ctx.charge_id)

    # -- status, cancel, refund --------------------------------------------------------

    @staticmethod
    def _head_id(ref: ChargeRef) -> str:
        head_id = ref.provider_ref
        if not head_id.isascii() or not head_id.isdigit():
            raise InvalidRequest("not a Smaregi transaction id", param="charge")
        return head_id

    def _get_transaction(self, ctx: OpContext, head_id: str) -> Flow[dict[str, Any]]:
        reply = yield from self._send(
            ctx, "GET", self._transaction_url(head_id), step="transactions.get"
        )
        if not reply.ok:
            raise error_from_reply(reply, action="reading the sale")
        return reply.json_object()

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """GET the transaction: ``cancelDivision`` 1 means voided (refunded)."""
        head_id = self._head_id(ref)
        return self._status(ref, head_id, ctx)

    def _status(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge]:
        tran = yield from self._get_transaction(ctx, head_id)
        return self._to_charge(tran, ctx, ref.charge_id)

    def _void(self, ctx: OpContext, head_id: str) -> Flow[dict[str, Any]]:
        """POST the cancel, then read the transaction back.

        Re-sending a cancel is harmless: Smaregi answers a repeat with an error (O-S8:
        its exact form is unknown), which the flow resolves by reading the transaction;
        if it is voided, the cancel took effect. So the call is declared SAFE.
        """
        reply = yield from self._send(
            ctx,
            "POST",
            self._transaction_url(head_id, "/cancel"),
            body={},
            retry=Retry.SAFE,
            step="transactions.cancel",
        )
        if not reply.ok and reply.status not in (400, 409, 422):
            raise error_from_reply(reply, action="cancelling the sale")
        tran = yield from self._get_transaction(ctx, head_id)
        if str(tran.get("cancelDivision", "0")) != "1":
            if not reply.ok:
                raise error_from_reply(reply, action="cancelling the sale")
            raise MalformedResponse(
                "Smaregi accepted the cancel but the sale is not voided", provider=PROVIDER
            )
        return tran

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Void the whole sale (POST /transactions/{id}/cancel)."""
        head_id = self._head_id(req.charge)
        return self._cancel(req.charge, head_id, ctx)

    def _cancel(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge]:
        tran = yield from self._void(ctx, head_id)
        return self._to_charge(tran, ctx, ref.charge_id)

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund the whole sale through the cancel endpoint; partial is `NotSupported`."""
        head_id = self._head_id(req.charge)
        if req.amount is not None:
            if req.amount.currency != "JPY":
                raise InvalidRequest("Smaregi takes JPY only", param="amount.currency")
            if req.charge.amount is not None and req.amount != req.charge.amount:
                raise _partial_refund()
        return self._refund(req, head_id, ctx)

    def _refund(self, req: RefundRequest, head_id: str, ctx: OpContext) -> Flow[Refund]:
        if req.amount is not None and req.charge.amount is None:
            current = yield from self._get_transaction(ctx, head_id)
            if parse_int(current.get("total"), field="total") != req.amount.amount:
                raise _partial_refund()
        tran = yield from self._void(ctx, head_id)
        charge = self._to_charge(tran, ctx, req.charge.charge_id)
        return Refund(
            id=f"{req.charge.charge_id}-refund",
            charge_id=req.charge.charge_id,
            account=ctx.account,
            provider=PROVIDER,
            provider_ref=head_id,
            amount=charge.amount,
            status=RefundStatus.SUCCEEDED,
            reason=req.reason,
            created_at=charge.updated_at or ctx.now(),
            raw=dict(tran),
        )


def _partial_refund() -> NotSupported:
    return NotSupported(
        "partial refund",
        provider=PROVIDER,
        reason="Smaregi voids a sale as a whole",
        alternative="refund the whole sale (amount=None), or enter a return at the POS",
    )


def _mentions_payment_method(reply: Reply) -> bool:
    message = problem_of(reply).message or ""
    return "paymentMethodId" in message or "支払方法" in message


def _same_sale(tran: Any, sale: Sale, tran_id: str) -> bool:
    if not isinstance(tran, Mapping):
        return False

    def same(key: str, expected: str) -> bool:
        value = tran.get(key)
        if value is None:
            return False
        text = str(value)
        if text == expected:
            return True
        # Numeric ids may come back without leading zeros or as JSON numbers.
        return text.isdigit() and expected.isdigit() and int(text) == int(expected)

    if not same("terminalTranId", tran_id) or not same("terminalId", sale.terminal_id):
        return False
    if tran.get("storeId") is not None and not same("storeId", sale.store_id):
        return False
    total = tran.get("total")
    return total is None or same("total", str(sale.total))


# How long a creation claim is honoured, and how its waiters poll (about 6 s in all).
_CLAIM_STALE = timedelta(seconds=30)
_CLAIM_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def _claim_stale(holder: Any, now: datetime) -> bool:
    """A claim whose time is unreadable or older than `_CLAIM_STALE` is abandoned."""
    if not isinstance(holder, dict):
        return True
    try:
        at = datetime.fromisoformat(str(holder.get("at")))
    except ValueError:
        return True
    if at.tzinfo is None or now.tzinfo is None:
        return True
    return now - at > _CLAIM_STALE
