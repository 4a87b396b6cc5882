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
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._models import ChargeStatus
from ._base import (
    Begin,
    BeginOutcome,
    ChargeRecord,
    ChargeUpdate,
    ClaimOutcome,
    IdempotencyRecord,
    RecordState,
    Store,
    Transition,
)
from ._common import (
    RELEASED_AFTER_RECOVERY,
    begin_decision,
    charge_view,
    claim_decision,
    from_micros,
    plan_charge,
    to_micros,
    utc,
    utcnow,
)

__all__ = ["SQLiteStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paygate_schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paygate_idempotency (
    key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    operation TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    result TEXT,
    charge_id TEXT,
    provider_ref TEXT,
    detail TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS paygate_idempotency_state
    ON paygate_idempotency (state, updated_at);
CREATE TABLE IF NOT EXISTS paygate_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS paygate_events (
    account TEXT NOT NULL,
    event_id TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS paygate_charges (
    charge_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount_refunded INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    charge_json TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS paygate_charges_ref ON paygate_charges (account, provider_ref);
CREATE INDEX IF NOT EXISTS paygate_charges_updated ON paygate_charges (updated_at);
CREATE TABLE IF NOT EXISTS paygate_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_id TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    amount_refunded INTEGER NOT NULL,
    source TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS paygate_transitions_charge ON paygate_transitions (charge_id, id);
"""

_IDEM_COLUMNS = (
    "key, account, operation, fingerprint, state, owner, lease_until, attempts, "
    "created_at, updated_at, result, charge_id, provider_ref, detail"
)
_CHARGE_COLUMNS = (
    "charge_id, account, provider, provider_ref, method, status, amount, currency, "
    "amount_refunded, created_at, updated_at, observed_at, charge_json"
)

_INSERT_STARTED = (
    "INSERT INTO paygate_idempotency (key, account, operation, fingerprint, state, owner,"
    " lease_until, attempts, created_at, updated_at, charge_id)"
    " VALUES (?, ?, ?, ?, 'started', ?, ?, 1, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
# Queries are assembled from constant column lists and placeholders only.
_SELECT_RECORD = f"SELECT {_IDEM_COLUMNS} FROM paygate_idempotency WHERE key = ?"  # noqa: S608
_TAKE_OVER = (
    "UPDATE paygate_idempotency SET state = 'started', owner = ?, lease_until = ?,"
    " attempts = ?, updated_at = ?, result = NULL, charge_id = ? WHERE key = ?"
)
_FINISH = (
    "UPDATE paygate_idempotency SET state = ?, lease_until = NULL, updated_at = ?, result = ?,"
    " provider_ref = COALESCE(?, provider_ref), detail = COALESCE(?, detail)"
    " WHERE key = ? AND owner = ? AND state = 'started'"
)
_RELEASE_FRESH = (
    "DELETE FROM paygate_idempotency"
    " WHERE key = ? AND owner = ? AND state = 'started' AND attempts = 1"
)
_RELEASE_RECOVERED = (
    "UPDATE paygate_idempotency SET state = 'unknown', lease_until = NULL, updated_at = ?,"
    " detail = COALESCE(detail, ?) WHERE key = ? AND owner = ? AND state = 'started'"
)
_SELECT_CHARGE = f"SELECT {_CHARGE_COLUMNS} FROM paygate_charges WHERE charge_id = ?"  # noqa: S608
_UPSERT_CHARGE = (
    f"INSERT OR REPLACE INTO paygate_charges ({_CHARGE_COLUMNS})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSITION = (
    "INSERT INTO paygate_transitions (charge_id, from_status, to_status, amount_refunded,"
    " source, observed_at, recorded_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

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


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SQLiteStore(Store):
    """A store in one SQLite file, shared by the threads and processes of one machine.

    >>> store = SQLiteStore("paygate.db")  # doctest: +SKIP
    >>> store = open_store("sqlite:///paygate.db")  # doctest: +SKIP
    """

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
        self._synchronous = synchronous.upper()
        self._busy_ms = max(0, int(busy_timeout / timedelta(milliseconds=1)))
        self._clock = clock
        self._local = threading.local()
        # Weak: when a thread ends, its thread-local connection is closed with it.
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self._closed = False
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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: the database write lock is held throughout."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT max(version) FROM paygate_schema_version").fetchone()
            version = row[0]
            if version is None:
                conn.execute(
                    "INSERT INTO paygate_schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                )
            elif version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the SQLite store {self.path!r} has schema version {version}; this "
                    f"paygate understands up to {SCHEMA_VERSION} (upgrade paygate)",
                    key="store",
                )

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # -- idempotency -------------------------------------------------------------

    def begin(
        self,
        key: str,
        *,
        account: str,
        operation: str,
        fingerprint: str,
        owner: str,
        lease: timedelta,
        now: datetime,
        charge_id: str | None = None,
    ) -> Begin:
        now = utc(now)
        now_us = to_micros(now)
        lease_until = now + lease
        lease_us = to_micros(lease_until)
        conn = self._conn()
        while True:
            # Replays, conflicts and live owners are answered from a plain read, which
            # takes no lock (WAL readers never wait); only a new key or a takeover writes.
            row = conn.execute(_SELECT_RECORD, (key,)).fetchone()
            if row is None:
                inserted = conn.execute(
                    _INSERT_STARTED,
                    (
                        key,
                        account,
                        operation,
                        fingerprint,
                        owner,
                        lease_us,
                        now_us,
                        now_us,
                        charge_id,
                    ),
                ).rowcount
                if inserted == 1:
                    record = IdempotencyRecord(
                        key,
                        account,
                        operation,
                        fingerprint,
                        "started",
                        owner,
                        lease_until,
                        1,
                        now,
                        now,
                        None,
                        charge_id,
                    )
                    return Begin(BeginOutcome.STARTED, record)
                continue  # someone inserted it meanwhile: read what they wrote
            current = _record(row)
            outcome = begin_decision(current, fingerprint, now, check_owner=True)
            if outcome is not None:
                return Begin(outcome, current)
            with self._write():
                row = conn.execute(_SELECT_RECORD, (key,)).fetchone()
                if row is None:
                    continue
                current = _record(row)
                outcome = begin_decision(current, fingerprint, now, check_owner=True)
                if outcome is not None:
                    return Begin(outcome, current)
                new_charge_id = current.charge_id if current.charge_id is not None else charge_id
                attempts = current.attempts + 1
                conn.execute(_TAKE_OVER, (owner, lease_us, attempts, now_us, new_charge_id, key))
            record = IdempotencyRecord(
                key,
                current.account,
                current.operation,
                fingerprint,
                "started",
                owner,
                lease_until,
                attempts,
                current.created_at,
                now,
                None,
                new_charge_id,
                current.provider_ref,
                current.detail,
            )
            return Begin(BeginOutcome.STARTED, record, recovering=True)

    def _finish(
        self,
        key: str,
        owner: str,
        state: RecordState,
        result: dict[str, Any] | None,
        provider_ref: str | None,
        detail: str | None,
    ) -> None:
        self._conn().execute(
            _FINISH,
            (
                state,
                to_micros(self._clock()),
                None if result is None else _dumps(result),
                provider_ref,
                detail,
                key,
                owner,
            ),
        )

    def complete(
        self, key: str, owner: str, result: dict[str, Any], *, provider_ref: str | None = None
    ) -> None:
        self._finish(key, owner, "completed", result, provider_ref, None)

    def fail(self, key: str, owner: str, error: dict[str, Any]) -> None:
        self._finish(key, owner, "failed", error, None, None)

    def mark_unknown(self, key: str, owner: str, detail: str) -> None:
        self._finish(key, owner, "unknown", None, None, detail)

    def release(self, key: str, owner: str) -> None:
        conn = self._conn()
        if conn.execute(_RELEASE_FRESH, (key, owner)).rowcount:
            return
        # Taken over earlier: an earlier attempt may have reached the provider, so the
        # record stays (as unknown) for the next `begin` to recover.
        conn.execute(
            _RELEASE_RECOVERED,
            (to_micros(self._clock()), RELEASED_AFTER_RECOVERY, key, owner),
        )

    def get(self, key: str) -> IdempotencyRecord | None:
        row = self._conn().execute(_SELECT_RECORD, (key,)).fetchone()
        return None if row is None else _record(row)

    def records(
        self, *, states: Iterable[RecordState] | None = None, account: str | None = None
    ) -> list[IdempotencyRecord]:
        query = f"SELECT {_IDEM_COLUMNS} FROM paygate_idempotency"  # noqa: S608
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            wanted = list(states)
            if not wanted:
                return []
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if account is not None:
            where.append("account = ?")
            params.append(account)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at, key"
        return [_record(row) for row in self._conn().execute(query, params)]

    def purge(self, *, older_than: datetime) -> int:
        cursor = self._conn().execute(
            "DELETE FROM paygate_idempotency"
            " WHERE state IN ('completed', 'failed') AND updated_at < ?",
            (to_micros(older_than),),
        )
        return cursor.rowcount

    # -- entity cache ------------------------------------------------------------

    def cache_get(self, key: str) -> Any | None:
        row = (
            self._conn().execute("SELECT value FROM paygate_cache WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else json.loads(row[0])

    def cache_put(self, key: str, value: Any) -> None:
        self._conn().execute(
            "INSERT INTO paygate_cache (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, _dumps(value)),
        )

    def cache_put_if_absent(self, key: str, value: Any) -> Any:
        text = _dumps(value)
        # RETURNING gives the row only when inserted; else read what is there. Both run
        # under the write lock so no cache_put can slip in between.
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT INTO paygate_cache (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, text),
            ).rowcount
            if inserted == 1:
                return json.loads(text)
            row = conn.execute("SELECT value FROM paygate_cache WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0])

    # -- webhook dedup -----------------------------------------------------------

    def claim_event(
        self, account: str, event_id: str, *, owner: str, lease: timedelta, now: datetime
    ) -> ClaimOutcome:
        now = utc(now)
        lease_us = to_micros(now + lease)
        conn = self._conn()
        now_us = to_micros(now)
        inserted = conn.execute(
            "INSERT INTO paygate_events (account, event_id, state, owner, lease_until,"
            " updated_at) VALUES (?, ?, 'processing', ?, ?, ?) ON CONFLICT DO NOTHING",
            (account, event_id, owner, lease_us, now_us),
        ).rowcount
        if inserted == 1:
            return ClaimOutcome.NEW
        with self._write():
            row = conn.execute(
                "SELECT state, owner, lease_until FROM paygate_events"
                " WHERE account = ? AND event_id = ?",
                (account, event_id),
            ).fetchone()
            if row is not None:
                outcome = claim_decision(
                    row[0],
                    row[1],
                    None if row[2] is None else from_micros(row[2]),
                    now,
                    check_owner=True,
                )
                if outcome is not None:
                    return outcome
            conn.execute(
                "INSERT INTO paygate_events (account, event_id, state, owner, lease_until,"
                " updated_at) VALUES (?, ?, 'processing', ?, ?, ?)"
                " ON CONFLICT (account, event_id) DO UPDATE SET state = 'processing',"
                " owner = excluded.owner, lease_until = excluded.lease_until,"
                " updated_at = excluded.updated_at",
                (account, event_id, owner, lease_us, now_us),
            )
        return ClaimOutcome.NEW

    def finish_event(self, account: str, event_id: str, owner: str) -> None:
        # Processed is a fact whoever finished it, even a claimer whose lease ran out.
        self._conn().execute(
            "INSERT INTO paygate_events (account, event_id, state, owner, lease_until,"
            " updated_at) VALUES (?, ?, 'done', ?, NULL, ?) ON CONFLICT (account, event_id)"
            " DO UPDATE SET state = 'done', lease_until = NULL, updated_at = excluded.updated_at",
            (account, event_id, owner, to_micros(self._clock())),
        )

    def release_event(self, account: str, event_id: str, owner: str) -> None:
        self._conn().execute(
            "DELETE FROM paygate_events"
            " WHERE account = ? AND event_id = ? AND owner = ? AND state = 'processing'",
            (account, event_id, owner),
        )

    # -- charge tracking ---------------------------------------------------------

    def record_charge(self, update: ChargeUpdate, *, now: datetime) -> ChargeRecord:
        now = utc(now)
        with self._write() as conn:
            return self._record_charge(conn, update, now)

    def complete_charge(
        self,
        key: str,
        owner: str,
        update: ChargeUpdate,
        *,
        now: datetime,
        provider_ref: str | None = None,
    ) -> ChargeRecord:
        now = utc(now)
        with self._write() as conn:
            record = self._record_charge(conn, update, now)
            result = _dumps(charge_view(update.charge_json, record))
            conn.execute(
                _FINISH,
                ("completed", to_micros(self._clock()), result, provider_ref, None, key, owner),
            )
        return record

    def _record_charge(
        self, conn: sqlite3.Connection, update: ChargeUpdate, now: datetime
    ) -> ChargeRecord:
        row = conn.execute(_SELECT_CHARGE, (update.charge_id,)).fetchone()
        current = None if row is None else _charge(row)
        record, applied = plan_charge(current, update, now)
        if record is current:
            return record
        conn.execute(
            _UPSERT_CHARGE,
            (
                record.charge_id,
                record.account,
                record.provider,
                record.provider_ref,
                record.method,
                record.status.value,
                record.amount,
                record.currency,
                record.amount_refunded,
                to_micros(record.created_at),
                to_micros(record.updated_at),
                to_micros(record.observed_at),
                None if record.charge_json is None else _dumps(record.charge_json),
            ),
        )
        if applied:
            conn.execute(
                _INSERT_TRANSITION,
                (
                    record.charge_id,
                    None if current is None else current.status.value,
                    record.status.value,
                    record.amount_refunded,
                    update.source,
                    to_micros(record.observed_at),
                    to_micros(now),
                    update.note,
                ),
            )
        return record

    def get_charge(self, charge_id: str) -> ChargeRecord | None:
        row = self._conn().execute(_SELECT_CHARGE, (charge_id,)).fetchone()
        return None if row is None else _charge(row)

    def find_charge(self, account: str, provider_ref: str) -> ChargeRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {_CHARGE_COLUMNS} FROM paygate_charges"  # noqa: S608
                " WHERE account = ? AND provider_ref = ? ORDER BY created_at DESC LIMIT 1",
                (account, provider_ref),
            )
            .fetchone()
        )
        return None if row is None else _charge(row)

    def charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        updated_before: datetime | None = None,
    ) -> list[ChargeRecord]:
        query = f"SELECT {_CHARGE_COLUMNS} FROM paygate_charges"  # noqa: S608
        where: list[str] = []
        params: list[Any] = []
        if account is not None:
            where.append("account = ?")
            params.append(account)
        if statuses is not None:
            wanted = [ChargeStatus(s).value for s in statuses]
            if not wanted:
                return []
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if updated_before is not None:
            where.append("updated_at < ?")
            params.append(to_micros(updated_before))
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY updated_at, charge_id"
        return [_charge(row) for row in self._conn().execute(query, params)]

    def history(self, charge_id: str) -> list[Transition]:
        rows = self._conn().execute(
            "SELECT charge_id, from_status, to_status, amount_refunded, source, observed_at,"
            " recorded_at, note FROM paygate_transitions WHERE charge_id = ? ORDER BY id",
            (charge_id,),
        )
        return [
            Transition(
                row[0],
                None if row[1] is None else ChargeStatus(row[1]),
                ChargeStatus(row[2]),
                row[3],
                row[4],
                from_micros(row[5]),
                from_micros(row[6]),
                row[7],
            )
            for row in rows
        ]


def _record(row: tuple[Any, ...]) -> IdempotencyRecord:
    return IdempotencyRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        None if row[6] is None else from_micros(row[6]),
        row[7],
        from_micros(row[8]),
        from_micros(row[9]),
        _loads(row[10]),
        row[11],
        row[12],
        row[13],
    )


def _charge(row: tuple[Any, ...]) -> ChargeRecord:
    return ChargeRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        ChargeStatus(row[5]),
        row[6],
        row[7],
        row[8],
        from_micros(row[9]),
        from_micros(row[10]),
        from_micros(row[11]),
        _loads(row[12]),
    )
