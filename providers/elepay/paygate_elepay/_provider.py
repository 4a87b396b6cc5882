"""elepay adapter: EasyQR codes (one QR code, the payer picks PayPay, LINE Pay, ...).

Idempotency: elepay has no idempotency header. A code is created with ``orderNo``
derived from the merchant's key (at most 50 characters of ``[A-Za-z0-9_-]``). elepay's
server FAQ says it refuses (``M002007``) an orderNo that was paid *or* whose code is
still valid; it frees one after the code is closed or expires. Every orderNo sent under
a key is recorded in the entity cache before it is sent; a create whose answer was lost
goes out again under the key's next orderNo (``pg-code2-…``), so the earlier code, which
nobody saw, stays unpaid and expires. Lookups read every orderNo of the key: the codes
paygate received (cache), else a paid charge in the charge list (elepay has neither a
code list nor an orderNo filter). ``M002007`` on an orderNo paygate never sent, or a
charge list that cannot be read back far enough, is `OutcomeUnknown`, never a final
refusal. Refunds carry no key either: each refund is tagged with the derived key in its
``metadata``, and the refund flow looks for that tag in the charge's refunds before
every send, so a re-run after a lost answer returns the refund instead of refunding
twice.

Retry: reads are ``SAFE``; the code create and a refund are ``UNSAFE`` (the flow, not
the driver, decides what to send after a lost answer); closing a code is naturally
idempotent. ``M005000`` (too many requests) arrives as HTTP 400 and is retried;
``M006001`` (another operation in progress) leaves the key retryable (`outcomes`).

Status: read from ``GET /codes/{id}`` and its nested charge. Code ``pending`` ->
requires_action; ``captured`` -> the charge's state (``captured`` -> succeeded,
``partially_refunded``, ``refunded``, ``revoked`` -> canceled or refunded once paid);
``closed`` -> canceled when paygate closed it (or it closed before its expiry time),
else expired. elepay has no failed state and sends no webhook for a failed attempt: the
payer may try again until the code expires, so a charge stays requires_action until
then.

Webhooks: elepay signs nothing, so an event is derived only from the charge fetched
back from the API (identity = charge id + status + settled refund ids, type from the
status, amounts from the charge): a forged or replayed body costs one extra fetch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    InvalidRequest,
    MethodCapabilities,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    ProviderRejected,
    Refund,
    WebhookVerificationError,
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
    Outcome,
    ParsedEvent,
    Provider,
    RefundRequest,
    Reply,
    Retry,
    RetryDecision,
    TransportFailure,
    capabilities_of,
    retry_after,
)

from ._api import Api, code_body, seg
from ._charges import (
    CLOCK_SKEW,
    METHOD,
    NAME,
    PAID,
    charge_from_charge,
    charge_from_code,
    committed_refunds,
    currency_of,
    double_payment,
    integer,
    parse_ref,
    refund_from_wire,
    refund_list,
    same_amount,
    text,
    was_paid,
)
from ._errors import error_from_reply, read_error
from ._orders import ORDER_ATTEMPTS, RESENDS, OrderBook
from ._settings import ElepaySettings
from ._validate import check_charge, check_refund
from ._webhooks import charge_event, charge_id_of, other_event, read_event
from ._wire import REFUND_KEY_FIELD, to_millis

__all__ = ["ORDER_ATTEMPTS", "ElepayProvider"]

_UNSURE = (
    "elepay's charge list could not be read far enough back to tell whether an "
    "order number of this key was paid; run `paygate reconcile`"
)
_TAKEN = (
    "elepay holds this order number (paid, or a code still valid) and "
    "paygate cannot find it; run `paygate reconcile` once the code has "
    "expired (at most 30 minutes)"
)


class ElepayProvider(Provider):
    """paygate adapter for elepay EasyQR (method ``"qr"``).

    >>> from paygate import Money, QRCode
    >>> gw.charge("qr", amount=Money.jpy(1200), method=QRCode(),
    ...           idempotency_key="order-1042")  # doctest: +SKIP
    """

    name: ClassVar[str] = NAME
    emulator_at = "._emulator:ElepayEmulator"
    demo_at = "._demo:demo"
    display_name: ClassVar[str] = "elepay"
    settings_model: ClassVar[type[ElepaySettings]] = ElepaySettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        # orderNo is the body key; M002007 and the charge list tell what happened.
        Operation.CHARGE: OperationPolicy(key="body", lookup=True),
        # The derived key travels in the refund's metadata and the flow checks the
        # charge's refunds for it before posting: re-running the flow is safe, which is
        # what "keyed" promises the gateway. The POST itself stays Retry.UNSAFE.
        Operation.REFUND: OperationPolicy(key="body"),
        # The code id in the path is the key: closing twice ends in the same state and
        # the flow reads the code back.
        Operation.CANCEL: OperationPolicy(key="path"),
    }
    # What elepay's own refusals mean for the merchant's key (see `Outcome`): the ones
    # elepay itself calls temporary leave the key retryable, so a later cancel or refund
    # with the same key reaches elepay again.
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        "M006001": Outcome.RETRYABLE,  # another operation is in progress
        "M005000": Outcome.RETRYABLE,  # too many requests
    }

    settings: ElepaySettings

    def __init__(self, settings: ElepaySettings, *, account: str) -> None:
        super().__init__(settings, account=account)
        # The key itself is registered by the settings, its encoded form by the Api.
        self.api = Api(settings.base_url, settings.secret_key.get_secret_value())
        self.orders = OrderBook(account)

    def capabilities(self) -> Capabilities:
        """QR charges with partial and multiple refunds; no payout API."""
        return capabilities_of(
            NAME,
            MethodCapabilities(
                method=METHOD,
                refund="partial",
                multiple_refunds=True,
                cancel=True,
                capture=False,
                cancel_alternative=(
                    "revoke (settings.revoke_paid) or refund once the code is paid"
                ),
            ),
            currencies=("JPY",),
            min_amount=1,
            max_amount=self.settings.max_amount,
            payout_balance=False,
            webhooks=True,
            webhook_auth="refetch",
            long_poll=False,
        )

    # -- validation (called once by the gateway, before any request) ---------------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what elepay would refuse, before anything is sent (see
        `paygate_elepay._validate.check_charge`)."""
        check_charge(req, self.settings)

    def validate_refund(self, req: RefundRequest) -> None:
        """Refuse a refund elepay would refuse: JPY within ``max_amount``, a reason of at
        most 255 characters."""
        check_refund(req, self.settings)

    # -- charge ----------------------------------------------------------------------

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Create an EasyQR code: ``REQUIRES_ACTION`` with a `DisplayQR`.

        The ``orderNo`` is derived from the merchant's key. elepay refuses (``M002007``)
        an orderNo that was paid *or* whose code is still valid, and it cannot list
        codes; so a create whose answer was lost is never re-sent under the same orderNo
        hoping for a match. The flow records every orderNo it sends under the key (before
        sending), and a repeat goes out under the next derived orderNo (``pg-code2-…``,
        ``pg-code3-…``): the code nobody saw stays unpaid and expires. ``M002007`` is
        resolved through the charge list; when the list cannot rule out a payment, the
        outcome is `OutcomeUnknown` (never a final refusal).
        """
        base = self.orders.base(ctx)
        body = code_body(req, base, self.settings)
        resends = 0
        state = yield from self.orders.state(base, ctx)
        for sent in state["orders"]:
            # A re-run of the key (the gateway looked it up first): a code paygate
            # already received is the answer, not a new one.
            known = yield from self._from_cache(sent, ctx)
            if known is not None:
                same_amount(known, req)
                return known
        while True:
            order_no = self.orders.next_order_no(state, ctx)
            state["orders"].append(order_no)
            state["last"] = to_millis(ctx.now())
            yield CachePut(self.orders.key_key(base), state)
            body["orderNo"] = order_no
            try:
                reply = yield self.api.call(
                    "POST", "/codes", body=body, retry=Retry.UNSAFE, step="codes.create"
                )
            except TransportFailure as exc:
                if not exc.sent:
                    yield from self.orders.forget(base, order_no)
                    raise
                if resends >= RESENDS:
                    raise
                resends += 1  # lost answer: that code was never shown; try the next one
                continue
            if reply.ok:
                code = reply.json_object()
                yield CachePut(
                    self.orders.order_key(order_no), {"codeId": text(code, "id"), "key": base}
                )
                return charge_from_code(code, ctx)
            if reply.status >= 500 and resends < RESENDS:
                resends += 1  # elepay failed, maybe after making the code: as above
                continue
            error_code, _ = read_error(reply)
            if error_code not in ("M002007", "M002004"):
                if reply.status < 500:
                    # A refusal: elepay made nothing and the orderNo stays free.
                    yield from self.orders.forget(base, order_no)
                raise error_from_reply(reply, action="create the code")
            # An orderNo paygate had never sent is taken: sent before paygate's records
            # (a store that lost them, another system). Paid: the charge list finds it;
            # anything else is unknown until its code expires (at most 30 minutes).
            found = yield from self._lookup(
                base, {"orders": [order_no], "since": None}, ctx, unsure=_TAKEN
            )
            if found is None:  # pragma: no cover - an unbounded scan is never complete
                raise OutcomeUnknown("elepay holds this order number", provider=NAME)
            same_amount(found, req)
            return found

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """What earlier attempts under this key created.

        A code whose id paygate received (entity cache), else a paid charge of any of
        the key's orderNos (charge list). None when the charge list positively rules out
        a payment: a code whose answer was lost cannot have been shown to anyone, and
        the next create goes out under a fresh orderNo. `OutcomeUnknown` when the list
        cannot be read far enough back.
        """
        base = self.orders.base(ctx)
        entry = yield CacheGet(self.orders.key_key(base))
        if entry is not None:
            state = yield from self.orders.state(base, ctx)
        else:
            legacy = yield CacheGet(self.orders.order_key(base))
            if legacy is None:
                return None  # nothing was sent under this key: the state is written first
            # Recorded before paygate kept every orderNo of a key: its time is unknown.
            state = {"orders": [base], "since": None}
        found = yield from self._lookup(base, state, ctx)
        if found is not None:
            same_amount(found, req)
        return found

    def _lookup(
        self,
        base: str,
        state: Mapping[str, Any],
        ctx: OpContext,
        *,
        unsure: str = _UNSURE,
    ) -> Flow[Charge | None]:
        """The charge of any orderNo in ``state``: a paid one first, else a known code;
        None when the charge list rules a payment out; `OutcomeUnknown` when it cannot."""
        orders: list[str] = list(state["orders"])
        codes: list[Charge] = []
        for order_no in orders:
            known = yield from self._from_cache(order_no, ctx)
            if known is not None:
                codes.append(known)
        paid = [c for c in codes if c.paid]
        if len(paid) > 1:
            raise double_payment([c.provider_ref for c in paid])
        if paid:
            yield from self._close_extra(codes, paid[0], ctx)
            return paid[0]
        charges, complete = yield from self._scan_charges(set(orders), state.get("since"), ctx)
        paid_charges = [c for c in charges if c.get("status") in PAID or was_paid(c)]
        if len(paid_charges) > 1:
            raise double_payment([str(c.get("id")) for c in paid_charges])
        if paid_charges:
            charge = paid_charges[0]
            order_no = str(charge.get("orderNo"))
            entry = yield CacheGet(self.orders.order_key(order_no))
            code_id = entry.get("codeId") if isinstance(entry, Mapping) else None
            yield CachePut(
                self.orders.order_key(order_no),
                {"codeId": code_id, "chargeId": text(charge, "id"), "key": base},
            )
            found = charge_from_charge(
                charge, ctx, code_id=code_id if isinstance(code_id, str) else None
            )
            yield from self._close_extra(codes, found, ctx)
            return found
        if codes:
            # Known, unpaid: the newest is the one to show (earlier ones are closed).
            newest = codes[-1]
            yield from self._close_extra(codes, newest, ctx)
            return newest
        if charges:
            return charge_from_charge(charges[0], ctx)
        if not complete:
            raise OutcomeUnknown(unsure, provider=NAME)
        return None

    def _close_extra(self, codes: Sequence[Charge], keep: Charge, ctx: OpContext) -> Flow[None]:
        """Close the key's other codes that are still open: one key, one payable code."""
        for other in codes:
            if other.provider_ref == keep.provider_ref:
                continue
            if other.status is not ChargeStatus.REQUIRES_ACTION:
                continue
            target = parse_ref(other.provider_ref)
            if target.kind != "code":
                continue
            reply = yield self.api.close_code(target.id)
            if reply.ok:
                yield CachePut(self.orders.closed_key(target.id), {"at": to_millis(ctx.now())})

    def _from_cache(self, order_no: str, ctx: OpContext) -> Flow[Charge | None]:
        """The charge of an orderNo elepay answered for (None when paygate has no
        answer of elepay's for it)."""
        entry = yield CacheGet(self.orders.order_key(order_no))
        if not isinstance(entry, Mapping):
            return None
        code_id = entry.get("codeId")
        if isinstance(code_id, str) and code_id:
            reply = yield self.api.call("GET", f"/codes/{seg(code_id)}", step="codes.get")
            if reply.ok:
                return (yield from self._code_charge(reply.json_object(), ctx))
            if reply.status != 400 or read_error(reply)[0] != "M002003":
                raise error_from_reply(reply, action="read the code")
        charge_id = entry.get("chargeId")
        if isinstance(charge_id, str) and charge_id:
            charge = yield from self.api.get_charge(charge_id)
            return charge_from_charge(
                charge, ctx, code_id=code_id if isinstance(code_id, str) else None
            )
        return None

    def _code_charge(self, code: Mapping[str, Any], ctx: OpContext) -> Flow[Charge]:
        """The Charge of a code read back, telling a close by paygate from an expiry."""
        closed = False
        if code.get("status") == "closed":
            mark = yield CacheGet(self.orders.closed_key(text(code, "id")))
            closed = mark is not None
        return charge_from_code(code, ctx, closed_by_paygate=closed)

    def _scan_charges(
        self, order_nos: set[str], since: int | None, ctx: OpContext
    ) -> Flow[tuple[list[dict[str, Any]], bool]]:
        """Charges of ``order_nos`` in the charge list, and whether the scan is complete.

        Complete means every charge created since the key's first send (less a margin
        for clock skew) was read. Without that time the scan covers
        ``lookup_window_hours`` and cannot be complete.
        """
        if since is None:
            start = to_millis(ctx.now() - timedelta(hours=self.settings.lookup_window_hours))
        else:
            start = since - int(CLOCK_SKEW.total_seconds() * 1000)
        found, ended = yield from self.api.scan_charges(
            order_nos, start, max_pages=self.settings.lookup_max_pages
        )
        return found, ended and since is not None

    # -- status and cancel -------------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """The code (and its charge) as elepay sees it now."""
        target = parse_ref(ref.provider_ref)
        if target.kind == "charge":
            charge = yield from self.api.get_charge(target.id)
            return charge_from_charge(charge, ctx)
        code = yield from self.api.get_code(target.id)
        return (yield from self._code_charge(code, ctx))

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Close an unpaid code (``DELETE /codes/{id}``); a closed one stays closed."""
        target = parse_ref(req.charge.provider_ref)
        if target.kind == "charge":
            charge = yield from self.api.get_charge(target.id)
            current = charge_from_charge(charge, ctx)
            if current.status.is_terminal or charge.get("status") == "revoked":
                return current
            if current.paid and self.settings.revoke_paid:
                return (yield from self._revoke(target.id, None, ctx))
            raise NotSupported(
                "cancel",
                provider=NAME,
                reason="the charge was paid; its code cannot be closed any more",
                alternative="refund",
            )
        # paygate closes it: from then on it reads as canceled, whatever elepay's
        # undocumented ``expired`` flag says about deleted codes. Noted before the
        # DELETE, so that a close whose answer is lost (a re-sent DELETE then answers
        # M006003) still reads as canceled.
        marker = self.orders.closed_key(target.id)
        known = yield CacheGet(marker)
        if known is None:
            yield CachePut(marker, {"at": to_millis(ctx.now())})
        reply = yield self.api.close_code(target.id)
        # A code that is already closed, expired or paid answers with an M006 code;
        # reading it back tells which, so a repeated cancel ends where the first did.
        # M006001 (another operation in progress) is raised: nothing happened, and the
        # key stays retryable (`outcomes`).
        if not reply.ok:
            error_code = read_error(reply)[0]
            if error_code != "M006003" and known is None:
                yield CachePut(marker, None)  # this DELETE closed nothing
            if error_code not in ("M006000", "M006003", "M006004"):
                raise error_from_reply(reply, action="close the code")
        code = yield from self.api.get_code(target.id)
        current = yield from self._code_charge(code, ctx)
        nested = code.get("charge")
        if current.paid and isinstance(nested, Mapping):
            if nested.get("status") == "revoked":
                return current  # revoked by an earlier run of this cancel
            if self.settings.revoke_paid:
                return (yield from self._revoke(text(nested, "id"), target.id, ctx))
        if current.paid:
            if not reply.ok:
                raise error_from_reply(reply, action="close the code")
            raise ProviderRejected(
                "elepay could not close the code: it was paid first; refund it instead",
                provider=NAME,
            )
        return current

    def _revoke(self, charge_id: str, code_id: str | None, ctx: OpContext) -> Flow[Charge]:
        """Cancel a paid charge whole (``POST /charges/{id}/revoke``), where elepay
        allows it for the payment method; its refusal is raised as it came."""
        reply = yield self.api.call(
            "POST",
            f"/charges/{seg(charge_id)}/revoke",
            body={},
            retry=Retry.UNSAFE,
            step="charges.revoke",
        )
        if reply.ok:
            return charge_from_charge(reply.json_object(), ctx, code_id=code_id)
        # A re-run after a lost answer: the charge may be revoked already.
        charge = yield from self.api.get_charge(charge_id)
        if charge.get("status") == "revoked":
            return charge_from_charge(charge, ctx, code_id=code_id)
        raise error_from_reply(reply, action="revoke the charge")

    # -- refund --------------------------------------------------------------------------

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund all or part of a paid charge (``POST /charges/{id}/refunds``)."""
        target = parse_ref(req.charge.provider_ref)
        if target.kind == "code":
            code = yield from self.api.get_code(target.id)
            nested = code.get("charge")
            if not isinstance(nested, Mapping) or not isinstance(nested.get("id"), str):
                raise InvalidRequest("the charge has not been paid", param="charge_id")
            charge: Mapping[str, Any] = nested
        else:
            charge = yield from self.api.get_charge(target.id)
        charge_id = text(charge, "id")
        currency = currency_of(charge)
        key = ctx.provider_key("refund") if ctx.idempotency_key is not None else None
        if key is not None:
            # Before anything else: an earlier run may have refunded already, and then
            # the charge no longer looks refundable.
            existing = yield from self._find_refund(charge, key)
            if existing is not None:
                return refund_from_wire(existing, req, ctx)
        if charge.get("status") not in ("captured", "partially_refunded"):
            raise InvalidRequest(
                f"an elepay charge in status {charge.get('status')!r} cannot be refunded",
                param="charge_id",
            )
        refundable = integer(charge, "amount") - committed_refunds(charge)
        if req.amount is not None and req.amount.currency != currency:
            raise InvalidRequest(f"the charge is in {currency}", param="amount")
        amount = req.amount.amount if req.amount is not None else refundable
        if not 0 < amount <= refundable:
            raise InvalidRequest(
                f"at most {refundable} {currency} can still be refunded", param="amount"
            )
        body: dict[str, Any] = {"amount": amount, "currency": currency}
        if req.reason is not None:
            body["reason"] = req.reason
        if key is not None:
            body["metadata"] = {REFUND_KEY_FIELD: key}
        reply = yield self.api.call(
            "POST",
            f"/charges/{seg(charge_id)}/refunds",
            body=body,
            retry=Retry.UNSAFE,
            step="refunds.create",
        )
        return refund_from_wire(self.api.read(reply, action="refund the charge"), req, ctx)

    def _find_refund(self, charge: Mapping[str, Any], key: str) -> Flow[dict[str, Any] | None]:
        """The refund tagged with ``key``: from the charge's own list when it is complete,
        else from ``GET /charges/{id}/refunds``."""
        listed = refund_list(charge)
        if listed is None:
            listed = yield from self.api.list_refunds(text(charge, "id"))
        for item in listed:
            meta = item.get("metadata")
            if isinstance(meta, Mapping) and meta.get(REFUND_KEY_FIELD) == key:
                return dict(item)
        return None

    def outcome_of(self, error: PaygateError) -> Outcome | None:
        """elepay's temporary refusals are retryable; an unknown outcome stays unknown."""
        if isinstance(error, OutcomeUnknown):
            return Outcome.UNKNOWN
        return super().outcome_of(error)

    # -- retry classification --------------------------------------------------------

    def classify(self, reply: Reply) -> RetryDecision | None:
        """``M005000`` (too many requests) comes as HTTP 400: retry it."""
        if reply.status == 400 and read_error(reply)[0] == "M005000":
            return RetryDecision(retry=True, after=retry_after(reply))
        return None

    # -- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """elepay signs nothing: only the shape is checked here.

        Authenticity comes from `parse_webhook`, which fetches the charge back from the
        API and builds the event from that answer alone, never from the posted body.
        """
        read_event(body)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        """Derive the event from the charge as elepay's API states it now.

        The posted body only names the charge to fetch (``data.object.id``, or
        ``chargeId`` for a refund). The event's identity is the charge's state (its id,
        status and settled refunds), its type follows the fetched status and its
        amounts come from the fetched charge: a forged, re-typed or replayed body can at
        most cause one extra ``GET /charges/{id}``.
        """
        event = read_event(body)
        charge_id = charge_id_of(event)
        if charge_id is None:
            return [other_event(event)]  # nothing to fetch back
        reply = yield self.api.call("GET", f"/charges/{seg(charge_id)}", step="charges.get")
        if reply.status == 400 and read_error(reply)[0] == "M002003":
            raise WebhookVerificationError(
                "elepay does not know the charge the event names",
                provider=NAME,
                provider_code="M002003",
                http_status=reply.status,
            )
        charge = self.api.read(reply, action="read the charge")
        if charge.get("id") != charge_id:
            raise WebhookVerificationError("elepay answered for another charge", provider=NAME)
        order_no = charge.get("orderNo")
        code_id: str | None = None
        if isinstance(order_no, str) and order_no:
            entry = yield CacheGet(self.orders.order_key(order_no))
            if isinstance(entry, Mapping):
                cached_code = entry.get("codeId")
                code_id = cached_code if isinstance(cached_code, str) else None
                yield CachePut(self.orders.order_key(order_no), {**entry, "chargeId": charge_id})
        fresh = charge_from_charge(charge, ctx, code_id=code_id)
        return [charge_event(str(event["type"]), charge, fresh)]
