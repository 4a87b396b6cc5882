"""Store implementations behind one interface; `open_store` picks one by URL."""

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
