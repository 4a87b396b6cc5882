"""The sandbox kit: a settable window, account tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from paygate.sandbox import KeyedReplies, SandboxClock, account_table


def _kept(window: timedelta | None) -> tuple[SandboxClock, KeyedReplies]:
    clock = SandboxClock()
    replies = KeyedReplies(clock, window)
    replies.keep("k1", fingerprint="a", status=200, body={"id": "ch_1"})
    replies.keep("k2", fingerprint="b", status=200, body={"id": "ch_2"})
    return clock, replies


def test_window_can_be_set_and_is_applied_on_reading() -> None:
    clock, replies = _kept(timedelta(hours=24))
    assert replies.window == timedelta(hours=24)
    clock.advance(timedelta(hours=2))
    replies.window = timedelta(hours=1)
    assert replies.window == timedelta(hours=1)
    assert replies.get("k1") is None
    assert len(replies) == 0


def test_a_longer_window_keeps_keys_not_yet_forgotten_but_not_forgotten_ones() -> None:
    clock, replies = _kept(timedelta(hours=1))
    clock.advance(timedelta(hours=2))
    replies.window = None  # before any read: nothing was forgotten yet
    assert replies.get("k1") is not None
    replies.window = timedelta(hours=1)
    assert replies.get("k1") is None  # this read forgets both keys
    replies.window = None
    assert replies.get("k2") is None


class _Toy:
    name: ClassVar[str] = "toypay"

    def credentials(self) -> dict[str, Any]:
        return {"base_url": "http://127.0.0.1:1/toypay", "secret_key": "sk_test", "cards": [1]}


def test_account_table_names_the_provider_then_chosen_credentials_then_extras() -> None:
    table = account_table(_Toy(), "secret_key", "base_url", store_id="st_1")  # type: ignore[arg-type]
    assert table == {
        "provider": "toypay",
        "secret_key": "sk_test",
        "base_url": "http://127.0.0.1:1/toypay",
        "store_id": "st_1",
    }
    assert list(table) == ["provider", "secret_key", "base_url", "store_id"]
