"""Rules shared by every store, so that memory, SQLite and PostgreSQL decide alike.

The stores differ only in how they make a decision atomic (a lock, ``BEGIN IMMEDIATE``,
``SELECT ... FOR UPDATE``); what they decide comes from the pure functions here.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .._models import ChargeStatus
from ._base import BeginOutcome, ChargeRecord, ChargeUpdate, ClaimOutcome, IdempotencyRecord

T = TypeVar("T")

__all__ = [
    "EPOCH",
    "RELEASED_AFTER_RECOVERY",
    "begin_decision",
    "claim_decision",
    "fast_factory",
    "from_micros",
    "new_owner",
    "owner_dead",
    "plan_charge",
    "require_snapshot",
    "to_micros",
    "utc",
    "utcnow",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DONE = frozenset({"completed", "failed"})
_MICRO = timedelta(microseconds=1)
_HOST = socket.gethostname()

#: ``detail`` of a record released after a takeover (see `Store.release` notes).
RELEASED_AFTER_RECOVERY = "released after recovery; an earlier attempt may have reached it"


def utcnow() -> datetime:
    """The wall clock in UTC (the default clock of every store)."""
    return datetime.now(UTC)


def utc(dt: datetime) -> datetime:
    """``dt`` made timezone-aware; naive datetimes are taken as UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch (naive datetimes count as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _MICRO


def from_micros(us: int) -> datetime:
    """The aware UTC datetime ``us`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us)


def fast_factory(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen, slotted dataclass that skips its
    ``__init__``.

    A frozen dataclass sets every field through ``object.__setattr__``, which costs about
    twice as much as writing the slots directly; the memory store builds a record on
    every call, so it uses this. Like `dataclasses` itself, the constructor is generated
    source (from the class's own field names). It takes every field, in order. Falls
    back to ``cls`` when the class has no slots or defines ``__post_init__``.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    slots = [cls.__dict__.get(name) for name in names]
    if hasattr(cls, "__post_init__") or not all(
        type(slot).__name__ == "member_descriptor" for slot in slots
    ):
        return cls
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, slot in enumerate(slots):
        namespace[f"_set{i}"] = slot.__set__  # type: ignore[union-attr]
    params = ", ".join(f"v{i}" for i in range(len(names)))
    body = "".join(f"    _set{i}(obj, v{i})\n" for i in range(len(names)))
    source = f"def make({params}):\n    obj = _new(_cls)\n{body}    return obj\n"
    exec(source, namespace)  # noqa: S102 - generated from field positions only
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
    return make


# ----------------------------------------------------------------------------- owners


def new_owner() -> str:
    """A fresh owner id ``host:pid:uuid`` for `Store.begin` and `Store.claim_event`.

    The host and pid let a store on the same machine tell that an owner's process
    died (so a rerun after a crash recovers at once instead of waiting out the lease).

    >>> new_owner().count(":")
    2
    """
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"


def owner_dead(owner: str | None) -> bool:
    """Whether ``owner`` names a process on this host that no longer exists.

    Only a positive answer matters: an owner on another host, an owner id that is not
    ``host:pid:uuid``, a process we may not signal, or a reused pid all count as alive,
    so the caller falls back to the lease. (Hosts are told apart by hostname; containers
    sharing a hostname but not a pid namespace must not share a SQLite file.)
    """
    if not owner or sys.platform == "win32":
        # On Windows ``os.kill(pid, 0)`` sends CTRL_C_EVENT rather than probing.
        return False
    host, _, rest = owner.partition(":")
    if host != _HOST:
        return False
    pid_text = rest.partition(":")[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    # pid 0 would signal our own process group; never probe it.
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


# ------------------------------------------------------------------------ idempotency


def begin_decision(
    record: IdempotencyRecord,
    fingerprint: str,
    now: datetime,
    *,
    check_owner: bool,
) -> BeginOutcome | None:
    """What `Store.begin` answers for an existing ``record``; None means "take it over".

    A ``started`` record with a live lease is IN_PROGRESS even for the same owner id:
    two threads sharing an owner must not both run the operation.
    """
    if record.fingerprint != fingerprint:
        return BeginOutcome.CONFLICT
    state = record.state
    if state in _DONE:
        return BeginOutcome.REPLAY
    if (
        state == "started"
        and record.lease_until is not None
        and record.lease_until > now
        and not (check_owner and owner_dead(record.owner))
    ):
        return BeginOutcome.IN_PROGRESS
    return None


def claim_decision(
    state: str,
    owner: str | None,
    lease_until: datetime | None,
    now: datetime,
    *,
    check_owner: bool,
) -> ClaimOutcome | None:
    """What `Store.claim_event` answers for an existing event; None means "take it over"."""
    if state == "done":
        return ClaimOutcome.DONE
    if lease_until is not None and lease_until > now and not (check_owner and owner_dead(owner)):
        return ClaimOutcome.BUSY
    return None


# --------------------------------------------------------------------- charge tracking

_make_charge = fast_factory(ChargeRecord)


def require_snapshot(update: ChargeUpdate) -> None:
    """Refuse a `Store.complete_charge` update without the charge's snapshot."""
    if update.charge_json is None:
        raise ValueError("the update carries no charge_json")


def plan_charge(
    current: ChargeRecord | None, update: ChargeUpdate, now: datetime
) -> tuple[ChargeRecord, bool]:
    """The record after ``update`` and whether a transition was applied.

    When nothing is applied the returned record is ``current`` itself, or ``current``
    with a fresher ``charge_json`` snapshot: a newer observation of the same status may
    carry new details (a konbini slip that was issued meanwhile) without being a
    transition.
    """
    observed_at = utc(update.observed_at)
    if current is None:
        amount = update.amount
        refunded = min(max(update.amount_refunded, 0), max(amount, 0))
        record = _make_charge(
            update.charge_id,
            update.account,
            update.provider,
            update.provider_ref,
            update.method,
            update.status,
            amount,
            update.currency,
            refunded,
            now,
            now,
            observed_at,
            update.charge_json,
        )
        return record, True

    status = current.status
    if status.is_terminal or observed_at < current.observed_at:
        return current, False
    new_status = update.status
    refunded = max(current.amount_refunded, min(update.amount_refunded, current.amount))
    if status.can_become(new_status) or (
        new_status == status and refunded > current.amount_refunded
    ):
        record = _make_charge(
            current.charge_id,
            current.account,
            current.provider,
            update.provider_ref or current.provider_ref,
            current.method,
            new_status,
            current.amount,
            current.currency,
            refunded,
            current.created_at,
            now,
            observed_at,
            update.charge_json if update.charge_json is not None else current.charge_json,
        )
        return record, True
    if new_status == status and update.charge_json is not None:
        record = _make_charge(
            current.charge_id,
            current.account,
            current.provider,
            current.provider_ref,
            current.method,
            status,
            current.amount,
            current.currency,
            current.amount_refunded,
            current.created_at,
            now,
            current.observed_at,
            update.charge_json,
        )
        return record, False
    return current, False


def status_of(value: str) -> ChargeStatus:
    """The `ChargeStatus` stored as ``value``."""
    return ChargeStatus(value)
