"""Small parts every emulator needs: kept replies, pagers, provider-shaped errors.

Each emulator still decides what counts as "the same request", what a reused key with
other parameters answers, how its list envelope looks and what its error bodies say;
the kit only holds what is the same for all of them.

>>> from datetime import timedelta
>>> clock = SandboxClock()
>>> replies = KeyedReplies(clock, timedelta(hours=24))
>>> kept = replies.keep("key-1", fingerprint="POST /v1/charges amount=500", status=200, body={})
>>> replies.get("key-1") is kept
True
>>> paginate(["a", "b", "c"], limit=2).has_more
True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._emulator import Emulator, SandboxClock

__all__ = [
    "EmulatorError",
    "KeptReply",
    "KeyedReplies",
    "Slice",
    "account_table",
    "endpoint",
    "json_response",
    "paginate",
    "paginate_after",
]

T = TypeVar("T")

Handler = Callable[[Request], Awaitable[Response]]


# -- replies kept by idempotency key ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptReply:
    """The reply an emulator gave to the first request with a key.

    ``fingerprint`` is whatever the emulator uses to tell a repeat from a reuse with
    other parameters; ``at`` is the sandbox time it was kept.
    """

    fingerprint: object
    status: int
    body: Any
    at: datetime


class KeyedReplies:
    """Replies kept by idempotency key for ``window`` of sandbox time (None: for ever).

    A key past its window is forgotten: `get` answers None and the next request with it
    acts again, as a provider that stopped remembering it would.

    >>> from datetime import timedelta
    >>> clock = SandboxClock()
    >>> replies = KeyedReplies(clock, timedelta(hours=24))
    >>> _ = replies.keep("k", fingerprint=("POST", "/v1/charges"), status=200, body={"id": "ch_1"})
    >>> replies.get("k").body
    {'id': 'ch_1'}
    >>> _ = clock.advance(timedelta(hours=25))
    >>> replies.get("k") is None
    True
    """

    def __init__(self, clock: SandboxClock, window: timedelta | None) -> None:
        self._clock = clock
        self._window = window
        self._replies: dict[str, KeptReply] = {}

    @property
    def window(self) -> timedelta | None:
        """How long a key is remembered (None: for ever).

        Settable, for emulators whose provider's memory is a control setting: every key
        is judged against the window in force when it is read, so a longer window keeps
        keys a shorter one would have dropped, unless a read dropped them first (a
        forgotten key stays forgotten).

        >>> from datetime import timedelta
        >>> clock = SandboxClock()
        >>> replies = KeyedReplies(clock, timedelta(hours=1))
        >>> _ = replies.keep("k", fingerprint=None, status=200, body={})
        >>> _ = clock.advance(timedelta(hours=2))
        >>> replies.window = None
        >>> replies.get("k") is not None
        True
        """
        return self._window

    @window.setter
    def window(self, window: timedelta | None) -> None:
        self._window = window

    def get(self, key: str) -> KeptReply | None:
        """The reply kept for ``key``; None when unknown or past the window."""
        self._forget_expired()
        return self._replies.get(key)

    def keep(self, key: str, *, fingerprint: object, status: int, body: Any) -> KeptReply:
        """Keep the reply to the first request with ``key`` (replacing a forgotten one)."""
        kept = KeptReply(fingerprint, status, body, self._clock.now())
        self._replies[key] = kept
        return kept

    def clear(self) -> None:
        """Forget every key (an emulator's reset)."""
        self._replies.clear()

    def __len__(self) -> int:
        self._forget_expired()
        return len(self._replies)

    def _forget_expired(self) -> None:
        if self._window is None:
            return
        now = self._clock.now()
        for key in [k for k, v in self._replies.items() if now - v.at > self._window]:
            del self._replies[key]


# -- pagers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """One page of a list: the ``items`` on it, the ``total`` before paging, and where
    the next page starts (``next_offset`` for offset pagers, ``next_cursor`` for cursor
    pagers; None on the last page)."""

    items: list[T]
    total: int
    has_more: bool
    next_offset: int | None = None
    next_cursor: str | None = None


def paginate(items: Sequence[T], *, limit: int, offset: int = 0) -> Slice[T]:
    """The page of ``items`` that starts at ``offset`` and holds at most ``limit``.

    The emulator checks the bounds its provider documents (and answers its own error)
    before calling; ``limit`` must be positive and ``offset`` not negative.

    >>> page = paginate(list(range(5)), limit=2, offset=2)
    >>> page.items, page.has_more, page.next_offset
    ([2, 3], True, 4)
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be positive and offset not negative")
    chosen = list(items[offset : offset + limit])
    end = offset + len(chosen)
    more = end < len(items)
    return Slice(chosen, len(items), more, next_offset=end if more else None)


def paginate_after(
    items: Sequence[T], *, cursor: str | None, key: Callable[[T], str], limit: int
) -> Slice[T]:
    """The page of ``items`` after the one whose ``key`` is ``cursor`` (None: the first).

    ``items`` are in the order the provider lists them. An unknown cursor raises
    `LookupError`, for the emulator to answer as its provider does.

    >>> rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    >>> page = paginate_after(rows, cursor="a", key=lambda r: r["id"], limit=1)
    >>> [r["id"] for r in page.items], page.next_cursor
    (['b'], 'b')
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    start = 0
    if cursor is not None:
        keys = [key(item) for item in items]
        if cursor not in keys:
            raise LookupError(f"unknown cursor {cursor!r}")
        start = keys.index(cursor) + 1
    chosen = list(items[start : start + limit])
    more = start + len(chosen) < len(items)
    return Slice(
        chosen,
        len(items),
        more,
        next_cursor=key(chosen[-1]) if more and chosen else None,
    )


# -- provider-shaped errors ------------------------------------------------------------


class EmulatorError(Exception):
    """An error answer with the provider's own body, raised from a route handler.

    `endpoint` turns it into the response. Emulators build the body themselves, e.g.
    with a ``_error(code, message)`` function next to their routes.

    >>> error = EmulatorError(404, {"error": {"code": "invalid_id"}})
    >>> error.response().status_code
    404
    """

    def __init__(
        self,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def response(self, *, media_type: str = "application/json") -> Response:
        """The error as a JSON response."""
        return json_response(self.status, self.body, headers=self.headers, media_type=media_type)


def json_response(
    status: int,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    media_type: str = "application/json",
) -> Response:
    """A JSON response with ``status`` (``media_type`` for providers that name a charset).

    >>> json_response(201, {"id": "ch_1"}).status_code
    201
    """
    return JSONResponse(
        dict(body) if isinstance(body, Mapping) else body,
        status_code=status,
        headers=dict(headers) if headers else None,
        media_type=media_type,
    )


def endpoint(handler: Handler, *, media_type: str = "application/json") -> Handler:
    """Wrap a route handler so that an `EmulatorError` it raises becomes its response.

    >>> from starlette.routing import Route
    >>> async def get_charge(request):
    ...     raise EmulatorError(404, {"error": {"code": "invalid_id"}})
    >>> route = Route("/v1/charges/{id}", endpoint(get_charge), methods=["GET"])
    """

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except EmulatorError as error:
            return error.response(media_type=media_type)

    run.__name__ = getattr(handler, "__name__", "endpoint")
    run.__doc__ = handler.__doc__
    return run


# -- account tables ----------------------------------------------------------------------


def account_table(emulator: Emulator, *keys: str, **extra: Any) -> dict[str, Any]:
    """A paygate account table pointing at ``emulator``, for its `account_settings`.

    ``provider`` is the emulator's name; then come the ``keys`` of its `credentials`
    that are account settings, in that order, and last the ``extra`` settings that are
    not among its credentials.

    >>> class Toy:
    ...     name = "toypay"
    ...     def credentials(self):
    ...         return {"base_url": "http://127.0.0.1:1/toypay", "secret_key": "sk_test",
    ...                 "test_cards": ["4242"]}
    >>> account_table(Toy(), "base_url", "secret_key", store_id="st_1")
    {'provider': 'toypay', 'base_url': 'http://127.0.0.1:1/toypay', 'secret_key': 'sk_test', \
'store_id': 'st_1'}
    """
    credentials = emulator.credentials()
    return {"provider": emulator.name, **{key: credentials[key] for key in keys}, **extra}
