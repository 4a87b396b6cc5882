"""The gateway's operations as flows: charge, status, wait, refund, cancel, capture,
payout balance and the reconcile lookup, each wrapped in the exactly-once protocol
(`paygate._exactly_once`) and folded into the charge's record.

The record is paygate's one truth about a charge: every provider answer (response,
poll, webhook, reconcile) is folded into it, and a stale answer never wins over it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from . import _exactly_once as once
from ._adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    Provider,
    RefundRequest,
)
from ._effects import (
    CompleteCharge,
    CompleteKey,
    GetCharge,
    RecordCharge,
    ReleaseKey,
)
from ._errors import (
    InvalidRequest,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    ProviderUnavailable,
)
from ._exactly_once import Env
from ._flow import Flow, Sleep, TransportFailure
from ._kit import whole_refunds_only
from ._models import Charge, ChargeStatus, PayoutBalance, Refund
from ._money import Money
from ._stores import Begin, BeginOutcome, ChargeRecord, ChargeUpdate

T = TypeVar("T")

# Method fields that are personal data or card credentials: never kept in a hint.
_PERSONAL = {"customer_name", "phone", "email", "customer_id", "token", "customer", "memo"}


def _digest(*parts: str) -> str:
    raw = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(raw).decode().rstrip("=").lower()[:26]


def charge_id_for(account: str, key: str) -> str:
    """paygate's stable charge id: the same account and key always give the same id."""
    return f"ch_{_digest(account, 'charge', key)}"


def refund_id_for(account: str, key: str) -> str:
    """paygate's stable refund id."""
    return f"re_{_digest(account, 'refund', key)}"


def fingerprint(payload: Mapping[str, Any]) -> str:
    """A hash of the request; personal data is hashed, never stored in clear."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def store_key(account: str, operation: str, key: str) -> str:
    """The store key of one merchant idempotency key."""
    return f"{account}\x1f{operation}\x1f{key}"


def ref_of(record: ChargeRecord) -> ChargeRef:
    """What a flow needs to address a tracked charge."""
    raw = (record.charge_json or {}).get("raw") or {}
    return ChargeRef(
        charge_id=record.charge_id,
        provider_ref=record.provider_ref,
        method=record.method,
        amount=Money(amount=record.amount, currency=record.currency),
        created_at=record.created_at,
        raw=raw if isinstance(raw, Mapping) else {},
        amount_refunded=Money(amount=record.amount_refunded, currency=record.currency),
        amount_captured=_captured(record),
    )


def _captured(record: ChargeRecord) -> Money | None:
    """The captured amount the provider last stated, if any."""
    value = (record.charge_json or {}).get("amount_captured")
    if isinstance(value, Mapping) and isinstance(value.get("amount"), int):
        return Money(amount=value["amount"], currency=record.currency)
    return None


def update_of(charge: Charge, source: Any, observed_at: datetime) -> ChargeUpdate:
    """A tracker update from a charge the provider returned."""
    return ChargeUpdate(
        charge_id=charge.id,
        account=charge.account,
        provider=charge.provider,
        provider_ref=charge.provider_ref,
        method=charge.method,
        status=charge.status,
        amount=charge.amount.amount,
        currency=charge.amount.currency,
        amount_refunded=charge.amount_refunded.amount,
        observed_at=observed_at,
        source=source,
        charge_json=charge.model_dump(mode="json"),
    )


def view(charge: Charge, record: ChargeRecord) -> Charge:
    """The charge as paygate's record sees it: a stale provider answer never wins."""
    if record.status == charge.status and record.amount_refunded == charge.amount_refunded.amount:
        return charge
    return charge.model_copy(
        update={
            "status": record.status,
            "amount_refunded": Money(amount=record.amount_refunded, currency=record.currency),
        }
    )


def _local(charge: Charge, kept: ChargeRecord | Mapping[str, str] | None) -> Charge:
    """``charge`` with the metadata paygate keeps when the provider does not return it."""
    if charge.metadata or kept is None:
        return charge
    if isinstance(kept, ChargeRecord):
        meta = (kept.charge_json or {}).get("metadata")
        if not isinstance(meta, Mapping):
            return charge
        kept = meta
    if not kept:
        return charge
    return charge.model_copy(update={"metadata": dict(kept)})


# --------------------------------------------------------------------------- helpers


def _read(flow: Flow[T], provider: str) -> Flow[T]:
    """Run a read-only flow; a transport failure becomes `ProviderUnavailable`."""
    try:
        return (yield from flow)
    except TransportFailure as exc:
        raise ProviderUnavailable(
            f"could not get an answer from the provider ({exc})", provider=provider, retryable=True
        ) from None


def _record(env: Env, charge: Charge, source: str) -> Flow[ChargeRecord]:
    record: ChargeRecord = yield RecordCharge(
        update=update_of(charge, source, env.clock()), now=env.clock()
    )
    return record


def _tracked(account: str, charge_id: str) -> Flow[ChargeRecord]:
    given: object = charge_id  # callers may pass anything at run time
    valid = isinstance(given, str) and 0 < len(given) <= 255 and given.isprintable()
    if valid:
        try:
            charge_id.encode("utf-8")
        except UnicodeEncodeError:
            valid = False
    if not valid:
        raise InvalidRequest("charge_id must be a paygate charge id (a string)", param="charge_id")
    record: ChargeRecord | None = yield GetCharge(charge_id)
    if record is None or record.account != account:
        raise InvalidRequest(
            f"unknown charge {charge_id!r} for account {account!r}", param="charge_id"
        )
    return record


def _ctx(
    provider: Provider,
    env: Env,
    *,
    key: str | None,
    charge_id: str | None,
    begin: Begin | None = None,
    recovering: bool = False,
) -> OpContext:
    """The flow's context; under a key, ``begin`` (the store's answer) tells whether an
    earlier attempt may have reached the provider and when the key was first begun."""
    return OpContext(
        account=provider.account,
        provider=provider.name,
        idempotency_key=key,
        charge_id=charge_id,
        recovering=recovering or (begin is not None and begin.recovering),
        started_at=None if begin is None else begin.record.created_at,
        now=env.clock,
        new_uuid=env.new_uuid,
    )


# ------------------------------------------------------------------------- operations


def charge(
    provider: Provider,
    env: Env,
    req: ChargeRequest,
    key: str,
    *,
    carries_metadata: bool = True,
    carries_description: bool = True,
) -> Flow[Charge]:
    """Create a charge exactly once for ``key``.

    Metadata (or a description) the method cannot carry at the provider is not sent;
    paygate keeps the metadata in its own record and returns it on the `Charge`.
    """
    account = provider.account
    charge_id = charge_id_for(account, key)
    skey = store_key(account, Operation.CHARGE, key)
    method = req.method.model_dump(mode="json")
    fp = fingerprint(
        {
            "amount": req.amount.amount,
            "currency": req.amount.currency,
            "method": method,
            "description": req.description,
            "metadata": dict(req.metadata),
        }
    )
    # What reconcile's lookup needs, kept from the start (a crash leaves it too); never
    # the method's personal fields.
    hint = {
        "amount": req.amount.amount,
        "currency": req.amount.currency,
        "method": req.method.type,
        "method_fields": {k: v for k, v in method.items() if k not in _PERSONAL},
    }
    begin = yield from once.begin(
        env, skey, account=account, operation="charge", fp=fp, charge_id=charge_id, lookup=hint
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(once.replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, begin=begin)
    policy = provider.policy(Operation.CHARGE)
    sent = req
    if not carries_metadata or not carries_description:
        sent = replace(
            req,
            metadata=req.metadata if carries_metadata else {},
            description=req.description if carries_description else None,
        )
    result = yield from once.Attempt(
        env=env,
        key=skey,
        policy=policy,
        ctx=ctx,
        started=begin,
        create=lambda: provider.charge(sent, ctx),
        lookup=(lambda: provider.lookup_charge(sent, ctx)) if policy.lookup else None,
        classify=once.classifier(provider),
    ).run()
    answer = _local(result, req.metadata)
    update = update_of(answer, "response", env.clock())

    def kept(record: ChargeRecord) -> dict[str, Any]:
        # What the key replays is what this call returns: the answer as the record,
        # updated in the same transaction, sees it.
        seen = view(answer, record)
        return update.charge_json or {} if seen is answer else seen.model_dump(mode="json")

    # The charge's record and the key's result are written together (one transaction).
    record: ChargeRecord = yield CompleteCharge(
        key=skey,
        owner=env.owner,
        update=update,
        now=env.clock(),
        result=kept,
        provider_ref=answer.provider_ref,
    )
    return view(answer, record)


def status(provider: Provider, env: Env, charge_id: str) -> Flow[Charge]:
    """Fetch the charge from the provider and fold it into the record."""
    record = yield from _tracked(provider.account, charge_id)
    fresh = yield from _read(
        provider.status(ref_of(record), _ctx(provider, env, key=None, charge_id=charge_id)),
        provider.name,
    )
    fresh = _local(fresh, record)
    updated = yield from _record(env, fresh, "poll")
    return view(fresh, updated)


def wait(
    provider: Provider, env: Env, charge_id: str, timeout: float, *, monotonic: Callable[[], float]
) -> Flow[Charge]:
    """Poll (or long-poll) until the charge leaves pending / requires_action, or timeout."""
    deadline = monotonic() + timeout
    current = yield from status(provider, env, charge_id)
    delay = 1.0
    waiting = {ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION}
    while current.status in waiting:
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        record = yield from _tracked(provider.account, charge_id)
        ctx = _ctx(provider, env, key=None, charge_id=charge_id)
        long_poll = provider.wait_status(ref_of(record), ctx, min(remaining, 60.0))
        if long_poll is not None:
            before = current.status
            fresh = _local((yield from _read(long_poll, provider.name)), record)
            updated = yield from _record(env, fresh, "poll")
            current = view(fresh, updated)
            if current.status == before:
                # The hold ended early with nothing new: back off before holding again.
                yield Sleep(min(delay, max(0.0, deadline - monotonic())))
                delay = min(delay * 2, 15.0)
            continue
        yield Sleep(min(delay, remaining))
        delay = min(delay * 2, 15.0)
        current = yield from status(provider, env, charge_id)
    return current


def refund(
    provider: Provider, env: Env, charge_id: str, amount: Money | None, reason: str | None, key: str
) -> Flow[Refund]:
    """Refund exactly once for ``key``; the checks happen before any provider call."""
    account = provider.account
    record = yield from _tracked(account, charge_id)
    caps = provider.capabilities().method(record.method)
    if caps is None or caps.refund == "none":
        raise NotSupported(
            f"refund of a {record.method} charge",
            provider=provider.name,
            alternative=caps.refund_alternative if caps else None,
        )
    # What is wrong on its face is refused before any request.
    if amount is not None and amount.currency != record.currency:
        raise InvalidRequest(
            f"refund currency {amount.currency} differs from the charge's {record.currency}",
            param="amount",
        )
    if amount is not None and amount.amount <= 0:
        raise InvalidRequest("refund amount must be positive", param="amount")
    if amount is not None and amount.amount > record.amount:
        raise InvalidRequest("refund amount exceeds the charge", param="amount")
    # The provider's own limits, once, before any request (flows do not check again).
    provider.validate_refund(RefundRequest(charge=ref_of(record), amount=amount, reason=reason))
    if record.status in (
        ChargeStatus.PENDING,
        ChargeStatus.REQUIRES_ACTION,
        ChargeStatus.AUTHORIZED,
    ):
        # The record may be behind the provider (a missed webhook): ask once.
        yield from status(provider, env, charge_id)
        record = yield from _tracked(account, charge_id)
    captured = _captured(record)
    # A partial capture released the rest: only what was captured can be refunded.
    ceiling = record.amount if captured is None else captured.amount
    refundable = ceiling - record.amount_refunded
    skey = store_key(account, Operation.REFUND, key)
    fp = fingerprint(
        {"charge": charge_id, "amount": None if amount is None else amount.amount, "reason": reason}
    )
    # What reconcile needs to retry this refund under its key (the fingerprint's own
    # fields, so the retry matches it), kept from the start.
    hint = {
        "amount": None if amount is None else amount.amount,
        "currency": record.currency,
        "reason": reason,
    }
    begin = yield from once.begin(
        env, skey, account=account, operation="refund", fp=fp, charge_id=charge_id, lookup=hint
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Refund.model_validate(once.replayed(begin))
    try:
        if begin.recovering:
            # The checks passed when this key first ran; the refund may since be counted
            # in the record, so checking again would refuse the refund's own retry.
            pass
        elif record.status not in (ChargeStatus.SUCCEEDED, ChargeStatus.PARTIALLY_REFUNDED):
            raise InvalidRequest(
                f"charge is {record.status.value}, not refundable", param="charge_id"
            )
        elif amount is not None and amount.amount <= 0:
            raise InvalidRequest("refund amount must be positive", param="amount")
        elif amount is not None and amount.amount > refundable:
            raise InvalidRequest(
                f"refund amount exceeds the refundable {refundable}", param="amount"
            )
        elif caps.refund == "full" and amount is not None and amount.amount != record.amount:
            raise whole_refunds_only(
                provider=provider.name,
                reason=f"{provider.name} refunds {record.method} charges only in full",
                alternative="refund without an amount (the whole charge)",
            )
        elif not caps.multiple_refunds and record.amount_refunded > 0:
            raise NotSupported(
                "a second refund", provider=provider.name, reason="only one refund per charge"
            )
    except PaygateError:
        yield ReleaseKey(skey, env.owner)
        raise
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, begin=begin)
    req = RefundRequest(charge=ref_of(record), amount=amount, reason=reason)
    policy = provider.policy(Operation.REFUND)
    result = yield from once.Attempt(
        env=env,
        key=skey,
        policy=policy,
        ctx=ctx,
        started=begin,
        create=lambda: provider.refund(req, ctx),
        lookup=(lambda: provider.lookup_refund(req, ctx)) if policy.lookup else None,
        classify=once.classifier(provider),
    ).run()
    result = result.model_copy(
        update={"id": refund_id_for(account, key), "charge_id": charge_id, "account": account}
    )
    refunded = yield from _refunded_after(record, result, recovering=begin.recovering)
    new_status = ChargeStatus.REFUNDED if refunded >= ceiling else ChargeStatus.PARTIALLY_REFUNDED
    yield RecordCharge(
        update=ChargeUpdate(
            charge_id=charge_id,
            account=account,
            provider=provider.name,
            provider_ref=record.provider_ref,
            method=record.method,
            status=new_status,
            amount=record.amount,
            currency=record.currency,
            amount_refunded=refunded,
            observed_at=env.clock(),
            source="response",
            charge_json=record.charge_json,
            note=f"refund {result.id}",
        ),
        now=env.clock(),
    )
    yield CompleteKey(
        key=skey,
        owner=env.owner,
        result=result.model_dump(mode="json"),
        provider_ref=result.provider_ref,
    )
    return result


def _refunded_after(before: ChargeRecord, refund_: Refund, *, recovering: bool) -> Flow[int]:
    """The charge's refunded total after ``refund_``, counted once.

    Adding the refund to the total read before it is right only when nothing else
    counted it meanwhile: not on a recovered attempt (an earlier one may already be
    counted by a poll or webhook), and not when a webhook or poll moved the record while
    the refund was in flight. Otherwise the record stands; the next poll brings the
    provider's own total (never more than it, never counted twice).
    """
    current = yield from _tracked(before.account, before.charge_id)
    stated = refund_.charge_refunded_total
    if stated is not None:
        # The provider's answer states the charge's total: that figure, never a sum.
        return max(current.amount_refunded, min(before.amount, stated.amount))
    untouched = current.amount_refunded == before.amount_refunded
    if untouched and not recovering:
        return min(before.amount, before.amount_refunded + refund_.amount.amount)
    return current.amount_refunded


def _state_change(
    provider: Provider,
    env: Env,
    charge_id: str,
    key: str,
    operation: Operation,
    payload: Mapping[str, Any],
    make: Callable[[ChargeRef, OpContext], Flow[Charge]],
    look: Callable[[ChargeRef, OpContext], Flow[Charge | None]],
) -> Flow[Charge]:
    account = provider.account
    record = yield from _tracked(account, charge_id)
    skey = store_key(account, operation, key)
    hint = {**payload, "currency": record.currency}  # for reconcile's retry under the key
    begin = yield from once.begin(
        env,
        skey,
        account=account,
        operation=operation.value,
        fp=fingerprint({"charge": charge_id, **payload}),
        charge_id=charge_id,
        lookup=hint,
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(once.replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, begin=begin)
    ref = ref_of(record)
    policy = provider.policy(operation)
    result = yield from once.Attempt(
        env=env,
        key=skey,
        policy=policy,
        ctx=ctx,
        started=begin,
        create=lambda: make(ref, ctx),
        lookup=(lambda: look(ref, ctx)) if policy.lookup else None,
        classify=once.classifier(provider),
    ).run()
    result = _local(result, record)
    updated = yield from _record(env, result, "response")
    result = view(result, updated)
    yield CompleteKey(
        key=skey,
        owner=env.owner,
        result=result.model_dump(mode="json"),
        provider_ref=result.provider_ref,
    )
    return result


def cancel(provider: Provider, env: Env, charge_id: str, key: str) -> Flow[Charge]:
    """Cancel an unpaid charge (or void an authorisation) exactly once."""
    record = yield from _tracked(provider.account, charge_id)
    caps = provider.capabilities().method(record.method)
    if caps is None or not caps.cancel:
        raise NotSupported(
            f"cancel of a {record.method} charge",
            provider=provider.name,
            alternative=caps.cancel_alternative if caps else None,
        )
    return (
        yield from _state_change(
            provider,
            env,
            charge_id,
            key,
            Operation.CANCEL,
            {},
            lambda ref, ctx: provider.cancel(CancelRequest(charge=ref), ctx),
            lambda ref, ctx: provider.lookup_cancel(CancelRequest(charge=ref), ctx),
        )
    )


def capture(
    provider: Provider, env: Env, charge_id: str, amount: Money | None, key: str
) -> Flow[Charge]:
    """Capture an authorised charge exactly once."""
    record = yield from _tracked(provider.account, charge_id)
    caps = provider.capabilities().method(record.method)
    if caps is None or not caps.capture:
        raise NotSupported(f"capture of a {record.method} charge", provider=provider.name)
    if amount is not None:
        if amount.currency != record.currency:
            raise InvalidRequest("capture currency differs from the charge's", param="amount")
        if not 0 < amount.amount <= record.amount:
            raise InvalidRequest(
                "capture amount must be between 1 and the authorised amount", param="amount"
            )
    return (
        yield from _state_change(
            provider,
            env,
            charge_id,
            key,
            Operation.CAPTURE,
            {"amount": None if amount is None else amount.amount},
            lambda ref, ctx: provider.capture(CaptureRequest(charge=ref, amount=amount), ctx),
            lambda ref, ctx: provider.lookup_capture(
                CaptureRequest(charge=ref, amount=amount), ctx
            ),
        )
    )


def payout_balance(provider: Provider, env: Env) -> Flow[PayoutBalance]:
    """What the provider will pay out."""
    return (
        yield from _read(
            provider.payout_balance(_ctx(provider, env, key=None, charge_id=None)), provider.name
        )
    )


def resolve_charge(
    provider: Provider, env: Env, key: str, fingerprint_: str, req: ChargeRequest
) -> Flow[Charge | None]:
    """Reconcile an unknown charge outcome through the provider's lookup.

    Found: the charge is recorded and the key completes (a retry replays it). Not found:
    the key is released (nothing was created; a retry creates it). Returns the charge or
    None; raises `IdempotencyInProgress` if a worker holds the key right now.
    """
    account = provider.account
    skey = store_key(account, Operation.CHARGE, key)
    charge_id = charge_id_for(account, key)
    begin = yield from once.begin(
        env, skey, account=account, operation="charge", fp=fingerprint_, charge_id=charge_id
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(once.replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, begin=begin, recovering=True)
    try:
        found = yield from provider.lookup_charge(req, ctx)
    except GeneratorExit:
        raise
    except Exception as exc:
        if isinstance(exc, OutcomeUnknown):
            # The provider's lookup says what it knows (e.g. two payments under one
            # key): keep its words for the report and the record.
            yield from once.unknown(env, skey, f"reconcile: {exc.message}")
            raise
        yield from once.unknown(env, skey, f"reconcile lookup failed: {type(exc).__name__}")
        if not isinstance(exc, (TransportFailure, PaygateError)):
            raise
        raise OutcomeUnknown(
            "the provider could not be asked; try again later", provider=provider.name
        ) from None
    if found is None:
        policy = provider.policy(Operation.CHARGE)
        if policy.keyed and policy.window_passed(begin.record.created_at, env.clock()):
            # Not found, but the provider may have forgotten the key: "not found"
            # proves nothing, and releasing would let a retry charge again.
            yield from once.unknown(env, skey, "reconcile: not found and the key window passed")
            raise OutcomeUnknown(
                "the provider finds no charge for this key, but its idempotency window has "
                "passed, so that proves nothing; check the provider's dashboard",
                provider=provider.name,
            )
        yield ReleaseKey(skey, env.owner)
        return None
    found = _local(found, req.metadata)
    record = yield from _record(env, found, "reconcile")
    found = view(found, record)
    yield CompleteKey(
        key=skey,
        owner=env.owner,
        result=found.model_dump(mode="json"),
        provider_ref=found.provider_ref,
    )
    return found
