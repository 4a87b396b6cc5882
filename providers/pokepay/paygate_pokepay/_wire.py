"""Readers for Pokepay's objects: amounts, times, required fields, a decrypted answer.

Pokepay's answers are read as plain JSON objects (its SDKs define no stricter schema
than the OpenAPI document, whose fields paygate reads one by one); these helpers turn
a missing or malformed field into `MalformedResponse`.

>>> as_amount(1200.0, "amount")
1200
>>> as_time("2026-03-01T12:00:00+09:00").isoformat()
'2026-03-01T12:00:00+09:00'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from paygate import MalformedResponse
from paygate.adapter import OpContext

from ._errors import PROVIDER

__all__ = ["Answer", "as_amount", "as_time", "field", "malformed"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A decrypted successful answer and the server's clock at the time."""

    data: dict[str, Any]
    server_time: datetime | None

    def now(self, ctx: OpContext) -> datetime:
        """The server's time of the answer, else the operation's clock.

        Pokepay's state machine compares ``expires_at`` with the server's now; the
        answer's own timestamp is that clock (and keeps replays deterministic).
        """
        return self.server_time if self.server_time is not None else ctx.now()


def malformed(message: str, status: int | None) -> MalformedResponse:
    """A `MalformedResponse` of Pokepay's answer."""
    return MalformedResponse(f"pokepay: {message}", provider=PROVIDER, http_status=status)


def as_amount(value: Any, what: str) -> int:
    """A whole-yen amount from a JSON number (Pokepay may write ``1200.0``)."""
    if isinstance(value, bool):
        raise malformed(f"{what} is not a number", None)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise malformed(f"{what} is not a number", None) from None
        if number.is_integer():
            return int(number)
    raise malformed(f"{what} is not a whole amount", None)


def as_time(value: Any) -> datetime | None:
    """An aware datetime from an ISO-8601 string (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Pokepay writes offsets; a bare time is read as Japan time, the service's zone.
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    return parsed


def field(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` or `MalformedResponse`."""
    if name not in data or data[name] is None:
        raise malformed(f"answer lacks {name!r}", None)
    return data[name]
