"""paygate: one payment API for Japanese merchants."""

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
from ._gateway import AsyncGateway, Gateway
from ._models import (
    Capabilities,
    Card,
    Charge,
    ChargeStatus,
    DisplayQR,
    Event,
    Failure,
    Konbini,
    KonbiniSlip,
    MethodCapabilities,
    NextAction,
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
from ._retry import RetryPolicy
from ._version import __version__

__all__ = [
    "AsyncGateway",
    "AuthenticationError",
    "Capabilities",
    "Card",
    "Charge",
    "ChargeStatus",
    "ConfigurationError",
    "DisplayQR",
    "Event",
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
    "Redirect",
    "Refund",
    "RefundStatus",
    "RetryPolicy",
    "Wallet",
    "WebhookVerificationError",
    "__version__",
    "load_config",
]


if TYPE_CHECKING:
    from ._config import load_config


def __getattr__(name: str) -> Any:
    # The config loader pulls in pydantic-settings; load it on first use only.
    if name == "load_config":
        from ._config import load_config

        return load_config
    raise AttributeError(f"module 'paygate' has no attribute {name!r}")
