"""The UnivaPay adapter: konbini payment slips (and card charges) as sans-I/O flows.

Idempotency: every POST carries an ``Idempotency-Key`` header derived from the
merchant's key (one per step: ``token``, ``charge``, ``cancel``, ``refund``,
``capture``). UnivaPay keeps a key for 24 hours and replays the first answer for the
same request; the same key with a different request is ``409
IDEMPOTENCY_KEY_CONFLICT``. Calls are therefore `Retry.KEYED`; reads are `Retry.SAFE`.

Retry: 429 and 5xx by the driver's generic rule; ``400 CHARGE_TOO_QUICK`` (the same
token and amount again within 30 seconds) and ``400 RATE_LIMIT_EXCEEDED`` are a "try
again later" as well.

Lookup: after a lost answer the charge is found by listing the store's charges (by
transaction token, or by paygate's charge id in the metadata) instead of being sent
again; a used token (``TRANSACTION_ALREADY_PROCESSED``) is checked the same way before
it counts as a refusal.

Status: a charge is created ``pending`` and moves on asynchronously. A konbini charge
becomes ``awaiting`` once the slip is issued (paygate: ``requires_action`` with a
`KonbiniSlip` read from the documented metadata keys), ``successful`` when the customer
pays and ``failed`` when the payment deadline passes (paygate: ``expired``). paygate
owns the deadline: UnivaPay answers ``capture_at: null``, so the deadline is computed by
UnivaPay's day rule, sent as ``capture_at`` and kept. ``GET …/charges/{id}?polling=true`` holds the
request until the charge leaves ``pending``; paygate uses it right after creating a
charge (to return the issued slip) and for `wait` while a charge is still pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, ClassVar, cast

from paygate._errors import (
    InvalidRequest,
    MalformedResponse,
    NotFound,
    NotSupported,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderRejected,
    RateLimited,
)
from paygate._models import (
    Capabilities,
    Card,
    Charge,
    ChargeStatus,
    Konbini,
    MethodCapabilities,
    PayoutBalance,
    PayoutItem,
    Redirect,
    Refund,
)
from paygate._money import Money
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
    RetryDecision,
    TransportFailure,
    capabilities_of,
    register_secret,
    retry_after,
)

from ._api import KEY_WINDOW, LONG_POLL_READ_TIMEOUT, Api, konbini_token_body, refund_body
from ._charges import (
    META_CHARGE_ID,
    META_KONBINI_DEADLINE,
    META_KONBINI_STORE,
    charge_from_wire,
    charge_metadata,
    method_of,
    money,
    payment_failure,
    refund_status,
    whole_number,
    with_facts,
)
from ._errors import RETRY_CODES, error_code
from ._settings import UnivapaySettings
from ._validate import validate_charge_request
from ._webhooks import charge_id_of, parse_event, verify_token
from ._wire import DEFAULT_KONBINI_PERIOD, konbini_deadline, normalize_store, parse_time

__all__ = ["LONG_POLL_READ_TIMEOUT", "UnivapayProvider"]

_SCHEDULED_TRANSFERS = ("created", "approved", "processing")


class UnivapayProvider(Provider):
    """UnivaPay: konbini payment slips, card charges, payouts from transfers.

    Configure an account with ``provider = "univapay"`` and the `UnivapaySettings`
    keys (``store_id``, ``secret``, ``jwt``, ``webhook_auth_token``)::

        [accounts.konbini]
        provider = "univapay"
        store_id = "11ef..."
        secret = "..."
        jwt = "eyJ..."

    A konbini charge cannot be refunded; an unpaid one can be cancelled.
    """

    name: ClassVar[str] = "univapay"
    emulator_at = "._emulator:UnivapayEmulator"
    demo_at = "._demo:demo"
    display_name: ClassVar[str] = "UnivaPay"
    settings_model: ClassVar[type[ProviderSettings]] = UnivapaySettings
    policies: ClassVar[Mapping[Operation, OperationPolicy]] = {
        # Lookup: list the store's charges by transaction token or by paygate's
        # charge id in the metadata (both documented list filters).
        Operation.CHARGE: OperationPolicy(key="header", key_window=KEY_WINDOW, lookup=True),
        Operation.CANCEL: OperationPolicy(key="header", key_window=KEY_WINDOW),
        Operation.REFUND: OperationPolicy(key="header", key_window=KEY_WINDOW),
        Operation.CAPTURE: OperationPolicy(key="header", key_window=KEY_WINDOW),
    }
    # A used one-time token: after a re-send it can mean the first attempt got through,
    # so the core looks the charge up instead of recording a refusal.
    outcomes: ClassVar[Mapping[str, Outcome]] = {
        "TRANSACTION_ALREADY_PROCESSED": Outcome.MAYBE_DONE,
    }

    def __init__(self, settings: ProviderSettings, *, account: str) -> None:
        if not isinstance(settings, UnivapaySettings):
            settings = UnivapaySettings.model_validate(settings.model_dump())
        super().__init__(settings, account=account)
        self.cfg: UnivapaySettings = settings
        # The settings register each secret; the header joins two of them.
        register_secret(settings.authorization.removeprefix("Bearer "))
        self.api = Api(settings.base_url, settings.authorization, store_id=settings.store_id)

    # -- description -------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Konbini (cancel, no refund) and card (capture, partial refunds)."""
        return capabilities_of(
            self.name,
            MethodCapabilities(
                method="konbini",
                refund="none",
                cancel=True,
                refund_alternative="cancel an unpaid slip",
            ),
            MethodCapabilities(
                method="card",
                refund="partial",
                multiple_refunds=True,
                cancel=True,
                capture=True,
            ),
            currencies=("JPY",),
            min_amount=1,
            payout_balance=True,
            webhooks=True,
            webhook_auth="token",
            long_poll=True,
        )

    # -- validation (the gateway calls these once, before any request) -----------------

    def validate_charge(self, req: ChargeRequest) -> None:
        """Refuse what UnivaPay would refuse, before any request (see `_validate`)."""
        validate_charge_request(req)

    def validate_refund(self, req: RefundRequest) -> None:
        """Refuse a konbini refund (UnivaPay cannot refund konbini payments) and an
        amount below 1, in another currency or above the charge."""
        ref = req.charge
        if self._ref_method(ref) == "konbini":
            raise NotSupported(
                "refund",
                provider=self.name,
                reason="UnivaPay cannot refund konbini payments",
                alternative="cancel the konbini charge while it is unpaid",
            )
        amount = req.amount
        if amount is None:
            return
        if amount.amount < 1:
            raise InvalidRequest("refund amount must be at least 1", param="amount")
        if ref.amount is not None and amount.currency != ref.amount.currency:
            raise InvalidRequest("refund currency must be the charge's currency", param="currency")
        if ref.amount is not None and amount.amount > ref.amount.amount:
            raise InvalidRequest("refund exceeds the charged amount", param="amount")

    @staticmethod
    def _ref_method(ref: ChargeRef) -> str:
        if ref.method in ("konbini", "card"):
            return ref.method
        return method_of(ref.raw, None)

    # -- charges -----------------------------------------------------------------------

    def charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge]:
        """Konbini: create a transaction token, then the charge; card: charge the token.

        Both POSTs carry their own ``Idempotency-Key``. A pending charge is then read
        once with ``polling=true``, so the returned charge usually carries the issued
        slip (or the card outcome); if that read fails the charge is returned as
        created. A charge that ends ``failed`` / ``error`` there raises `PaymentDeclined`
        with UnivaPay's payment error name as ``provider_code``.
        """
        method = req.method
        store: str | None = None
        deadline = ""
        body: dict[str, Any]
        extra_metadata: dict[str, str] = {}
        if isinstance(method, Konbini):
            store = normalize_store(method.store)
            kind = "konbini"
            token = yield from self.api.post(
                "/tokens",
                konbini_token_body(method),
                key=ctx.provider_key("token"),
                step="tokens.create",
            )
            token_id = token.get("id") if isinstance(token, Mapping) else None
            if not isinstance(token_id, str) or not token_id:
                raise MalformedResponse("UnivaPay sent a token without id", provider=self.name)
            body = {"transaction_token_id": token_id}
            deadline = yield from self._konbini_deadline(method.expires_in, ctx)
            if method.expires_in is not None:
                # The documented way to set the exact deadline; UnivaPay answers
                # ``capture_at: null`` otherwise, so paygate keeps its own copy too.
                body["capture_at"] = deadline
            extra_metadata = {META_KONBINI_DEADLINE: deadline}
        else:
            card = cast("Card", method)  # validate_charge let only konbini and card through
            kind = "card"
            token_id = cast("str", card.token).strip()
            body = {"transaction_token_id": token_id, "capture": card.capture}
        body.update(
            amount=req.amount.amount,
            currency=req.amount.currency,
            metadata={**charge_metadata(req, ctx, store), **extra_metadata},
        )
        created = yield from self._create_charge(body, ctx)
        facts: dict[str, str] = {}
        if kind == "konbini" and isinstance(created.get("id"), str):
            # What paygate knows of the slip, kept by charge id: UnivaPay's examples
            # do not promise to echo paygate's metadata on later reads.
            facts = {META_KONBINI_STORE: str(store), META_KONBINI_DEADLINE: deadline}
            yield CachePut(self._facts_key(created["id"]), facts)
        obj = yield from self._settled(created)
        charge = charge_from_wire(with_facts(obj, facts), ctx, method=kind, store=store)
        if kind == "card" and str(obj.get("status")) == "awaiting":
            # 3-D Secure: the customer's step is part of the charge's answer.
            step = yield from self._three_ds_step(str(obj["id"]))
            if step is not None:
                charge = charge.model_copy(update={"next_action": step})
        if charge.status is ChargeStatus.FAILED:
            raise self._declined(charge)
        return charge

    def _create_charge(self, body: Mapping[str, Any], ctx: OpContext) -> Flow[Mapping[str, Any]]:
        """``POST /charges``; a used token is checked against the store's charges."""
        try:
            created = yield from self.api.post(
                "/charges", body, key=ctx.provider_key("charge"), step="charges.create"
            )
        except ProviderRejected as exc:
            if exc.provider_code != "TRANSACTION_ALREADY_PROCESSED":
                raise
            # The token was used: by an earlier attempt of this very charge (its answer
            # lost, the token replayed under its key) or by something else. Only a
            # charge carrying paygate's id for this charge is ours.
            found = yield from self._find_charges(
                {"transaction_token_id": str(body["transaction_token_id"])}, ctx
            )
            if found is None:
                raise
            created = found
        if not isinstance(created, Mapping):
            raise MalformedResponse("UnivaPay sent no charge object", provider=self.name)
        return created

    def _settled(self, created: Mapping[str, Any]) -> Flow[Mapping[str, Any]]:
        """A pending charge read once with ``polling=true`` (as created if that fails)."""
        if str(created.get("status")) != "pending" or not isinstance(created.get("id"), str):
            return created
        reply: Reply | None
        try:
            reply = yield self.api.get_call(
                self.api.charge_path(created["id"]),
                step="charges.poll",
                query={"polling": "true"},
                timeout=LONG_POLL_READ_TIMEOUT,
            )
        except TransportFailure:
            reply = None
        if reply is not None and reply.ok:
            try:
                return reply.json_object()
            except MalformedResponse:
                return created
        return created

    def _declined(self, charge: Charge) -> RateLimited | PaymentDeclined:
        failure = charge.failure
        if failure is not None and failure.code == "TOO_MANY_CHARGE_REQUESTS":
            # Payment error 311: "too many charges on the same card in a short
            # period, please wait and try again" - a throttle, not a decline.
            return RateLimited(
                "UnivaPay asks to wait before charging this card again",
                provider=self.name,
                provider_code=failure.code,
                provider_message=failure.message,
            )
        # Declined while paygate waited for the outcome: the same typed error as a
        # provider that declines synchronously, keeping UnivaPay's own code.
        return PaymentDeclined(
            "UnivaPay declined the charge",
            provider=self.name,
            provider_code=failure.code if failure and failure.code else "FAILED",
            provider_message=failure.message if failure else None,
        )

    def _facts_key(self, charge_id: str) -> str:
        return f"univapay:konbini-facts:{self.account}:{charge_id}"

    def konbini_facts(self, charge_id: str) -> Flow[dict[str, str]]:
        """The store and deadline paygate kept for a konbini charge ({} when none)."""
        facts = yield CacheGet(self._facts_key(charge_id))
        if not isinstance(facts, dict):
            return {}
        return {str(k): str(v) for k, v in facts.items() if v is not None}

    def _konbini_deadline(self, expires_in: timedelta | None, ctx: OpContext) -> Flow[str]:
        """The slip's deadline, the same on every attempt under one key: a re-send after
        a lost answer (maybe a day later) must send the same ``capture_at``, or UnivaPay
        would see another request under the same idempotency key.

        Under the gateway it is computed from when the key was first begun
        (``ctx.started_at``), which every attempt shares, so nothing is stored. A
        recovering attempt first reads the deadline an earlier paygate may have
        remembered for the key; a flow run without ``started_at`` remembers its own.
        """
        period = expires_in or DEFAULT_KONBINI_PERIOD
        memo = f"univapay:konbini-deadline:{ctx.account}:{ctx.provider_key('charge')}"
        if ctx.started_at is None or ctx.recovering:
            remembered = yield CacheGet(memo)
            if isinstance(remembered, str) and parse_time(remembered) is not None:
                return remembered
        text = konbini_deadline(ctx.started_at or ctx.now(), period).strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z"
        )
        if ctx.started_at is None:
            yield CachePut(memo, text)
        return text

    def _find_charges(
        self, query: Mapping[str, str], ctx: OpContext
    ) -> Flow[Mapping[str, Any] | None]:
        """The store's charge carrying paygate's id for this operation, listed with
        ``query`` (documented filters); None when the listing has none."""
        if not ctx.charge_id:
            return None
        items = yield from self.api.paged(self.api.charges_path, step="charges.list", query=query)
        for item in items:
            metadata = item.get("metadata")
            if isinstance(metadata, Mapping) and str(metadata.get(META_CHARGE_ID)) == str(
                ctx.charge_id
            ):
                return item
        return None

    def lookup_charge(self, req: ChargeRequest, ctx: OpContext) -> Flow[Charge | None]:
        """Find the charge a possibly-sent `charge` created.

        A card charge is listed by its ``transaction_token_id``; a konbini charge (its
        token was made inside the flow) by the ``metadata`` filter on paygate's charge
        id. Either way only a charge whose metadata carries paygate's id counts.
        """
        if not ctx.charge_id:
            raise OutcomeUnknown(
                "no paygate charge id to look the UnivaPay charge up by", provider=self.name
            )
        method = req.method
        query: dict[str, str]
        if isinstance(method, Card) and method.token:
            query = {"transaction_token_id": method.token.strip()}
            kind = "card"
        else:
            query = {"metadata": f"{META_CHARGE_ID}: {ctx.charge_id}"}
            kind = "konbini"
        found = yield from self._find_charges(query, ctx)
        if found is None:
            return None
        if kind == "konbini" and isinstance(method, Konbini):
            deadline = yield from self._konbini_deadline(method.expires_in, ctx)
            facts = {
                META_KONBINI_STORE: str(normalize_store(method.store)),
                META_KONBINI_DEADLINE: deadline,
            }
            if isinstance(found.get("id"), str):
                yield CachePut(self._facts_key(found["id"]), facts)
            found = with_facts(found, facts)
        refunded = 0
        if kind == "card" and str(found.get("status")) == "successful":
            refunded = yield from self._refunded(str(found.get("id")))
        return charge_from_wire(found, ctx, method=kind, refunded=refunded)

    def _fetch_charge(
        self, ref: ChargeRef, ctx: OpContext, *, polling: bool = False
    ) -> Flow[Charge]:
        path = self.api.charge_path(ref.provider_ref)
        if polling:
            obj = yield from self.api.poll(path, step="charges.poll")
        else:
            obj = yield from self.api.get(path, step="charges.get")
        if method_of(obj, ref.method) == "konbini" or method_of(ref.raw, None) == "konbini":
            facts = yield from self.konbini_facts(ref.provider_ref)
            known = ref.raw.get("metadata") if ref.raw else None
            if isinstance(known, Mapping):
                facts = {
                    **{
                        k: str(known[k])
                        for k in (META_KONBINI_STORE, META_KONBINI_DEADLINE)
                        if known.get(k)
                    },
                    **facts,
                }
            obj = with_facts(obj, facts)
        kind = method_of(obj, ref.method)
        refunded = 0
        if kind == "card" and str(obj.get("status")) == "successful":
            refunded = yield from self._refunded(ref.provider_ref)
        charge = charge_from_wire(obj, ctx, method=kind, refunded=refunded)
        if kind == "card" and str(obj.get("status")) == "awaiting":
            step = yield from self._three_ds_step(ref.provider_ref)
            if step is not None:
                charge = charge.model_copy(update={"next_action": step})
        return charge

    def _three_ds_step(self, charge_id: str) -> Flow[Redirect | None]:
        """The customer's 3-D Secure step of an ``awaiting`` card charge.

        ``GET …/three_ds/issuer_token`` gives the URL (``issuer_token``), how to call it
        (``call_method``: ``http_post`` means the browser POSTs ``payload`` as a form)
        and the content type (Ruby SDK: Get Charge Three Ds Issuer Token). None when
        UnivaPay has no step to show (the charge moved on meanwhile).
        """
        try:
            token = yield from self.api.get(
                f"{self.api.charge_path(charge_id)}/three_ds/issuer_token", step="three_ds.get"
            )
        except (NotFound, ProviderRejected):
            return None
        url = token.get("issuer_token")
        if not isinstance(url, str) or not url:
            return None
        payload = token.get("payload")
        form = (
            {str(k): str(v) for k, v in payload.items()} if isinstance(payload, Mapping) else None
        )
        post = str(token.get("call_method", "")).lower() in ("http_post", "post")
        return Redirect(url=url, method="POST" if post else "GET", form=form)

    def _refunded(self, charge_id: str) -> Flow[int]:
        """The sum of the charge's successful refunds."""
        items = yield from self.api.paged(
            f"{self.api.charge_path(charge_id)}/refunds", step="refunds.list"
        )
        return sum(
            whole_number(i.get("amount"), "refund amount")
            for i in items
            if str(i.get("status")) == "successful"
        )

    def status(self, ref: ChargeRef, ctx: OpContext) -> Flow[Charge]:
        """``GET /stores/{storeId}/charges/{id}`` (plus the refunds of a paid card charge)."""
        return self._fetch_charge(ref, ctx)

    def wait_status(self, ref: ChargeRef, ctx: OpContext, timeout: float) -> Flow[Charge] | None:
        """One held read (``?polling=true``) while the charge may still be ``pending``.

        UnivaPay releases the hold as soon as the charge leaves ``pending``, so for a
        charge known to be ``awaiting`` (an issued, unpaid slip) the hold would return
        at once: None then, and the gateway polls with backoff instead.
        """
        last = str(ref.raw.get("status") or "") if ref.raw else ""
        if last and last != "pending":
            return None
        return self._fetch_charge(ref, ctx, polling=True)

    # -- cancel / refund / capture -----------------------------------------------------

    def cancel(self, req: CancelRequest, ctx: OpContext) -> Flow[Charge]:
        """``POST …/cancels``, wait for the cancel to finish, then read the charge.

        UnivaPay cancels an unpaid konbini charge or an authorised card charge; a paid
        konbini charge answers ``CANCEL_NOT_ALLOWED``.
        """
        ref = req.charge
        path = f"{self.api.charge_path(ref.provider_ref)}/cancels"
        body: dict[str, Any] = {}
        if ctx.charge_id:
            body["metadata"] = {META_CHARGE_ID: ctx.charge_id}
        created = yield from self.api.post(
            path, body, key=ctx.provider_key("cancel"), step="cancels.create"
        )
        cancel = created if isinstance(created, Mapping) else {}
        if str(cancel.get("status")) == "pending" and isinstance(cancel.get("id"), str):
            cancel = yield from self.api.poll(f"{path}/{cancel['id']}", step="cancels.poll")
        if str(cancel.get("status")) in ("failed", "error"):
            failure = payment_failure(cancel)
            raise ProviderRejected(
                "UnivaPay could not cancel the charge",
                provider=self.name,
                provider_code=failure.code if failure else str(cancel.get("status")),
                provider_message=failure.message if failure else None,
            )
        charge = yield from self._fetch_charge(ref, ctx)
        return charge

    def refund(self, req: RefundRequest, ctx: OpContext) -> Flow[Refund]:
        """Refund (part of) a card charge (`validate_refund` refuses konbini charges).

        Without an amount, what is left is measured once and remembered under the key.
        """
        ref = req.charge
        amount = req.amount
        if amount is None:
            amount = yield from self._refund_rest(ref, ctx)
        path = f"{self.api.charge_path(ref.provider_ref)}/refunds"
        created = yield from self.api.post(
            path,
            refund_body(amount, req.reason),
            key=ctx.provider_key("refund"),
            step="refunds.create",
        )
        obj: Mapping[str, Any] = created if isinstance(created, Mapping) else {}
        if str(obj.get("status")) == "pending" and isinstance(obj.get("id"), str):
            obj = yield from self.api.poll(f"{path}/{obj['id']}", step="refunds.poll")
        refund_id = obj.get("id")
        if not isinstance(refund_id, str) or not refund_id:
            raise MalformedResponse("UnivaPay sent a refund without id", provider=self.name)
        return ctx.refund(
            ref.charge_id,
            refund_id,
            amount=money(
                obj.get("amount", amount.amount), obj.get("currency") or amount.currency, "refund"
            ),
            status=refund_status(obj),
            reason=req.reason,
            created_at=parse_time(obj.get("created_on")) or ctx.now(),
            raw=dict(obj),
        )

    def _refund_rest(self, ref: ChargeRef, ctx: OpContext) -> Flow[Money]:
        """ "Everything left", measured once and remembered under the key: a re-run after
        a lost answer must send what the first attempt sent (the key makes UnivaPay
        replay it), not what is left after the refund happened."""
        memo = f"univapay:refund-amount:{ctx.account}:{ctx.provider_key('refund')}"
        remembered = yield CacheGet(memo)
        if isinstance(remembered, dict) and isinstance(remembered.get("amount"), int):
            return Money(amount=remembered["amount"], currency=str(remembered["currency"]))
        charge = yield from self._fetch_charge(ref, ctx)
        amount = charge.refundable
        if amount.amount < 1:
            raise InvalidRequest("nothing left to refund on this charge", param="amount")
        yield CachePut(memo, {"amount": amount.amount, "currency": amount.currency})
        return amount

    def capture(self, req: CaptureRequest, ctx: OpContext) -> Flow[Charge]:
        """``POST …/capture`` (200 ``{}``), then read the charge."""
        ref = req.charge
        if self._ref_method(ref) == "konbini":
            raise NotSupported(
                "capture", provider=self.name, reason="konbini charges settle by payment"
            )
        body: dict[str, Any] = {}
        if req.amount is not None:
            if req.amount.amount < 1:
                raise InvalidRequest("capture amount must be at least 1", param="amount")
            if ref.amount is not None and req.amount > ref.amount:
                raise InvalidRequest("capture exceeds the authorised amount", param="amount")
            body = {"amount": req.amount.amount, "currency": req.amount.currency}
        elif ref.amount is not None:
            # The Node and Java SDKs always send amount and currency.
            body = {"amount": ref.amount.amount, "currency": ref.amount.currency}
        yield from self.api.post(
            f"{self.api.charge_path(ref.provider_ref)}/capture",
            body,
            key=ctx.provider_key("capture"),
            step="charges.capture",
        )
        charge = yield from self._fetch_charge(ref, ctx)
        return charge

    # -- payouts -----------------------------------------------------------------------

    def payout_balance(self, ctx: OpContext) -> Flow[PayoutBalance]:
        """Transfers not yet paid (``created``, ``approved``, ``processing``) and their ledgers.

        ``scheduled`` is the sum of those transfers; ``items`` are their ledger lines.
        UnivaPay publishes no endpoint for sales not yet assigned to a transfer, so
        ``collecting`` is zero. A transfer carries no payout date: ``next_payout_date``
        is the creation date of the earliest open transfer (an assumption: UnivaPay
        creates a transfer when it starts paying it out).
        """
        transfers = yield from self.api.paged("/transfers", step="transfers.list")
        currency = "JPY"
        open_transfers = [t for t in transfers if str(t.get("status")) in _SCHEDULED_TRANSFERS]
        open_transfers.sort(key=lambda t: str(t.get("created_on") or ""))
        scheduled = 0
        owed = 0
        items: list[PayoutItem] = []
        next_date: date | None = None
        next_amount: Money | None = None
        for transfer in open_transfers:
            cur = str(transfer.get("currency") or currency).upper()
            if cur != currency:
                continue
            amount = whole_number(transfer.get("amount"), "transfer amount")
            created = parse_time(transfer.get("created_on"))
            if amount >= 0:
                scheduled += amount
            else:
                owed += -amount
            if next_date is None and created is not None:
                next_date = created.date()
                next_amount = Money(amount=amount, currency=currency)
            ledgers = yield from self.api.paged(
                f"/transfers/{transfer['id']}/ledgers", step="ledgers.list"
            )
            for line in ledgers:
                line_currency = str(line.get("currency") or currency).upper()
                if line_currency != currency:
                    continue
                items.append(
                    PayoutItem(
                        kind=str(line.get("origin") or "ledger"),
                        description=str(line["note"]) if line.get("note") else None,
                        amount=Money(
                            amount=whole_number(line.get("amount"), "ledger amount"),
                            currency=currency,
                        ),
                        state=str(transfer.get("status")),
                        reference=str(line.get("id")) if line.get("id") else None,
                        due_date=created.date() if created else None,
                    )
                )
        return PayoutBalance(
            account=ctx.account,
            provider=self.name,
            currency=currency,
            collecting=Money.zero(currency),
            scheduled=Money(amount=scheduled, currency=currency),
            owed=Money(amount=owed, currency=currency),
            next_payout_date=next_date,
            next_payout_amount=next_amount,
            items=tuple(items),
            as_of=ctx.now(),
            raw={"transfers": open_transfers},
        )

    # -- retry and webhooks --------------------------------------------------------------

    def classify(self, reply: Reply) -> RetryDecision | None:
        """429 and ``400 CHARGE_TOO_QUICK`` / ``RATE_LIMIT_EXCEEDED`` are "try again
        later"; a cache miss on an
        idempotent replay (500 ``UNABLE_TO_GET_IDEMPOTENT_RESULT``) is worth a retry."""
        if reply.status == 429:
            return RetryDecision(retry=True, after=retry_after(reply))
        if reply.status == 400 and error_code(reply) in RETRY_CODES:
            return RetryDecision(retry=True, after=retry_after(reply))
        return None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Compare the ``Authorization`` header with the configured auth token.

        UnivaPay signs nothing: it echoes the webhook's ``auth_token`` in the
        ``Authorization`` header. The header is accepted with or without a
        ``Bearer`` prefix, compared in constant time.
        """
        verify_token(headers, self.cfg.webhook_auth_token)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, ctx: OpContext
    ) -> Flow[Sequence[ParsedEvent]]:
        """Normalise ``charge_updated``, ``charge_finished``, ``refund_finished`` and
        ``cancel_finished``; other triggers become ``provider.other``.

        The event id is the body's ``id`` when present, otherwise ``sha256:`` + the hash
        of the body's canonical JSON, so a redelivery of the same content deduplicates.
        """
        charge_id = charge_id_of(body)
        facts: dict[str, str] = {}
        if charge_id is not None:
            facts = yield from self.konbini_facts(charge_id)
        return parse_event(body, ctx, facts=facts)
