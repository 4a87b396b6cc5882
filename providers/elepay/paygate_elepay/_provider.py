"""elepay adapter: EasyQR codes (one QR code, the payer picks PayPay, LINE Pay, ...).

Idempotency: elepay has no idempotency header. A code is created with ``orderNo``
derived from the merchant's key (at most 50 characters of ``[A-Za-z0-9_-]``). elepay
refuses an order number that has already been paid (``M002007``); whether an unpaid one
is refused is not documented, so re-sending a create may leave a second, unpaid code
behind (only one of them can ever be paid). The orderNo -> code/charge mapping lives in
the entity cache; when it is missing, the charge list is scanned over a time window and
matched on ``orderNo`` (elepay has neither a code list nor an orderNo filter). Refunds
carry no key either: each refund is tagged with the derived key in its ``metadata``, and
the refund flow looks for that tag in the charge's refunds before every send, so a
re-run after a lost answer returns the refund instead of refunding twice.

Retry: reads are ``SAFE``; the code create is ``KEYED`` (by orderNo); closing a code is
naturally idempotent; a refund is ``UNSAFE``. ``M005000`` (too many requests) arrives
as HTTP 400 and is classified as retryable.

Status: read from ``GET /codes/{id}`` and its nested charge. Code ``pending`` ->
requires_action; ``captured`` -> the charge's state (``captured`` -> succeeded,
``partially_refunded``, ``refunded``, ``revoked`` -> canceled or refunded once paid);
``closed`` -> expired when the code ran out, canceled when it was closed. elepay has no
failed state and sends no webhook for a failed attempt: the payer may try again until
the code expires, so a charge stays requires_action until then.
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
    ProviderRejected,
    QRCode,
    Refund,
    RefundStatus,
    WebhookVerificationError,
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
    ParsedEvent,
    Provider,
    RefundRequest,
    Reply,
    Retry,
    RetryDecision,
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
    if status == "revoked" and (charge.get("paid") is True or charge.get("paidTime")):
        return ChargeStatus.REFUNDED
    return _CHARGE_STATUS.get(status)


def code_status(code: Mapping[str, Any]) -> ChargeStatus:
    """paygate status of an EasyQR code, taking its nested charge into account.

    Only elepay's own signals end a code: ``closed`` (with ``expired`` telling expiry
    from closing), or ``pending`` with ``expired`` true and no time left. An unknown
    status reads as still waiting for the payer.
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
        return ChargeStatus.EXPIRED if _ran_out(code) else ChargeStatus.CANCELED
    if status == "pending" and code.get("expired") is True:
        period = code.get("expiryPeriod")
        if not isinstance(period, int) or period <= 0:
            return ChargeStatus.EXPIRED
    return ChargeStatus.REQUIRES_ACTION


def _ran_out(code: Mapping[str, Any]) -> bool:
    expired = code.get("expired")
    if isinstance(expired, bool):
        return expired
    period = code.get("expiryPeriod")
    return isinstance(period, int) and period <= 0


def _refunded_amount(charge: Mapping[str, Any], status: ChargeStatus | None) -> int:
    refunds = charge.get("refunds")
    if isinstance(refunds, Mapping):
        total = refunds.get("amount")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    if status is ChargeStatus.REFUNDED:
        amount = charge.get("amount")
        return amount if isinstance(amount, int) else 0
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

    settings: ElepaySettings

    def __init__(self, settings: ElepaySettings, *, account: str) -> None:
        super().__init__(settings, account=account)
        secret = settings.secret_key.get_secret_value()
        token = base64.b64encode(f"{secret}:".encode()).decode("ascii")
        register_secret(secret)
        register_secret(token)
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
                    cancel_alternative="refund once the code is paid",
                )
            },
            currencies=("JPY",),
            min_amount=1,
            max_amount=self.settings.max_amount,
            payout_balance=False,
            webhooks=True,
            webhook_auth="refetch" if self.settings.verify_webhooks_by_refetch else "none",
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

    def _charge_from_code(self, code: Mapping[str, Any], ctx: OpContext) -> Charge:
        code_id = _str(code, "id")
        ref = str(ElepayRef("code", code_id))
        status = code_status(code)
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
        """Create an EasyQR code: ``REQUIRES_ACTION`` with a `DisplayQR`."""
        self.validate_charge(req)
        order_no = self._order_no(ctx)
        if ctx.recovering:
            known = yield from self._from_cache(order_no, ctx)
            if known is not None:
                _same_amount(known, req)
                return known
        body = self._code_body(req, _qr(req), order_no)
        reply = yield self._call(
            "POST", "/codes", body=body, retry=Retry.KEYED, step="codes.create"
        )
        if reply.ok:
            code = reply.json_object()
            yield CachePut(
                self._cache_key(order_no),
                {"codeId": _str(code, "id"), "createTime": code.get("createTime")},
            )
            return self._charge_from_code(code, ctx)
        error_code, _ = read_error(reply)
        if error_code in ("M002007", "M002004"):
            # The order number is taken: by this very request if an earlier attempt
            # reached elepay. Different requests under one key never get here (the
            # gateway's store raises IdempotencyConflict first).
            found = yield from self._find_by_order_no(order_no, ctx)
            if found is not None:
                _same_amount(found, req)
                return found
            if error_code == "M002004":
                raise OutcomeUnknown(
                    "elepay holds an unpaid code under this order number that cannot be "
                    "listed; it expires by itself",
                    provider=NAME,
                    provider_code=error_code,
                    http_status=reply.status,
                )
        raise error_from_reply(reply, action="create the code")

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
        return body

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """The charge an earlier attempt created: cached code, else the charge list."""
        order_no = self._order_no(ctx)
        found = yield from self._find_by_order_no(order_no, ctx)
        return found

    def _from_cache(self, order_no: str, ctx: OpContext) -> Flow[Charge | None]:
        entry = yield CacheGet(self._cache_key(order_no))
        if not isinstance(entry, Mapping):
            return None
        code_id = entry.get("codeId")
        if isinstance(code_id, str) and code_id:
            reply = yield self._call("GET", f"/codes/{_seg(code_id)}", step="codes.get")
            if reply.ok:
                return self._charge_from_code(reply.json_object(), ctx)
            if reply.status != 400 or read_error(reply)[0] != "M002003":
                raise error_from_reply(reply, action="read the code")
        charge_id = entry.get("chargeId")
        if isinstance(charge_id, str) and charge_id:
            charge = yield from self._get_charge(charge_id)
            return self._charge_from_charge(charge, ctx)
        return None

    def _find_by_order_no(self, order_no: str, ctx: OpContext) -> Flow[Charge | None]:
        cached = yield from self._from_cache(order_no, ctx)
        if cached is not None:
            return cached
        charge = yield from self._scan_charges(order_no, ctx)
        if charge is None:
            return None
        entry = yield CacheGet(self._cache_key(order_no))
        code_id = entry.get("codeId") if isinstance(entry, Mapping) else None
        yield CachePut(
            self._cache_key(order_no),
            {"codeId": code_id, "chargeId": _str(charge, "id")},
        )
        return self._charge_from_charge(
            charge, ctx, code_id=code_id if isinstance(code_id, str) else None
        )

    def _scan_charges(self, order_no: str, ctx: OpContext) -> Flow[dict[str, Any] | None]:
        since = to_millis(ctx.now() - timedelta(hours=self.settings.lookup_window_hours))
        best: dict[str, Any] | None = None
        for page in range(self.settings.lookup_max_pages):
            reply = yield self._call(
                "GET",
                "/charges",
                query=(
                    ("from", since),
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
                if isinstance(item, dict) and item.get("orderNo") == order_no:
                    if item.get("status") in _PAID:
                        return item
                    best = best or item
            total = body.get("total")
            seen = page * _PAGE + len(charges)
            if len(charges) < _PAGE or (isinstance(total, int) and seen >= total):
                break
        return best

    # -- status and cancel -------------------------------------------------------------

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """The code (and its charge) as elepay sees it now."""
        target = parse_ref(ref.provider_ref)
        if target.kind == "charge":
            charge = yield from self._get_charge(target.id)
            return self._charge_from_charge(charge, ctx)
        code = yield from self._get_code(target.id)
        return self._charge_from_code(code, ctx)

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Close an unpaid code (``DELETE /codes/{id}``); a closed one stays closed."""
        target = parse_ref(req.charge.provider_ref)
        if target.kind == "charge":
            charge = yield from self._get_charge(target.id)
            current = self._charge_from_charge(charge, ctx)
            if current.status.is_terminal:
                return current
            raise NotSupported(
                "cancel",
                provider=NAME,
                reason="the charge was paid; its code cannot be closed any more",
                alternative="refund",
            )
        reply = yield self._call(
            "DELETE", f"/codes/{_seg(target.id)}", retry=Retry.SAFE, step="codes.close"
        )
        # A code that is already closed, expired or paid answers with an M006 code;
        # reading it back tells which, so a repeated cancel ends where the first did.
        if not reply.ok and read_error(reply)[0] not in ("M006000", "M006003", "M006004"):
            raise error_from_reply(reply, action="close the code")
        code = yield from self._get_code(target.id)
        current = self._charge_from_code(code, ctx)
        if current.paid:
            if not reply.ok:
                raise error_from_reply(reply, action="close the code")
            raise ProviderRejected(
                "elepay could not close the code: it was paid first; refund it instead",
                provider=NAME,
            )
        return current

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

        Authenticity comes from `parse_webhook`, which (by default) fetches the object
        back from the API and uses what elepay answers, never the posted body.
        """
        _event(body)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        """Normalise an elepay event; re-fetch its charge before trusting it."""
        event = _event(body)
        provider_type = str(event["type"])
        obj = event["data"]["object"]
        occurred = from_millis(event.get("createTime"))
        event_id = event.get("id")
        if not (provider_type.startswith(("charge.", "refund."))):
            return [
                ParsedEvent(
                    provider_event_type=provider_type,
                    type="provider.other",
                    provider_event_id=event_id if isinstance(event_id, str) else None,
                    occurred_at=occurred,
                    raw=event,
                )
            ]
        is_refund = obj.get("object") == "refund" or "chargeId" in obj
        charge_id = obj.get("chargeId") if is_refund else obj.get("id")
        if not isinstance(charge_id, str) or not charge_id:
            raise WebhookVerificationError("elepay event names no charge", provider=NAME)
        charge: Mapping[str, Any] = obj
        if self.settings.verify_webhooks_by_refetch:
            reply = yield self._call("GET", f"/charges/{_seg(charge_id)}", step="charges.get")
            if reply.status == 400 and read_error(reply)[0] == "M002003":
                raise WebhookVerificationError(
                    "elepay does not know the charge the event names",
                    provider=NAME,
                    provider_code="M002003",
                    http_status=reply.status,
                )
            charge = self._object(reply, action="read the charge")
            _matches(obj, charge, is_refund)
        elif is_refund:
            charge = {"id": charge_id}
        order_no = charge.get("orderNo")
        code_id: str | None = None
        if isinstance(order_no, str) and order_no:
            entry = yield CacheGet(self._cache_key(order_no))
            if isinstance(entry, Mapping):
                cached_code = entry.get("codeId")
                code_id = cached_code if isinstance(cached_code, str) else None
            if "status" in charge:
                yield CachePut(
                    self._cache_key(order_no), {"codeId": code_id, "chargeId": charge_id}
                )
        fresh = (
            self._charge_from_charge(charge, ctx, code_id=code_id)
            if "status" in charge and "amount" in charge
            else None
        )
        ref = str(ElepayRef("code", code_id) if code_id else ElepayRef("charge", charge_id))
        if not isinstance(event_id, str) or not event_id:
            # Dedupe still needs a stable key when the envelope carries no id.
            event_id = f"{provider_type}:{obj.get('id')}:{obj.get('status')}"
        return [
            ParsedEvent(
                provider_event_type=provider_type,
                type=_event_type(provider_type),
                provider_event_id=event_id,
                provider_ref=ref,
                status=fresh.status if fresh else None,
                amount=(
                    Money(_int(obj, "amount"), _currency(obj))
                    if isinstance(obj.get("amount"), int)
                    else None
                ),
                occurred_at=occurred,
                charge=fresh if self.settings.verify_webhooks_by_refetch else None,
                raw=event,
            )
        ]


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


def _matches(posted: Mapping[str, Any], fetched: Mapping[str, Any], is_refund: bool) -> None:
    """The posted body must agree with what the API says (as elepay's own plugin checks)."""
    keys = ("orderNo",) if is_refund else ("orderNo", "amount", "currency")
    for key in keys:
        if key in posted and posted[key] != fetched.get(key):
            raise WebhookVerificationError(
                f"elepay event disagrees with the API on {key}", provider=NAME
            )
    if is_refund:
        refund_id = posted.get("id")
        refunds = fetched.get("refunds")
        data = refunds.get("data") if isinstance(refunds, Mapping) else None
        if isinstance(refund_id, str) and isinstance(data, list) and data:
            ids = {r.get("id") for r in data if isinstance(r, Mapping)}
            if refund_id not in ids:
                raise WebhookVerificationError(
                    "elepay event names a refund the charge does not have", provider=NAME
                )


_EVENT_TYPES: Final[Mapping[str, str]] = {
    # elepay's webhook page says charge.succeeded, its charges guide charge.captured.
    "charge.succeeded": "charge.succeeded",
    "charge.captured": "charge.succeeded",
    "charge.revoked": "charge.canceled",
    "charge.refunded": "charge.refunded",
    "refund.succeeded": "refund.succeeded",
}


def _event_type(provider_type: str) -> str:
    if provider_type in _EVENT_TYPES:
        return _EVENT_TYPES[provider_type]
    return "charge.updated" if provider_type.startswith("charge.") else "provider.other"
