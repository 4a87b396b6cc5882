"""The adapter API: what a provider distribution implements and the core drives.

>>> from paygate.adapter import Provider, OperationPolicy, Operation
"""

from ._adapter import (
    CancelRequest,
    CaptureRequest,
    ChargeRef,
    ChargeRequest,
    OpContext,
    Operation,
    OperationPolicy,
    ParsedEvent,
    Provider,
    ProviderSettings,
    RefundRequest,
    RetryDecision,
    check_base_url,
    derive_key,
    is_loopback,
)
from ._flow import (
    CacheGet,
    CachePut,
    Call,
    Effect,
    Flow,
    Reply,
    Retry,
    Sleep,
    TransportFailure,
    cache_claim,
    drive,
)

__all__ = [
    "CacheGet",
    "CachePut",
    "Call",
    "CancelRequest",
    "CaptureRequest",
    "ChargeRef",
    "ChargeRequest",
    "Effect",
    "Flow",
    "OpContext",
    "Operation",
    "OperationPolicy",
    "ParsedEvent",
    "Provider",
    "ProviderSettings",
    "RefundRequest",
    "Reply",
    "Retry",
    "RetryDecision",
    "Sleep",
    "TransportFailure",
    "cache_claim",
    "check_base_url",
    "derive_key",
    "drive",
    "is_loopback",
]
