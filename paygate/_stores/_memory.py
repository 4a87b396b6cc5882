"""``memory://``: the in-process store (tests, demos, one process only).

Everything lives in dicts behind one lock; each operation is a few dict look-ups, so
the async driver calls it directly (``blocking = False``). Values are kept as given, not
copied: do not mutate a result or cached value after handing it to the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .._models import ChargeStatus
from ._base import (
    Begin,
    BeginOutcome,
    ChargeRecord,
    ChargeUpdate,
    ClaimOutcome,
    IdempotencyRecord,
    RecordState,
    Store,
    Transition,
)
from ._common import (
    RELEASED_AFTER_RECOVERY,
    begin_decision,
    claim_decision,
    fast_factory,
    plan_charge,
    require_snapshot,
    utc,
    utcnow,
)

__all__ = ["MemoryStore"]

_make_record = fast_factory(IdempotencyRecord)
_begin = fast_factory(Begin)
_transition = fast_factory(Transition)
_STARTED = BeginOutcome.STARTED


class _Row:
    """The mutable state of one idempotency key; ``record`` caches its public snapshot."""

    __slots__ = (
        "account",
        "attempts",
        "charge_id",
        "created_at",
        "detail",
        "fingerprint",
        "key",
        "lease_until",
        "lookup",
        "operation",
        "owner",
        "provider_ref",
        "record",
        "result",
        "state",
        "updated_at",
    )

    def __init__(
        self,
        key: str,
        account: str,
        operation: str,
        fingerprint: str,
        owner: str,
        lease_until: datetime,
        now: datetime,
        charge_id: str | None,
    ) -> None:
        self.key = key
        self.account = account
        self.operation = operation
        self.fingerprint = fingerprint
        self.state: RecordState = "started"
        self.owner = owner
        self.lease_until: datetime | None = lease_until
        self.attempts = 1
        self.created_at = now
        self.updated_at = now
        self.result: dict[str, Any] | None = None
        self.charge_id = charge_id
        self.provider_ref: str | None = None
        self.detail: str | None = None
        self.lookup: dict[str, Any] | None = None
        self.record: IdempotencyRecord | None = None

    def snapshot(self) -> IdempotencyRecord:
        record = self.record
        if record is None:
            record = self.record = _make_record(
                self.key,
                self.account,
                self.operation,
                self.fingerprint,
                self.state,
                self.owner,
                self.lease_until,
                self.attempts,
                self.created_at,
                self.updated_at,
                self.result,
                self.charge_id,
                self.provider_ref,
                self.detail,
                self.lookup,
            )
        return record


# An event claim: [state, owner, lease_until]; a list so a takeover updates in place.
_Event = list[Any]


class MemoryStore(Store):
    """A store in this process's memory.

    ``MemoryStore()`` is private to its creator; ``open_store("memory://name")`` returns
    the same store for the same name within one process.

    >>> store = MemoryStore()
    >>> store.cache_put_if_absent("k", {"id": 1})
    {'id': 1}
    """

    blocking = False

    def __init__(self, name: str = "", *, clock: Callable[[], datetime] = utcnow) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._idem: dict[str, _Row] = {}
        self._cache: dict[str, Any] = {}
        self._events: dict[tuple[str, str], _Event] = {}
        self._charges: dict[str, ChargeRecord] = {}
        self._history: dict[str, list[Transition]] = {}
        self._by_ref: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({self.name!r})" if self.name else "MemoryStore()"

    # -- idempotency -------------------------------------------------------------

    def begin(
        self,
        key: str,
        *,
        account: str,
        operation: str,
        fingerprint: str,
        owner: str,
        lease: timedelta,
        now: datetime,
        charge_id: str | None = None,
        lookup: dict[str, Any] | None = None,
    ) -> Begin:
        if now.tzinfo is None:
            now = utc(now)
        with self._lock:
            row = self._idem.get(key)
            if row is None:
                row = _Row(key, account, operation, fingerprint, owner, now + lease, now, charge_id)
                row.lookup = lookup
                self._idem[key] = row
                return _begin(_STARTED, row.snapshot(), False)
            current = row.snapshot()
            outcome = begin_decision(current, fingerprint, now, check_owner=False)
            if outcome is not None:
                return _begin(outcome, current, False)
            row.state = "started"
            row.owner = owner
            row.lease_until = now + lease
            row.attempts += 1
            row.updated_at = now
            row.result = None
            if row.charge_id is None:
                row.charge_id = charge_id
            if row.lookup is None:
                row.lookup = lookup
            row.record = None
            return _begin(_STARTED, row.snapshot(), True)

    def _finish(
        self,
        key: str,
        owner: str,
        state: RecordState,
        result: dict[str, Any] | None,
        provider_ref: str | None,
        detail: str | None,
        lookup: dict[str, Any] | None = None,
    ) -> None:
        now = self._clock()
        with self._lock:
            self._finish_locked(key, owner, state, result, provider_ref, detail, now, lookup)

    def _finish_locked(
        self,
        key: str,
        owner: str,
        state: RecordState,
        result: dict[str, Any] | None,
        provider_ref: str | None,
        detail: str | None,
        now: datetime,
        lookup: dict[str, Any] | None = None,
    ) -> None:
        row = self._idem.get(key)
        if row is None or row.owner != owner or row.state != "started":
            return
        row.state = state
        row.lease_until = None
        row.updated_at = now
        row.result = result
        if provider_ref is not None:
            row.provider_ref = provider_ref
        if detail is not None:
            row.detail = detail
        if lookup is not None:
            row.lookup = lookup
        row.record = None

    def complete(
        self, key: str, owner: str, result: dict[str, Any], *, provider_ref: str | None = None
    ) -> None:
        self._finish(key, owner, "completed", result, provider_ref, None)

    def fail(self, key: str, owner: str, error: dict[str, Any]) -> None:
        self._finish(key, owner, "failed", error, None, None)

    def mark_unknown(
        self, key: str, owner: str, detail: str, *, lookup: dict[str, Any] | None = None
    ) -> None:
        self._finish(key, owner, "unknown", None, None, detail, lookup)

    def release(self, key: str, owner: str) -> None:
        now = self._clock()
        with self._lock:
            row = self._idem.get(key)
            if row is None or row.owner != owner or row.state != "started":
                return
            if row.attempts == 1:
                del self._idem[key]
                return
            # An earlier attempt may have reached the provider: keep the record so the
            # next `begin` recovers (looks the outcome up) instead of starting blind.
            row.state = "unknown"
            row.lease_until = None
            row.updated_at = now
            row.detail = row.detail or RELEASED_AFTER_RECOVERY
            row.record = None

    def get(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._idem.get(key)
            return None if row is None else row.snapshot()

    def records(
        self, *, states: Iterable[RecordState] | None = None, account: str | None = None
    ) -> list[IdempotencyRecord]:
        wanted = None if states is None else frozenset(states)
        with self._lock:
            found = [
                r.snapshot()
                for r in self._idem.values()
                if (wanted is None or r.state in wanted)
                and (account is None or r.account == account)
            ]
        found.sort(key=lambda r: (r.created_at, r.key))
        return found

    def purge(self, *, older_than: datetime) -> int:
        older_than = utc(older_than)
        with self._lock:
            doomed = [
                k
                for k, r in self._idem.items()
                if r.state in ("completed", "failed") and r.updated_at < older_than
            ]
            for k in doomed:
                del self._idem[k]
        return len(doomed)

    # -- entity cache ------------------------------------------------------------

    def cache_get(self, key: str) -> Any | None:
        return self._cache.get(key)

    def cache_put(self, key: str, value: Any) -> None:
        self._cache[key] = value

    def cache_put_if_absent(self, key: str, value: Any) -> Any:
        with self._lock:
            return self._cache.setdefault(key, value)

    # -- webhook dedup -----------------------------------------------------------

    def claim_event(
        self, account: str, event_id: str, *, owner: str, lease: timedelta, now: datetime
    ) -> ClaimOutcome:
        now = utc(now)
        ident = (account, event_id)
        with self._lock:
            current = self._events.get(ident)
            if current is None:
                self._events[ident] = ["processing", owner, now + lease]
                return ClaimOutcome.NEW
            outcome = claim_decision(current[0], current[1], current[2], now, check_owner=False)
            if outcome is not None:
                return outcome
            current[0], current[1], current[2] = "processing", owner, now + lease
            return ClaimOutcome.NEW

    def finish_event(self, account: str, event_id: str, owner: str) -> None:
        # Processed is a fact whoever finished it, even a claimer whose lease ran out.
        with self._lock:
            self._events[(account, event_id)] = ["done", owner, None]

    def release_event(self, account: str, event_id: str, owner: str) -> None:
        ident = (account, event_id)
        with self._lock:
            current = self._events.get(ident)
            if current is not None and current[0] == "processing" and current[1] == owner:
                del self._events[ident]

    # -- charge tracking ---------------------------------------------------------

    def record_charge(self, update: ChargeUpdate, *, now: datetime) -> ChargeRecord:
        now = utc(now)
        with self._lock:
            return self._record_charge(update, now)

    def complete_charge(
        self,
        key: str,
        owner: str,
        update: ChargeUpdate,
        *,
        now: datetime,
        provider_ref: str | None = None,
        result: Callable[[ChargeRecord], dict[str, Any]],
    ) -> ChargeRecord:
        require_snapshot(update)
        now = utc(now)
        with self._lock:
            record = self._record_charge(update, now)
            kept = result(record)
            self._finish_locked(key, owner, "completed", kept, provider_ref, None, self._clock())
            return record

    def _record_charge(self, update: ChargeUpdate, now: datetime) -> ChargeRecord:
        current = self._charges.get(update.charge_id)
        record, applied = plan_charge(current, update, now)
        if record is current:
            return record
        self._charges[record.charge_id] = record
        if current is not None and current.provider_ref != record.provider_ref:
            self._by_ref.pop((current.account, current.provider_ref), None)
        self._by_ref[(record.account, record.provider_ref)] = record.charge_id
        if applied:
            transition = _transition(
                record.charge_id,
                None if current is None else current.status,
                record.status,
                record.amount_refunded,
                update.source,
                record.observed_at,
                now,
                update.note,
            )
            history = self._history.get(record.charge_id)
            if history is None:
                self._history[record.charge_id] = [transition]
            else:
                history.append(transition)
        return record

    def get_charge(self, charge_id: str) -> ChargeRecord | None:
        return self._charges.get(charge_id)

    def find_charge(self, account: str, provider_ref: str) -> ChargeRecord | None:
        charge_id = self._by_ref.get((account, provider_ref))
        return None if charge_id is None else self._charges.get(charge_id)

    def charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        updated_before: datetime | None = None,
    ) -> list[ChargeRecord]:
        wanted = None if statuses is None else frozenset(statuses)
        before = None if updated_before is None else utc(updated_before)
        with self._lock:
            found = [
                c
                for c in self._charges.values()
                if (account is None or c.account == account)
                and (wanted is None or c.status in wanted)
                and (before is None or c.updated_at < before)
            ]
        found.sort(key=lambda c: (c.updated_at, c.charge_id))
        return found

    def history(self, charge_id: str) -> list[Transition]:
        with self._lock:
            return list(self._history.get(charge_id, ()))
