"""The Smaregi adapter: POS sales registered under the app's own payment method.

Semantics, in short:

* Idempotency. POST /transactions has no documented duplicate protection (O-S7). paygate
  derives ``terminalTranId`` and the receipt number ``transactionUuid`` deterministically
  from the merchant's idempotency key and records the sale's terminal time in the entity
  cache *before* sending, so after an unknown outcome `SmaregiProvider.lookup_charge`
  can search for the sale (the ``transaction_uuid`` filter, inside a documented time
  range) and tell whether it exists. The create itself is `Retry.UNSAFE`: only failures
  that surely did not reach Smaregi are retried blindly; anything else goes through the
  lookup.
* The app payment method (POST/GET ``{contract}/pos/app_payment_method``) is created at
  most once per (client id, contract): the adapter GETs first, POSTs only when absent,
  and treats the 403 "limit reached" answer as "it exists": GET again and use it. The id
  is cached in the store, and re-checked when Smaregi refuses a sale that used it.
* Retry. 429 and 5xx are retried by the driver (generic rule); a 401 refreshes the
  access token once and repeats the call (a 401 means the request was not processed).
* Status. A registered sale is ``succeeded`` (money was taken by the app). A sale
  reversed at Smaregi, by 取消 (``cancelDivision`` 1) or by 返品取消 (``disposeDivision``
  1 on the original), is ``refunded``: the sale is undone in full in the shop's books.
  Smaregi moves no money: a refund or cancel through paygate is a *void*
  (``Refund.kind == "void"``); the customer is refunded through the payment provider
  that took the money. There is no partial refund through the API (a return is a
  separate POS transaction), so only whole-sale voids are offered.
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
    NotFound,
    NotSupported,
    OutcomeUnknown,
    ProviderRejected,
    Refund,
    RefundStatus,
)
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
from ._validate import Sale, check_sale, check_slip_number
from ._wire import (
    JST,
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

__all__ = ["AppPaymentMethod", "SmaregiProvider", "terminal_tran_id", "transaction_uuid"]

#: The lookup searches this far around the recorded terminal time of the sale.
LOOKUP_MARGIN = timedelta(minutes=10)
#: Without a recorded time (another store, a purged cache), it searches this far back
#: (31 days is the longest range GET /transactions takes).
LOOKUP_FALLBACK = timedelta(days=30)
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


# 13-digit numbers that do not start with 0: the length of Smaregi's own default receipt
# number (last 9 digits of the epoch second + the terminal id in 4 digits).
_UUID_SPACE = 9 * 10**12


def transaction_uuid(ctx: OpContext) -> str:
    """The receipt number (``transactionUuid``) of this charge, derived from its key.

    Smaregi asks for a unique value: duplicates can keep the Smaregi app from calling
    the sale up. Its own default (epoch seconds + terminal id) repeats when two sales of
    one terminal fall in the same second, which paygate's single configured terminal
    makes likely under load. This is a 13-digit number from the UUIDv5 of the account
    and the idempotency key: a re-sent sale carries the same one, and two keys collide
    with probability 1 in 9e12.

    >>> from paygate.adapter import OpContext
    >>> ctx = OpContext(account="pos", provider="smaregi", idempotency_key="order-1042")
    >>> uuid = transaction_uuid(ctx)
    >>> len(uuid), uuid[0] != "0", uuid == transaction_uuid(ctx)
    (13, True, True)
    """
    number = ctx.key_uuid("smaregi.transactionUuid").int % _UUID_SPACE
    return str(10**12 + number)


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
        # flow resolves by reading it back (voided: done), so re-sending is harmless;
        # after a lost answer the lookup reads the transaction.
        Operation.REFUND: OperationPolicy(key="path", lookup=True),
        Operation.CANCEL: OperationPolicy(key="path", lookup=True),
    }

    settings: SmaregiSettings

    def __init__(self, settings: SmaregiSettings, *, account: str) -> None:
        super().__init__(settings, account=account)
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
                    # A Smaregi cancel voids the record; no money goes back to anyone.
                    refund_moves_money=False,
                    refund_alternative=(
                        "void the whole sale, and refund the customer through the payment "
                        "provider that took the money; a partial return is a return "
                        "transaction entered at the POS"
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

        The path is the one a developer registered the method at (forum discussion
        539): ``/{contract_id}/pos/app_payment_method`` (setting
        ``app_payment_method_path``). The POST carries ``paymentMethodName`` (the app
        sets it, as Smaregi's staff answered there) and ``appPaymentCode`` only when
        configured. O-S1: the GET's shape is not published; a bare array, a single
        object and a wrapping object are all read, and only ``paymentMethodId`` is
        required. A 404 on the GET means the path is wrong, never "none registered".
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
            # An empty list is "none registered"; a 404 is a path Smaregi does not serve.
            problem = problem_of(reply)
            raise NotFound(
                f"Smaregi does not serve /pos/{self.settings.app_payment_method_path} on "
                "this contract: check the setting app_payment_method_path (documented: "
                "app_payment_method)",
                provider=PROVIDER,
                provider_code=problem.code,
                provider_message=problem.message,
                http_status=404,
            )
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
        # One per client id is the rule; if a contract shows several, prefer ours.
        for pm in found:
            if self.settings.app_payment_code is not None and pm.code == (
                self.settings.app_payment_code
            ):
                return pm
        for pm in found:
            if pm.name == self.settings.payment_method_name:
                return pm
        return found[0]

    def _create_payment_method(self, ctx: OpContext) -> Flow[AppPaymentMethod]:
        body: dict[str, str] = {"paymentMethodName": self.settings.payment_method_name}
        if self.settings.app_payment_code is not None:
            body["appPaymentCode"] = self.settings.app_payment_code
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
        uuid = transaction_uuid(ctx)
        body = self._sale_body(sale, tran_id, uuid, when, pm)
        url = f"{self._pos}/transactions"
        reply = yield from self._send(
            ctx, "POST", url, body=body, retry=Retry.UNSAFE, step="transactions.create"
        )
        if reply.status in _REFUSED_UNREGISTERED and from_cache:
            # The cached method may be gone at the POS. Check it against Smaregi (the
            # refusal's wording is not published, so it is not relied on): if Smaregi
            # lists another method, or none (then it is created), re-send once with that
            # one. A refused sale was not registered, so re-sending is safe.
            fresh = yield from self._revalidate_payment_method(ctx, pm)
            if fresh is not None:
                body = self._sale_body(sale, tran_id, uuid, when, fresh)
                reply = yield from self._send(
                    ctx, "POST", url, body=body, retry=Retry.UNSAFE, step="transactions.create"
                )
        if not reply.ok:
            raise error_from_reply(reply, action="registering the sale")
        data = reply.json()
        created = data if isinstance(data, dict) else {}
        head_id = created.get("transactionHeadId")
        if isinstance(head_id, bool) or not isinstance(head_id, str | int) or head_id == "":
            raise MalformedResponse(
                "sale registered without transactionHeadId",
                provider=PROVIDER,
                http_status=reply.status,
            )
        # O-S6: the response may hold only the id; what was sent fills the rest.
        merged = {**body, **created, "transactionHeadId": str(head_id)}
        return self._to_charge(merged, ctx, ctx.charge_id)

    def _revalidate_payment_method(
        self, ctx: OpContext, used: AppPaymentMethod
    ) -> Flow[AppPaymentMethod | None]:
        """After a refused sale: the method to re-send with, or None (``used`` is fine).

        GET the method. The same id: the refusal was about something else. Another id:
        cache and use it. None listed: forget the cached one and create it again.
        """
        found = yield from self._find_payment_method(ctx)
        if found is not None and found.payment_method_id == used.payment_method_id:
            return None
        yield CachePut(self.payment_method_cache_key, None)
        if found is None:
            found = yield from self._create_once(ctx)
        yield CachePut(self.payment_method_cache_key, found.to_cache())
        return found

    def _sale_body(
        self, sale: Sale, tran_id: str, uuid: str, when: datetime, pm: AppPaymentMethod
    ) -> dict[str, Any]:
        total = str(sale.total)
        details = []
        # transactionDetailId is 1..999 (check_sale allows at most 999 lines).
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
        # The app payment: the amount, and the cashless slip fields Smaregi's staff
        # place on the depositOthers item (forum discussion 539).
        payment: dict[str, str] = {"paymentMethodId": pm.payment_method_id, "depositOthers": total}
        if sale.slip_number is not None:
            payment["slipNumber"] = sale.slip_number
        if sale.card_company is not None:
            payment["cardCompany"] = sale.card_company
        if self.settings.denomination_code is not None:
            payment["denominationCode"] = self.settings.denomination_code
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
            "transactionUuid": uuid,
            "details": details,
            "depositOthers": [payment],
        }
        if self.settings.virtual_terminal:
            # A terminal the shop does not have cannot be settled: register the sale as
            # closed on its own (JST) date, as the official field text asks.
            body["sumDivision"] = "2"
            body["sumDate"] = when.astimezone(JST).date().isoformat()
        if sale.memo is not None:
            body["memo"] = sale.memo
        return body

    def _to_charge(self, tran: Mapping[str, Any], ctx: OpContext, charge_id: str | None) -> Charge:
        head_id = str(tran.get("transactionHeadId", ""))
        if not head_id:
            raise MalformedResponse("transaction without transactionHeadId", provider=PROVIDER)
        amount = Money.jpy(parse_int(tran.get("total"), field="total"))
        reversed_ = _reversal(tran) is not None
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
            # A sale reversed in full (取消 or 返品取消) is refunded (see the module note).
            status=ChargeStatus.REFUNDED if reversed_ else ChargeStatus.SUCCEEDED,
            amount=amount,
            amount_refunded=amount if reversed_ else Money.jpy(0),
            created_at=created,
            updated_at=updated,
            raw=dict(tran),
        )

    # -- lookup ------------------------------------------------------------------------

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the sale a possibly-sent charge registered.

        Lists transactions with the exact ``transaction_uuid`` filter inside a
        ``terminal_tran_date_time`` range (one range is required): ±10 minutes around
        the time recorded before sending, without a record the last 30 days. A row is
        ours when its ``transactionUuid`` is this key's; a row without one is matched on
        store, terminal, ``terminalTranId`` and total. Where Smaregi ignores the filter
        the same matching sorts the window; where it refuses it (400), the window is
        searched without it. None: not registered. Two or more matches (a duplicate at
        Smaregi) raise `OutcomeUnknown` for reconciliation rather than pick one.
        """
        sale = check_sale(req, self.settings)
        if ctx.idempotency_key is None:
            raise InvalidRequest("a Smaregi sale needs an idempotency key", param="idempotency_key")
        return self._lookup(sale, ctx)

    def _lookup(self, sale: Sale, ctx: OpContext) -> Flow[Charge | None]:
        tran_id = terminal_tran_id(ctx)
        uuid = transaction_uuid(ctx)
        intent = yield CacheGet(self._intent_key(ctx))
        when = (
            parse_datetime(intent.get("terminalTranDateTime")) if isinstance(intent, dict) else None
        )
        if when is not None:
            start, end = when - LOOKUP_MARGIN, when + LOOKUP_MARGIN
        else:
            now = ctx.now()
            start, end = now - LOOKUP_FALLBACK, now + LOOKUP_MARGIN
        with_filter = True
        matches: list[Mapping[str, Any]] = []
        page = 1
        while page <= LOOKUP_MAX_PAGES:
            params = {
                "terminal_tran_date_time-from": format_jst(start),
                "terminal_tran_date_time-to": format_jst(end),
                "limit": str(LOOKUP_PAGE_SIZE),
                "page": str(page),
                # The range field first, as the list operation recommends.
                "sort": "terminalTranDateTime,transactionHeadId",
            }
            if with_filter:
                params["transaction_uuid"] = uuid
            query = urllib.parse.urlencode(params)
            reply = yield from self._send(
                ctx, "GET", f"{self._pos}/transactions?{query}", step="transactions.list"
            )
            if reply.status == 400 and with_filter and page == 1:
                # The filter is known only from unofficial copies of the reference: a
                # Smaregi that refuses it still answers the documented range search.
                with_filter = False
                continue
            if not reply.ok:
                raise error_from_reply(reply, action="searching for the sale")
            items = _items(reply.json(), "transactions", "data")
            matches.extend(t for t in items if _same_sale(t, sale, tran_id, uuid))
            if len(items) < LOOKUP_PAGE_SIZE:
                break
            page += 1
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
                f"{len(matches)} Smaregi transactions carry this sale's receipt number",
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
        """GET the transaction: 取消 or 返品取消 means reversed (refunded)."""
        head_id = self._head_id(ref)
        return self._status(ref, head_id, ctx)

    def _status(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge]:
        tran = yield from self._get_transaction(ctx, head_id)
        return self._to_charge(tran, ctx, ref.charge_id)

    def _cancel_slip_key(self, head_id: str) -> str:
        s = self.settings
        return f"smaregi:cancel_slip:{s.client_id}:{s.contract_id}:{head_id}"

    def prepare_void(
        self, ctx: OpContext, *, transaction_head_id: str, cancel_slip_number: str
    ) -> Flow[dict[str, str]]:
        """Record the cashless *cancel* slip number for the next void of a sale.

        ``gw.extension("pos", "prepare_void", transaction_head_id=charge.provider_ref,
        cancel_slip_number="C-0001")`` before ``gw.refund`` / ``gw.cancel``: the cancel
        request then carries it as ``depositOthers[{no: "1", cancelSlipNumber}]`` (the
        app payment is the sale's first depositOthers item).
        """
        if not transaction_head_id.isascii() or not transaction_head_id.isdigit():
            raise InvalidRequest("not a Smaregi transaction id", param="transaction_head_id")
        check_slip_number(cancel_slip_number, param="cancel_slip_number")
        value = {"cancelSlipNumber": cancel_slip_number}
        yield CachePut(self._cancel_slip_key(transaction_head_id), value)
        return value

    def _void(self, ctx: OpContext, head_id: str) -> Flow[dict[str, Any]]:
        """POST the cancel, then read the transaction back.

        The body carries ``cancelDateTime`` (now, JST) and, when `prepare_void` left
        one, the cancel slip number of the app payment. Re-sending a cancel is harmless:
        Smaregi answers a repeat with an error (O-S8: its exact form is unknown), which
        the flow resolves by reading the transaction; if it is reversed (取消, or
        返品取消 at the register), the sale is void. So the call is declared SAFE.
        """
        body: dict[str, Any] = {"cancelDateTime": format_jst(ctx.now())}
        slip = yield CacheGet(self._cancel_slip_key(head_id))
        if isinstance(slip, dict) and isinstance(slip.get("cancelSlipNumber"), str):
            body["depositOthers"] = [{"no": "1", "cancelSlipNumber": slip["cancelSlipNumber"]}]
        reply = yield from self._send(
            ctx,
            "POST",
            self._transaction_url(head_id, "/cancel"),
            body=body,
            retry=Retry.SAFE,
            step="transactions.cancel",
        )
        if not reply.ok and reply.status not in (400, 409, 422):
            raise error_from_reply(reply, action="cancelling the sale")
        tran = yield from self._get_transaction(ctx, head_id)
        if _reversal(tran) is None:
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

    def lookup_cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge | None]:
        """The voided sale if a possibly-sent cancel took effect, else None.

        None is safe: a re-sent cancel of a sale that is voided meanwhile is resolved
        by reading it back.
        """
        head_id = self._head_id(req.charge)
        return self._lookup_void(req.charge, head_id, ctx)

    def _lookup_void(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge | None]:
        tran = yield from self._get_transaction(ctx, head_id)
        if _reversal(tran) is None:
            return None
        return self._to_charge(tran, ctx, ref.charge_id)

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Void the whole sale through the cancel endpoint; partial is `NotSupported`.

        The answer is a `Refund` of kind ``"void"``: Smaregi moves no money.
        """
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
        return self._void_refund(req, head_id, tran, ctx)

    def lookup_refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund | None]:
        """The void if a possibly-sent refund took effect, else None (see lookup_cancel)."""
        head_id = self._head_id(req.charge)
        return self._lookup_refund(req, head_id, ctx)

    def _lookup_refund(
        self, req: RefundRequest, head_id: str, ctx: OpContext
    ) -> Flow[Refund | None]:
        tran = yield from self._get_transaction(ctx, head_id)
        if _reversal(tran) is None:
            return None
        return self._void_refund(req, head_id, tran, ctx)

    def _void_refund(
        self, req: RefundRequest, head_id: str, tran: Mapping[str, Any], ctx: OpContext
    ) -> Refund:
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
            # Smaregi voids the record; the customer's money is returned (or not) by the
            # payment provider that took it.
            kind="void",
            charge_refunded_total=charge.amount_refunded,
        )


#: Answers to POST /transactions that mean "not registered" and may be about the cached
#: app payment method.
_REFUSED_UNREGISTERED = frozenset({400, 404, 422})


def _reversal(tran: Mapping[str, Any]) -> str | None:
    """How the sale was reversed in full: "cancel" (取消), "dispose" (返品取消), or None.

    取消 sets the record's ``cancelDivision`` to 1. 返品取消 leaves it 0, marks the
    original ``disposeDivision`` 1 (打消元) and adds an offsetting record with
    ``disposeDivision`` 2 (Smaregi staff, forum discussions 79, 455 and 469).
    """
    if str(tran.get("cancelDivision", "0")) == "1":
        return "cancel"
    if str(tran.get("disposeDivision", "0")) == "1":
        return "dispose"
    return None


def _partial_refund() -> NotSupported:

    return NotSupported(
        "partial refund",
        provider=PROVIDER,
        reason="Smaregi voids a sale as a whole",
        alternative="refund the whole sale (amount=None), or enter a return at the POS",
    )


def _same_sale(tran: Any, sale: Sale, tran_id: str, uuid: str) -> bool:
    if not isinstance(tran, Mapping):
        return False
    # The receipt number is this key's own: decisive where the row carries it.
    if tran.get("transactionUuid") not in (None, ""):
        return str(tran["transactionUuid"]) == uuid

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
