"""``sqlite:///path``: the embedded default store (threads and processes on one machine).

* WAL journal, so readers never block the writer; ``synchronous=NORMAL`` by default:
  a commit is atomic and survives a process crash, and only an OS crash or power loss
  can lose the last transactions before a checkpoint (``?synchronous=FULL`` syncs every
  commit instead).
* One connection per thread (SQLite connections are not safe to share while a
  transaction is open), created on first use; ``busy_timeout`` makes a writer wait for
  the lock instead of failing.
* Every read-modify-write runs in ``BEGIN IMMEDIATE``, which takes the database write
  lock up front: two processes cannot both see "no record" and both start.
* An owner ``host:pid:uuid`` whose process is gone on this host counts as expired, so a
  rerun after a crash recovers at once; owners elsewhere are judged by their lease.

The algorithm is `SQLStore` (``._sql``); this module supplies SQLite's side of its
dialect seam: types, times as microseconds, JSON as text, connections and the lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from .._errors import ConfigurationError
from ._common import from_micros, to_micros, utcnow
from ._sql import SQLStore

__all__ = ["SQLiteStore"]

_TYPES = {
    "text": "TEXT",
    "int": "INTEGER",
    "bigint": "INTEGER",
    "time": "INTEGER",  # microseconds since the epoch, UTC
    "json": "TEXT",
    "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "rowid": " WITHOUT ROWID",
}

# Connections inherited through fork() must never be used or closed by the child (the
# parent may be in the middle of a transaction on the same file). They are kept here so
# that garbage collection does not close them either.
_inherited: list[sqlite3.Connection] = []


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (so a finished thread's one is freed)."""


_live_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_live_stores):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """A store in one SQLite file, shared by the threads and processes of one machine.

    >>> store = SQLiteStore("paygate.db")  # doctest: +SKIP
    >>> store = open_store("sqlite:///paygate.db")  # doctest: +SKIP
    """

    _types: ClassVar[dict[str, str]] = _TYPES
    # An INSERT takes the database write lock even when it inserts nothing, while WAL
    # readers never wait: replays and live owners are answered from a read first.
    _read_first = True
    _local_owners = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: timedelta = timedelta(seconds=30),
        synchronous: str = "NORMAL",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file:"):
            raise ConfigurationError(
                "SQLite needs a file path (use memory:// for an in-process store)", key="store"
            )
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(
                f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}", key="store"
            )
        self._described = f"the SQLite store {self.path!r}"
        self._synchronous = synchronous.upper()
        self._busy_ms = max(0, int(busy_timeout / timedelta(milliseconds=1)))
        self._clock = clock
        self._local = threading.local()
        # Weak: when a thread ends, its thread-local connection is closed with it.
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._closed = False
        self._build_queries()
        try:
            parent = Path(self.path).parent
            parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigurationError(
                f"cannot open the SQLite store {self.path!r}: {exc}", key="store"
            ) from exc
        _live_stores.add(self)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _open(self) -> None:
        """Switch the file to WAL and create the schema, waiting out other openers.

        Processes opening a new file at the same moment collide on the switch to WAL,
        which SQLite answers with "database is locked" at once instead of waiting for
        the busy timeout; each retry starts with a fresh connection, within that
        timeout.
        """
        import stamina

        for attempt in stamina.retry_context(
            on=_locked,
            attempts=None,
            timeout=max(self._busy_ms / 1000, 0.1),
            wait_initial=0.005,
            wait_max=0.1,
        ):
            with attempt:
                try:
                    self._create_schema(self._conn())
                except sqlite3.OperationalError:
                    self._drop_connection()
                    raise

    def _drop_connection(self) -> None:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    # -- the dialect seam ----------------------------------------------------------

    def _table(self, name: str) -> str:
        return name

    @staticmethod
    def _time_out(value: datetime) -> int:
        return to_micros(value)

    @staticmethod
    def _time_in(value: int) -> datetime:
        return from_micros(value)

    @staticmethod
    def _json_out(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def _json_in(value: str) -> Any:
        return json.loads(value)

    def _connection(self) -> nullcontext[sqlite3.Connection]:
        return nullcontext(self._conn())

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: the database write lock is held throughout."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- connections -------------------------------------------------------------

    def _conn(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("the store is closed")
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
            factory=_Connection,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch to WAL (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            conn.close()
            raise
        self._local.conn = conn
        with self._conns_lock:
            self._conns.add(conn)
        return conn

    def _forget_connections(self) -> None:
        with self._conns_lock:
            _inherited.extend(self._conns)
            self._conns = weakref.WeakSet()
        self._local = threading.local()

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        for conn in conns:
            conn.close()
        self._local = threading.local()
