"""Smaregi error answers mapped onto paygate's error tree.

Smaregi answers errors in an RFC 7807 style body::

    {"type": "about:blank", "title": "Bad Request", "detail": "...", "status": 400}

The token endpoint may add OAuth-style ``error`` / ``error_description``. paygate keeps
``title`` (or ``error``) as ``provider_code`` and ``detail`` (or ``error_description``)
as ``provider_message``; the class follows the HTTP status (Smaregi publishes no code
catalogue).
"""

from __future__ import annotations

import functools
import json
from typing import cast

from paygate import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from paygate.adapter import ErrorMap, Reply, status_error, whole_refunds_only

from ._wire import PROVIDER

__all__ = [
    "ALREADY_REGISTERED",
    "Problem",
    "error_from_reply",
    "is_already_registered",
    "partial_refund",
    "problem_of",
]

#: The 403 answer to a second app payment method for the same client id and contract
#: (reported by a developer on the Smaregi forum, discussion 539).
ALREADY_REGISTERED = (
    "同一クライアントIDに紐づく個別アプリ専用支払方法の登録件数の上限をオーバーしたため、"
    "登録できません。"
)
# Tolerate small wording changes: the distinctive part of the message.
_ALREADY_REGISTERED_CORE = "個別アプリ専用支払方法の登録件数の上限"


class Problem:
    """The parts of an error body paygate keeps."""

    __slots__ = ("code", "message")

    def __init__(self, code: str | None, message: str | None) -> None:
        self.code = code
        self.message = message


def problem_of(reply: Reply) -> Problem:
    """Read ``title``/``detail`` (or ``error``/``error_description``) from an error body.

    >>> p = problem_of(Reply(400, {}, b'{"title": "Bad Request", "detail": "total"}'))
    >>> p.code, p.message
    ('Bad Request', 'total')
    """
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

    >>> err = error_from_reply(Reply(404, {}, b'{"title": "Not Found"}'), action="reading")
    >>> type(err).__name__, err.provider_code
    ('NotFound', 'Not Found')
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


#: The refusal of a partial refund: Smaregi voids a sale as a whole.
partial_refund = functools.partial(
    whole_refunds_only,
    provider=PROVIDER,
    reason="Smaregi voids a sale as a whole",
    alternative="refund the whole sale (amount=None), or enter a return at the POS",
)


_ERRORS = ErrorMap(PROVIDER)

_WORDING: dict[type[ProviderError], str] = {
    AuthenticationError: "Smaregi refused the credentials while {action}",
    PermissionDenied: "Smaregi forbade {action}",
    NotFound: "Smaregi does not know the object ({action})",
    RateLimited: "Smaregi rate limit hit while {action}",
    ProviderUnavailable: "Smaregi failed while {action}",
}
