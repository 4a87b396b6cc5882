"""Smaregi wire conventions: JST date-times, numbers as strings, problem-JSON errors.

Smaregi answers errors in an RFC 7807 style body::

    {"type": "about:blank", "title": "Bad Request", "detail": "...", "status": 400}

The token endpoint may add OAuth-style ``error`` / ``error_description``. paygate keeps
``title`` (or ``error``) as ``provider_code`` and ``detail`` (or ``error_description``)
as ``provider_message``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from paygate import (
    AuthenticationError,
    MalformedResponse,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from paygate.adapter import ErrorMap, Reply, status_error

__all__ = [
    "ALREADY_REGISTERED",
    "JST",
    "Problem",
    "error_from_reply",
    "format_jst",
    "parse_datetime",
    "parse_int",
    "problem_of",
]

PROVIDER = "smaregi"

JST = timezone(timedelta(hours=9), "JST")

#: The 403 answer to a second app payment method for the same client id and contract
#: (reported by a developer on the Smaregi forum, discussion 539).
ALREADY_REGISTERED = (
    "同一クライアントIDに紐づく個別アプリ専用支払方法の登録件数の上限をオーバーしたため、"
    "登録できません。"
)
# Tolerate small wording changes: the distinctive part of the message.
_ALREADY_REGISTERED_CORE = "個別アプリ専用支払方法の登録件数の上限"


def format_jst(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+09:00``: Smaregi reads times as JST.

    >>> from datetime import UTC
    >>> format_jst(datetime(2024, 5, 1, 1, 2, 3, tzinfo=UTC))
    '2024-05-01T10:02:03+09:00'
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(JST).replace(microsecond=0).isoformat()


def parse_datetime(value: Any) -> datetime | None:
    """A Smaregi date-time (a time without offset is JST), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


def parse_int(value: Any, *, field: str) -> int:
    """A Smaregi number (sent as a string; tolerate a JSON integer) as int."""
    if isinstance(value, bool):
        raise MalformedResponse(f"{field} is not a number", provider=PROVIDER)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise MalformedResponse(f"{field} is not a number", provider=PROVIDER)


class Problem:
    """The parts of an error body paygate keeps."""

    __slots__ = ("code", "message")

    def __init__(self, code: str | None, message: str | None) -> None:
        self.code = code
        self.message = message


def problem_of(reply: Reply) -> Problem:
    """Read ``title``/``detail`` (or ``error``/``error_description``) from an error body."""
    try:
        data = json.loads(reply.content) if reply.content else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return Problem(None, None)
    code = data.get("error") or data.get("title")
    message = data.get("detail") or data.get("error_description") or data.get("message")
    return Problem(
        str(code) if code not in (None, "") else None,
        str(message) if message not in (None, "") else None,
    )


def is_already_registered(reply: Reply) -> bool:
    """The 403 "one app payment method per client id" answer."""
    if reply.status != 403:
        return False
    message = problem_of(reply).message or ""
    return message == ALREADY_REGISTERED or _ALREADY_REGISTERED_CORE in message


def error_from_reply(reply: Reply, *, action: str) -> ProviderError:
    """The typed paygate error for a non-2xx Smaregi answer.

    ``action`` says what paygate was doing ("registering the sale"); it goes into the
    message, the provider's own words into ``provider_message``.
    """
    problem = problem_of(reply)
    cls = status_error(reply.status)
    error = _ERRORS.error(
        reply,
        _WORDING.get(cls, "Smaregi refused {action}").format(action=action),
        code=problem.code,
        provider_message=problem.message,
        cls=cls,
    )
    return cast("ProviderError", error)


_ERRORS = ErrorMap(PROVIDER)

_WORDING: dict[type[ProviderError], str] = {
    AuthenticationError: "Smaregi refused the credentials while {action}",
    PermissionDenied: "Smaregi forbade {action}",
    NotFound: "Smaregi does not know the object ({action})",
    RateLimited: "Smaregi rate limit hit while {action}",
    ProviderUnavailable: "Smaregi failed while {action}",
}
