"""Retry policy: what the drivers retry, how often and how long they wait.

The rules (one place for every provider):

* A failure that surely did not reach the provider (connection refused) is retried
  whatever the call.
* 429 is retried whatever the call (a throttled request was not processed), after
  ``Retry-After`` clamped to ``max_retry_after``.
* 5xx and failures after the request may have been sent (timeouts, resets) are retried
  only for `Retry.SAFE` and `Retry.KEYED` calls; for `Retry.UNSAFE` they end the call as
  an unknown outcome, which the gateway resolves through the provider's lookup.
* A provider may add its own "try again" answers (`Provider.classify`).

Retries are bounded by ``attempts`` and by ``deadline`` seconds for the whole call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._flow import Call, Reply, Retry

if TYPE_CHECKING:
    # httpx (with its CLI's rich and click) is imported when the first gateway
    # starts, not by ``import paygate``.
    import httpx

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the drivers retry one HTTP call.

    >>> RetryPolicy(attempts=3, deadline=10.0).attempts
    3
    """

    attempts: int = 4
    deadline: float = 30.0
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.2
    max_retry_after: float = 30.0
    connect_timeout: float = 5.0

    @classmethod
    def no_wait(cls, attempts: int = 4) -> RetryPolicy:
        """A policy that retries without waiting (tests, the sandbox)."""
        return cls(
            attempts=attempts, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0, max_retry_after=0.0
        )


class RetryableReply(Exception):
    """Raised inside the retry loop for a reply that should be retried."""

    def __init__(self, reply: Reply, after: float | None) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply
        self.after = after


class RetryableTransport(Exception):
    """Raised inside the retry loop for a transport error that should be retried."""

    def __init__(self, error: httpx.TransportError, sent: bool) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.sent = sent


def surely_not_sent(error: httpx.TransportError) -> bool:
    """True when the request cannot have reached the provider."""
    import httpx

    return isinstance(
        error,
        (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol),
    )


def transport_retryable(call: Call, error: httpx.TransportError) -> bool:
    """Whether a transport failure of ``call`` may be retried."""
    return surely_not_sent(error) or call.retry is not Retry.UNSAFE


def reply_retryable(call: Call, reply: Reply) -> bool:
    """The generic verdict on a reply (providers may override through ``classify``)."""
    if reply.status == 429:
        return True
    return reply.status >= 500 and call.retry is not Retry.UNSAFE


def retry_after(reply: Reply, policy: RetryPolicy | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta or HTTP date); None if absent or unreadable.

    Never negative; at most ``policy.max_retry_after`` when a policy is given (the error a
    429 becomes keeps what the provider said).

    >>> retry_after(Reply(429, {"retry-after": "3"}, b""))
    3.0
    >>> retry_after(Reply(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b""))
    0.0
    >>> retry_after(Reply(429, {"retry-after": "soon"}, b"")) is None
    True
    """
    value = reply.header("retry-after")
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime  # rarely needed: import late

            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    if policy is not None:
        seconds = min(seconds, policy.max_retry_after)
    return max(0.0, seconds)
