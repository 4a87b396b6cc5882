"""UnivaPay error bodies → the paygate error tree.

UnivaPay answers errors as ``{"status": "error", "code": "VALIDATION_ERROR", "errors":
[{"field": "amount", "reason": "INVALID_FORMAT"}]}``; a 429 may come with ``{}``. Every
mapped error keeps UnivaPay's ``code`` as ``provider_code`` and a message built from
the ``errors[]`` list (field names and reasons only: they carry no personal data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate._errors import (
    IdempotencyConflict,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    PaygateError,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from paygate.adapter import ErrorMap, Reply

__all__ = ["RETRY_CODES", "check_reply", "error_code", "map_error"]

PROVIDER = "univapay"

# Codes UnivaPay sends with a non-5xx status that mean "try again later". An older copy
# of UnivaPay's api-limits page says an over-limit request is a "BadRequest"; the Node
# SDK names the code RATE_LIMIT_EXCEEDED.
RETRY_CODES = frozenset({"CHARGE_TOO_QUICK", "TOO_MANY_REQUESTS", "RATE_LIMIT_EXCEEDED"})

# Codes whose HTTP status alone would pick the wrong paygate class.
_BY_CODE: dict[str, type[PaygateError]] = {
    "IDEMPOTENCY_KEY_CONFLICT": IdempotencyConflict,
    "CHARGE_TOO_QUICK": RateLimited,
    "TOO_MANY_REQUESTS": RateLimited,
    "RATE_LIMIT_EXCEEDED": RateLimited,
    "CARD_LOCKED": PaymentDeclined,
    "NOT_FOUND": NotFound,
    "UNABLE_TO_GET_IDEMPOTENT_RESULT": OutcomeUnknown,
    "UNABLE_TO_GET_IDEMPOTENT_REQUEST": OutcomeUnknown,
    "SERVICE_UNAVAILABLE_TRY_AGAIN": ProviderUnavailable,
    # "This request is not supported by the connected gateway system" (Ruby SDK error
    # table): a definitive refusal, not an outage. Only when the body says so: a bare
    # 504 from a proxy stays an outage.
    "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST": ProviderRejected,
}

_ERRORS = ErrorMap(PROVIDER, by_code=_BY_CODE)

# Fallback codes when the body has none (as the Node SDK does).
_STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "NOT_AUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "NOT_ALLOWED",
    409: "CONFLICTED",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "TIMEOUT",
    503: "SERVICE_UNAVAILABLE",
    504: "NO_GATEWAY_AVAILABLE_TO_PROCESS_THE_REQUEST",
}


def _body(reply: Reply) -> Mapping[str, Any]:
    try:
        data = reply.json()
    except MalformedResponse:
        return {}
    return data if isinstance(data, Mapping) else {}


def error_code(reply: Reply) -> str:
    """UnivaPay's error code of ``reply`` (a status-based fallback when absent)."""
    code = _body(reply).get("code")
    if isinstance(code, str) and code:
        return code
    return _STATUS_CODES.get(reply.status, "UNKNOWN_ERROR")


def _describe(body: Mapping[str, Any]) -> str | None:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return None
    parts: list[str] = []
    for item in errors[:10]:
        if isinstance(item, Mapping):
            field = item.get("field")
            reason = item.get("reason") or item.get("message")
            parts.append(f"{field}: {reason}" if field else str(reason))
        else:
            parts.append(str(item))
    return "; ".join(parts) or None


def map_error(reply: Reply, *, step: str) -> PaygateError:
    """The paygate error for a non-2xx UnivaPay reply.

    >>> err = map_error(Reply(409, {}, b'{"status":"error","code":"IDEMPOTENCY_KEY_CONFLICT"}'),
    ...                 step="charges.create")
    >>> type(err).__name__, err.provider_code
    ('IdempotencyConflict', 'IDEMPOTENCY_KEY_CONFLICT')
    """
    body = _body(reply)
    code = error_code(reply)
    detail = _describe(body)
    stated = body.get("code")
    # Only a code the body states picks the class (a bare 504 from a proxy stays an outage).
    cls = _ERRORS.error_class(reply.status, stated if isinstance(stated, str) else None)
    message = f"UnivaPay refused {step}: {code}"
    return _ERRORS.error(reply, message, code=code, provider_message=detail or code, cls=cls)


def check_reply(reply: Reply, *, step: str) -> None:
    """Raise the paygate error of ``reply`` (nothing for a 2xx answer).

    UnivaPay may answer a reused idempotency key with another request's body and
    ``Idempotency-Status: conflicting_key``; that is an `IdempotencyConflict` whatever
    the status.

    >>> check_reply(Reply(200, {}, b"{}"), step="charges.get") is None
    True
    """
    status = (reply.header("idempotency-status") or "").lower()
    if status == "conflicting_key" and (reply.ok or reply.status == 409):
        raise IdempotencyConflict(
            f"UnivaPay refused {step}: the idempotency key was used for another request",
            provider=PROVIDER,
            provider_code="IDEMPOTENCY_KEY_CONFLICT",
            http_status=reply.status,
        )
    if not reply.ok:
        raise map_error(reply, step=step)
