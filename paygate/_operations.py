"""The gateway's operations as flows: idempotency, recovery and tracking, written once.

Each operation wraps a provider flow with the store effects that make it exactly-once:

1. ``begin`` records the intent before any I/O (conflict, in-progress and replay are
   decided here, atomically, by the store);
2. when an earlier attempt may have reached the provider, the provider's declared
   policy decides: look the object up, re-send inside the key window, or stop with
   `OutcomeUnknown` and keep the record for reconciliation;
3. the result is recorded in the charge tracker, then stored for replay.

The drivers run these flows exactly like provider flows, so the policy exists once for
sync and async.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ._adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    OperationPolicy,
    Outcome,
    ParsedEvent,
    Provider,
    RefundRequest,
    default_outcome,
)
from ._effects import (
    BeginKey,
    ClaimEvent,
    CompleteCharge,
    CompleteKey,
    FailKey,
    FindCharge,
    FinishEvent,
    GetCharge,
    MarkUnknown,
    RecordCharge,
    ReleaseEvent,
    ReleaseKey,
)
from ._errors import (
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    MalformedResponse,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    ProviderError,
    ProviderUnavailable,
)
from ._flow import Call, Flow, Retry, Sleep, TransportFailure
from ._models import Charge, ChargeStatus, Event, PayoutBalance, Refund
from ._money import Money
from ._stores import Begin, BeginOutcome, ChargeRecord, ChargeUpdate, ClaimOutcome

T = TypeVar("T")

# Method fields that are personal data or card credentials: never kept in a hint.
_PERSONAL = {"customer_name", "phone", "email", "customer_id", "token", "customer", "memo"}

#: What an error means for the key: the provider's own classification, else its class.
Classify = Callable[[PaygateError], Outcome]


def classifier(provider: Provider) -> Classify:
    """The outcome of an error raised by ``provider``'s flows (see `Outcome`)."""

    def classify(error: PaygateError) -> Outcome:
        return provider.outcome_of(error) or default_outcome(error)

    return classify


@dataclass(frozen=True, slots=True)
class Env:
    """What the operations take from their gateway."""

    owner: str
    clock: Callable[[], datetime]
    lease: timedelta
    new_uuid: Callable[[], Any]


#: What is kept with an unknown outcome for reconciliation (or a function making it).
Hint = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None


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


def _begin(
    env: Env, key: str, *, account: str, operation: str, fp: str, charge_id: str | None
) -> Flow[Begin]:
    begin: Begin = yield BeginKey(
        key=key,
        account=account,
        operation=operation,
        fingerprint=fp,
        owner=env.owner,
        lease=env.lease,
        now=env.clock(),
        charge_id=charge_id,
    )
    if begin.outcome is BeginOutcome.CONFLICT:
        raise IdempotencyConflict(
            f"idempotency key already used for a different {operation} request"
        )
    if begin.outcome is BeginOutcome.IN_PROGRESS:
        raise IdempotencyInProgress(
            f"another worker is running this {operation} right now; retry with the same key"
        )
    return begin


def _replayed(begin: Begin) -> dict[str, Any]:
    record = begin.record
    if record.state == "failed":
        raise PaygateError.from_dict(record.result or {})
    if record.result is None:  # pragma: no cover - store invariant
        raise OutcomeUnknown("stored record has no result")
    return record.result


def _mutate(
    env: Env,
    key: str,
    policy: OperationPolicy,
    ctx: OpContext,
    begin: Begin,
    create: Callable[[], Flow[T]],
    lookup: Callable[[], Flow[T | None]] | None,
    hint: Hint = None,
    classify: Classify = default_outcome,
) -> Flow[T]:
    """Run ``create`` exactly once at the provider, whatever failed before.

    Every failure is classified once (`Outcome`, by the provider's declaration or the
    error's class) and the class alone decides what happens to the key. ``hint`` (no
    personal data; or a function that makes it, called only when needed) is kept with
    an unknown outcome so that reconciliation can ask the provider later.
    """
    if begin.recovering:
        if lookup is not None:
            try:
                found = yield from _look(env, key, ctx, lookup, hint)
            except _Settled as settled:
                raise settled.error from None
            if found is not None:
                return found
        elif not policy.keyed:
            yield from _unknown(
                env, key, "earlier attempt unresolved; provider has no lookup", hint
            )
            raise OutcomeUnknown(
                "an earlier attempt may have reached the provider, which offers neither an "
                "idempotency key nor a lookup; run `paygate reconcile`",
                provider=ctx.provider,
            )
        if policy.window_passed(begin.record.created_at, env.clock()):
            # Nothing was found (or nothing can be asked), and the provider may have
            # forgotten the key: a re-send could act twice.
            yield from _unknown(env, key, "provider key window passed", hint)
            raise OutcomeUnknown(
                "an earlier attempt may have reached the provider and its idempotency "
                "window for this key has passed (or is not stated); run `paygate reconcile`",
                provider=ctx.provider,
            )
    sent = _Sent()
    try:
        return (
            yield from _send(
                env,
                key,
                policy,
                ctx,
                lambda: _watched(create(), sent),
                lookup,
                hint,
                classify,
                repeat=begin.recovering,
            )
        )
    except _Settled as settled:
        raise settled.error from None
    except GeneratorExit:
        # The flow was abandoned (a cancelled task): nothing may be yielded any more.
        # The record stays started until its lease runs out, then recovers.
        raise
    except PaygateError as exc:
        outcome = classify(exc)
        if sent and not isinstance(exc, ProviderError):
            # paygate's own error after a request went out (an answer it could not
            # use): the provider may have acted, whatever the error's class says.
            outcome = Outcome.UNKNOWN
        yield from _settle(env, key, exc, outcome, repeat=begin.recovering, hint=hint)
        raise
    except BaseException:
        if not sent and not begin.recovering:
            # Nothing went out (a bug before sending): the key may start afresh.
            yield ReleaseKey(key, env.owner)
            raise
        # Anything else (a bug, KeyboardInterrupt): we cannot tell what happened.
        yield from _unknown(env, key, "unexpected error", hint)
        raise


class _Sent:
    """Whether a flow has sent a request that may change something (not a read)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value


def _watched(flow: Flow[T], sent: _Sent) -> Flow[T]:
    """``flow`` unchanged, noting in ``sent`` when it sends a mutating request."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        if isinstance(effect, Call) and effect.retry is not Retry.SAFE:
            sent.value = True
        try:
            value = yield effect
        except GeneratorExit:
            flow.close()
            raise
        except BaseException as exc:  # thrown in by the driver: pass it on to the flow
            value, error = None, exc


class _Settled(Exception):
    """The store already holds the outcome of ``error``: raise it as it is."""

    def __init__(self, error: PaygateError) -> None:
        super().__init__(str(error))
        self.error = error


def _settle(
    env: Env, key: str, error: PaygateError, outcome: Outcome, *, repeat: bool, hint: Hint
) -> Flow[None]:
    """Record what ``error`` means for the key.

    ``repeat``: this attempt may repeat an earlier send (a re-send after a lost answer,
    or a recovery), so a refusal that did nothing now says nothing about the first.
    """
    if outcome is Outcome.REFUSED or (outcome is Outcome.MAYBE_DONE and not repeat):
        yield FailKey(key, env.owner, error.to_dict())
        return
    # The key stays open: a retry with it reaches the provider (or recovers). Say so on
    # the error, whatever its class, so merchants can tell from `retryable` alone.
    error.retryable = True
    if outcome is Outcome.RETRYABLE and not repeat:
        yield ReleaseKey(key, env.owner)
    else:
        code = error.provider_code or error.http_status
        yield from _unknown(env, key, f"{type(error).__name__}: {code} ({outcome})", hint)


def _look(
    env: Env, key: str, ctx: OpContext, lookup: Callable[[], Flow[T | None]], hint: Hint
) -> Flow[T | None]:
    """Ask the provider whether an earlier attempt took effect; failing that, unknown."""
    try:
        return (yield from lookup())
    except (TransportFailure, PaygateError) as exc:
        yield from _unknown(env, key, f"lookup failed while recovering: {type(exc).__name__}", hint)
        raise _Settled(
            OutcomeUnknown(
                "an earlier attempt may have reached the provider and the lookup could not "
                "tell; retry later with the same key or run `paygate reconcile`",
                provider=ctx.provider,
            )
        ) from None


def _maybe_done(
    env: Env,
    key: str,
    ctx: OpContext,
    lookup: Callable[[], Flow[T | None]] | None,
    hint: Hint,
    error: PaygateError,
) -> Flow[T]:
    """A repeat was refused in words that can mean the first attempt got through."""
    if lookup is not None:
        found = yield from _look(env, key, ctx, lookup, hint)
        if found is not None:
            return found
    yield from _unknown(
        env, key, f"repeat refused as already done: {error.provider_code or error.code}", hint
    )
    raise _Settled(
        OutcomeUnknown(
            "the provider refused a repeated request in terms that can mean the first one "
            "took effect, and nothing could be found; run `paygate reconcile`",
            provider=ctx.provider,
            provider_code=error.provider_code,
            provider_message=error.provider_message,
            http_status=error.http_status,
            request_id=error.request_id,
        )
    )


def _send(
    env: Env,
    key: str,
    policy: OperationPolicy,
    ctx: OpContext,
    create: Callable[[], Flow[T]],
    lookup: Callable[[], Flow[T | None]] | None,
    hint: Hint,
    classify: Classify,
    *,
    repeat: bool,
) -> Flow[T]:
    """``create``; after a failure that may have reached the provider, look up first and
    re-send only where that is safe. Errors of a first send propagate to `_mutate`, which
    classifies them; transport outcomes and re-sends are settled here."""
    try:
        return (yield from create())
    except TransportFailure as exc:
        if not exc.sent:
            if repeat:
                yield from _unknown(env, key, "provider unreachable while recovering", hint)
            else:
                yield ReleaseKey(key, env.owner)
            raise _Settled(
                ProviderUnavailable(
                    f"could not reach the provider ({exc})", provider=ctx.provider, retryable=True
                )
            ) from None
        first = exc
    except PaygateError as exc:
        if repeat and classify(exc) is Outcome.MAYBE_DONE:
            return (yield from _maybe_done(env, key, ctx, lookup, hint, exc))
        raise
    resend = False
    if lookup is not None:
        # The request may have been processed: ask before anything is re-sent.
        try:
            found = yield from lookup()
        except (TransportFailure, PaygateError):
            found = None
        else:
            if found is not None:
                return found
            resend = True
    elif policy.keyed:
        resend = True
    if resend:
        try:
            return (yield from create())
        except TransportFailure:
            pass
        except PaygateError as exc:
            outcome = classify(exc)
            if outcome is Outcome.MAYBE_DONE:
                return (yield from _maybe_done(env, key, ctx, lookup, hint, exc))
            # The re-send did nothing or was refused; the first send may still have
            # acted unless the provider decided (a decline stands for the key).
            yield from _settle(env, key, exc, outcome, repeat=True, hint=hint)
            raise _Settled(exc) from None
    yield from _unknown(env, key, f"transport failure after sending: {first}", hint)
    raise _Settled(
        OutcomeUnknown(
            "the request may have reached the provider and no answer came back; "
            "retry later with the same key or run `paygate reconcile`",
            provider=ctx.provider,
        )
    )


def _unknown(env: Env, key: str, detail: str, hint: Hint = None) -> Flow[None]:
    extra = hint() if callable(hint) else hint
    text = json.dumps({"detail": detail, **(extra or {})}, ensure_ascii=False)
    yield MarkUnknown(key, env.owner, text)


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
    recovering: bool = False,
) -> OpContext:
    return OpContext(
        account=provider.account,
        provider=provider.name,
        idempotency_key=key,
        charge_id=charge_id,
        recovering=recovering,
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
    fp = fingerprint(
        {
            "amount": req.amount.amount,
            "currency": req.amount.currency,
            "method": req.method.model_dump(mode="json"),
            "description": req.description,
            "metadata": dict(req.metadata),
        }
    )
    begin = yield from _begin(
        env, skey, account=account, operation="charge", fp=fp, charge_id=charge_id
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(_replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, recovering=begin.recovering)
    policy = provider.policy(Operation.CHARGE)
    sent = req
    if not carries_metadata or not carries_description:
        sent = replace(
            req,
            metadata=req.metadata if carries_metadata else {},
            description=req.description if carries_description else None,
        )
    result = yield from _mutate(
        env,
        skey,
        policy,
        ctx,
        begin,
        lambda: provider.charge(sent, ctx),
        (lambda: provider.lookup_charge(sent, ctx)) if policy.lookup else None,
        lambda: {
            "amount": req.amount.amount,
            "currency": req.amount.currency,
            "method": req.method.type,
            "method_fields": req.method.model_dump(mode="json", exclude=_PERSONAL),
            "charge_id": charge_id,
        },
        classifier(provider),
    )
    result = _local(result, req.metadata)
    # The charge's record and the key's result are written together (one transaction).
    record: ChargeRecord = yield CompleteCharge(
        key=skey,
        owner=env.owner,
        update=update_of(result, "response", env.clock()),
        now=env.clock(),
        provider_ref=result.provider_ref,
    )
    return view(result, record)


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
    if record.status in (
        ChargeStatus.PENDING,
        ChargeStatus.REQUIRES_ACTION,
        ChargeStatus.AUTHORIZED,
    ):
        # The record may be behind the provider (a missed webhook): ask once.
        yield from status(provider, env, charge_id)
        record = yield from _tracked(account, charge_id)
    refundable = record.amount - record.amount_refunded
    skey = store_key(account, Operation.REFUND, key)
    fp = fingerprint(
        {"charge": charge_id, "amount": None if amount is None else amount.amount, "reason": reason}
    )
    begin = yield from _begin(
        env, skey, account=account, operation="refund", fp=fp, charge_id=charge_id
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Refund.model_validate(_replayed(begin))
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
            raise NotSupported(
                "partial refund",
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
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, recovering=begin.recovering)
    req = RefundRequest(charge=ref_of(record), amount=amount, reason=reason)
    policy = provider.policy(Operation.REFUND)
    result = yield from _mutate(
        env,
        skey,
        policy,
        ctx,
        begin,
        lambda: provider.refund(req, ctx),
        (lambda: provider.lookup_refund(req, ctx)) if policy.lookup else None,
        None,
        classifier(provider),
    )
    result = result.model_copy(
        update={"id": refund_id_for(account, key), "charge_id": charge_id, "account": account}
    )
    refunded = yield from _refunded_after(record, result, recovering=begin.recovering)
    captured = _captured(record)
    ceiling = record.amount if captured is None else captured.amount
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
    begin = yield from _begin(
        env,
        skey,
        account=account,
        operation=operation.value,
        fp=fingerprint({"charge": charge_id, **payload}),
        charge_id=charge_id,
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(_replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, recovering=begin.recovering)
    ref = ref_of(record)
    policy = provider.policy(operation)
    result = yield from _mutate(
        env,
        skey,
        policy,
        ctx,
        begin,
        lambda: make(ref, ctx),
        (lambda: look(ref, ctx)) if policy.lookup else None,
        None,
        classifier(provider),
    )
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


def event_id_of(parsed: ParsedEvent, body: bytes) -> str:
    """The provider's event id, or a content hash where the provider gives none."""
    if parsed.provider_event_id:
        return parsed.provider_event_id
    return "sha256:" + hashlib.sha256(body + parsed.provider_event_type.encode()).hexdigest()


def webhook(
    provider: Provider, env: Env, headers: Mapping[str, str], body: bytes
) -> Flow[list[tuple[Event, str, bool]]]:
    """Verify, normalise, deduplicate and record a delivery.

    Returns each event with its dedup id and whether this worker claimed it (and must
    run the handlers, then finish or release it).
    """
    try:
        provider.verify_webhook(headers, body)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise MalformedResponse(
            f"webhook body could not be read ({type(exc).__name__})", provider=provider.name
        ) from None
    ctx = _ctx(provider, env, key=None, charge_id=None)
    try:
        parsed: Sequence[ParsedEvent] = yield from _read(
            provider.parse_webhook(headers, body, ctx), provider.name
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # An authentic but unreadable delivery (wrong shape, absurd nesting): refused as
        # malformed, nothing recorded.
        raise MalformedResponse(
            f"webhook body could not be read ({type(exc).__name__})", provider=provider.name
        ) from None
    out: list[tuple[Event, str, bool]] = []
    account = provider.account
    for item in parsed:
        event_id = event_id_of(item, body)
        claim: ClaimOutcome = yield ClaimEvent(
            account=account, event_id=event_id, owner=env.owner, lease=env.lease, now=env.clock()
        )
        if claim is ClaimOutcome.BUSY:
            raise IdempotencyInProgress("this event is being processed by another worker")
        record: ChargeRecord | None = None
        if item.provider_ref:
            record = yield FindCharge(account=account, provider_ref=item.provider_ref)
        status_ = item.status
        if claim is ClaimOutcome.NEW and record is not None:
            record = yield from _apply_event(provider, env, item, record)
            status_ = record.status
        event = Event(
            id=f"ev_{_digest(account, event_id)}",
            type=item.type,
            account=account,
            provider=provider.name,
            provider_event_id=item.provider_event_id,
            provider_event_type=item.provider_event_type,
            charge_id=record.charge_id if record is not None else None,
            provider_ref=item.provider_ref,
            status=status_,
            amount=item.amount,
            occurred_at=item.occurred_at,
            received_at=env.clock(),
            duplicate=claim is ClaimOutcome.DONE,
            raw=item.raw,
        )
        out.append((event, event_id, claim is ClaimOutcome.NEW))
    return out


_MONEY_STATUSES = (ChargeStatus.REFUNDED, ChargeStatus.PARTIALLY_REFUNDED)


def _apply_event(
    provider: Provider, env: Env, item: ParsedEvent, record: ChargeRecord
) -> Flow[ChargeRecord]:
    """Fold an event into the record: only what the provider stated moves money.

    A re-fetched charge is recorded as it is. A status with the provider's amounts is
    recorded with them. A refunded status without amounts is never turned into a sum
    (a partial refund can look "refunded"): the charge is fetched and that recorded.
    """
    account = record.account
    if item.charge is not None:
        fresh = item.charge.model_copy(update={"id": record.charge_id, "account": account})
        return (yield from _record(env, _local(fresh, record), "webhook"))
    if item.status is None:
        return record
    refunded = item.amount_refunded
    if refunded is None and item.status in _MONEY_STATUSES:
        ctx = _ctx(provider, env, key=None, charge_id=record.charge_id)
        try:
            fetched = yield from _read(provider.status(ref_of(record), ctx), provider.name)
        except NotSupported:
            pass  # nothing to ask: the status is kept, the money figure stays as it was
        else:
            fresh = fetched.model_copy(update={"id": record.charge_id, "account": account})
            return (yield from _record(env, _local(fresh, record), "webhook"))
    charge_json = dict(record.charge_json or {})
    if item.amount_captured is not None:
        charge_json["amount_captured"] = item.amount_captured.model_dump(mode="json")
    updated: ChargeRecord = yield RecordCharge(
        update=ChargeUpdate(
            charge_id=record.charge_id,
            account=account,
            provider=provider.name,
            provider_ref=record.provider_ref,
            method=record.method,
            status=item.status,
            amount=record.amount,
            currency=record.currency,
            amount_refunded=(record.amount_refunded if refunded is None else refunded.amount),
            observed_at=item.occurred_at or env.clock(),
            source="webhook",
            charge_json=charge_json or record.charge_json,
        ),
        now=env.clock(),
    )
    return updated


def settle_events(env: Env, account: str, event_ids: Sequence[str], ok: bool) -> Flow[None]:
    """Finish (handlers succeeded) or release (they failed) claimed events."""
    for event_id in event_ids:
        yield (FinishEvent if ok else ReleaseEvent)(
            account=account, event_id=event_id, owner=env.owner
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
    begin = yield from _begin(
        env, skey, account=account, operation="charge", fp=fingerprint_, charge_id=charge_id
    )
    if begin.outcome is BeginOutcome.REPLAY:
        return Charge.model_validate(_replayed(begin))
    ctx = _ctx(provider, env, key=key, charge_id=charge_id, recovering=True)
    try:
        found = yield from provider.lookup_charge(req, ctx)
    except GeneratorExit:
        raise
    except Exception as exc:
        yield from _unknown(env, skey, f"reconcile lookup failed: {type(exc).__name__}")
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
            yield from _unknown(env, skey, "reconcile: not found and the key window passed")
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
