"""The PAY.JP (API v1) adapter: card charges, and payouts through Term / Statement / Balance.

Idempotency: every POST carries an ``Idempotency-Key`` header derived from the
merchant's key (``pg-<operation>-<key>``). The official SDKs send it on charge creation,
so a lost create is re-sent with the same key; the v1 reference does not document how
long PAY.JP remembers a key, and paygate assumes one hour (`KEY_WINDOW`), deliberately
short, reporting `OutcomeUnknown` beyond it. PAY.JP offers no lookup of a charge by key.
For refunds, captures and voids v1 documents no key semantics at all: after a lost
answer the charge is read (`lookup_refund`, `lookup_capture`, `lookup_cancel`) and the
request is sent again only when the reading shows it took no effect.

Retry: reads are retried freely; charge creation is retried with the same key;
refunds, captures, voids and ``tds_finish`` only when they surely never arrived. 429
``over_capacity`` is retried (honouring ``Retry-After`` when sent) and surfaces as a
retryable `RateLimited` when the driver gives up; 5xx are retried by the driver.

Status: see `paygate_payjp._charges` (from the amounts, the capture memo, ``expired_at``
and the 3-D Secure state).
Cancel is a void: the refund of an authorisation that was never captured. Payouts are
read from ``/v1/balances`` (never the retired Transfer objects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from paygate import (
    Capabilities,
    Card,
    Charge,
    ChargeStatus,
    Failure,
    MethodCapabilities,
    Money,
    PayoutBalance,
    PayoutItem,
    Refund,
    RefundStatus,
)
from paygate._errors import (
    ConfigurationError,
    InvalidRequest,
    OutcomeUnknown,
    PaymentDeclined,
)
from paygate.adapter import (
    CacheGet,
    CachePut,
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    Flow,
    OpContext,
    Operation,
    OperationPolicy,
    Outcome,
    ParsedEvent,
    Provider,
    ProviderSettings,
    RefundRequest,
    Reply,
    Retry,
    RetryDecision,
    capabilities_of,
    only_method,
    register_secret,
    retry_after,
)

from ._api import Api, idempotency_key
from ._charges import CaptureMemo, amounts_of, charge_from_wire, tds_start_url
from ._errors import OUTCOMES, error_from_reply
from ._settings import PayjpSettings
from ._webhooks import charge_id_of, parse_event, verify_token
from ._wire import Balance, Statement, StatementUrl, Term, from_ts, to_ts

__all__ = ["KEY_WINDOW", "PayjpProvider"]

KEY_WINDOW = timedelta(hours=1)
MIN_AMOUNT = 50
MAX_AMOUNT = 9_999_999
MAX_DESCRIPTION = 255
MAX_REFUND_REASON = 255
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MIN_CAPTURE = 50
# Terms that started this long ago or later (from midnight UTC) are read to find the
# current one.
TERM_LOOKBACK = timedelta(days=100)
_KEYED = OperationPolicy(key="header", key_window=KEY_WINDOW, lookup=False)
# Refunds, captures and voids still carry an Idempotency-Key, but v1 documents no key
# semantics for them: after a lost answer the charge is read (the lookups) before
# anything is sent again. The reading compares amounts, not keys, so it stays valid
# however long ago the attempt was.
_LOOKED_UP = OperationPolicy(key="header", key_window=None, lookup=True)
_TDS_EXPIRED_CODES = frozenset({"three_d_secure_expired", "not_in_three_d_secure_flow"})


def _check_jpy(amount: Money, param: str, *, minimum: int, maximum: int) -> None:
    if amount.currency != "JPY":
        raise InvalidRequest(
            f"PAY.JP charges only JPY, not {amount.currency}", param=f"{param}.currency"
        )
    if not minimum <= amount.amount <= maximum:
        raise InvalidRequest(
            f"PAY.JP amounts must be between {minimum:,} and {maximum:,} JPY", param=param
        )


class PayjpProvider(Provider):
    """PAY.JP card payments and payout balances.

    Example (``paygate.toml``)::

        [accounts.card]
        provider = "payjp"
        secret_key = "sk_test_..."
        webhook_token = "whook_..."

    Capabilities: ``card`` with partial and multiple refunds, capture (full or partial)
    and cancel. Cancel voids an authorisation that was never captured (PAY.JP does it
    with a refund of the uncaptured charge); a captured charge is refunded instead.
    """

    name: ClassVar[str] = "payjp"
    emulator_at = "._emulator:PayjpEmulator"
    demo_at = "._demo:demo"
    display_name: ClassVar[str] = "PAY.JP"
    settings_model: ClassVar[type[ProviderSettings]] = PayjpSettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        Operation.CHARGE: _KEYED,
        Operation.REFUND: _LOOKED_UP,
        Operation.CAPTURE: _LOOKED_UP,
        Operation.CANCEL: _LOOKED_UP,
    }
    outcomes: ClassVar[Mapping[str, Outcome]] = OUTCOMES

    def __init__(self, settings: ProviderSettings, *, account: str) -> None:
        if not isinstance(settings, PayjpSettings):
            raise ConfigurationError("PAY.JP accounts need PayjpSettings", key="provider")
        secret = settings.secret_key.get_secret_value()  # registered by the settings
        if not secret.startswith("sk_"):
            raise ConfigurationError(
                "must be a PAY.JP secret key (sk_...); public keys only tokenise cards",
                key="secret_key",
            )
        if settings.public_key is not None and not settings.public_key.startswith("pk_"):
            # Most likely a secret key in the wrong place: never echo it.
            register_secret(settings.public_key)
            raise ConfigurationError("must be a PAY.JP public key (pk_...)", key="public_key")
        super().__init__(settings, account=account)
        self.config = settings
        self.api = Api(settings.base_url, secret, provider=self.name)

    # -- description -----------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Card charges with capture, void (cancel) and partial, repeated refunds."""
        return capabilities_of(
            self.name,
            MethodCapabilities(
                method="card",
                refund="partial",
                multiple_refunds=True,
                cancel=True,
                capture=True,
                cancel_alternative="refund (cancel voids an uncaptured authorisation)",
            ),
            currencies=("JPY",),
            min_amount=MIN_AMOUNT,
            max_amount=MAX_AMOUNT,
            payout_balance=True,
            webhooks=True,
            webhook_auth="token",
        )

    # -- validation -------------------------------------------------------------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what PAY.JP would refuse, before any request is sent.

        Amount 50..9,999,999 JPY; JPY only; a `Card` method; description at most 255
        characters; metadata flat strings, at most 20 keys of at most 40 characters with
        values of at most 500 characters; 3-D Secure needs the public key configured.
        """
        method = only_method(
            req, Card, provider=self.name, reason="PAY.JP accounts take card payments only"
        )
        _check_jpy(req.amount, "amount", minimum=MIN_AMOUNT, maximum=MAX_AMOUNT)
        if method.three_d_secure and not self.config.public_key:
            raise InvalidRequest(
                "3-D Secure needs public_key in the PAY.JP account settings",
                param="method.three_d_secure",
            )
        if req.description is not None and len(req.description) > MAX_DESCRIPTION:
            raise InvalidRequest(
                f"description is longer than {MAX_DESCRIPTION} characters", param="description"
            )
        self._validate_metadata(req.metadata)

    @staticmethod
    def _validate_metadata(metadata: Mapping[Any, Any]) -> None:
        if len(metadata) > MAX_METADATA_KEYS:
            raise InvalidRequest(
                f"PAY.JP keeps at most {MAX_METADATA_KEYS} metadata keys", param="metadata"
            )
        for key, value in metadata.items():
            if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
                raise InvalidRequest(
                    f"metadata keys must be 1..{MAX_METADATA_KEY} characters",
                    param="metadata",
                )
            if "[" in key or "]" in key:
                raise InvalidRequest("metadata keys may not contain brackets", param="metadata")
            if not isinstance(value, str):
                raise InvalidRequest(
                    "metadata must be flat: every value a string", param=f"metadata.{key}"
                )
            if len(value) > MAX_METADATA_VALUE:
                raise InvalidRequest(
                    f"metadata values must be at most {MAX_METADATA_VALUE} characters",
                    param=f"metadata.{key}",
                )

    def validate_refund(self, req: RefundRequest) -> None:
        """Refuse a refund PAY.JP would refuse, before any request is sent.

        Amount (when given) 1..9,999,999 JPY; JPY only; reason at most 255 characters.
        """
        if req.amount is not None:
            _check_jpy(req.amount, "amount", minimum=1, maximum=MAX_AMOUNT)
        if req.reason is not None and len(req.reason) > MAX_REFUND_REASON:
            raise InvalidRequest(
                f"refund reason is longer than {MAX_REFUND_REASON} characters", param="reason"
            )

    # -- charges ----------------------------------------------------------------------

    def _tds_url(self, charge_id: str) -> str | None:
        if not self.config.public_key:
            return None
        return tds_start_url(
            self.api.base_url, charge_id, self.config.public_key, self.config.tds_back
        )

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Create a card charge (``capture=False`` authorises only).

        Declines raise `PaymentDeclined` carrying PAY.JP's code (``card_declined``,
        ``expired_card``, ``processing_error``, ...). With 3-D Secure the charge comes
        back ``requires_action`` with a `Redirect` to PAY.JP's start page.
        """
        key = idempotency_key(ctx, "charge")
        return self._charge_flow(req, ctx, key)

    def _charge_flow(self, req: ChargeRequest, ctx: OpContext, key: str) -> Flow[Charge]:
        card = req.method
        assert isinstance(card, Card)
        params: dict[str, Any] = {
            "amount": req.amount.amount,
            "currency": "jpy",
            "card": card.token,
            "customer": card.customer,
            "capture": card.capture,
            "description": req.description,
            "metadata": dict(req.metadata) or None,
            "tenant": self.config.tenant,
            "three_d_secure": True if card.three_d_secure else None,
        }
        reply = yield self.api.post("/v1/charges", params, key=key, step="charges.create")
        obj = self.api.read(reply, "charge")
        return self._charge(obj, ctx)

    # -- memos: what the charge object does not say -------------------------------------

    def _capture_key(self, ctx: OpContext, charge_id: str) -> str:
        return f"payjp:capture:{ctx.account}:{charge_id}"

    def _tds_key(self, ctx: OpContext, charge_id: str) -> str:
        return f"payjp:tds-end:{ctx.account}:{charge_id}"

    def _capture_memo(
        self, ctx: OpContext, ref: ChargeRef | None, charge_id: str
    ) -> Flow[CaptureMemo | None]:
        """The remembered capture of ``charge_id`` (from the entity cache, else from
        paygate's record of a partial capture)."""
        memo = CaptureMemo.of((yield CacheGet(self._capture_key(ctx, charge_id))))
        if memo is None and ref is not None:
            memo = _memo_from_ref(ref)
        return memo

    def _charge(
        self,
        obj: Mapping[str, Any],
        ctx: OpContext,
        memo: CaptureMemo | None = None,
        *,
        status: ChargeStatus | None = None,
        failure: Failure | None = None,
    ) -> Charge:
        return charge_from_wire(
            obj,
            ctx,
            tds_url=self._tds_url(str(obj.get("id"))),
            memo=memo,
            status=status,
            failure=failure,
        )

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """The charge's current state.

        A 3-D Secure charge the customer has completed (``verified``, and ``attempted``
        unless ``tds_finish_attempted`` is off) is finished here with ``tds_finish``:
        PAY.JP only runs the payment once the merchant asks for it. A 402 there makes
        the charge failed, ``three_d_secure_expired`` expired (both remembered, so a
        finished flow is never finished again); an ``unverified`` flow older than
        ``tds_timeout_minutes`` is probed the same way.
        """
        charge_id = ref.provider_ref
        memo = yield from self._capture_memo(ctx, ref, charge_id)
        reply = yield self.api.get(f"/v1/charges/{quote(charge_id, safe='')}", step="charges.get")
        obj = self.api.read(reply, "charge")
        return (yield from self._settle_tds(obj, ctx, memo))

    def _settle_tds(
        self, obj: Mapping[str, Any], ctx: OpContext, memo: CaptureMemo | None
    ) -> Flow[Charge]:
        tds = obj.get("three_d_secure_status")
        if (
            obj.get("paid")
            or obj.get("failure_code")
            or obj.get("refunded")
            or tds not in ("unverified", "verified", "attempted")
        ):
            return self._charge(obj, ctx, memo)
        charge_id = str(obj.get("id"))
        ended = yield CacheGet(self._tds_key(ctx, charge_id))
        if isinstance(ended, dict) and ended.get("status") in ("failed", "expired"):
            return self._tds_ended(obj, ctx, ended)
        if tds == "unverified":
            created = from_ts(obj.get("created"))
            timeout = timedelta(minutes=self.config.tds_timeout_minutes)
            if created is None or ctx.now() < created + timeout:
                return self._charge(obj, ctx, memo)
        elif tds == "attempted" and not self.config.tds_finish_attempted:
            end: dict[str, str | None] = {
                "status": "failed",
                "code": "three_d_secure_attempted",
                "message": "3-D Secure was only attempted; this account does not accept it",
            }
            yield CachePut(self._tds_key(ctx, charge_id), end)
            return self._tds_ended(obj, ctx, end)
        # A finish of a completed flow is keyed by the charge; a probe of an unverified
        # one gets a fresh key, so a later probe is never answered from an earlier one.
        key = f"pg-tds-finish-{charge_id}"
        if tds == "unverified":
            key = f"pg-tds-probe-{charge_id}-{ctx.new_uuid().hex[:12]}"
        reply = yield self.api.post(
            f"/v1/charges/{quote(charge_id, safe='')}/tds_finish",
            key=key,
            step="charges.tds_finish",
            retry=Retry.UNSAFE,
        )
        if reply.ok:
            return self._charge(self.api.read(reply, "charge"), ctx, memo)
        error = error_from_reply(reply)
        code = error.provider_code
        if code in _TDS_EXPIRED_CODES:
            end = {"status": "expired", "code": code, "message": error.provider_message}
        elif reply.status == 402 or isinstance(error, PaymentDeclined):
            end = {"status": "failed", "code": code, "message": error.provider_message}
        elif code == "three_d_secure_incompleted" and tds == "unverified":
            # The flow is still open (PAY.JP's timeout is longer than configured).
            return self._charge(obj, ctx, memo)
        else:
            raise error
        yield CachePut(self._tds_key(ctx, charge_id), end)
        return self._tds_ended(obj, ctx, end)

    def _tds_ended(self, obj: Mapping[str, Any], ctx: OpContext, end: Mapping[str, Any]) -> Charge:
        if end.get("status") == "expired":
            return self._charge(obj, ctx, status=ChargeStatus.EXPIRED)
        failure = Failure(
            code=str(end.get("code") or "three_d_secure_failed"),
            message=str(end["message"]) if end.get("message") else None,
        )
        return self._charge(obj, ctx, status=ChargeStatus.FAILED, failure=failure)

    def capture(self, req: CaptureRequest, ctx: OpContext) -> Flow[Charge]:
        """Capture an authorised charge, fully or partly (``amount`` 50 to the
        authorised amount).

        PAY.JP books the released rest of the authorisation in ``amount_refunded``
        (capturing 400 of 500 answers ``amount_refunded = 100``); that release is
        remembered (`CaptureMemo`) and never counted as a refund: the charge reads
        ``amount`` 500, ``amount_captured`` 400, ``amount_refunded`` 0.
        """
        if req.amount is not None:
            _check_jpy(req.amount, "amount", minimum=MIN_CAPTURE, maximum=MAX_AMOUNT)
            if req.charge.amount is not None and req.amount > req.charge.amount:
                raise InvalidRequest("cannot capture more than was authorised", param="amount")
        key = idempotency_key(ctx, "capture")
        return self._capture_flow(req, ctx, key)

    def _capture_flow(self, req: CaptureRequest, ctx: OpContext, key: str) -> Flow[Charge]:
        charge_id = quote(req.charge.provider_ref, safe="")
        params = {"amount": req.amount.amount if req.amount is not None else None}
        reply = yield self.api.post(
            f"/v1/charges/{charge_id}/capture",
            params,
            key=key,
            step="charges.capture",
            retry=Retry.UNSAFE,
        )
        obj = self.api.read(reply, "charge")
        memo = self._memo_of_capture(req, obj)
        yield CachePut(self._capture_key(ctx, req.charge.provider_ref), memo.to_json())
        return self._charge(obj, ctx, memo)

    @staticmethod
    def _memo_of_capture(req: CaptureRequest, obj: Mapping[str, Any]) -> CaptureMemo:
        wire_amount = obj.get("amount")
        authorized = (
            req.charge.amount.amount
            if req.charge.amount is not None
            else wire_amount
            if isinstance(wire_amount, int)
            else 0
        )
        captured = req.amount.amount if req.amount is not None else authorized
        return CaptureMemo.after_capture(obj, authorized, captured)

    def lookup_capture(self, req: CaptureRequest, ctx: OpContext) -> Flow[Charge | None]:
        """After a lost capture answer: the charge if it is captured, None while it is
        still an open authorisation (or was voided: then a re-send gets PAY.JP's own
        refusal). PAY.JP v1 documents no ``Idempotency-Key`` semantics for
        ``/capture``, so a capture is never re-sent before this reading."""
        charge_id = req.charge.provider_ref
        reply = yield self.api.get(f"/v1/charges/{quote(charge_id, safe='')}", step="charges.get")
        obj = self.api.read(reply, "charge")
        if not obj.get("captured"):
            return None
        memo = yield from self._capture_memo(ctx, None, charge_id)
        if memo is None:
            memo = self._memo_of_capture(req, obj)
            yield CachePut(self._capture_key(ctx, charge_id), memo.to_json())
        return self._charge(obj, ctx, memo)

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """Void an authorisation that was never captured (a refund of the uncaptured
        charge). A captured charge cannot be cancelled: refund it. An authorisation that
        already expired is returned as it is (expired)."""
        key = idempotency_key(ctx, "cancel")
        return self._cancel_flow(req, ctx, key)

    def _cancel_flow(self, req: CancelRequest, ctx: OpContext, key: str) -> Flow[Charge]:
        charge_id = quote(req.charge.provider_ref, safe="")
        reply = yield self.api.get(f"/v1/charges/{charge_id}", step="charges.get")
        obj = self.api.read(reply, "charge")
        current = self._charge(obj, ctx)
        if current.status in (ChargeStatus.CANCELED, ChargeStatus.EXPIRED):
            return current
        if obj.get("captured"):
            raise InvalidRequest(
                "a captured PAY.JP charge cannot be cancelled; refund it instead",
                param="charge",
            )
        if current.status is not ChargeStatus.AUTHORIZED:
            raise InvalidRequest(
                f"only an authorised charge can be cancelled (this one is {current.status})",
                param="charge",
            )
        reply = yield self.api.post(
            f"/v1/charges/{charge_id}/refund", key=key, step="charges.void", retry=Retry.UNSAFE
        )
        obj = self.api.read(reply, "charge")
        return self._charge(obj, ctx)

    def lookup_cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge | None]:
        """After a lost void answer: the charge once it is voided (or expired), None
        while it is still an open authorisation."""
        charge_id = quote(req.charge.provider_ref, safe="")
        reply = yield self.api.get(f"/v1/charges/{charge_id}", step="charges.get")
        current = self._charge(self.api.read(reply, "charge"), ctx)
        if current.status in (ChargeStatus.CANCELED, ChargeStatus.EXPIRED):
            return current
        return None

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund part (``amount``) or the rest of a charge, with an optional reason.

        PAY.JP has no refund object: the answer is the charge, whose ``refunded`` is
        true after any refund and whose ``amount_refunded`` is the sum (less a partial
        capture's release, the merchant's refunds). The charge is read first (once per
        key): that reading is what a lost answer is measured against, and it refuses
        more than is refundable before anything is sent. The rest is refunded by
        sending no ``amount``.
        """
        key = idempotency_key(ctx, "refund")
        return self._refund_flow(req, ctx, key)

    def _refund_memo_key(self, ctx: OpContext, key: str) -> str:
        return f"payjp:refund-before:{ctx.account}:{key}"

    def _refund_flow(self, req: RefundRequest, ctx: OpContext, key: str) -> Flow[Refund]:
        charge_id = req.charge.provider_ref
        memo = yield from self._capture_memo(ctx, req.charge, charge_id)
        before = yield from self._refunded_before(req, ctx, key, memo)
        params = {
            "amount": req.amount.amount if req.amount is not None else None,
            "refund_reason": req.reason,
        }
        reply = yield self.api.post(
            f"/v1/charges/{quote(charge_id, safe='')}/refund",
            params,
            key=key,
            step="charges.refund",
            retry=Retry.UNSAFE,
        )
        obj = self.api.read(reply, "charge")
        return self._refund_of(req, ctx, key, obj, memo, before)

    def _refunded_before(
        self, req: RefundRequest, ctx: OpContext, key: str, memo: CaptureMemo | None
    ) -> Flow[int]:
        """The merchant's refunded total before this refund, read once per key and
        remembered: a re-run must measure against the first reading, not one taken
        after the refund already happened."""
        memo_key = self._refund_memo_key(ctx, key)
        remembered = yield CacheGet(memo_key)
        if isinstance(remembered, dict) and isinstance(remembered.get("refunded"), int):
            return int(remembered["refunded"])
        charge_id = quote(req.charge.provider_ref, safe="")
        reply = yield self.api.get(f"/v1/charges/{charge_id}", step="charges.get")
        amounts = amounts_of(self.api.read(reply, "charge"), memo)
        if amounts.captured is not None:
            if amounts.refundable <= 0:
                raise InvalidRequest("nothing is left to refund on this charge", param="amount")
            if req.amount is not None and req.amount.amount > amounts.refundable:
                raise InvalidRequest(
                    f"refund amount exceeds the refundable {amounts.refundable:,} JPY",
                    param="amount",
                )
        yield CachePut(memo_key, {"refunded": amounts.refunded})
        return amounts.refunded

    def _refund_of(
        self,
        req: RefundRequest,
        ctx: OpContext,
        key: str,
        obj: Mapping[str, Any],
        memo: CaptureMemo | None,
        before: int,
    ) -> Refund:
        currency = str(obj.get("currency") or "jpy").upper()
        after = amounts_of(obj, memo).refunded
        if req.amount is not None:
            amount = req.amount
        else:
            amount = Money(amount=max(0, after - before), currency=currency)
        return ctx.refund(
            req.charge.charge_id,
            f"{req.charge.provider_ref}:{key}",
            id=f"{ctx.charge_id or req.charge.charge_id}:{key}",
            amount=amount,
            status=RefundStatus.SUCCEEDED,
            reason=req.reason,
            created_at=ctx.now(),
            charge_refunded_total=Money(amount=after, currency=currency),
            raw=dict(obj),
        )

    def lookup_refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund | None]:
        """After a lost refund answer: read the charge and compare the merchant's
        refunded total with the one read before the attempt (paygate's record when no
        reading was kept). Grown: the refund happened. Unchanged: it did not (None, so
        paygate sends it). Smaller: `OutcomeUnknown`. PAY.JP v1 documents no
        ``Idempotency-Key`` semantics for ``/refund``, so a refund is never re-sent
        before this reading."""
        key = idempotency_key(ctx, "refund")
        charge_id = req.charge.provider_ref
        memo = yield from self._capture_memo(ctx, req.charge, charge_id)
        remembered = yield CacheGet(self._refund_memo_key(ctx, key))
        before: int | None = None
        if isinstance(remembered, dict) and isinstance(remembered.get("refunded"), int):
            before = int(remembered["refunded"])
        elif req.charge.amount_refunded is not None:
            before = req.charge.amount_refunded.amount
        reply = yield self.api.get(f"/v1/charges/{quote(charge_id, safe='')}", step="charges.get")
        obj = self.api.read(reply, "charge")
        after = amounts_of(obj, memo).refunded
        if before is None or after < before:
            raise OutcomeUnknown(
                "PAY.JP's refunded total cannot be compared with the one before the refund",
                provider=self.name,
            )
        if after == before:
            return None
        return self._refund_of(req, ctx, key, obj, memo, before)

    def classify(self, reply: Reply) -> RetryDecision | None:
        """429 ``over_capacity`` is retried honouring ``Retry-After`` when present."""
        if reply.status == 429:
            return RetryDecision(retry=True, after=retry_after(reply))
        return None

    # -- payouts ----------------------------------------------------------------------

    def _owner(self, tenant: str | None = None) -> dict[str, Any]:
        tenant = tenant or self.config.tenant
        return {"tenant": tenant} if tenant else {"owner": "merchant"}

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        """What PAY.JP will pay out, from the open Balances and the current Term.

        ``collecting``: the net of open ``collecting`` balances (accruing, or deferred
        below the 10,000 JPY minimum). ``scheduled``: ``transfer`` balances not yet
        paid, the earliest ``due_date`` giving ``next_payout_date`` / ``amount``.
        ``owed``: what ``claim`` balances bill the merchant. ``items``: every statement
        line of those balances. The current Term is in ``raw["current_term"]``.
        """
        objs = yield from self.api.paged(
            "/v1/balances", {"closed": False, **self._owner()}, step="balances.list"
        )
        balances = [Balance.from_wire(obj) for obj in objs]
        # The order of /v1/terms is not documented: ask only for the Terms that started
        # lately (since_start_at) and pick the one containing now, whatever the order.
        since = (ctx.now() - TERM_LOOKBACK).replace(hour=0, minute=0, second=0, microsecond=0)
        objs = yield from self.api.paged(
            "/v1/terms", {"since_start_at": to_ts(since)}, step="terms.list"
        )
        terms = [Term.from_wire(t) for t in objs]
        current = _current_term(terms, ctx.now())
        return _payout_balance(balances, current, ctx, provider=self.name)

    def payout_balances(
        self,
        ctx: OpContext,
        *,
        state: str | None = None,
        closed: bool | None = None,
        tenant: str | None = None,
        since_due_date: datetime | None = None,
        until_due_date: datetime | None = None,
        max_items: int | None = None,
    ) -> Flow[list[Balance]]:
        """Balances (newest first), filtered as PAY.JP's ``GET /v1/balances`` allows.

        ``tenant`` defaults to the account's tenant; without one, the merchant's own
        balances are listed.
        """
        params: dict[str, Any] = {
            "state": state,
            "closed": closed,
            "since_due_date": to_ts(since_due_date) if since_due_date else None,
            "until_due_date": to_ts(until_due_date) if until_due_date else None,
            **self._owner(tenant),
        }
        objs = yield from self.api.paged(
            "/v1/balances", params, step="balances.list", max_items=max_items
        )
        return [Balance.from_wire(obj) for obj in objs]

    def payout_statements(
        self,
        ctx: OpContext,
        *,
        type: str | None = None,
        term: str | None = None,
        tenant: str | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_items: int | None = None,
    ) -> Flow[list[Statement]]:
        """Statements (newest first), paged lazily, as ``GET /v1/statements`` filters them.

        ``type``: ``sales``, ``service_fee``, ``transfer_fee``, ``forfeit`` or ``misc``.
        ``term``: a Term id. ``tenant`` defaults to the account's tenant; ``owner`` is
        ``merchant`` or ``tenant``. ``since`` / ``until`` filter on creation time.

        >>> flow = provider.payout_statements(ctx, type="sales")  # doctest: +SKIP
        >>> gateway.run(flow)  # doctest: +SKIP
        [Statement(id='st_...', type='sales', net=Money.jpy(9700), ...)]
        """
        if type is not None and type not in (
            "sales",
            "service_fee",
            "transfer_fee",
            "forfeit",
            "misc",
        ):
            raise InvalidRequest(f"unknown statement type {type!r}", param="type")
        if owner is not None and owner not in ("merchant", "tenant"):
            raise InvalidRequest("owner must be merchant or tenant", param="owner")
        params: dict[str, Any] = {
            "type": type,
            "term": term,
            "tenant": tenant or self.config.tenant,
            "owner": owner,
            "since": to_ts(since) if since else None,
            "until": to_ts(until) if until else None,
        }
        return self._statements_flow(params, max_items)

    def _statements_flow(
        self, params: Mapping[str, Any], max_items: int | None
    ) -> Flow[list[Statement]]:
        objs = yield from self.api.paged(
            "/v1/statements", params, step="statements.list", max_items=max_items
        )
        return [Statement.from_wire(obj) for obj in objs]

    def payout_terms(
        self,
        ctx: OpContext,
        *,
        since_start_at: datetime | None = None,
        until_start_at: datetime | None = None,
        max_items: int | None = None,
    ) -> Flow[list[Term]]:
        """Terms (aggregation intervals), newest first."""
        params = {
            "since_start_at": to_ts(since_start_at) if since_start_at else None,
            "until_start_at": to_ts(until_start_at) if until_start_at else None,
        }
        objs = yield from self.api.paged(
            "/v1/terms", params, step="terms.list", max_items=max_items
        )
        return [Term.from_wire(obj) for obj in objs]

    def statement_urls(
        self,
        ctx: OpContext,
        *,
        statement_id: str | None = None,
        balance_id: str | None = None,
        platformer: bool = False,
    ) -> Flow[StatementUrl]:
        """A download URL (valid one hour) for one statement or for every statement of a
        balance; ``platformer=True`` asks for the platform-fee statement.

        Give exactly one of ``statement_id`` and ``balance_id``.
        """
        if (statement_id is None) == (balance_id is None):
            raise InvalidRequest(
                "give exactly one of statement_id or balance_id", param="statement_id"
            )
        if statement_id is not None:
            path = f"/v1/statements/{quote(statement_id, safe='')}/statement_urls"
            target = statement_id
        else:
            assert balance_id is not None
            path = f"/v1/balances/{quote(balance_id, safe='')}/statement_urls"
            target = balance_id
        if ctx.idempotency_key is not None:
            key = idempotency_key(ctx, "statement-url")
        else:
            # Issuing a URL changes nothing; a fresh key per request is enough, and the
            # driver re-sends the same Call (so the same key) when it retries.
            key = f"pg-statement-url-{target}-{ctx.new_uuid().hex}"
        return self._statement_url_flow(path, {"platformer": platformer or None}, key)

    def _statement_url_flow(
        self, path: str, params: Mapping[str, Any], key: str
    ) -> Flow[StatementUrl]:
        reply = yield self.api.post(path, params, key=key, step="statement_urls.create")
        return StatementUrl.from_wire(self.api.read(reply, "statement_url"))

    # -- webhooks ---------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Compare ``X-Payjp-Webhook-Token`` with the configured token (constant time)."""
        token = self.config.webhook_token
        verify_token(headers, token.get_secret_value() if token is not None else None)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        """Normalise a delivery (no request needed: the token authenticates the body).

        A charge event carries the charge with its capture memo applied, so a partial
        capture's release is never booked as a refund."""
        parse_event(body)  # refuses what is not a PAY.JP event before any flow runs
        return self._parse_flow(body, ctx)

    def _parse_flow(self, body: bytes, ctx: OpContext) -> Flow[Sequence[ParsedEvent]]:
        charge_id = charge_id_of(body)
        memo = None
        if charge_id is not None:
            memo = yield from self._capture_memo(ctx, None, charge_id)
        return [parse_event(body, ctx, memo)]


def _memo_from_ref(ref: ChargeRef) -> CaptureMemo | None:
    """A partial capture as paygate's record knows it (when the memo is gone): the
    release is taken to be the documented ``authorised - captured``."""
    if ref.amount is None or ref.amount_captured is None:
        return None
    authorized, captured = ref.amount.amount, ref.amount_captured.amount
    if not 0 < captured < authorized:
        return None
    return CaptureMemo(authorized, captured, authorized - captured)


def _current_term(terms: Sequence[Term], now: datetime) -> Term | None:
    """The open Term that contains ``now`` (else the open, then any, Term that started
    last), whatever order the list came in."""
    open_terms = [t for t in terms if not t.closed]
    for term in open_terms:
        started = term.start_at is None or term.start_at <= now
        if started and (term.end_at is None or now < term.end_at):
            return term
    floor = datetime.min.replace(tzinfo=now.tzinfo)
    for group in (open_terms, list(terms)):
        if group:
            return max(group, key=lambda t: t.start_at or floor)
    return None


def _payout_balance(
    balances: Sequence[Balance], term: Term | None, ctx: OpContext, *, provider: str
) -> PayoutBalance:
    zero = Money.jpy(0)
    collecting, scheduled, owed = zero, zero, zero
    due: dict[date, Money] = {}
    items: list[PayoutItem] = []
    for balance in balances:
        if balance.closed:
            continue
        if balance.state == "collecting":
            collecting += balance.net
        elif balance.state == "transfer":
            scheduled += balance.net
            if balance.due_date is not None:
                due[balance.due_date] = due.get(balance.due_date, zero) + balance.net
        else:
            owed -= balance.net
        for statement in balance.statements:
            items.extend(
                PayoutItem(
                    kind=item.subject,
                    description=item.name,
                    amount=item.amount,
                    state=balance.state,
                    reference=statement.id,
                    due_date=balance.due_date,
                )
                for item in statement.items
            )
    next_date = min(due) if due else None
    return PayoutBalance(
        account=ctx.account,
        provider=provider,
        currency="JPY",
        collecting=collecting,
        scheduled=scheduled,
        owed=owed,
        next_payout_date=next_date,
        next_payout_amount=due[next_date] if next_date is not None else None,
        items=tuple(items),
        as_of=ctx.now(),
        raw={
            "balances": [dict(b.raw) for b in balances],
            "current_term": dict(term.raw) if term is not None else None,
        },
    )
