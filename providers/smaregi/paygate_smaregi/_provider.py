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

The calls are built in `._api`, the sale body and the mapping of transactions in
`._charges`, the error map in `._errors`, the checks (run once, by the gateway) in
`._validate`; this module holds the flows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from paygate import (
    Capabilities,
    Charge,
    InvalidRequest,
    MalformedResponse,
    MethodCapabilities,
    NotFound,
    OutcomeUnknown,
    ProviderRejected,
    Refund,
)
from paygate.adapter import (
    CacheGet,
    CachePut,
    CancelRequest,
    ChargeRef,
    ChargeRequest,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Provider,
    RefundRequest,
    Retry,
    Sleep,
    cache_claim,
    capabilities_of,
)

from ._api import LOOKUP_PAGE_SIZE, Api
from ._auth import TokenKeeper
from ._charges import (
    charge_from_wire,
    head_id_of,
    refund_from_wire,
    reversal,
    sale_body,
    same_sale,
    search_window,
    terminal_tran_id,
    transaction_uuid,
)
from ._errors import error_from_reply, is_already_registered, partial_refund, problem_of
from ._settings import SmaregiSettings
from ._validate import Sale, check_refund, check_sale, check_slip_number, sale_of
from ._wire import PROVIDER, AppPaymentMethod, format_jst, items, parse_datetime, parse_int

__all__ = ["AppPaymentMethod", "SmaregiProvider", "terminal_tran_id", "transaction_uuid"]

#: The lookup reads at most this many pages of the search window.
LOOKUP_MAX_PAGES = 10

#: Answers to POST /transactions that mean "not registered" and may be about the cached
#: app payment method.
_REFUSED_UNREGISTERED = frozenset({400, 404, 422})

# How long a creation claim is honoured, and how its waiters poll (about 6 s in all).
_CLAIM_STALE = timedelta(seconds=30)
_CLAIM_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


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
    emulator_at = "._emulator:SmaregiEmulator"
    demo_at = "._demo:demo"
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
        self.api = Api(settings, self.tokens)
        self.payment_method_cache_key = (
            f"smaregi:app_payment_method:{settings.client_id}:{settings.contract_id}"
        )

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """A sale can be cancelled (voided) or refunded, both only as a whole."""
        return capabilities_of(
            PROVIDER,
            MethodCapabilities(
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
            ),
            currencies=("JPY",),
            min_amount=1,
            max_amount=999_999_999,
            payout_balance=False,
            webhooks=False,
        )

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse a sale Smaregi would refuse (currency, sums, id formats, lengths)."""
        check_sale(req, self.settings)

    def validate_refund(self, req: RefundRequest) -> None:
        """Refuse a partial refund (Smaregi voids a sale as a whole) or one not in JPY."""
        check_refund(req)

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
        reply = yield from self.api.send(
            ctx, "GET", self.api.payment_method_url, step="app_payment_methods.get"
        )
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
        found = AppPaymentMethod.all_from_wire(reply.json())
        if not found:
            return None
        return AppPaymentMethod.pick(
            found, code=self.settings.app_payment_code, name=self.settings.payment_method_name
        )

    def _create_payment_method(self, ctx: OpContext) -> Flow[AppPaymentMethod]:
        body: dict[str, str] = {"paymentMethodName": self.settings.payment_method_name}
        if self.settings.app_payment_code is not None:
            body["appPaymentCode"] = self.settings.app_payment_code
        # The POST is safe to repeat: Smaregi keeps one per client id and answers a
        # repeat with the 403 handled below, so it is declared KEYED (deduplicated).
        reply = yield from self.api.send(
            ctx,
            "POST",
            self.api.payment_method_url,
            body=body,
            retry=Retry.KEYED,
            step="app_payment_methods.create",
        )
        if reply.ok:
            created = None
            try:
                created = AppPaymentMethod.from_wire(
                    next(iter(items(reply.json(), "appPaymentMethods", "data")), None)
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

    # -- charge ------------------------------------------------------------------------

    def _intent_key(self, ctx: OpContext) -> str:
        s = self.settings
        return f"smaregi:sale:{s.client_id}:{s.contract_id}:{ctx.key_uuid('smaregi.sale')}"

    def _sale_time(self, ctx: OpContext) -> Flow[datetime | None]:
        """The sale's terminal time, the same on every attempt under the key (None: not
        known yet, and the flow runs outside the gateway).

        Under the gateway it is when the key was first begun (``ctx.started_at``, which
        the store keeps), so nothing is written for it; a recovering attempt first reads
        the time an earlier paygate recorded for the key before sending.
        """
        if ctx.started_at is None or ctx.recovering:
            intent = yield CacheGet(self._intent_key(ctx))
            if isinstance(intent, dict):
                recorded = parse_datetime(intent.get("terminalTranDateTime"))
                if recorded is not None:
                    return recorded
        return ctx.started_at

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Register the sale (`validate_charge` has checked it, before any I/O)."""
        _need_key(ctx)
        return self._charge(sale_of(req, self.settings), ctx)

    def _charge(self, sale: Sale, ctx: OpContext) -> Flow[Charge]:
        tran_id = terminal_tran_id(ctx)
        uuid = transaction_uuid(ctx)
        when = yield from self._sale_time(ctx)
        if when is None:
            when = ctx.now()
            # Written before sending: the lookup searches around this time.
            yield CachePut(
                self._intent_key(ctx),
                {"terminalTranId": tran_id, "terminalTranDateTime": format_jst(when)},
            )
        pm, from_cache = yield from self._ensure(ctx)
        body = sale_body(
            sale, self.settings, tran_id=tran_id, uuid=uuid, when=when, payment_method=pm
        )
        url = self.api.transactions_url
        reply = yield from self.api.send(
            ctx, "POST", url, body=body, retry=Retry.UNSAFE, step="transactions.create"
        )
        if reply.status in _REFUSED_UNREGISTERED and from_cache:
            # The cached method may be gone at the POS. Check it against Smaregi (the
            # refusal's wording is not published, so it is not relied on): if Smaregi
            # lists another method, or none (then it is created), re-send once with that
            # one. A refused sale was not registered, so re-sending is safe.
            fresh = yield from self._revalidate_payment_method(ctx, pm)
            if fresh is not None:
                body = sale_body(
                    sale, self.settings, tran_id=tran_id, uuid=uuid, when=when, payment_method=fresh
                )
                reply = yield from self.api.send(
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
        return charge_from_wire(merged, ctx, ctx.charge_id)

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
        _need_key(ctx)
        return self._lookup(sale_of(req, self.settings), ctx)

    def _lookup(self, sale: Sale, ctx: OpContext) -> Flow[Charge | None]:
        tran_id = terminal_tran_id(ctx)
        uuid = transaction_uuid(ctx)
        start, end = search_window((yield from self._sale_time(ctx)), ctx.now())
        with_filter = True
        matches: list[Mapping[str, Any]] = []
        page = 1
        while page <= LOOKUP_MAX_PAGES:
            url = self.api.search_url(start, end, page=page, uuid=uuid if with_filter else None)
            reply = yield from self.api.send(ctx, "GET", url, step="transactions.list")
            if reply.status == 400 and with_filter and page == 1:
                # The filter is known only from unofficial copies of the reference: a
                # Smaregi that refuses it still answers the documented range search.
                with_filter = False
                continue
            if not reply.ok:
                raise error_from_reply(reply, action="searching for the sale")
            found = items(reply.json(), "transactions", "data")
            matches.extend(t for t in found if same_sale(t, sale, tran_id, uuid))
            if len(found) < LOOKUP_PAGE_SIZE:
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
        return charge_from_wire(matches[0], ctx, ctx.charge_id)

    # -- status, cancel, refund --------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """GET the transaction: 取消 or 返品取消 means reversed (refunded)."""
        return self._status(ref, head_id_of(ref), ctx)

    def _status(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge]:
        tran = yield from self.api.get_transaction(ctx, head_id)
        return charge_from_wire(tran, ctx, ref.charge_id)

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
        reply = yield from self.api.send(
            ctx,
            "POST",
            self.api.transaction_url(head_id, "/cancel"),
            body=body,
            retry=Retry.SAFE,
            step="transactions.cancel",
        )
        if not reply.ok and reply.status not in (400, 409, 422):
            raise error_from_reply(reply, action="cancelling the sale")
        tran = yield from self.api.get_transaction(ctx, head_id)
        if reversal(tran) is None:
            if not reply.ok:
                raise error_from_reply(reply, action="cancelling the sale")
            raise MalformedResponse(
                "Smaregi accepted the cancel but the sale is not voided", provider=PROVIDER
            )
        return tran

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Void the whole sale (POST /transactions/{id}/cancel)."""
        return self._cancel(req.charge, head_id_of(req.charge), ctx)

    def _cancel(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge]:
        tran = yield from self._void(ctx, head_id)
        return charge_from_wire(tran, ctx, ref.charge_id)

    def lookup_cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge | None]:
        """The voided sale if a possibly-sent cancel took effect, else None.

        None is safe: a re-sent cancel of a sale that is voided meanwhile is resolved
        by reading it back.
        """
        return self._lookup_void(req.charge, head_id_of(req.charge), ctx)

    def _lookup_void(self, ref: ChargeRef, head_id: str, ctx: OpContext) -> Flow[Charge | None]:
        tran = yield from self.api.get_transaction(ctx, head_id)
        if reversal(tran) is None:
            return None
        return charge_from_wire(tran, ctx, ref.charge_id)

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Void the whole sale through the cancel endpoint.

        `validate_refund` has refused a partial amount the reference shows; where the
        reference carries no amount, the flow reads the sale first. The answer is a
        `Refund` of kind ``"void"``: Smaregi moves no money.
        """
        return self._refund(req, head_id_of(req.charge), ctx)

    def _refund(self, req: RefundRequest, head_id: str, ctx: OpContext) -> Flow[Refund]:
        if req.amount is not None and req.charge.amount is None:
            current = yield from self.api.get_transaction(ctx, head_id)
            if parse_int(current.get("total"), field="total") != req.amount.amount:
                raise partial_refund()
        tran = yield from self._void(ctx, head_id)
        return refund_from_wire(req, head_id, tran, ctx)

    def lookup_refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund | None]:
        """The void if a possibly-sent refund took effect, else None (see lookup_cancel)."""
        return self._lookup_refund(req, head_id_of(req.charge), ctx)

    def _lookup_refund(
        self, req: RefundRequest, head_id: str, ctx: OpContext
    ) -> Flow[Refund | None]:
        tran = yield from self.api.get_transaction(ctx, head_id)
        if reversal(tran) is None:
            return None
        return refund_from_wire(req, head_id, tran, ctx)


def _need_key(ctx: OpContext) -> None:
    """A sale's ids derive from the merchant's key: there must be one."""
    if ctx.idempotency_key is None:
        raise InvalidRequest("a Smaregi sale needs an idempotency key", param="idempotency_key")


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
