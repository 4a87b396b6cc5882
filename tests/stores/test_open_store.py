"""`open_store`: URLs, options, errors, secrets and lazy imports."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from paygate import ConfigurationError
from paygate._stores import MemoryStore, SQLiteStore, open_store


def test_memory_urls() -> None:
    a, b = open_store("memory://"), open_store("memory://")
    assert isinstance(a, MemoryStore)
    assert a is not b
    named = open_store("memory://shop-test-1")
    assert named is open_store("memory://shop-test-1")
    assert named is not open_store("memory://shop-test-2")
    assert repr(named) == "MemoryStore('shop-test-1')"
    assert MemoryStore.blocking is False


def test_sqlite_absolute_url(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == str(path)
        assert path.exists()
        assert store.blocking is True
        assert repr(store) == f"SQLiteStore({str(path)!r})"
    finally:
        store.close()


def test_sqlite_relative_url_and_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/rel.db")
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == "data/rel.db"
        assert (tmp_path / "data" / "rel.db").exists()
    finally:
        store.close()


def test_sqlite_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    open_store(f"sqlite:///{path}?busy_timeout=2500&synchronous=FULL").close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM paygate_schema_version").fetchall() == [(2,)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "paygate_idempotency",
            "paygate_cache",
            "paygate_events",
            "paygate_charges",
            "paygate_transitions",
        } <= tables
    finally:
        conn.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_store(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE paygate_schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigurationError) as info:
        open_store(f"sqlite:///{path}")
    assert info.value.key == "store"
    assert "99" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:/x.db",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///x.db?journal=off",
        "sqlite:///x.db?busy_timeout=soon",
        "sqlite:///x.db?synchronous=OFF",
    ],
)
def test_bad_sqlite_urls(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert info.value.key == "store"


def test_sqlite_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError) as info:
        open_store(f"sqlite:///{blocker}/store.db")
    assert info.value.key == "store"


@pytest.mark.parametrize("url", ["", "redis://localhost/0", "mysql://u:pw@h/db", "nonsense"])
def test_unknown_schemes_name_the_key(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert info.value.key == "store"
    assert str(info.value).startswith("store:")


def test_passwords_never_show_in_errors() -> None:
    secret = "hunter2-Very-Secret"
    with pytest.raises(ConfigurationError) as info:
        open_store(f"mysql://user:{secret}@db.example/shop")
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_postgres_connection_failure_is_a_configuration_error() -> None:
    pytest.importorskip("psycopg")
    secret = "pg-Secret-Pass-123"
    # Port 1 on loopback refuses at once: no server needed.
    with pytest.raises(ConfigurationError) as info:
        open_store(f"postgresql://paygate:{secret}@127.0.0.1:1/shop?connect_timeout=2")
    assert info.value.key == "store"
    text = str(info.value) + repr(info.value)
    assert secret not in text
    assert "***" in text or "[redacted]" in text


@pytest.mark.parametrize(
    "query",
    [
        "schema=bad-name",
        "schema=a;drop",
        "pool_max_size=0",
        "pool_min_size=x",
        "pool_timeout=-1",
        "prepare_threshold=sometimes",
    ],
)
def test_bad_postgres_options(query: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigurationError) as info:
        open_store(f"postgresql://u@127.0.0.1:1/db?{query}")
    assert info.value.key == "store"


@pytest.mark.postgres
def test_postgres_repr_hides_the_password(postgres_server_url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(postgres_server_url)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    secret = "Trust-Ignores-This-Pass"
    url = urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))
    sep = "&" if parts.query else "?"
    store = open_store(f"{url}{sep}application_name=paygate-test&prepare_threshold=none")
    try:
        assert secret not in repr(store)
        assert "***" in repr(store)
        assert store.blocking is True
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_schema_option_and_version(postgres_server_url: str) -> None:
    import uuid

    import psycopg

    schema = f"paygate_open_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in postgres_server_url else "?"
    store = open_store(f"{postgres_server_url}{sep}schema={schema}")
    try:
        store.cache_put("k", {"v": 1})
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            assert {r[0] for r in rows} >= {
                "paygate_schema_version",
                "paygate_idempotency",
                "paygate_cache",
                "paygate_events",
                "paygate_charges",
                "paygate_transitions",
            }
            conn.execute(f'UPDATE "{schema}".paygate_schema_version SET version = 99')
        # Opening twice is fine; a newer schema is refused.
        with pytest.raises(ConfigurationError):
            open_store(f"{postgres_server_url}{sep}schema={schema}")
    finally:
        store.close()
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_importing_paygate_loads_no_database_driver() -> None:
    code = (
        "import sys\n"
        "import paygate, paygate._stores\n"
        "from paygate._stores import open_store\n"
        "open_store('memory://')\n"
        "loaded = [m for m in ('sqlite3', '_sqlite3', 'psycopg', 'psycopg_pool') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr


_OPENER = """
import sys, time
from paygate._stores import SQLiteStore
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
SQLiteStore(sys.argv[1]).close()
"""


def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Regression: the switch to WAL answers "database is locked" to a second opener at
    once (no busy wait); opening retries within the busy timeout."""
    import time

    for round_ in range(3):
        path = tmp_path / f"race-{round_}.db"
        start = time.time() + 1.0  # all interpreters are up by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(path), str(start)],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
