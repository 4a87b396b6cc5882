"""The sandbox kit: kept replies on the sandbox clock, pagers, errors, control dispatch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paygate.sandbox import (
    ControlError,
    Emulator,
    EmulatorContext,
    EmulatorError,
    KeptReply,
    KeyedReplies,
    SandboxClock,
    endpoint,
    json_response,
    paginate,
    paginate_after,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- KeyedReplies ------------------------------------------------------------------------


def test_a_reply_is_kept_within_the_window_and_gone_after_it() -> None:
    clock = SandboxClock(START)
    replies = KeyedReplies(clock, timedelta(hours=24))
    kept = replies.keep("k1", fingerprint=("POST", "/v1/charges"), status=200, body={"id": "ch"})
    assert kept == KeptReply(("POST", "/v1/charges"), 200, {"id": "ch"}, START)
    clock.advance(timedelta(hours=24))
    assert replies.get("k1") == kept  # exactly at the window's end: still kept
    assert len(replies) == 1
    clock.advance(timedelta(seconds=1))
    assert replies.get("k1") is None
    assert len(replies) == 0


def test_a_forgotten_key_can_be_kept_again_with_a_new_time() -> None:
    clock = SandboxClock(START)
    replies = KeyedReplies(clock, timedelta(minutes=5))
    replies.keep("k", fingerprint="a", status=200, body={})
    clock.advance(timedelta(minutes=6))
    assert replies.get("k") is None
    again = replies.keep("k", fingerprint="b", status=402, body={"error": {}})
    assert replies.get("k") == again
    assert again.at == START + timedelta(minutes=6)


def test_without_a_window_replies_are_kept_for_ever() -> None:
    clock = SandboxClock(START)
    replies = KeyedReplies(clock, None)
    replies.keep("k", fingerprint="f", status=201, body=[1])
    clock.advance(timedelta(days=3650))
    kept = replies.get("k")
    assert kept is not None
    assert kept.body == [1]
    assert replies.window is None


def test_unknown_keys_clear_and_len() -> None:
    replies = KeyedReplies(SandboxClock(START), timedelta(hours=1))
    assert replies.get("nope") is None
    replies.keep("a", fingerprint=1, status=200, body={})
    replies.keep("b", fingerprint=2, status=200, body={})
    assert len(replies) == 2
    replies.clear()
    assert len(replies) == 0
    assert replies.get("a") is None


# -- pagers -------------------------------------------------------------------------------


def test_paginate_first_middle_and_last_pages() -> None:
    items = list(range(5))
    first = paginate(items, limit=2)
    assert (first.items, first.total, first.has_more, first.next_offset) == ([0, 1], 5, True, 2)
    middle = paginate(items, limit=2, offset=2)
    assert (middle.items, middle.has_more, middle.next_offset) == ([2, 3], True, 4)
    last = paginate(items, limit=2, offset=4)
    assert (last.items, last.has_more, last.next_offset) == ([4], False, None)


def test_paginate_edges() -> None:
    items = list(range(4))
    exact = paginate(items, limit=4)
    assert (exact.items, exact.has_more, exact.next_offset) == ([0, 1, 2, 3], False, None)
    past = paginate(items, limit=2, offset=10)
    assert (past.items, past.total, past.has_more) == ([], 4, False)
    empty = paginate([], limit=10)
    assert (empty.items, empty.total, empty.has_more) == ([], 0, False)
    for limit, offset in ((0, 0), (1, -1)):
        with pytest.raises(ValueError):
            paginate(items, limit=limit, offset=offset)


def _key(row: Mapping[str, str]) -> str:
    return row["id"]


def test_paginate_after_walks_every_page() -> None:
    rows = [{"id": f"r{i}"} for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = paginate_after(rows, cursor=cursor, key=_key, limit=2)
        pages += 1
        assert page.total == 5
        seen += [r["id"] for r in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == [r["id"] for r in rows]
    assert pages == 3


def test_paginate_after_edges() -> None:
    rows = [{"id": "a"}, {"id": "b"}]
    at_end = paginate_after(rows, cursor="b", key=_key, limit=5)
    assert (at_end.items, at_end.has_more, at_end.next_cursor) == ([], False, None)
    exact = paginate_after(rows, cursor=None, key=_key, limit=2)
    assert (len(exact.items), exact.has_more, exact.next_cursor) == (2, False, None)
    assert paginate_after([], cursor=None, key=_key, limit=1).items == []
    with pytest.raises(LookupError):
        paginate_after(rows, cursor="zz", key=_key, limit=1)
    with pytest.raises(ValueError):
        paginate_after(rows, cursor=None, key=_key, limit=0)


# -- errors and endpoints ---------------------------------------------------------------------


def test_endpoint_answers_an_emulator_error_with_the_provider_body() -> None:
    async def get_charge(request: Request) -> Response:
        if request.path_params["id"] == "ch_1":
            return json_response(200, {"id": "ch_1"})
        raise EmulatorError(
            404, {"error": {"code": "invalid_id"}}, headers={"X-Request-Id": "req_1"}
        )

    app = Starlette(routes=[Route("/v1/charges/{id}", endpoint(get_charge))])

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as client:
            return await client.get("/v1/charges/ch_1"), await client.get("/v1/charges/ch_2")

    found, missing = asyncio.run(run())
    assert found.status_code == 200
    assert found.json() == {"id": "ch_1"}
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "invalid_id"}}
    assert missing.headers["x-request-id"] == "req_1"
    assert missing.headers["content-type"].startswith("application/json")


def test_json_response_media_type() -> None:
    response = json_response(201, {"a": 1}, media_type="application/json; charset=utf-8")
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"


# -- control dispatch ----------------------------------------------------------------------------


class _Dispatching(Emulator):
    name = "dispatch"

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__(ctx)
        self.paid: list[str] = []

    def routes(self) -> Sequence[BaseRoute]:
        return []

    def reset(self) -> None:
        self.paid.clear()

    def credentials(self) -> dict[str, Any]:
        return {}

    def account_settings(self) -> dict[str, Any]:
        return {}

    def control_pay(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Pay a pending charge as the customer.

        More detail that `actions` leaves out.
        """
        charge = params.get("charge_id")
        if charge is None:
            raise ControlError("charge_id is required")
        self.paid.append(str(charge))
        return {"paid": charge}

    async def control_expire(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Expire every open code now."""
        await asyncio.sleep(0)
        return {"expired": 0}

    def control_undocumented(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _control_private(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Not an action."""
        return {}


def _emulator() -> _Dispatching:
    return _Dispatching(EmulatorContext(SandboxClock(START), lambda: "http://x", lambda d: None))


def test_control_dispatches_to_sync_and_async_methods() -> None:
    emulator = _emulator()
    assert asyncio.run(emulator.control("pay", {"charge_id": "ch_1"})) == {"paid": "ch_1"}
    assert emulator.paid == ["ch_1"]
    assert asyncio.run(emulator.control("expire", {})) == {"expired": 0}


def test_control_errors_pass_through() -> None:
    with pytest.raises(ControlError) as refused:
        asyncio.run(_emulator().control("pay", {}))
    assert refused.value.status == 400


@pytest.mark.parametrize("action", ["refund", "private", "_control_private", "pay/../x", ""])
def test_an_unknown_action_is_a_404_naming_the_known_ones(action: str) -> None:
    with pytest.raises(ControlError) as unknown:
        asyncio.run(_emulator().control(action, {}))
    assert unknown.value.status == 404
    assert "known: expire, pay, undocumented" in str(unknown.value)


def test_actions_lists_each_action_with_the_first_docstring_line() -> None:
    assert _Dispatching.actions() == {
        "expire": "Expire every open code now.",
        "pay": "Pay a pending charge as the customer.",
        "undocumented": "",
    }


def test_an_emulator_without_actions() -> None:
    class Bare(_Dispatching):
        control_pay = None  # type: ignore[assignment]
        control_expire = None  # type: ignore[assignment]
        control_undocumented = None  # type: ignore[assignment]

    assert Bare.actions() == {}
    bare = Bare(EmulatorContext(SandboxClock(START), lambda: "http://x", lambda d: None))
    with pytest.raises(ControlError, match="known: none"):
        asyncio.run(bare.control("pay", {}))
