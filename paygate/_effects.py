"""The store effects the gateway's operations yield: one small class per store operation.

Like h11's events, each effect is a frozen dataclass with declared fields, so mypy checks
every use; the drivers run one with ``effect.apply(store)``, never by method name. Flows
of provider adapters use only `CacheGet`, `CachePut` and `cache_claim` (in `_flow`);
these are the core's own.

>>> from datetime import timedelta
>>> ReleaseKey(key="acct\\x1fcharge\\x1forder-1", owner="worker-1")
ReleaseKey(key='acct\\x1fcharge\\x1forder-1', owner='worker-1')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._flow import StoreCall

if TYPE_CHECKING:
    from ._stores import Begin, ChargeRecord, ChargeUpdate, ClaimOutcome, Store

__all__ = [
    "BeginKey",
    "ClaimEvent",
    "CompleteCharge",
    "CompleteKey",
    "FailKey",
    "FindCharge",
    "FinishEvent",
    "GetCharge",
    "MarkUnknown",
    "RecordCharge",
    "ReleaseEvent",
    "ReleaseKey",
]


@dataclass(frozen=True, slots=True)
class BeginKey(StoreCall["Begin"]):
    """Record the intent of ``operation`` under ``key`` before any I/O."""

    key: str
    account: str
    operation: str
    fingerprint: str
    owner: str
    lease: timedelta
    now: datetime
    charge_id: str | None = None
    lookup: dict[str, Any] | None = None

    def apply(self, store: Store) -> Begin:
        return store.begin(
            self.key,
            account=self.account,
            operation=self.operation,
            fingerprint=self.fingerprint,
            owner=self.owner,
            lease=self.lease,
            now=self.now,
            charge_id=self.charge_id,
            lookup=self.lookup,
        )


@dataclass(frozen=True, slots=True)
class CompleteKey(StoreCall[None]):
    """The key's operation succeeded: keep ``result`` for replay."""

    key: str
    owner: str
    result: dict[str, Any] = field(repr=False)
    provider_ref: str | None = None

    def apply(self, store: Store) -> None:
        store.complete(self.key, self.owner, self.result, provider_ref=self.provider_ref)


@dataclass(frozen=True, slots=True)
class FailKey(StoreCall[None]):
    """The provider refused for good: keep ``error`` for replay."""

    key: str
    owner: str
    error: dict[str, Any] = field(repr=False)

    def apply(self, store: Store) -> None:
        store.fail(self.key, self.owner, self.error)


@dataclass(frozen=True, slots=True)
class MarkUnknown(StoreCall[None]):
    """The outcome is unknown: ``detail`` says why in words; ``lookup`` is what a later
    lookup needs (no personal data)."""

    key: str
    owner: str
    detail: str
    lookup: dict[str, Any] | None = None

    def apply(self, store: Store) -> None:
        store.mark_unknown(self.key, self.owner, self.detail, lookup=self.lookup)


@dataclass(frozen=True, slots=True)
class ReleaseKey(StoreCall[None]):
    """Nothing happened: the key may start afresh."""

    key: str
    owner: str

    def apply(self, store: Store) -> None:
        store.release(self.key, self.owner)


@dataclass(frozen=True, slots=True)
class RecordCharge(StoreCall["ChargeRecord"]):
    """Fold a provider observation into the charge's record."""

    update: ChargeUpdate
    now: datetime

    def apply(self, store: Store) -> ChargeRecord:
        return store.record_charge(self.update, now=self.now)


@dataclass(frozen=True, slots=True)
class CompleteCharge(StoreCall["ChargeRecord"]):
    """Record the charge and complete its key in one transaction."""

    key: str
    owner: str
    update: ChargeUpdate
    now: datetime
    #: The key's result, built from the updated record inside the same transaction.
    result: Callable[[ChargeRecord], dict[str, Any]]
    provider_ref: str | None = None

    def apply(self, store: Store) -> ChargeRecord:
        return store.complete_charge(
            self.key,
            self.owner,
            self.update,
            now=self.now,
            provider_ref=self.provider_ref,
            result=self.result,
        )


@dataclass(frozen=True, slots=True)
class GetCharge(StoreCall["ChargeRecord | None"]):
    """The record of one charge, by paygate's id."""

    charge_id: str

    def apply(self, store: Store) -> ChargeRecord | None:
        return store.get_charge(self.charge_id)


@dataclass(frozen=True, slots=True)
class FindCharge(StoreCall["ChargeRecord | None"]):
    """The record of one charge, by the provider's reference."""

    account: str
    provider_ref: str

    def apply(self, store: Store) -> ChargeRecord | None:
        return store.find_charge(self.account, self.provider_ref)


@dataclass(frozen=True, slots=True)
class ClaimEvent(StoreCall["ClaimOutcome"]):
    """Claim a webhook event for this worker (dedup across workers)."""

    account: str
    event_id: str
    owner: str
    lease: timedelta
    now: datetime

    def apply(self, store: Store) -> ClaimOutcome:
        return store.claim_event(
            self.account, self.event_id, owner=self.owner, lease=self.lease, now=self.now
        )


@dataclass(frozen=True, slots=True)
class FinishEvent(StoreCall[None]):
    """The event's handlers succeeded."""

    account: str
    event_id: str
    owner: str

    def apply(self, store: Store) -> None:
        store.finish_event(self.account, self.event_id, self.owner)


@dataclass(frozen=True, slots=True)
class ReleaseEvent(StoreCall[None]):
    """The event's handlers failed: another delivery may claim it."""

    account: str
    event_id: str
    owner: str

    def apply(self, store: Store) -> None:
        store.release_event(self.account, self.event_id, self.owner)
