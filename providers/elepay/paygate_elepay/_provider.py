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

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote, urlencode

from paygate import (
    Capabilities,
    Charge,
    ChargeStatus,
    DisplayQR,
    IdempotencyConflict,
    InvalidRequest,
    MalformedResponse,
    MethodCapabilities,
    Money,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    ProviderRejected,
    QRCode,
    Refund,
    RefundStatus,
    WebhookVerificationError,
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
    Outcome,
    ParsedEvent,
    Provider,
    RefundRequest,
    Reply,
    Retry,
    RetryDecision,
    TransportFailure,
    register_secret,
)

from ._errors import error_from_reply, read_error
from ._settings import ElepaySettings
from ._wire import (
    CONTENT_TYPE,
    EXPIRY_MINUTES_MAX,
    EXPIRY_MINUTES_MIN,
    FRONT_URL_PATTERN,
    METADATA_MAX_KEYS,
    METADATA_RESERVED_PREFIXES,
    METADATA_VALUE_MAX_BYTES,
    ORDER_NO_MAX,
    REFUND_KEY_FIELD,
    TEXT_MAX,
    dumps,
    from_millis,
    to_millis,
)

if TYPE_CHECKING:
    from paygate.sandbox import Emulator

__all__ = [
    "ElepayProvider",
    "charge_status",
    "code_status",
    "parse_ref",
]

NAME: Final = "elepay"
METHOD: Final = "qr"
_PAGE: Final = 100

_CHARGE_STATUS: Final[Mapping[str, ChargeStatus]] = {
    "pending": ChargeStatus.REQUIRES_ACTION,
    "uncaptured": ChargeStatus.AUTHORIZED,
    "captured": ChargeStatus.SUCCEEDED,
    "partially_refunded": ChargeStatus.PARTIALLY_REFUNDED,
    "refunded": ChargeStatus.REFUNDED,
    "revoked": ChargeStatus.CANCELED,
}
_REFUND_STATUS: Final[Mapping[str, RefundStatus]] = {
    "pending": RefundStatus.PENDING,
    "refunded": RefundStatus.SUCCEEDED,
}
_PAID: Final = frozenset({"captured", "partially_refunded", "refunded"})
# Order numbers one key may use (``pg-code-…``, ``pg-code2-…``, …) and how many of them
# one charge call sends after lost answers before it reports the outcome as unknown.
ORDER_ATTEMPTS: Final = 6
_RESENDS: Final = 2
# The charge list is read from the key's first send less this (clock skew).
_CLOCK_SKEW: Final = timedelta(minutes=5)
# A code lives at most 30 minutes (expiryDuration); with the skew, its orderNo is free.
_CODE_LIFETIME_MS: Final = (30 + 5) * 60_000


# --------------------------------------------------------------------------- refs


@dataclass(frozen=True, slots=True)
class ElepayRef:
    """What a paygate charge points at: an EasyQR code, or only a charge.

    ``provider_ref`` is ``code:<codeId>`` for every charge paygate creates. A charge
    recovered from the charge list (its code is unknown) is ``charge:<chargeId>``.
    """

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def parse_ref(provider_ref: str) -> ElepayRef:
    """Read a ``provider_ref``; a bare id is taken as a code id.

    >>> parse_ref("charge:ch_1")
    ElepayRef(kind='charge', id='ch_1')
    """
    kind, sep, ident = provider_ref.partition(":")
    if sep and kind in ("code", "charge") and ident:
        return ElepayRef(kind, ident)
    if not provider_ref:
        raise InvalidRequest("empty elepay reference", param="charge_id")
    return ElepayRef("code", provider_ref)


# ------------------------------------------------------------------------ statuses


def charge_status(charge: Mapping[str, Any]) -> ChargeStatus | None:
    """paygate status of an elepay charge object (None for an unknown status).

    A ``revoked`` charge that had been paid returned all its money: refunded.
    """
    status = charge.get("status")
    if not isinstance(status, str):
        return None
    if status == "revoked" and _was_paid(charge):
        return ChargeStatus.REFUNDED
    return _CHARGE_STATUS.get(status)


def _was_paid(charge: Mapping[str, Any]) -> bool:
    return charge.get("paid") is True or bool(charge.get("paidTime"))


def code_status(
    code: Mapping[str, Any],
    *,
    now: datetime | None = None,
    closed_by_paygate: bool = False,
) -> ChargeStatus:
    """paygate status of an EasyQR code, taking its nested charge into account.

    elepay's ``closed`` means "expired or deleted" (one value), and what ``expired``
    says about a deleted code is not documented. So a ``closed`` code is *canceled*
    when paygate closed it (it sent the ``DELETE``) or when it was closed before its
    ``expiryTime``; otherwise it ran out: *expired*, unless its ``expired`` flag is
    false (which can only mean it was deleted). An unknown status reads as still
    waiting for the payer.
    """
    nested = code.get("charge")
    status = code.get("status")
    if isinstance(nested, Mapping):
        mapped = charge_status(nested)
        if mapped is not None and mapped is not ChargeStatus.REQUIRES_ACTION:
            return mapped
    if status == "captured":
        return ChargeStatus.SUCCEEDED
    if status == "closed":
        return (
            ChargeStatus.EXPIRED
            if _ran_out(code, now, closed_by_paygate)
            else (ChargeStatus.CANCELED)
        )
    if status == "pending" and code.get("expired") is True:
        period = code.get("expiryPeriod")
        if not isinstance(period, int) or period <= 0:
            return ChargeStatus.EXPIRED
    return ChargeStatus.REQUIRES_ACTION


def _ran_out(code: Mapping[str, Any], now: datetime | None, closed_by_paygate: bool) -> bool:
    if closed_by_paygate or code.get("expired") is False:
        return False  # paygate deleted it, or elepay says it did not run out
    period = code.get("expiryPeriod")
    if isinstance(period, int) and not isinstance(period, bool) and period > 0:
        return False  # elepay's own clock says time was left: it was deleted
    # Closed well before its expiry time (paygate's clock, less the skew): deleted.
    expires = from_millis(code.get("expiryTime"))
    return not (expires is not None and now is not None and now + _CLOCK_SKEW < expires)


def _refunded_amount(charge: Mapping[str, Any], status: ChargeStatus | None) -> int:
    """What the charge returned to the payer.

    A paid charge that was ``revoked`` (cancelled) returned its whole amount, whether or
    not elepay lists the revoke under ``refunds`` (not documented either way).
    """
    amount = charge.get("amount")
    whole = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
    if charge.get("status") == "revoked" and _was_paid(charge):
        return whole
    refunds = charge.get("refunds")
    if isinstance(refunds, Mapping):
        total = refunds.get("amount")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    if status is ChargeStatus.REFUNDED:
        return whole
    return 0


def _refund_list(charge: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The charge's refunds when the charge object lists all of them (else None)."""
    refunds = charge.get("refunds")
    if not isinstance(refunds, Mapping):
        return None
    data = refunds.get("data")
    count = refunds.get("totalCount")
    if not isinstance(data, list) or not isinstance(count, int) or len(data) != count:
        return None
    return [r for r in data if isinstance(r, dict)]


def _committed_refunds(charge: Mapping[str, Any]) -> int:
    """Refunded so far, counting refunds still pending (they cannot be refunded twice)."""
    listed = _refund_list(charge)
    if listed is not None:
        return sum(r["amount"] for r in listed if isinstance(r.get("amount"), int))
    return _refunded_amount(charge, None)


# ------------------------------------------------------------------------ provider


class ElepayProvider(Provider):
    """paygate adapter for elepay EasyQR (method ``"qr"``).

    >>> from paygate import Money, QRCode
    >>> gw.charge("qr", amount=Money.jpy(1200), method=QRCode(),
    ...           idempotency_key="order-1042")  # doctest: +SKIP
    """

    name: ClassVar[str] = NAME
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
        secret = settings.secret_key.get_secret_value()
        token = base64.b64encode(f"{secret}:".encode()).decode("ascii")
        register_secret(token)  # the key itself is registered by the settings
        self._authorization = f"Basic {token}"

    @classmethod
    def emulator(cls) -> type[Emulator]:
        """The elepay sandbox emulator."""
        from ._emulator import ElepayEmulator

        return ElepayEmulator

    def capabilities(self) -> Capabilities:
        """QR charges with partial and multiple refunds; no payout API."""
        return Capabilities(
            provider=NAME,
            methods={
                METHOD: MethodCapabilities(
                    method=METHOD,
                    refund="partial",
                    multiple_refunds=True,
                    cancel=True,
                    capture=False,
                    cancel_alternative=(
                        "revoke (settings.revoke_paid) or refund once the code is paid"
                    ),
                )
            },
            currencies=("JPY",),
            min_amount=1,
            max_amount=self.settings.max_amount,
            payout_balance=False,
            webhooks=True,
            webhook_auth="refetch",
            long_poll=False,
        )

    # -- validation ---------------------------------------------------------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what elepay would refuse, before anything is sent."""
        method = _qr(req)
        _check_amount(req.amount, self.settings.max_amount)
        if req.description is not None:
            _check_text(req.description, "description")
        _check_metadata(req.metadata)
        self._expiry_minutes(method)
        front = self._front_url(method)
        if front is not None and not FRONT_URL_PATTERN.fullmatch(front):
            raise InvalidRequest("return_url must be an http(s) URL", param="method.return_url")
        _items(method)

    def _validate_refund(self, req: RefundRequest) -> None:
        if req.amount is not None:
            _check_amount(req.amount, self.settings.max_amount)
        if req.reason is not None:
            _check_text(req.reason, "reason")

    def _expiry_minutes(self, method: QRCode) -> int:
        if method.expires_in is None:
            return self.settings.expiry_minutes
        seconds = method.expires_in.total_seconds()
        minutes, rest = divmod(seconds, 60)
        if rest or not EXPIRY_MINUTES_MIN <= minutes <= EXPIRY_MINUTES_MAX:
            raise InvalidRequest(
                f"elepay codes expire after {EXPIRY_MINUTES_MIN} to {EXPIRY_MINUTES_MAX} "
                "whole minutes",
                param="method.expires_in",
            )
        return int(minutes)

    def _front_url(self, method: QRCode) -> str | None:
        return method.return_url or self.settings.front_url

    # -- wire plumbing --------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        step: str,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, Any]] = (),
        retry: Retry = Retry.SAFE,
    ) -> Call:
        url = self.settings.base_url + path
        if query:
            url += "?" + urlencode(list(query))
        headers = {"Authorization": self._authorization, "Accept": CONTENT_TYPE}
        content = None
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE
            content = dumps(body)
        return Call(method, url, headers=headers, content=content, retry=retry, step=step)

    def _object(self, reply: Reply, *, action: str) -> dict[str, Any]:
        if not reply.ok:
            raise error_from_reply(reply, action=action)
        return reply.json_object()

    def _cache_key(self, order_no: str) -> str:
        return f"elepay:{self.account}:order:{order_no}"

    def _order_no(self, ctx: OpContext) -> str:
        if ctx.idempotency_key is None:
            raise InvalidRequest("an idempotency key is required", param="idempotency_key")
        order_no = ctx.provider_key("code", max_len=ORDER_NO_MAX, alphabet="alnum")
        if len(order_no) > ORDER_NO_MAX:  # derive_key guarantees this; elepay insists
            raise InvalidRequest("orderNo too long", param="idempotency_key")
        return order_no

    def _get_code(self, code_id: str) -> Flow[dict[str, Any]]:
        reply = yield self._call("GET", f"/codes/{_seg(code_id)}", step="codes.get")
        return self._object(reply, action="read the code")

    def _get_charge(self, charge_id: str) -> Flow[dict[str, Any]]:
        reply = yield self._call("GET", f"/charges/{_seg(charge_id)}", step="charges.get")
        return self._object(reply, action="read the charge")

    # -- building Charges -------------------------------------------------------------

    def _charge_from_code(
        self, code: Mapping[str, Any], ctx: OpContext, *, closed_by_paygate: bool = False
    ) -> Charge:
        code_id = _str(code, "id")
        ref = str(ElepayRef("code", code_id))
        status = code_status(code, now=ctx.now(), closed_by_paygate=closed_by_paygate)
        nested = code.get("charge")
        charge_obj: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
        currency = _currency(code)
        amount = _int(code, "amount")
        refunded = _refunded_amount(charge_obj, status) if charge_obj else 0
        next_action = None
        if status is ChargeStatus.REQUIRES_ACTION:
            url = code.get("codeUrl")
            if isinstance(url, str) and url:
                next_action = DisplayQR(url=url, expires_at=from_millis(code.get("expiryTime")))
        paid = status in (
            ChargeStatus.SUCCEEDED,
            ChargeStatus.PARTIALLY_REFUNDED,
            ChargeStatus.REFUNDED,
        )
        captured_amount = charge_obj.get("amount") if paid else None
        return Charge(
            id=ctx.charge_id or ref,
            account=ctx.account,
            provider=NAME,
            provider_ref=ref,
            method=METHOD,
            status=status,
            amount=Money(amount, currency),
            amount_refunded=Money(refunded, currency),
            amount_captured=(
                Money(captured_amount, currency) if isinstance(captured_amount, int) else None
            ),
            next_action=next_action,
            created_at=from_millis(code.get("createTime")) or ctx.now(),
            updated_at=_updated(charge_obj) if charge_obj else None,
            raw=dict(code),
        )

    def _charge_from_charge(
        self, charge: Mapping[str, Any], ctx: OpContext, *, code_id: str | None = None
    ) -> Charge:
        charge_id = _str(charge, "id")
        ref = str(ElepayRef("code", code_id) if code_id else ElepayRef("charge", charge_id))
        status = charge_status(charge) or ChargeStatus.REQUIRES_ACTION
        currency = _currency(charge)
        amount = _int(charge, "amount")
        paid = status in (
            ChargeStatus.SUCCEEDED,
            ChargeStatus.PARTIALLY_REFUNDED,
            ChargeStatus.REFUNDED,
        )
        return Charge(
            id=ctx.charge_id or ref,
            account=ctx.account,
            provider=NAME,
            provider_ref=ref,
            method=METHOD,
            status=status,
            amount=Money(amount, currency),
            amount_refunded=Money(_refunded_amount(charge, status), currency),
            amount_captured=Money(amount, currency) if paid else None,
            created_at=from_millis(charge.get("createTime")) or ctx.now(),
            updated_at=_updated(charge),
            raw=dict(charge),
        )

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
        self.validate_charge(req)
        base = self._order_no(ctx)
        body = self._code_body(req, _qr(req), base)
        resends = 0
        state = yield from self._key_state(base, ctx)
        for sent in state["orders"]:
            # A re-run of the key (the gateway looked it up first): a code paygate
            # already received is the answer, not a new one.
            known = yield from self._from_cache(sent, ctx)
            if known is not None:
                _same_amount(known, req)
                return known
        while True:
            order_no = self._next_order_no(state, ctx)
            state["orders"].append(order_no)
            state["last"] = to_millis(ctx.now())
            yield CachePut(self._key_cache(base), state)
            body["orderNo"] = order_no
            try:
                reply = yield self._call(
                    "POST", "/codes", body=body, retry=Retry.UNSAFE, step="codes.create"
                )
            except TransportFailure as exc:
                if not exc.sent:
                    yield from self._forget_order(base, order_no)
                    raise
                if resends >= _RESENDS:
                    raise
                resends += 1  # lost answer: that code was never shown; try the next one
                continue
            if reply.ok:
                code = reply.json_object()
                yield CachePut(self._cache_key(order_no), {"codeId": _str(code, "id"), "key": base})
                return self._charge_from_code(code, ctx)
            if reply.status >= 500 and resends < _RESENDS:
                resends += 1  # elepay failed, maybe after making the code: as above
                continue
            error_code, _ = read_error(reply)
            if error_code not in ("M002007", "M002004"):
                if reply.status < 500:
                    # A refusal: elepay made nothing and the orderNo stays free.
                    yield from self._forget_order(base, order_no)
                raise error_from_reply(reply, action="create the code")
            # An orderNo paygate had never sent is taken: sent before paygate's records
            # (a store that lost them, another system). Paid: the charge list finds it;
            # anything else is unknown until its code expires (at most 30 minutes).
            found = yield from self._lookup(
                base,
                {"orders": [order_no], "since": None},
                ctx,
                unsure=(
                    "elepay holds this order number (paid, or a code still valid) and "
                    "paygate cannot find it; run `paygate reconcile` once the code has "
                    "expired (at most 30 minutes)"
                ),
            )
            if found is None:  # pragma: no cover - an unbounded scan is never complete
                raise OutcomeUnknown("elepay holds this order number", provider=NAME)
            _same_amount(found, req)
            return found

    def _key_cache(self, base: str) -> str:
        return f"elepay:{self.account}:key:{base}"

    def _closed_cache(self, code_id: str) -> str:
        return f"elepay:{self.account}:closed:{code_id}"

    def _key_state(self, base: str, ctx: OpContext) -> Flow[dict[str, Any]]:
        """Every orderNo sent under a key, and when the first was sent (epoch ms)."""
        entry = yield CacheGet(self._key_cache(base))
        orders: list[str] = []
        since: int | None = None
        last: int | None = None
        if isinstance(entry, Mapping):
            raw = entry.get("orders")
            if isinstance(raw, list):
                orders = [o for o in raw if isinstance(o, str)]
            first = entry.get("since")
            since = first if isinstance(first, int) else None
            latest = entry.get("last")
            last = latest if isinstance(latest, int) else None
        now = to_millis(ctx.now())
        return {
            "orders": orders,
            "since": since if since is not None else now,
            "last": last if isinstance(entry, Mapping) and last is not None else since,
        }

    def _next_order_no(self, state: Mapping[str, Any], ctx: OpContext) -> str:
        tried: list[str] = state["orders"]
        for attempt in range(1, ORDER_ATTEMPTS + 1):
            scope = "code" if attempt == 1 else f"code{attempt}"
            order_no = ctx.provider_key(scope, max_len=ORDER_NO_MAX, alphabet="alnum")
            if order_no not in tried:
                return order_no
        last = state.get("last")
        if isinstance(last, int) and to_millis(ctx.now()) > last + _CODE_LIFETIME_MS:
            # Every code of the key has expired unpaid (the lookup that precedes a re-run
            # found none paid): elepay frees their orderNos, and paygate starts over.
            tried.clear()
            return ctx.provider_key("code", max_len=ORDER_NO_MAX, alphabet="alnum")
        free_at = from_millis(last + _CODE_LIFETIME_MS) if isinstance(last, int) else None
        when = f" after {free_at.isoformat(timespec='minutes')}" if free_at else " later"
        raise OutcomeUnknown(
            f"elepay was sent {len(tried)} codes for this key and none could be confirmed; "
            f"they expire unpaid: retry with the same key{when}",
            provider=NAME,
        )

    def _forget_order(self, base: str, order_no: str) -> Flow[None]:
        entry = yield CacheGet(self._key_cache(base))
        if isinstance(entry, Mapping) and isinstance(entry.get("orders"), list):
            orders = [o for o in entry["orders"] if o != order_no]
            yield CachePut(self._key_cache(base), {**entry, "orders": orders})

    def _code_body(self, req: ChargeRequest, method: QRCode, order_no: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "orderNo": order_no,
            "amount": req.amount.amount,
            "currency": req.amount.currency,
        }
        if req.description is not None:
            body["description"] = req.description
        front = self._front_url(method)
        if front is not None:
            body["frontUrl"] = front
        body["expiryDuration"] = self._expiry_minutes(method)
        items = _items(method)
        if items:
            body["items"] = items
        if req.metadata:
            body["metadata"] = dict(req.metadata)
        if self.settings.location_id is not None:
            body["locationId"] = self.settings.location_id
        return body

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """What earlier attempts under this key created.

        A code whose id paygate received (entity cache), else a paid charge of any of
        the key's orderNos (charge list). None when the charge list positively rules out
        a payment: a code whose answer was lost cannot have been shown to anyone, and
        the next create goes out under a fresh orderNo. `OutcomeUnknown` when the list
        cannot be read far enough back.
        """
        base = self._order_no(ctx)
        entry = yield CacheGet(self._key_cache(base))
        if entry is not None:
            state = yield from self._key_state(base, ctx)
        else:
            legacy = yield CacheGet(self._cache_key(base))
            if legacy is None:
                return None  # nothing was sent under this key: the state is written first
            # Recorded before paygate kept every orderNo of a key: its time is unknown.
            state = {"orders": [base], "since": None}
        found = yield from self._lookup(base, state, ctx)
        if found is not None:
            _same_amount(found, req)
        return found

    def _lookup(
        self,
        base: str,
        state: Mapping[str, Any],
        ctx: OpContext,
        *,
        unsure: str = (
            "elepay's charge list could not be read far enough back to tell whether an "
            "order number of this key was paid; run `paygate reconcile`"
        ),
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
            raise _double_payment([c.provider_ref for c in paid])
        if paid:
            yield from self._close_extra(codes, paid[0], ctx)
            return paid[0]
        charges, complete = yield from self._scan_charges(set(orders), state.get("since"), ctx)
        paid_charges = [c for c in charges if c.get("status") in _PAID or _was_paid(c)]
        if len(paid_charges) > 1:
            raise _double_payment([str(c.get("id")) for c in paid_charges])
        if paid_charges:
            charge = paid_charges[0]
            order_no = str(charge.get("orderNo"))
            entry = yield CacheGet(self._cache_key(order_no))
            code_id = entry.get("codeId") if isinstance(entry, Mapping) else None
            yield CachePut(
                self._cache_key(order_no),
                {"codeId": code_id, "chargeId": _str(charge, "id"), "key": base},
            )
            found = self._charge_from_charge(
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
            charge = charges[0]
            return self._charge_from_charge(charge, ctx)
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
            reply = yield self._call(
                "DELETE", f"/codes/{_seg(target.id)}", retry=Retry.SAFE, step="codes.close"
            )
            if reply.ok:
                yield CachePut(self._closed_cache(target.id), {"at": to_millis(ctx.now())})

    def _from_cache(self, order_no: str, ctx: OpContext) -> Flow[Charge | None]:
        entry = yield CacheGet(self._cache_key(order_no))
        if not isinstance(entry, Mapping):
            return None
        code_id = entry.get("codeId")
        if isinstance(code_id, str) and code_id:
            reply = yield self._call("GET", f"/codes/{_seg(code_id)}", step="codes.get")
            if reply.ok:
                return (yield from self._code_charge(reply.json_object(), ctx))
            if reply.status != 400 or read_error(reply)[0] != "M002003":
                raise error_from_reply(reply, action="read the code")
        charge_id = entry.get("chargeId")
        if isinstance(charge_id, str) and charge_id:
            charge = yield from self._get_charge(charge_id)
            return self._charge_from_charge(
                charge, ctx, code_id=code_id if isinstance(code_id, str) else None
            )
        return None

    def _code_charge(self, code: Mapping[str, Any], ctx: OpContext) -> Flow[Charge]:
        """The Charge of a code read back, telling a close by paygate from an expiry."""
        closed = False
        if code.get("status") == "closed":
            mark = yield CacheGet(self._closed_cache(_str(code, "id")))
            closed = mark is not None
        return self._charge_from_code(code, ctx, closed_by_paygate=closed)

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
            start = since - int(_CLOCK_SKEW.total_seconds() * 1000)
        found: list[dict[str, Any]] = []
        complete = False
        for page in range(self.settings.lookup_max_pages):
            reply = yield self._call(
                "GET",
                "/charges",
                query=(
                    ("from", start),
                    ("dateField", "create_time"),
                    ("sort", "create_time"),
                    ("order", "desc"),
                    ("limit", _PAGE),
                    ("offset", page * _PAGE),
                ),
                step="charges.list",
            )
            body = self._object(reply, action="list charges")
            charges = body.get("charges")
            if not isinstance(charges, list):
                raise MalformedResponse(
                    "charge list without 'charges'", provider=NAME, http_status=reply.status
                )
            for item in charges:
                if isinstance(item, dict) and item.get("orderNo") in order_nos:
                    found.append(item)
            total = body.get("total")
            seen = page * _PAGE + len(charges)
            if len(charges) < _PAGE or (isinstance(total, int) and seen >= total):
                complete = since is not None
                break
        return found, complete

    # -- status and cancel -------------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """The code (and its charge) as elepay sees it now."""
        target = parse_ref(ref.provider_ref)
        if target.kind == "charge":
            charge = yield from self._get_charge(target.id)
            return self._charge_from_charge(charge, ctx)
        code = yield from self._get_code(target.id)
        return (yield from self._code_charge(code, ctx))

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Close an unpaid code (``DELETE /codes/{id}``); a closed one stays closed."""
        target = parse_ref(req.charge.provider_ref)
        if target.kind == "charge":
            charge = yield from self._get_charge(target.id)
            current = self._charge_from_charge(charge, ctx)
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
        marker = self._closed_cache(target.id)
        known = yield CacheGet(marker)
        if known is None:
            yield CachePut(marker, {"at": to_millis(ctx.now())})
        reply = yield self._call(
            "DELETE", f"/codes/{_seg(target.id)}", retry=Retry.SAFE, step="codes.close"
        )
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
        code = yield from self._get_code(target.id)
        current = yield from self._code_charge(code, ctx)
        nested = code.get("charge")
        if current.paid and isinstance(nested, Mapping):
            if nested.get("status") == "revoked":
                return current  # revoked by an earlier run of this cancel
            if self.settings.revoke_paid:
                return (yield from self._revoke(_str(nested, "id"), target.id, ctx))
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
        reply = yield self._call(
            "POST",
            f"/charges/{_seg(charge_id)}/revoke",
            body={},
            retry=Retry.UNSAFE,
            step="charges.revoke",
        )
        if reply.ok:
            return self._charge_from_charge(reply.json_object(), ctx, code_id=code_id)
        # A re-run after a lost answer: the charge may be revoked already.
        charge = yield from self._get_charge(charge_id)
        if charge.get("status") == "revoked":
            return self._charge_from_charge(charge, ctx, code_id=code_id)
        raise error_from_reply(reply, action="revoke the charge")

    # -- refund --------------------------------------------------------------------------

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund all or part of a paid charge (``POST /charges/{id}/refunds``)."""
        self._validate_refund(req)
        target = parse_ref(req.charge.provider_ref)
        if target.kind == "code":
            code = yield from self._get_code(target.id)
            nested = code.get("charge")
            if not isinstance(nested, Mapping) or not isinstance(nested.get("id"), str):
                raise InvalidRequest("the charge has not been paid", param="charge_id")
            charge: Mapping[str, Any] = nested
        else:
            charge = yield from self._get_charge(target.id)
        charge_id = _str(charge, "id")
        currency = _currency(charge)
        key = ctx.provider_key("refund") if ctx.idempotency_key is not None else None
        if key is not None:
            # Before anything else: an earlier run may have refunded already, and then
            # the charge no longer looks refundable.
            existing = yield from self._find_refund(charge, key)
            if existing is not None:
                return self._refund(existing, req, ctx)
        if charge.get("status") not in ("captured", "partially_refunded"):
            raise InvalidRequest(
                f"an elepay charge in status {charge.get('status')!r} cannot be refunded",
                param="charge_id",
            )
        refundable = _int(charge, "amount") - _committed_refunds(charge)
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
        reply = yield self._call(
            "POST",
            f"/charges/{_seg(charge_id)}/refunds",
            body=body,
            retry=Retry.UNSAFE,
            step="refunds.create",
        )
        return self._refund(self._object(reply, action="refund the charge"), req, ctx)

    def _find_refund(self, charge: Mapping[str, Any], key: str) -> Flow[dict[str, Any] | None]:
        """The refund tagged with ``key``: from the charge's own list when it is complete,
        else from ``GET /charges/{id}/refunds``."""
        listed = _refund_list(charge)
        if listed is None:
            reply = yield self._call(
                "GET", f"/charges/{_seg(_str(charge, 'id'))}/refunds", step="refunds.list"
            )
            body = self._object(reply, action="list refunds")
            found = body.get("refunds")
            listed = [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
        for item in listed:
            meta = item.get("metadata")
            if isinstance(meta, Mapping) and meta.get(REFUND_KEY_FIELD) == key:
                return dict(item)
        return None

    def _refund(self, refund: Mapping[str, Any], req: RefundRequest, ctx: OpContext) -> Refund:
        refund_id = _str(refund, "id")
        status = refund.get("status")
        return Refund(
            id=refund_id,
            charge_id=ctx.charge_id or req.charge.charge_id,
            account=ctx.account,
            provider=NAME,
            provider_ref=refund_id,
            amount=Money(_int(refund, "amount"), _currency(refund)),
            status=_REFUND_STATUS.get(status, RefundStatus.PENDING)
            if isinstance(status, str)
            else RefundStatus.PENDING,
            reason=refund.get("reason") if isinstance(refund.get("reason"), str) else None,
            created_at=from_millis(refund.get("createTime")) or ctx.now(),
            raw=dict(refund),
        )

    def outcome_of(self, error: PaygateError) -> Outcome | None:
        """elepay's temporary refusals are retryable; an unknown outcome stays unknown."""
        if isinstance(error, OutcomeUnknown):
            return Outcome.UNKNOWN
        return super().outcome_of(error)

    # -- retry classification --------------------------------------------------------

    def classify(self, reply: Reply) -> RetryDecision | None:
        """``M005000`` (too many requests) comes as HTTP 400: retry it."""
        if reply.status == 400 and read_error(reply)[0] == "M005000":
            after = reply.header("retry-after")
            try:
                delay = float(after) if after is not None else None
            except ValueError:
                delay = None
            return RetryDecision(retry=True, after=delay)
        return None

    # -- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """elepay signs nothing: only the shape is checked here.

        Authenticity comes from `parse_webhook`, which fetches the charge back from the
        API and builds the event from that answer alone, never from the posted body.
        """
        _event(body)

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
        event = _event(body)
        provider_type = str(event["type"])
        obj = event["data"]["object"]
        if not provider_type.startswith(("charge.", "refund.")):
            # Nothing to fetch back: reported as it came, without any state.
            event_id = event.get("id")
            return [
                ParsedEvent(
                    provider_event_type=provider_type,
                    type="provider.other",
                    provider_event_id=event_id if isinstance(event_id, str) else None,
                    raw=event,
                )
            ]
        is_refund = obj.get("object") == "refund" or "chargeId" in obj
        charge_id = obj.get("chargeId") if is_refund else obj.get("id")
        if not isinstance(charge_id, str) or not charge_id:
            raise WebhookVerificationError("elepay event names no charge", provider=NAME)
        reply = yield self._call("GET", f"/charges/{_seg(charge_id)}", step="charges.get")
        if reply.status == 400 and read_error(reply)[0] == "M002003":
            raise WebhookVerificationError(
                "elepay does not know the charge the event names",
                provider=NAME,
                provider_code="M002003",
                http_status=reply.status,
            )
        charge = self._object(reply, action="read the charge")
        if charge.get("id") != charge_id:
            raise WebhookVerificationError("elepay answered for another charge", provider=NAME)
        order_no = charge.get("orderNo")
        code_id: str | None = None
        if isinstance(order_no, str) and order_no:
            entry = yield CacheGet(self._cache_key(order_no))
            if isinstance(entry, Mapping):
                cached_code = entry.get("codeId")
                code_id = cached_code if isinstance(cached_code, str) else None
                yield CachePut(self._cache_key(order_no), {**entry, "chargeId": charge_id})
        fresh = self._charge_from_charge(charge, ctx, code_id=code_id)
        settled = _settled_refunds(charge)
        state = charge.get("status")
        kind = _state_event(fresh.status, str(state))
        amount = fresh.amount
        occurred = from_millis(charge.get("paidTime"))
        if kind == "refund.succeeded" and settled:
            latest = max(settled, key=lambda r: (_ms(r, "refundedTime"), _ms(r, "createTime")))
            amount = Money(_int(latest, "amount"), _currency(latest))
            occurred = from_millis(latest.get("refundedTime"))
        elif fresh.status in (ChargeStatus.REFUNDED, ChargeStatus.PARTIALLY_REFUNDED):
            occurred = from_millis(charge.get("refundTime"))
        refund_ids = ",".join(sorted(str(r.get("id")) for r in settled))
        return [
            ParsedEvent(
                provider_event_type=provider_type,
                type=kind,
                provider_event_id=f"{charge_id}:{state}:{refund_ids}",
                provider_ref=fresh.provider_ref,
                status=fresh.status,
                amount=amount,
                occurred_at=occurred,
                charge=fresh,
                raw=dict(charge),
                amount_refunded=fresh.amount_refunded,
                amount_captured=fresh.amount_captured,
            )
        ]


def _settled_refunds(charge: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The charge's completed refunds, as its ``refunds.data`` lists them."""
    refunds = charge.get("refunds")
    data = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not isinstance(data, list):
        return []
    return [
        r
        for r in data
        if isinstance(r, Mapping) and r.get("status") == "refunded" and isinstance(r.get("id"), str)
    ]


def _ms(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _state_event(status: ChargeStatus, elepay_status: str) -> str:
    """The paygate event type of a charge state (never of the posted event's type).

    A paid charge that was ``revoked`` (cancelled whole) is ``charge.refunded``; a
    refund that completed is ``refund.succeeded``.
    """
    if status is ChargeStatus.SUCCEEDED:
        return "charge.succeeded"
    if status is ChargeStatus.REFUNDED and elepay_status == "revoked":
        return "charge.refunded"
    if status in (ChargeStatus.PARTIALLY_REFUNDED, ChargeStatus.REFUNDED):
        return "refund.succeeded"
    if status is ChargeStatus.CANCELED:
        return "charge.canceled"
    return "charge.updated"


# ---------------------------------------------------------------------- utilities


def _qr(req: ChargeRequest) -> QRCode:
    if not isinstance(req.method, QRCode):
        raise NotSupported(
            f"method {req.method.type!r}",
            provider=NAME,
            reason="elepay serves EasyQR codes only",
            alternative="QRCode()",
        )
    return req.method


def _seg(value: str) -> str:
    return quote(value, safe="")


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"elepay object without {key!r}", provider=NAME)
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedResponse(f"elepay object without integer {key!r}", provider=NAME)
    return value


def _currency(obj: Mapping[str, Any]) -> str:
    value = obj.get("currency")
    return value.upper() if isinstance(value, str) and len(value) == 3 else "JPY"


def _updated(charge: Mapping[str, Any]) -> datetime | None:
    return from_millis(charge.get("refundTime")) or from_millis(charge.get("paidTime"))


def _double_payment(refs: Sequence[str]) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"elepay holds {len(refs)} paid codes for one idempotency key ({', '.join(refs)}); "
        "refund the extra payment",
        provider=NAME,
    )


def _same_amount(found: Charge, req: ChargeRequest) -> None:
    if found.amount != req.amount:
        raise IdempotencyConflict(
            "elepay already holds this order number for a different amount",
            provider=NAME,
        )


def _check_amount(amount: Money, maximum: int) -> None:
    if amount.currency != "JPY":
        raise InvalidRequest("elepay EasyQR charges are in JPY only", param="amount")
    if not 1 <= amount.amount <= maximum:
        raise InvalidRequest(f"amount must be between 1 and {maximum} JPY", param="amount")


def _check_text(value: str, param: str) -> None:
    if len(value) > TEXT_MAX:
        raise InvalidRequest(f"{param} is limited to {TEXT_MAX} characters", param=param)


def _check_metadata(metadata: Mapping[Any, Any]) -> None:
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidRequest(
            f"elepay keeps at most {METADATA_MAX_KEYS} metadata entries", param="metadata"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidRequest("metadata keys must be non-empty strings", param="metadata")
        if key.startswith(METADATA_RESERVED_PREFIXES):
            raise InvalidRequest(
                "metadata keys starting with 'route' or '__' are reserved by elepay",
                param="metadata",
            )
        if not isinstance(value, str):
            raise InvalidRequest("metadata must be flat: string values only", param="metadata")
        if len(value.encode("utf-8")) > METADATA_VALUE_MAX_BYTES:
            raise InvalidRequest(
                f"metadata values are limited to {METADATA_VALUE_MAX_BYTES} bytes",
                param="metadata",
            )


def _items(method: QRCode) -> list[dict[str, Any]]:
    """elepay ``items`` from the method's products, when the model carries any."""
    products = getattr(method, "products", None) or ()
    items: list[dict[str, Any]] = []
    for product in products:
        name = getattr(product, "name", None)
        price = getattr(product, "unit_price", None)
        count = getattr(product, "quantity", None)
        if not isinstance(name, str) or not name or len(name) > TEXT_MAX:
            raise InvalidRequest("item names are 1 to 255 characters", param="method.products")
        if not isinstance(price, int) or price < 0:
            raise InvalidRequest("item prices are whole JPY, 0 or more", param="method.products")
        if not isinstance(count, int) or count < 1:
            raise InvalidRequest("item quantities are 1 or more", param="method.products")
        items.append({"name": name, "price": price, "count": count})
    return items


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError("elepay event is not JSON", provider=NAME) from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookVerificationError("elepay event lacks type or data.object", provider=NAME)
    return event
