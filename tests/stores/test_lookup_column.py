"""Conformance: what a later lookup needs is kept in its own column, not in words.

`Store.begin` and `Store.mark_unknown` take ``lookup`` (JSON-able data) beside ``detail``
(why, in words); `IdempotencyRecord.lookup` gives it back as it was given, through a
takeover.
A store of schema version 1 kept that data as JSON text in ``detail``; opening it moves
the data to the column.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest

from paygate._stores import BeginOutcome, Store

from .conftest import StoreKit
from .test_idempotency import LEASE, T0, begin

OWNER = "host:1:a"
LOOKUP = {
    "amount": 1200,
    "currency": "JPY",
    "method": "card",
    "method_fields": {"token": "tok_1"},
    "charge_id": "ch_1",
}


def test_lookup_is_kept_beside_the_words(store: Store) -> None:
    begin(store)
    store.mark_unknown("k1", OWNER, "read timeout after sending", lookup=LOOKUP)
    record = store.get("k1")
    assert record is not None
    assert record.state == "unknown"
    assert record.detail == "read timeout after sending"
    assert record.lookup == LOOKUP
    assert [r.lookup for r in store.records(states=["unknown"])] == [LOOKUP]


def test_a_takeover_keeps_the_lookup(store: Store) -> None:
    begin(store)
    store.mark_unknown("k1", OWNER, "timeout", lookup=LOOKUP)
    took = begin(store, owner="host:2:b")
    assert took.outcome is BeginOutcome.STARTED
    assert took.recovering
    assert took.record.lookup == LOOKUP
    store.mark_unknown("k1", "host:2:b", "timeout again")
    record = store.get("k1")
    assert record is not None
    assert (record.detail, record.lookup) == ("timeout again", LOOKUP)


def test_the_lookup_is_kept_from_begin_and_a_takeover_keeps_the_first(store: Store) -> None:
    """A key left started (its owner killed before any answer) still has what reconcile
    needs; a takeover that brings its own does not replace it."""
    first = store.begin(
        "k1",
        account="acct",
        operation="charge",
        fingerprint="fp",
        owner=OWNER,
        lease=LEASE,
        now=T0,
        charge_id="ch_1",
        lookup=LOOKUP,
    )
    assert first.record.lookup == LOOKUP
    assert [(r.state, r.lookup) for r in store.records(states=["started"])] == [("started", LOOKUP)]
    took = store.begin(
        "k1",
        account="acct",
        operation="charge",
        fingerprint="fp",
        owner="host:2:b",
        lease=LEASE,
        now=T0 + LEASE + timedelta(seconds=1),
        charge_id="ch_1",
        lookup={"amount": 1},
    )
    assert took.recovering
    assert took.record.lookup == LOOKUP
    record = store.get("k1")
    assert record is not None
    assert record.lookup == LOOKUP


def test_without_a_lookup_the_column_is_empty(store: Store) -> None:
    begin(store)
    store.mark_unknown("k1", OWNER, "timeout")
    record = store.get("k1")
    assert record is not None
    assert record.lookup is None


def test_only_the_owner_sets_the_lookup(store: Store) -> None:
    begin(store)
    store.mark_unknown("k1", "host:9:z", "not mine", lookup=LOOKUP)
    record = store.get("k1")
    assert record is not None
    assert (record.state, record.lookup) == ("started", None)


@contextmanager
def _raw(kit: StoreKit) -> Iterator[Any]:
    """A plain connection on the kit's database (autocommit), bypassing the store."""
    if kit.kind == "sqlite":
        conn = sqlite3.connect(kit.url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    import psycopg

    parts = urlsplit(kit.url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema")
    url = urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())))
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        yield conn


def test_a_version_1_store_is_upgraded(shared_kit: StoreKit) -> None:
    store = shared_kit.open()
    for key in ("k1", "k2", "k3"):
        begin(store, key=key)
    store.mark_unknown("k1", OWNER, "x")
    store.mark_unknown("k2", OWNER, "x")
    store.close()
    shared_kit.opened.clear()
    # Make it what version 1 wrote: the lookup inside detail's text, no lookup column.
    with _raw(shared_kit) as conn:
        conn.execute("ALTER TABLE paygate_idempotency DROP COLUMN lookup")
        conn.execute("DELETE FROM paygate_schema_version")
        conn.execute("INSERT INTO paygate_schema_version (version) VALUES (1)")
        param = "?" if shared_kit.kind == "sqlite" else "%s"
        update = f"UPDATE paygate_idempotency SET detail = {param} WHERE key = {param}"
        old = json.dumps({"detail": "read timeout after sending", **LOOKUP})
        conn.execute(update, (old, "k1"))
        conn.execute(update, ("plain words", "k2"))

    reopened = shared_kit.open()
    first, second, started = (reopened.get(k) for k in ("k1", "k2", "k3"))
    assert first is not None
    assert second is not None
    assert started is not None
    assert (first.detail, first.lookup) == ("read timeout after sending", LOOKUP)
    assert (second.detail, second.lookup) == ("plain words", None)
    assert (started.state, started.lookup) == ("started", None)
    with _raw(shared_kit) as conn:
        row = conn.execute("SELECT max(version) FROM paygate_schema_version").fetchone()
    assert row[0] == 2
    # Opening it again changes nothing more.
    again = shared_kit.open()
    assert again.get("k1") == reopened.get("k1")


def test_a_newer_schema_is_refused(shared_kit: StoreKit) -> None:
    from paygate import ConfigurationError

    shared_kit.open().close()
    shared_kit.opened.clear()
    with _raw(shared_kit) as conn:
        conn.execute("INSERT INTO paygate_schema_version (version) VALUES (99)")
    with pytest.raises(ConfigurationError, match="schema version 99"):
        shared_kit.open()
