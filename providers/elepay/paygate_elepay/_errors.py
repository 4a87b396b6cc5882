"""elepay's ``errorCode`` catalogue and how each code maps onto paygate's error tree.

elepay prefixes its codes by who has to act: ``M`` (merchant / request: fix the call),
``U`` (user / transaction: the payer's side, such as a declined card) and ``S`` (system:
elepay or the payment provider failed). Every ``M`` code is sent as HTTP 400, including
the rate limit ``M005000`` and the authentication failures, so the mapping goes by code,
never by status alone. Older endpoints still answer with numeric codes (``10101`` card
declined, ``10108`` already refunded, ...), which are mapped too.

elepay's server FAQ shows the error body: ``{"code": "9_000_000_40022", "errorCode":
"M002007", "message": "..."}`` (``code`` is elepay's internal string code; the legacy
OpenAPI's ``ElepayRestError.code`` is a string too). The adapter reads ``errorCode``
first, then a string ``code``, then a numeric ``code`` of 1000 or more (legacy numeric
codes), and the ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from paygate import (
    AuthenticationError,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from paygate.adapter import ErrorMap, Reply

__all__ = [
    "CATALOGUE",
    "ErrorInfo",
    "error_from_reply",
    "error_info",
    "read_error",
]

PROVIDER: Final = "elepay"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One documented code: the paygate class, elepay's HTTP status and message."""

    cls: type[ProviderError]
    http_status: int
    message: str
    retryable: bool | None = None


def _m(cls: type[ProviderError], message: str, retryable: bool | None = None) -> ErrorInfo:
    return ErrorInfo(cls, 400, message, retryable)


CATALOGUE: Final[Mapping[str, ErrorInfo]] = {
    # account and payment method set-up
    "M001000": _m(PermissionDenied, "There are problems with setting up the account."),
    "M001001": _m(ProviderRejected, "The payment method is not valid."),
    "M001002": _m(ProviderRejected, "The payment method is incorrect."),
    "M001003": _m(ProviderRejected, "Terminal payment is not valid."),
    "M001004": _m(ProviderRejected, "This payment method does not support authorization."),
    # request content
    "M002001": _m(ProviderRejected, "Required parameters are missing."),
    "M002002": _m(ProviderRejected, "The value of the parameter provided is incorrect."),
    "M002003": _m(NotFound, "The requested resource does not exist."),
    "M002004": _m(ProviderRejected, "The resource already exists."),
    "M002005": _m(ProviderRejected, "Unsupported operation."),
    "M002006": _m(ProviderRejected, "The created resource exceeds the limit."),
    "M002007": _m(ProviderRejected, "The order number has already been paid."),
    "M002009": _m(ProviderRejected, "This currency is not supported."),
    "M002010": _m(
        ProviderRejected, "This payment method does not support multiple authorizations."
    ),
    "M002012": _m(ProviderRejected, "The terminal of this readerId is not valid."),
    "M003000": _m(ProviderRejected, "The call method provided is incorrect."),
    # credentials
    "M004001": _m(AuthenticationError, "The API key provided is invalid."),
    "M004002": _m(AuthenticationError, "Required authentication parameters are missing."),
    "M004003": _m(PermissionDenied, "The requested operation is not allowed."),
    # rate limit: HTTP 400, not 429
    "M005000": _m(RateLimited, "There have been too many requests in a short period of time."),
    # object state
    "M006000": _m(ProviderRejected, "The current status is invalid."),
    "M006001": _m(ProviderRejected, "Another operation is currently in progress.", retryable=True),
    "M006002": _m(ProviderRejected, "The requested operation has already been completed."),
    "M006003": _m(ProviderRejected, "The code has already been paid or cancelled."),
    "M006004": _m(ProviderRejected, "This code has already expired."),
    # legacy numeric codes still returned by the API
    "10001": ErrorInfo(PermissionDenied, 400, "This service is inactive."),
    "10002": ErrorInfo(PermissionDenied, 400, "This payment method is inactive."),
    "10003": ErrorInfo(ProviderRejected, 400, "Invalid payment method."),
    "10101": ErrorInfo(PaymentDeclined, 400, "Credit card was declined."),
    "10102": ErrorInfo(ProviderRejected, 400, "Invalid amount."),
    "10108": ErrorInfo(ProviderRejected, 400, "The charge is already refunded."),
    "10109": ErrorInfo(ProviderRejected, 400, "Not captured, refused refund."),
}

# Codes not in the catalogue fall back on their category letter.
_BY_PREFIX: Final[Mapping[str, tuple[type[ProviderError], str]]] = {
    "M": (ProviderRejected, "elepay refused the request"),
    "U": (PaymentDeclined, "the payment was refused on the payer's side"),
    "S": (ProviderUnavailable, "elepay or the payment provider failed"),
}


def error_info(code: str) -> ErrorInfo | None:
    """The catalogue entry of ``code`` (None when undocumented)."""
    return CATALOGUE.get(code)


def read_error(reply: Reply) -> tuple[str | None, str | None]:
    """``(errorCode, message)`` from an error reply, tolerant of the body shape."""
    try:
        body: Any = reply.json()
    except ProviderError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code: Any = body.get("errorCode")
    if not isinstance(code, str) or not code:
        raw = body.get("code")
        # Without ``errorCode``: a legacy string code, or a legacy numeric one (an
        # HTTP status in ``code`` is ignored).
        if isinstance(raw, str) and raw:
            code = raw
        elif isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1000:
            code = str(raw)
        else:
            code = None
    message = body.get("message")
    return code, message if isinstance(message, str) else None


def error_from_reply(reply: Reply, *, action: str) -> ProviderError:
    """The typed error for a non-2xx reply; keeps elepay's code, message and status.

    ``action`` says what was attempted (``"create the code"``); it must hold no
    personal data.
    """
    code, provider_message = read_error(reply)
    info = error_info(code) if code else None
    cls: type[ProviderError] | None
    retryable: bool | None = None
    if info is not None:
        cls, text, retryable = info.cls, info.message.rstrip("."), info.retryable
    elif code and code[0] in _BY_PREFIX:
        cls, text = _BY_PREFIX[code[0]]
    else:
        cls, text = None, _STATUS_TEXT.get(reply.status, f"elepay answered HTTP {reply.status}")
    error = _ERRORS.error(  # every class of the catalogue and fallbacks is a ProviderError
        reply,
        f"elepay could not {action}: {text}",
        code=code,
        provider_message=provider_message,
        cls=cls,
        retryable=retryable,
    )
    return cast("ProviderError", error)


_ERRORS = ErrorMap(PROVIDER, request_id_headers=("x-request-id",))

_STATUS_TEXT: Final[Mapping[int, str]] = {
    401: "credentials refused",
    403: "operation not allowed",
    404: "no such object",
    429: "too many requests",
}
