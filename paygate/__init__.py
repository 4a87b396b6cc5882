"""paygate: one payment API for Japanese merchants.

>>> from paygate import Gateway, Money, Card
>>> Money.jpy(1200)
Money.jpy(1200)

``import paygate`` loads only the error classes; the gateways, models and
configuration loader are imported on first use (PEP 562), so a process that only
catches paygate's errors, or a command-line tool that prints its help, does not pay
for pydantic and httpx.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AuthenticationError,
    ConfigurationError,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    NotSupported,
    OutcomeUnknown,
    PaygateError,
    PaymentDeclined,
    PermissionDenied,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    WebhookVerificationError,
)
from ._version import __version__

__all__ = [
    "AsyncGateway",
    "AuthenticationError",
    "Capabilities",
    "Card",
    "Charge",
    "ChargeStatus",
    "ChargeTransition",
    "ConfigurationError",
    "DisplayQR",
    "Event",
    "EventName",
    "EventType",
    "Failure",
    "Gateway",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "InvalidRequest",
    "Konbini",
    "KonbiniSlip",
    "MalformedResponse",
    "MethodCapabilities",
    "Money",
    "NextAction",
    "NotFound",
    "NotSupported",
    "OutcomeUnknown",
    "Page",
    "PaygateError",
    "PaymentDeclined",
    "PaymentMethod",
    "PayoutBalance",
    "PayoutItem",
    "PermissionDenied",
    "PosLine",
    "PosSale",
    "Product",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
    "QRCode",
    "RateLimited",
    "ReconcileRow",
    "Redirect",
    "Refund",
    "RefundStatus",
    "RetryPolicy",
    "Wallet",
    "WebhookVerificationError",
    "__version__",
    "load_config",
    "reconcile",
]


if TYPE_CHECKING:
    from ._config import load_config
    from ._gateway import AsyncGateway, Gateway
    from ._models import (
        Capabilities,
        Card,
        Charge,
        ChargeStatus,
        ChargeTransition,
        DisplayQR,
        Event,
        EventName,
        EventType,
        Failure,
        Konbini,
        KonbiniSlip,
        MethodCapabilities,
        NextAction,
        Page,
        PaymentMethod,
        PayoutBalance,
        PayoutItem,
        PosLine,
        PosSale,
        Product,
        QRCode,
        Redirect,
        Refund,
        RefundStatus,
        Wallet,
    )
    from ._money import Money
    from ._reconcile import ReconcileRow, reconcile
    from ._retry import RetryPolicy

_MODELS = [
    "Capabilities",
    "Card",
    "Charge",
    "ChargeStatus",
    "ChargeTransition",
    "DisplayQR",
    "Event",
    "EventName",
    "EventType",
    "Failure",
    "Konbini",
    "KonbiniSlip",
    "MethodCapabilities",
    "NextAction",
    "Page",
    "PaymentMethod",
    "PayoutBalance",
    "PayoutItem",
    "PosLine",
    "PosSale",
    "Product",
    "QRCode",
    "Redirect",
    "Refund",
    "RefundStatus",
    "Wallet",
]
_LAZY: dict[str, str] = {
    "AsyncGateway": "._gateway",
    "Gateway": "._gateway",
    "Money": "._money",
    "RetryPolicy": "._retry",
    "load_config": "._config",  # brings pydantic-settings
    "reconcile": "._reconcile",
    "ReconcileRow": "._reconcile",
    **dict.fromkeys(_MODELS, "._models"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paygate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
