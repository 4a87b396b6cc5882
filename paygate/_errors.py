"""The paygate error tree.

::

    PaygateError
    ├── ConfigurationError          bad or missing configuration (raised at load time)
    ├── InvalidRequest              bad input, refused before any request is sent
    ├── NotSupported                the account's provider cannot do this (before any I/O)
    ├── IdempotencyConflict         same key, different request
    ├── IdempotencyInProgress       same key, another worker holds it right now
    ├── OutcomeUnknown              the operation may or may not have happened
    ├── WebhookVerificationError    a webhook failed authentication
    └── ProviderError               the provider answered with an error (or not at all)
        ├── PaymentDeclined         the payment itself was refused (card declined, ...)
        ├── AuthenticationError     credentials refused
        ├── PermissionDenied        credentials valid, operation forbidden
        ├── NotFound                the provider does not know the object
        ├── ProviderRejected        the provider refused the request (4xx that is not ours to
        │                           predict: already refunded, state conflict, limits, ...)
        ├── RateLimited             slow down; ``retry_after`` in seconds when given
        ├── ProviderUnavailable     5xx, maintenance, network failure before sending
        └── MalformedResponse       the provider answered something paygate cannot read

Every error keeps the provider's own ``provider_code`` and ``provider_message`` (often
Japanese) next to paygate's normalised ``code``. Messages pass through redaction, so no
secret or personal data can reach ``str()`` or ``repr()``.
"""

from __future__ import annotations

from typing import Any

from ._redact import redact

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "IdempotencyConflict",
    "IdempotencyInProgress",
    "InvalidRequest",
    "MalformedResponse",
    "NotFound",
    "NotSupported",
    "OutcomeUnknown",
    "PaygateError",
    "PaymentDeclined",
    "PermissionDenied",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "WebhookVerificationError",
]


class PaygateError(Exception):
    """Base of every error paygate raises.

    Attributes:
        code: paygate's normalised error code (``"payment_declined"``, ...).
        provider: provider name when a provider was involved.
        provider_code: the provider's own error code, unchanged.
        provider_message: the provider's own message (redacted), unchanged otherwise.
        http_status: HTTP status of the provider's answer, if any.
        request_id: the provider's id of the request, when its answer carries one.
        provider_ref: the provider's object the error concerns (e.g. the failed charge a
            PAY.JP decline creates), when known.
        retryable: whether trying again later (same idempotency key) may succeed.
    """

    code: str = "paygate_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        provider_code: str | None = None,
        provider_message: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        provider_ref: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider_ref = provider_ref
        self.provider = provider
        self.provider_code = provider_code
        self.provider_message = redact(provider_message) if provider_message else None
        self.http_status = http_status
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.provider:
            detail = ", ".join(
                f"{k}={v}"
                for k, v in (
                    ("provider", self.provider),
                    ("code", self.provider_code),
                    ("http_status", self.http_status),
                    ("request_id", self.request_id),
                )
                if v is not None
            )
            parts.append(f"({detail})")
            if self.provider_message and self.provider_message != self.message:
                parts.append(f"provider said: {self.provider_message}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description, used to store and replay an error."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "code": self.code,
            "provider": self.provider,
            "provider_code": self.provider_code,
            "provider_message": self.provider_message,
            "http_status": self.http_status,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "provider_ref": self.provider_ref,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PaygateError:
        """Rebuild an error stored with `to_dict`."""
        cls = _BY_NAME.get(str(data.get("type")), PaygateError)
        err = cls.__new__(cls)
        PaygateError.__init__(
            err,
            str(data.get("message", "")),
            provider=data.get("provider"),
            provider_code=data.get("provider_code"),
            provider_message=data.get("provider_message"),
            http_status=data.get("http_status"),
            request_id=data.get("request_id"),
            retryable=data.get("retryable"),
            provider_ref=data.get("provider_ref"),
        )
        return err


class ConfigurationError(PaygateError):
    """The configuration is invalid; ``key`` names the offending setting."""

    code = "configuration_error"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class InvalidRequest(PaygateError):
    """The request is invalid; nothing was sent. ``param`` names the offending argument."""

    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, **kw: Any) -> None:
        self.param = param
        super().__init__(message, **kw)


class NotSupported(PaygateError):
    """The provider behind the account cannot do this. Raised before any I/O.

    ``capability`` names what is missing; ``alternative`` says what to do instead.
    """

    code = "not_supported"

    def __init__(
        self,
        capability: str,
        *,
        provider: str | None = None,
        reason: str | None = None,
        alternative: str | None = None,
    ) -> None:
        self.capability = capability
        self.alternative = alternative
        self.reason = reason
        text = f"not supported: {capability}"
        if reason:
            text += f" ({reason})"
        if alternative:
            text += f"; instead: {alternative}"
        super().__init__(text, provider=provider)


class IdempotencyConflict(PaygateError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"


class IdempotencyInProgress(PaygateError):
    """Another worker is running the operation with this key right now. Retry later."""

    code = "idempotency_in_progress"
    retryable = True


class OutcomeUnknown(PaygateError):
    """The operation may or may not have happened at the provider.

    The intent stays recorded; `paygate reconcile` (or a retry with the same key once the
    provider can be asked) resolves it. paygate never guesses.
    """

    code = "outcome_unknown"
    retryable = True


class WebhookVerificationError(PaygateError):
    """A webhook did not pass the provider's authentication check."""

    code = "webhook_verification_failed"


class ProviderError(PaygateError):
    """The provider answered with an error, or could not be reached."""

    code = "provider_error"


class PaymentDeclined(ProviderError):
    """The payment was refused (card declined, insufficient balance, ...)."""

    code = "payment_declined"


class AuthenticationError(ProviderError):
    """The provider refused paygate's credentials."""

    code = "authentication_failed"


class PermissionDenied(ProviderError):
    """The credentials are valid but may not do this."""

    code = "permission_denied"


class NotFound(ProviderError):
    """The provider does not know the object."""

    code = "not_found"


class ProviderRejected(ProviderError):
    """The provider refused the request for a reason paygate could not check in advance."""

    code = "provider_rejected"


class RateLimited(ProviderError):
    """Too many requests; ``retry_after`` seconds when the provider said."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ProviderUnavailable(ProviderError):
    """The provider failed (5xx, maintenance) or could not be reached."""

    code = "provider_unavailable"
    retryable = True


class MalformedResponse(ProviderError):
    """The provider's answer could not be read (bad JSON, wrong shape, bad ciphertext)."""

    code = "malformed_response"


_BY_NAME: dict[str, type[PaygateError]] = {
    cls.__name__: cls
    for cls in (
        PaygateError,
        ConfigurationError,
        InvalidRequest,
        NotSupported,
        IdempotencyConflict,
        IdempotencyInProgress,
        OutcomeUnknown,
        WebhookVerificationError,
        ProviderError,
        PaymentDeclined,
        AuthenticationError,
        PermissionDenied,
        NotFound,
        ProviderRejected,
        RateLimited,
        ProviderUnavailable,
        MalformedResponse,
    )
}
