"""The store: idempotency records, entity cache, webhook dedup and charge tracking.

One abstract interface, three implementations: ``memory://`` (tests, one process),
``sqlite:///path`` (embedded default; WAL; threads and processes on one machine) and
``postgresql://...`` (several app instances). The same conformance suite runs on all.

All methods are synchronous. The async driver calls blocking stores in a worker thread
(``blocking = True``) and the memory store directly.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from .._models import ChargeStatus

__all__ = [
    "Begin",
    "BeginOutcome",
    "ChargeRecord",
    "ChargeUpdate",
    "ClaimOutcome",
    "IdempotencyRecord",
    "RecordState",
    "Store",
    "Transition",
]

RecordState = Literal["started", "completed", "failed", "unknown"]
Source = Literal["response", "poll", "webhook", "reconcile", "replay"]


class BeginOutcome(enum.Enum):
    """What `Store.begin` decided."""

    STARTED = "started"  # the caller now owns the key and must run the operation
    REPLAY = "replay"  # finished before: return the stored result (or error)
    CONFLICT = "conflict"  # same key, different request fingerprint
    IN_PROGRESS = "in_progress"  # another live owner holds the key


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One idempotency key's record.

    ``key`` is the store key (the gateway builds it from account, operation and the
    merchant's key). ``result`` holds the JSON of the stored result when ``completed``,
    or of the error when ``failed``. ``attempts`` counts how often the key was started.
    ``detail`` says in words why an outcome is unknown; ``lookup`` keeps what a later
    lookup needs to ask the provider about it (no personal data), as
    `Store.mark_unknown` was given it.
    """

    key: str
    account: str
    operation: str
    fingerprint: str
    state: RecordState
    owner: str | None
    lease_until: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    result: dict[str, Any] | None = None
    charge_id: str | None = None
    provider_ref: str | None = None
    detail: str | None = None
    lookup: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Begin:
    """The result of `Store.begin`.

    ``recovering`` is True when the caller took over a key whose earlier attempt may
    have reached the provider (its owner died or it was marked unknown).
    """

    outcome: BeginOutcome
    record: IdempotencyRecord
    recovering: bool = False


class ClaimOutcome(enum.Enum):
    """What `Store.claim_event` decided for a webhook event id."""

    NEW = "new"  # first delivery (or an earlier one failed): process it
    DONE = "done"  # processed before: acknowledge, do nothing
    BUSY = "busy"  # being processed right now by another worker


@dataclass(frozen=True, slots=True)
class ChargeUpdate:
    """An observation of a charge's state, from a response, a poll or a webhook.

    ``observed_at`` is when the provider's state was true (the provider's timestamp if
    it gives one, else the time of the answer); older observations never overwrite
    newer ones.
    """

    charge_id: str
    account: str
    provider: str
    provider_ref: str
    method: str
    status: ChargeStatus
    amount: int
    currency: str
    amount_refunded: int
    observed_at: datetime
    source: Source
    charge_json: dict[str, Any] | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One applied change of a charge's status or refunded amount."""

    charge_id: str
    from_status: ChargeStatus | None
    to_status: ChargeStatus
    amount_refunded: int
    source: Source
    observed_at: datetime
    recorded_at: datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeRecord:
    """paygate's one truth about a charge."""

    charge_id: str
    account: str
    provider: str
    provider_ref: str
    method: str
    status: ChargeStatus
    amount: int
    currency: str
    amount_refunded: int
    created_at: datetime
    updated_at: datetime
    observed_at: datetime
    charge_json: dict[str, Any] | None = field(default=None, repr=False)


class Store(ABC):
    """Persistent state shared by every Gateway on the same store URL."""

    #: True when calls may block on I/O (the async driver then uses a worker thread).
    blocking: ClassVar[bool] = True

    # -- idempotency -------------------------------------------------------------

    @abstractmethod
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
        """Atomically record the intent to run ``key`` (before any I/O).

        ``lookup`` is what a later lookup or retry of the operation needs (no personal
        data), kept from the start so that a key left ``started`` by a crash can be
        resolved too; a takeover keeps the first one.

        * no record: insert ``started`` owned by ``owner`` -> STARTED.
        * fingerprint differs -> CONFLICT (whatever the state).
        * ``completed`` or ``failed`` -> REPLAY.
        * ``started`` with a live lease held by someone else -> IN_PROGRESS.
        * ``started`` whose lease expired or whose owner is known dead, or ``unknown``
          -> take over (new owner, attempts + 1) -> STARTED with ``recovering=True``.
        """

    @abstractmethod
    def complete(
        self, key: str, owner: str, result: dict[str, Any], *, provider_ref: str | None = None
    ) -> None:
        """Store the result; later `begin` calls replay it. Only the owner may complete."""

    @abstractmethod
    def fail(self, key: str, owner: str, error: dict[str, Any]) -> None:
        """Store a definitive provider refusal; later `begin` calls replay the error."""

    @abstractmethod
    def mark_unknown(
        self, key: str, owner: str, detail: str, *, lookup: dict[str, Any] | None = None
    ) -> None:
        """The outcome is unknown: keep the record for recovery, release the lease.

        ``detail`` is why, in words; ``lookup`` (JSON-able, kept as it is) is what a
        later lookup needs, read back as `IdempotencyRecord.lookup`. Only the owner
        may mark its key.
        """

    @abstractmethod
    def release(self, key: str, owner: str) -> None:
        """Nothing reached the provider: forget the intent so the key can start afresh."""

    @abstractmethod
    def get(self, key: str) -> IdempotencyRecord | None:
        """The record of ``key``."""

    @abstractmethod
    def records(
        self, *, states: Iterable[RecordState] | None = None, account: str | None = None
    ) -> list[IdempotencyRecord]:
        """Records filtered by state and account (for reconcile)."""

    @abstractmethod
    def purge(self, *, older_than: datetime) -> int:
        """Delete completed/failed records last updated before ``older_than``."""

    # -- entity cache (create-if-missing, id mappings) ----------------------------

    @abstractmethod
    def cache_get(self, key: str) -> Any | None:
        """A cached JSON value or None."""

    @abstractmethod
    def cache_put(self, key: str, value: Any) -> None:
        """Store a JSON value (overwrites)."""

    @abstractmethod
    def cache_put_if_absent(self, key: str, value: Any) -> Any:
        """Store ``value`` unless a value exists; return what is stored afterwards."""

    # -- webhook dedup ------------------------------------------------------------

    @abstractmethod
    def claim_event(
        self, account: str, event_id: str, *, owner: str, lease: timedelta, now: datetime
    ) -> ClaimOutcome:
        """Claim a webhook event for processing (see `ClaimOutcome`)."""

    @abstractmethod
    def finish_event(self, account: str, event_id: str, owner: str) -> None:
        """Mark a claimed event processed: later deliveries are DONE."""

    @abstractmethod
    def release_event(self, account: str, event_id: str, owner: str) -> None:
        """Processing failed: the next delivery may claim it again."""

    # -- charge tracking ----------------------------------------------------------

    @abstractmethod
    def record_charge(self, update: ChargeUpdate, *, now: datetime) -> ChargeRecord:
        """Apply ``update`` monotonically, serialised per charge; return the record.

        Applied when the charge is new, when ``status`` may follow the current one
        (`ChargeStatus.can_become`), or when the status is the same and the refunded
        amount grew. Never applied when the current status is terminal or when
        ``observed_at`` is older than the record's. ``amount_refunded`` never decreases.
        Every applied change appends a `Transition`.
        """

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
        """`record_charge` then `complete`, in one transaction where the store has them.

        What a charge does once the provider has answered. The key's result is
        ``result(record)``, built from the record as ``update`` left it (the gateway
        passes the charge as that record sees it: its status and refunded amount win
        over a stale answer); the store never reads the charge's fields itself.
        ``update`` must carry ``charge_json``. This default makes two calls; the bundled
        stores override it with one transaction (one commit instead of two, and no
        window between them).
        """
        from ._common import require_snapshot

        require_snapshot(update)
        record = self.record_charge(update, now=now)
        self.complete(key, owner, result(record), provider_ref=provider_ref)
        return record

    @abstractmethod
    def get_charge(self, charge_id: str) -> ChargeRecord | None:
        """The record of one charge."""

    @abstractmethod
    def find_charge(self, account: str, provider_ref: str) -> ChargeRecord | None:
        """The record of the charge with this provider reference."""

    @abstractmethod
    def charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        updated_before: datetime | None = None,
    ) -> list[ChargeRecord]:
        """Charge records filtered (for reconcile)."""

    @abstractmethod
    def history(self, charge_id: str) -> list[Transition]:
        """Applied transitions of a charge, oldest first."""

    # -- the local ledger (what paygate recorded), newest first, with a cursor ---------

    def ledger_charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[ChargeRecord]:
        """Charge records created in ``[since, until)``, newest first.

        ``before`` is the (created_at, charge_id) of the last record of the previous
        page. The default works on any store; SQL stores answer it with one query.
        """
        found = [
            c
            for c in self.charges(account=account, statuses=statuses)
            if (since is None or c.created_at >= since)
            and (until is None or c.created_at < until)
            and (before is None or (c.created_at, c.charge_id) < before)
        ]
        found.sort(key=lambda c: (c.created_at, c.charge_id), reverse=True)
        return found[:limit]

    def ledger_results(
        self,
        operation: str,
        *,
        account: str | None = None,
        charge_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[IdempotencyRecord]:
        """Completed keys of ``operation`` (their results: refunds, ...), newest first;
        ``before`` is the (created_at, key) of the previous page's last record."""
        found = [
            r
            for r in self.records(states=["completed"], account=account)
            if r.operation == operation
            and (charge_id is None or r.charge_id == charge_id)
            and (since is None or r.created_at >= since)
            and (until is None or r.created_at < until)
            and (before is None or (r.created_at, r.key) < before)
        ]
        found.sort(key=lambda r: (r.created_at, r.key), reverse=True)
        return found[:limit]

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:  # noqa: B027
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
