"""Fixtures for the store conformance suite: one suite, every store.

The PostgreSQL cases run on the run's server (``postgres_server_url``: the one named by
``PAYGATE_TEST_POSTGRES_URL``, else an embedded throwaway one); each test works in a
schema of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paygate._stores import Store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the test moves by hand (the stores read it for completion times)."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass
class StoreKit:
    """How a test reaches one kind of store."""

    kind: str
    url: str
    clock: Clock = field(default_factory=Clock)
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        """Another handle on the same store (a second gateway, a restarted process)."""
        from paygate._stores import MemoryStore, PostgresStore, SQLiteStore

        store: Store
        if self.kind == "memory":
            if self.opened:
                return self.opened[0]
            store = MemoryStore(clock=self.clock)
        elif self.kind == "sqlite":
            store = SQLiteStore(self.url.removeprefix("sqlite:///"), clock=self.clock)
        else:
            store = PostgresStore(self.url, clock=self.clock)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


def _drop_schema(server_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def make_kit(
    kind: str, tmp_path: Path, server_url: str | None = None
) -> tuple[StoreKit, Callable[[], None]]:
    """A kit of ``kind`` and its cleanup; PostgreSQL needs the run's ``server_url``."""
    if kind == "memory":
        return StoreKit(kind, "memory://"), lambda: None
    if kind == "sqlite":
        return StoreKit(kind, f"sqlite:///{tmp_path / 'store.db'}"), lambda: None
    assert server_url, "a PostgreSQL kit needs the postgres_server_url fixture"
    schema = f"paygate_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in server_url else "?"
    kit = StoreKit(kind, f"{server_url}{sep}schema={schema}")
    return kit, lambda: _drop_schema(server_url, schema)


def _kit_for(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[StoreKit, Callable[[], None]]:
    # The server starts only when a PostgreSQL case runs.
    server_url = (
        request.getfixturevalue("postgres_server_url") if request.param == "postgres" else None
    )
    return make_kit(request.param, tmp_path, server_url)


ALL_KINDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]
SHARED_KINDS = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=ALL_KINDS)
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    """Every store kind, fresh for each test."""
    made, cleanup = _kit_for(request, tmp_path)
    try:
        yield made
    finally:
        made.close()
        cleanup()


@pytest.fixture(params=SHARED_KINDS)
def shared_kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    """The stores that several processes can share."""
    made, cleanup = _kit_for(request, tmp_path)
    try:
        yield made
    finally:
        made.close()
        cleanup()


@pytest.fixture
def store(kit: StoreKit) -> Store:
    return kit.open()


@pytest.fixture
def clock(kit: StoreKit) -> Clock:
    return kit.clock
