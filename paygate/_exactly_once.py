"""The exactly-once protocol: one merchant key, one provider effect, whatever fails.

An `Attempt` runs one mutating provider flow under a merchant idempotency key:

1. `begin` has recorded the intent before any I/O (conflict, in-progress and replay
   are decided there, atomically, by the store);
2. when an earlier attempt may have reached the provider, the provider's declared
   policy decides: look the object up, re-send inside the key window, or stop with
   `OutcomeUnknown` and keep the record for reconciliation;
3. every failure is classified once (`Outcome`: the provider's declaration, else the
   error's class) and the class alone decides what happens to the key.

Everything here is a flow: the drivers run it like a provider flow, so the protocol
exists once for sync and async.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from ._adapter import OpContext, OperationPolicy, Outcome, Provider, default_outcome
from ._effects import BeginKey, FailKey, MarkUnknown, ReleaseKey
from ._errors import (
    IdempotencyConflict,
    IdempotencyInProgress,
    OutcomeUnknown,
    PaygateError,
    ProviderError,
    ProviderUnavailable,
)
from ._flow import Call, Flow, Retry, TransportFailure
from ._stores import Begin, BeginOutcome

__all__ = ["Attempt", "Classify", "Env", "begin", "classifier", "replayed", "unknown"]

T = TypeVar("T")

#: What an error means for the key: the provider's own classification, else its class.
Classify = Callable[[PaygateError], Outcome]

#: What is kept with an unknown outcome for reconciliation (or a function making it).


@dataclass(frozen=True, slots=True)
class Env:
    """What the operations take from their gateway."""

    owner: str
    clock: Callable[[], datetime]
    lease: timedelta
    new_uuid: Callable[[], Any]


def classifier(provider: Provider) -> Classify:
    """The outcome of an error raised by ``provider``'s flows (see `Outcome`)."""

    def classify(error: PaygateError) -> Outcome:
        return provider.outcome_of(error) or default_outcome(error)

    return classify


def begin(
    env: Env,
    key: str,
    *,
    account: str,
    operation: str,
    fp: str,
    charge_id: str | None,
    lookup: dict[str, Any] | None = None,
) -> Flow[Begin]:
    """Record the intent under ``key``; refuse a conflicting or concurrent use of it.

    ``lookup`` (no personal data) is what reconcile needs to resolve the key later,
    kept from the start so that a crash before any answer leaves it too."""
    started: Begin = yield BeginKey(
        key=key,
        account=account,
        operation=operation,
        fingerprint=fp,
        owner=env.owner,
        lease=env.lease,
        now=env.clock(),
        charge_id=charge_id,
        lookup=lookup,
    )
    if started.outcome is BeginOutcome.CONFLICT:
        raise IdempotencyConflict(
            f"idempotency key already used for a different {operation} request"
        )
    if started.outcome is BeginOutcome.IN_PROGRESS:
        raise IdempotencyInProgress(
            f"another worker is running this {operation} right now; retry with the same key"
        )
    return started


def replayed(started: Begin) -> dict[str, Any]:
    """The stored outcome of a completed key (a stored refusal is raised again)."""
    record = started.record
    if record.state == "failed":
        raise PaygateError.from_dict(record.result or {})
    if record.result is None:  # pragma: no cover - store invariant
        raise OutcomeUnknown("stored record has no result")
    return record.result


def unknown(env: Env, key: str, detail: str) -> Flow[None]:
    """Keep the key as unknown (what reconciliation needs to ask later was kept when the
    key began: `begin`'s ``lookup``)."""
    yield MarkUnknown(key, env.owner, detail)


class _Settled(Exception):
    """The store already holds the outcome of ``error``: raise it as it is."""

    def __init__(self, error: PaygateError) -> None:
        super().__init__(str(error))
        self.error = error


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


@dataclass(slots=True)
class Attempt(Generic[T]):
    """One run of a mutating provider flow under a merchant key.

    ``key`` is the store key; ``create`` makes the provider flow (called again for a
    re-send); ``lookup`` (when the provider can tell) finds what an earlier send did.
    What reconciliation needs to ask the provider later was kept when the key began.
    """

    env: Env
    key: str
    policy: OperationPolicy
    ctx: OpContext
    started: Begin
    create: Callable[[], Flow[T]]
    lookup: Callable[[], Flow[T | None]] | None = None
    classify: Classify = default_outcome
    _sent: _Sent = field(default_factory=_Sent)

    @property
    def recovering(self) -> bool:
        """An earlier attempt with this key may have reached the provider."""
        return self.started.recovering

    def run(self) -> Flow[T]:
        """Run ``create`` exactly once at the provider, whatever failed before."""
        if self.recovering:
            try:
                found = yield from self._recover()
            except _Settled as settled:
                raise settled.error from None
            if found is not None:
                return found
        try:
            return (yield from self._send(repeat=self.recovering))
        except _Settled as settled:
            raise settled.error from None
        except GeneratorExit:
            # The flow was abandoned (a cancelled task): nothing may be yielded any more.
            # The record stays started until its lease runs out, then recovers.
            raise
        except PaygateError as exc:
            outcome = self.classify(exc)
            if self._sent and not isinstance(exc, ProviderError):
                # paygate's own error after a request went out (an answer it could not
                # use): the provider may have acted, whatever the error's class says.
                outcome = Outcome.UNKNOWN
            yield from self._settle(exc, outcome, repeat=self.recovering)
            raise
        except BaseException:
            if not self._sent and not self.recovering:
                # Nothing went out (a bug before sending): the key may start afresh.
                yield ReleaseKey(self.key, self.env.owner)
                raise
            # Anything else (a bug, KeyboardInterrupt): we cannot tell what happened.
            yield from self._unknown("unexpected error")
            raise

    # -- the steps ------------------------------------------------------------------

    def _recover(self) -> Flow[T | None]:
        """Before a recovering attempt sends anything: what did the earlier one do?"""
        if self.lookup is not None:
            found = yield from self._look()
            if found is not None:
                return found
        elif not self.policy.keyed:
            yield from self._unknown("earlier attempt unresolved; provider has no lookup")
            raise _Settled(
                OutcomeUnknown(
                    "an earlier attempt may have reached the provider, which offers neither "
                    "an idempotency key nor a lookup; run `paygate reconcile`",
                    provider=self.ctx.provider,
                )
            )
        if self.policy.window_passed(self.started.record.created_at, self.env.clock()):
            # Nothing was found (or nothing can be asked), and the provider may have
            # forgotten the key: a re-send could act twice.
            yield from self._unknown("provider key window passed")
            raise _Settled(
                OutcomeUnknown(
                    "an earlier attempt may have reached the provider and its idempotency "
                    "window for this key has passed (or is not stated); "
                    "run `paygate reconcile`",
                    provider=self.ctx.provider,
                )
            )
        return None

    def _create(self) -> Flow[T]:
        return _watched(self.create(), self._sent)

    def _send(self, *, repeat: bool) -> Flow[T]:
        """Send; after a failure that may have reached the provider, look up first and
        re-send only where that is safe. Errors of a first send propagate to `run`,
        which classifies them; transport outcomes and re-sends are settled here."""
        try:
            return (yield from self._create())
        except TransportFailure as exc:
            if not exc.sent:
                if repeat:
                    yield from self._unknown("provider unreachable while recovering")
                else:
                    yield ReleaseKey(self.key, self.env.owner)
                raise _Settled(
                    ProviderUnavailable(
                        f"could not reach the provider ({exc})",
                        provider=self.ctx.provider,
                        retryable=True,
                    )
                ) from None
            first = exc
        except PaygateError as exc:
            if repeat and self.classify(exc) is Outcome.MAYBE_DONE:
                return (yield from self._maybe_done(exc))
            raise
        resend = False
        if self.lookup is not None:
            # The request may have been processed: ask before anything is re-sent.
            try:
                found = yield from self.lookup()
            except (TransportFailure, PaygateError):
                found = None
            else:
                if found is not None:
                    return found
                resend = True
        elif self.policy.keyed:
            resend = True
        if resend:
            try:
                return (yield from self._create())
            except TransportFailure:
                pass
            except PaygateError as exc:
                outcome = self.classify(exc)
                if outcome is Outcome.MAYBE_DONE:
                    return (yield from self._maybe_done(exc))
                # The re-send did nothing or was refused; the first send may still have
                # acted unless the provider decided (a decline stands for the key).
                yield from self._settle(exc, outcome, repeat=True)
                raise _Settled(exc) from None
        yield from self._unknown(f"transport failure after sending: {first}")
        raise _Settled(
            OutcomeUnknown(
                "the request may have reached the provider and no answer came back; "
                "retry later with the same key or run `paygate reconcile`",
                provider=self.ctx.provider,
            )
        )

    def _settle(self, error: PaygateError, outcome: Outcome, *, repeat: bool) -> Flow[None]:
        """Record what ``error`` means for the key.

        ``repeat``: this attempt may repeat an earlier send (a re-send after a lost
        answer, or a recovery), so a refusal that did nothing now says nothing about the
        first.
        """
        if outcome is Outcome.REFUSED or (outcome is Outcome.MAYBE_DONE and not repeat):
            yield FailKey(self.key, self.env.owner, error.to_dict())
            return
        # The key stays open: a retry with it reaches the provider (or recovers). Say so
        # on the error, whatever its class, so merchants can tell from `retryable` alone.
        error.retryable = True
        if outcome is Outcome.RETRYABLE and not repeat:
            yield ReleaseKey(self.key, self.env.owner)
        else:
            code = error.provider_code or error.http_status
            yield from self._unknown(f"{type(error).__name__}: {code} ({outcome})")

    def _look(self) -> Flow[T | None]:
        """Ask the provider whether an earlier attempt took effect; failing that, unknown."""
        assert self.lookup is not None
        try:
            return (yield from self.lookup())
        except (TransportFailure, PaygateError) as exc:
            yield from self._unknown(f"lookup failed while recovering: {type(exc).__name__}")
            raise _Settled(
                OutcomeUnknown(
                    "an earlier attempt may have reached the provider and the lookup could "
                    "not tell; retry later with the same key or run `paygate reconcile`",
                    provider=self.ctx.provider,
                )
            ) from None

    def _maybe_done(self, error: PaygateError) -> Flow[T]:
        """A repeat was refused in words that can mean the first attempt got through."""
        if self.lookup is not None:
            found = yield from self._look()
            if found is not None:
                return found
        yield from self._unknown(
            f"repeat refused as already done: {error.provider_code or error.code}"
        )
        raise _Settled(
            OutcomeUnknown(
                "the provider refused a repeated request in terms that can mean the first "
                "one took effect, and nothing could be found; run `paygate reconcile`",
                provider=self.ctx.provider,
                provider_code=error.provider_code,
                provider_message=error.provider_message,
                http_status=error.http_status,
                request_id=error.request_id,
            )
        )

    def _unknown(self, detail: str) -> Flow[None]:
        return unknown(self.env, self.key, detail)
