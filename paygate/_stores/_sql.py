"""The SQL store: one algorithm for SQLite and PostgreSQL over a small dialect seam.

`SQLStore` holds everything the two SQL stores do alike: the schema, the queries, and
how each operation reads, decides (with the rules of `._common`) and writes. A dialect
(`SQLiteStore`, `PostgresStore`) supplies only what differs:

* the SQL text: column types (``_types``), table names (``_table``), the parameter
  marker (``_param``) and the suffix that locks a row read for a change (``_lock``);
* encoding: times (``_time_out``, ``_time_in``) and JSON (``_json_out``, ``_json_in``);
* connections and locking: ``_connection`` (a thread's connection or one from a pool),
  ``_transaction`` (``BEGIN IMMEDIATE`` or a row-locking transaction) and
  ``_prepare_schema`` (what runs before the tables are created);
* two decisions of the algorithm: ``_read_first`` (answer `begin` from a plain read
  before trying to insert, where a failed insert costs the database write lock) and
  ``_local_owners`` (owners share this host, so a dead owner process can be seen).

`begin` and `claim_event` decide twice: once from a plain read (replays, conflicts and
live owners need no lock), and again inside `_transaction` on the row read with
``_lock``, before they take a record over. `record_charge` reads the charge with
``_lock`` inside `_transaction`, so updates to one charge apply one after the other.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

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
    claim_decision,
    plan_charge,
    require_snapshot,
    utc,
)

__all__ = ["SCHEMA_VERSION", "SQLStore"]

#: 2 added ``lookup`` to the idempotency table (version 1 kept it in ``detail``'s text).
SCHEMA_VERSION = 2

TABLES = {
    "version": "paygate_schema_version",
    "idem": "paygate_idempotency",
    "cache": "paygate_cache",
    "events": "paygate_events",
    "charges": "paygate_charges",
    "transitions": "paygate_transitions",
}

_COLUMNS = {
    "idem_columns": "key, account, operation, fingerprint, state, owner, lease_until,"
    " attempts, created_at, updated_at, result, charge_id, provider_ref, detail, lookup",
    "charge_columns": "charge_id, account, provider, provider_ref, method, status, amount,"
    " currency, amount_refunded, created_at, updated_at, observed_at, charge_json",
}

# Column types come from the dialect: {text}, {int}, {bigint}, {time}, {json}, {serial}
# (an identity primary key) and {rowid} (table options).
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {version} (
        version {int} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {idem} (
        key {text} PRIMARY KEY,
        account {text} NOT NULL,
        operation {text} NOT NULL,
        fingerprint {text} NOT NULL,
        state {text} NOT NULL,
        owner {text},
        lease_until {time},
        attempts {int} NOT NULL,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        result {json},
        charge_id {text},
        provider_ref {text},
        detail {text},
        lookup {json}){rowid}""",
    """CREATE INDEX IF NOT EXISTS paygate_idempotency_state
        ON {idem} (state, updated_at)""",
    """CREATE TABLE IF NOT EXISTS {cache} (
        key {text} PRIMARY KEY,
        value {json} NOT NULL){rowid}""",
    """CREATE TABLE IF NOT EXISTS {events} (
        account {text} NOT NULL,
        event_id {text} NOT NULL,
        state {text} NOT NULL,
        owner {text},
        lease_until {time},
        updated_at {time} NOT NULL,
        PRIMARY KEY (account, event_id)){rowid}""",
    """CREATE TABLE IF NOT EXISTS {charges} (
        charge_id {text} PRIMARY KEY,
        account {text} NOT NULL,
        provider {text} NOT NULL,
        provider_ref {text} NOT NULL,
        method {text} NOT NULL,
        status {text} NOT NULL,
        amount {bigint} NOT NULL,
        currency {text} NOT NULL,
        amount_refunded {bigint} NOT NULL,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        observed_at {time} NOT NULL,
        charge_json {json}){rowid}""",
    """CREATE INDEX IF NOT EXISTS paygate_charges_ref
        ON {charges} (account, provider_ref)""",
    """CREATE INDEX IF NOT EXISTS paygate_charges_updated
        ON {charges} (updated_at)""",
    """CREATE TABLE IF NOT EXISTS {transitions} (
        id {serial},
        charge_id {text} NOT NULL,
        from_status {text},
        to_status {text} NOT NULL,
        amount_refunded {bigint} NOT NULL,
        source {text} NOT NULL,
        observed_at {time} NOT NULL,
        recorded_at {time} NOT NULL,
        note {text})""",
    """CREATE INDEX IF NOT EXISTS paygate_transitions_charge
        ON {transitions} (charge_id, id)""",
)


class Cursor(Protocol):
    """What the algorithm uses of a DB-API cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the algorithm uses of a connection (``sqlite3`` and ``psycopg`` alike)."""

    def execute(self, query: str, params: Sequence[Any] = ..., /) -> Cursor: ...


C = TypeVar("C", bound=Connection)


class _Queries:
    """Every query of the store, rendered once for a dialect.

    Templates name tables and column lists in braces and parameters as ``?``; ``render``
    fills in the dialect's names and marker. ``lock`` ends a read that decides a change.
    """

    def __init__(self, render: Callable[[str], str], lock: str) -> None:
        self.schema = [render(statement) for statement in _SCHEMA]
        self.version = render("SELECT max(version) FROM {version}")
        self.set_version = render("INSERT INTO {version} (version) VALUES (?)")
        self.add_lookup = render("ALTER TABLE {idem} ADD COLUMN lookup {json}")
        self.unknown_details = render(
            "SELECT key, detail FROM {idem} WHERE state = 'unknown' AND detail IS NOT NULL"
        )
        self.move_lookup = render("UPDATE {idem} SET detail = ?, lookup = ? WHERE key = ?")
        self.insert_started = render(
            "INSERT INTO {idem} (key, account, operation, fingerprint, state, owner,"
            " lease_until, attempts, created_at, updated_at, charge_id, lookup)"
            " VALUES (?, ?, ?, ?, 'started', ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
        )
        self.record = render("SELECT {idem_columns} FROM {idem} WHERE key = ?")
        self.lock_record = self.record + lock
        self.take_over = render(
            "UPDATE {idem} SET state = 'started', owner = ?, lease_until = ?, attempts = ?,"
            " updated_at = ?, result = NULL, charge_id = ?, lookup = COALESCE(lookup, ?)"
            " WHERE key = ?"
        )
        self.finish = render(
            "UPDATE {idem} SET state = ?, lease_until = NULL, updated_at = ?, result = ?,"
            " provider_ref = COALESCE(?, provider_ref), detail = COALESCE(?, detail),"
            " lookup = COALESCE(?, lookup) WHERE key = ? AND owner = ? AND state = 'started'"
        )
        self.release_fresh = render(
            "DELETE FROM {idem} WHERE key = ? AND owner = ? AND state = 'started' AND attempts = 1"
        )
        self.release_recovered = render(
            "UPDATE {idem} SET state = 'unknown', lease_until = NULL, updated_at = ?,"
            " detail = COALESCE(detail, ?) WHERE key = ? AND owner = ? AND state = 'started'"
        )
        self.records = render("SELECT {idem_columns} FROM {idem}")
        self.purge = render(
            "DELETE FROM {idem} WHERE state IN ('completed', 'failed') AND updated_at < ?"
        )
        self.cache_get = render("SELECT value FROM {cache} WHERE key = ?")
        self.cache_put = render(
            "INSERT INTO {cache} (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        self.cache_add = render(
            "INSERT INTO {cache} (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        )
        self.event_insert = render(
            "INSERT INTO {events} (account, event_id, state, owner, lease_until, updated_at)"
            " VALUES (?, ?, 'processing', ?, ?, ?) ON CONFLICT (account, event_id) DO NOTHING"
        )
        self.event = render(
            "SELECT state, owner, lease_until FROM {events} WHERE account = ? AND event_id = ?"
        )
        self.lock_event = self.event + lock
        self.event_take = render(
            "UPDATE {events} SET state = 'processing', owner = ?, lease_until = ?,"
            " updated_at = ? WHERE account = ? AND event_id = ?"
        )
        self.event_finish = render(
            "INSERT INTO {events} (account, event_id, state, owner, lease_until, updated_at)"
            " VALUES (?, ?, 'done', ?, NULL, ?) ON CONFLICT (account, event_id) DO UPDATE"
            " SET state = 'done', lease_until = NULL, updated_at = excluded.updated_at"
        )
        self.event_release = render(
            "DELETE FROM {events} WHERE account = ? AND event_id = ? AND owner = ?"
            " AND state = 'processing'"
        )
        self.charge = render("SELECT {charge_columns} FROM {charges} WHERE charge_id = ?")
        self.lock_charge = self.charge + lock
        self.charge_insert = render(
            "INSERT INTO {charges} ({charge_columns})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (charge_id) DO NOTHING"
        )
        self.charge_update = render(
            "UPDATE {charges} SET provider_ref = ?, status = ?, amount_refunded = ?,"
            " updated_at = ?, observed_at = ?, charge_json = ? WHERE charge_id = ?"
        )
        self.charge_find = render(
            "SELECT {charge_columns} FROM {charges} WHERE account = ? AND provider_ref = ?"
            " ORDER BY created_at DESC LIMIT 1"
        )
        self.charges = render("SELECT {charge_columns} FROM {charges}")
        self.transition = render(
            "INSERT INTO {transitions} (charge_id, from_status, to_status, amount_refunded,"
            " source, observed_at, recorded_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.history = render(
            "SELECT charge_id, from_status, to_status, amount_refunded, source, observed_at,"
            " recorded_at, note FROM {transitions} WHERE charge_id = ? ORDER BY id"
        )


class SQLStore(Store, Generic[C]):
    """The store algorithm on SQL tables; a subclass is a dialect (see the module doc).

    A subclass sets the class attributes below, implements the abstract methods, sets
    ``_clock`` and calls `_build_queries` before `_create_schema`.
    """

    # -- the dialect seam ----------------------------------------------------------

    #: Column types of the schema: text, int, bigint, time, json, serial, rowid.
    _types: ClassVar[Mapping[str, str]]
    #: The parameter marker of the driver ("?" or "%s").
    _param: ClassVar[str] = "?"
    #: Appended to a read that decides a change inside `_transaction` (" FOR UPDATE").
    _lock: ClassVar[str] = ""
    #: Answer `begin` from a plain read before trying the insert.
    _read_first: ClassVar[bool] = False
    #: Owners live on this host: a ``host:pid`` owner whose process is gone has expired.
    _local_owners: ClassVar[bool] = False
    #: How errors name the store ("the SQLite store 'x.db'").
    _described: str

    _clock: Callable[[], datetime]
    _sql: _Queries

    @abstractmethod
    def _table(self, name: str) -> str:
        """The quoted (and qualified) name of table ``name`` in SQL text."""

    @abstractmethod
    def _connection(self) -> AbstractContextManager[C]:
        """A connection to use for one operation (autocommit outside `_transaction`)."""

    @abstractmethod
    def _transaction(self, conn: C) -> AbstractContextManager[object]:
        """A transaction on ``conn`` in which reads with ``_lock`` hold what they read."""

    def _prepare_schema(self, conn: C) -> None:
        """Runs inside the schema transaction before the tables are created."""

    # Encoding of times and JSON; by default the driver adapts the values itself.

    @staticmethod
    def _time_out(value: datetime) -> Any:
        return value

    @staticmethod
    def _time_in(value: Any) -> datetime:
        return value  # type: ignore[no-any-return]

    @staticmethod
    def _json_out(value: Any) -> Any:
        return value

    @staticmethod
    def _json_in(value: Any) -> Any:
        return value

    # -- setup ---------------------------------------------------------------------

    def _build_queries(self) -> None:
        names = {key: self._table(name) for key, name in TABLES.items()}
        names.update(_COLUMNS)
        names.update(self._types)
        param = self._param

        def render(template: str) -> str:
            text = template.format(**names)
            return text if param == "?" else text.replace("?", param)

        self._sql = _Queries(render, self._lock)

    def _create_schema(self, conn: C) -> None:
        with self._transaction(conn):
            self._prepare_schema(conn)
            for statement in self._sql.schema:
                conn.execute(statement)
            row = conn.execute(self._sql.version).fetchone()
            version = None if row is None else row[0]
            if version is None:
                conn.execute(self._sql.set_version, (SCHEMA_VERSION,))
            elif version == 1:
                self._upgrade_from_1(conn)
                conn.execute(self._sql.set_version, (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self._described} has schema version {version}; this paygate "
                    f"understands up to {SCHEMA_VERSION} (upgrade paygate)",
                    key="store",
                )

    def _upgrade_from_1(self, conn: C) -> None:
        """Version 1 kept an unknown key's lookup data in ``detail``, as JSON text
        (``{"detail": why, **lookup}``): move it to the ``lookup`` column."""
        q = self._sql
        conn.execute(q.add_lookup)
        for key, text in conn.execute(q.unknown_details).fetchall():
            try:
                data = json.loads(text)
            except ValueError:
                continue  # words, not JSON: nothing to move
            if not isinstance(data, dict):
                continue
            why = data.pop("detail", None)
            conn.execute(
                q.move_lookup,
                (
                    str(why) if why is not None else None,
                    self._json_out(data) if data else None,
                    key,
                ),
            )

    def _where(self, query: str, where: list[str], order: str) -> str:
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY " + order
        return query if self._param == "?" else query.replace("?", self._param)

    # -- idempotency -----------------------------------------------------------------

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
        lookup: dict[str, Any] | None = None,
    ) -> Begin:
        now = utc(now)
        lease_until = now + lease
        lookup_db = self._json_or_none(lookup)
        now_db = self._time_out(now)
        lease_db = self._time_out(lease_until)
        q = self._sql
        check_owner = self._local_owners
        with self._connection() as conn:
            while True:
                # Replays, conflicts and live owners are answered from a plain read; only
                # a new key inserts, and only a takeover locks the row and decides again.
                row = conn.execute(q.record, (key,)).fetchone() if self._read_first else None
                if row is None:
                    inserted = conn.execute(
                        q.insert_started,
                        (
                            key,
                            account,
                            operation,
                            fingerprint,
                            owner,
                            lease_db,
                            now_db,
                            now_db,
                            charge_id,
                            lookup_db,
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
                            lookup=lookup,
                        )
                        return Begin(BeginOutcome.STARTED, record)
                    row = conn.execute(q.record, (key,)).fetchone()
                    if row is None:
                        continue  # released meanwhile: try to insert again
                current = self._record(row)
                outcome = begin_decision(current, fingerprint, now, check_owner=check_owner)
                if outcome is not None:
                    return Begin(outcome, current)
                with self._transaction(conn):
                    row = conn.execute(q.lock_record, (key,)).fetchone()
                    if row is None:
                        continue
                    current = self._record(row)
                    outcome = begin_decision(current, fingerprint, now, check_owner=check_owner)
                    if outcome is not None:
                        return Begin(outcome, current)
                    new_charge_id = (
                        current.charge_id if current.charge_id is not None else charge_id
                    )
                    attempts = current.attempts + 1
                    conn.execute(
                        q.take_over,
                        (owner, lease_db, attempts, now_db, new_charge_id, lookup_db, key),
                    )
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
                    current.lookup if current.lookup is not None else lookup,
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
        lookup: dict[str, Any] | None = None,
    ) -> None:
        with self._connection() as conn:
            conn.execute(
                self._sql.finish,
                (
                    state,
                    self._time_out(self._clock()),
                    self._json_or_none(result),
                    provider_ref,
                    detail,
                    self._json_or_none(lookup),
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

    def mark_unknown(
        self, key: str, owner: str, detail: str, *, lookup: dict[str, Any] | None = None
    ) -> None:
        self._finish(key, owner, "unknown", None, None, detail, lookup)

    def release(self, key: str, owner: str) -> None:
        with self._connection() as conn:
            if conn.execute(self._sql.release_fresh, (key, owner)).rowcount:
                return
            # Taken over earlier: an earlier attempt may have reached the provider, so
            # the record stays (as unknown) for the next `begin` to recover.
            conn.execute(
                self._sql.release_recovered,
                (self._time_out(self._clock()), RELEASED_AFTER_RECOVERY, key, owner),
            )

    def get(self, key: str) -> IdempotencyRecord | None:
        with self._connection() as conn:
            row = conn.execute(self._sql.record, (key,)).fetchone()
        return None if row is None else self._record(row)

    def records(
        self, *, states: Iterable[RecordState] | None = None, account: str | None = None
    ) -> list[IdempotencyRecord]:
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
        query = self._where(self._sql.records, where, "created_at, key")
        with self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [self._record(row) for row in rows]

    def purge(self, *, older_than: datetime) -> int:
        with self._connection() as conn:
            return conn.execute(self._sql.purge, (self._time_out(utc(older_than)),)).rowcount

    # -- entity cache ----------------------------------------------------------------

    def cache_get(self, key: str) -> Any | None:
        with self._connection() as conn:
            row = conn.execute(self._sql.cache_get, (key,)).fetchone()
        return None if row is None else self._json_in(row[0])

    def cache_put(self, key: str, value: Any) -> None:
        with self._connection() as conn:
            conn.execute(self._sql.cache_put, (key, self._json_out(value)))

    def cache_put_if_absent(self, key: str, value: Any) -> Any:
        with self._connection() as conn, self._transaction(conn):
            # The unique key lets one concurrent caller insert; the others wait for it and
            # then read its value, in the same transaction so no cache_put slips between.
            if conn.execute(self._sql.cache_add, (key, self._json_out(value))).rowcount == 1:
                return value
            row = conn.execute(self._sql.cache_get, (key,)).fetchone()
        # Cache entries are never deleted, so a conflicting row is there to read.
        assert row is not None
        return self._json_in(row[0])

    # -- webhook dedup ---------------------------------------------------------------

    def claim_event(
        self, account: str, event_id: str, *, owner: str, lease: timedelta, now: datetime
    ) -> ClaimOutcome:
        now = utc(now)
        now_db = self._time_out(now)
        lease_db = self._time_out(now + lease)
        q = self._sql
        check_owner = self._local_owners
        ident = (account, event_id)
        with self._connection() as conn:
            while True:
                inserted = conn.execute(q.event_insert, (*ident, owner, lease_db, now_db))
                if inserted.rowcount == 1:
                    return ClaimOutcome.NEW
                row = conn.execute(q.event, ident).fetchone()
                if row is None:
                    continue  # released meanwhile: try to insert again
                outcome = self._claim_decision(row, now, check_owner)
                if outcome is not None:
                    return outcome
                with self._transaction(conn):
                    row = conn.execute(q.lock_event, ident).fetchone()
                    if row is None:
                        continue
                    outcome = self._claim_decision(row, now, check_owner)
                    if outcome is not None:
                        return outcome
                    conn.execute(q.event_take, (owner, lease_db, now_db, *ident))
                return ClaimOutcome.NEW

    def _claim_decision(
        self, row: Sequence[Any], now: datetime, check_owner: bool
    ) -> ClaimOutcome | None:
        lease_until = None if row[2] is None else self._time_in(row[2])
        return claim_decision(row[0], row[1], lease_until, now, check_owner=check_owner)

    def finish_event(self, account: str, event_id: str, owner: str) -> None:
        # Processed is a fact whoever finished it, even a claimer whose lease ran out.
        with self._connection() as conn:
            conn.execute(
                self._sql.event_finish,
                (account, event_id, owner, self._time_out(self._clock())),
            )

    def release_event(self, account: str, event_id: str, owner: str) -> None:
        with self._connection() as conn:
            conn.execute(self._sql.event_release, (account, event_id, owner))

    # -- charge tracking -------------------------------------------------------------

    def record_charge(self, update: ChargeUpdate, *, now: datetime) -> ChargeRecord:
        now = utc(now)
        with self._connection() as conn, self._transaction(conn):
            return self._record_charge(conn, update, now)

    def complete_charge(
        self,
        key: str,
        owner: str,
        update: ChargeUpdate,
        *,
        now: datetime,
        provider_ref: str | None = None,
        result: Callable[[ChargeRecord], dict[str, Any]],
    ) -> ChargeRecord:
        require_snapshot(update)
        now = utc(now)
        with self._connection() as conn, self._transaction(conn):
            record = self._record_charge(conn, update, now)
            kept = self._json_out(result(record))
            conn.execute(
                self._sql.finish,
                (
                    "completed",
                    self._time_out(self._clock()),
                    kept,
                    provider_ref,
                    None,
                    None,
                    key,
                    owner,
                ),
            )
        return record

    def _record_charge(self, conn: C, update: ChargeUpdate, now: datetime) -> ChargeRecord:
        """Apply ``update`` under the charge's row lock (inside `_transaction`)."""
        q = self._sql
        out = self._time_out
        row = conn.execute(q.lock_charge, (update.charge_id,)).fetchone()
        if row is None:
            record, _ = plan_charge(None, update, now)
            inserted = conn.execute(
                q.charge_insert,
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
                    out(record.created_at),
                    out(record.updated_at),
                    out(record.observed_at),
                    self._json_or_none(record.charge_json),
                ),
            ).rowcount
            if inserted == 1:
                self._transition(conn, None, record, update, now)
                return record
            # Another instance created it meanwhile: lock it and apply on top.
            row = conn.execute(q.lock_charge, (update.charge_id,)).fetchone()
            assert row is not None  # charges are never deleted
        current = self._charge(row)
        record, applied = plan_charge(current, update, now)
        if record is current:
            return record
        conn.execute(
            q.charge_update,
            (
                record.provider_ref,
                record.status.value,
                record.amount_refunded,
                out(record.updated_at),
                out(record.observed_at),
                self._json_or_none(record.charge_json),
                record.charge_id,
            ),
        )
        if applied:
            self._transition(conn, current.status, record, update, now)
        return record

    def _transition(
        self,
        conn: C,
        from_status: ChargeStatus | None,
        record: ChargeRecord,
        update: ChargeUpdate,
        now: datetime,
    ) -> None:
        conn.execute(
            self._sql.transition,
            (
                record.charge_id,
                None if from_status is None else from_status.value,
                record.status.value,
                record.amount_refunded,
                update.source,
                self._time_out(record.observed_at),
                self._time_out(now),
                update.note,
            ),
        )

    def get_charge(self, charge_id: str) -> ChargeRecord | None:
        with self._connection() as conn:
            row = conn.execute(self._sql.charge, (charge_id,)).fetchone()
        return None if row is None else self._charge(row)

    def find_charge(self, account: str, provider_ref: str) -> ChargeRecord | None:
        with self._connection() as conn:
            row = conn.execute(self._sql.charge_find, (account, provider_ref)).fetchone()
        return None if row is None else self._charge(row)

    def charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        updated_before: datetime | None = None,
    ) -> list[ChargeRecord]:
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
            params.append(self._time_out(utc(updated_before)))
        query = self._where(self._sql.charges, where, "updated_at, charge_id")
        with self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [self._charge(row) for row in rows]

    def history(self, charge_id: str) -> list[Transition]:
        with self._connection() as conn:
            rows = conn.execute(self._sql.history, (charge_id,)).fetchall()
        time_in = self._time_in
        return [
            Transition(
                row[0],
                None if row[1] is None else ChargeStatus(row[1]),
                ChargeStatus(row[2]),
                row[3],
                row[4],
                time_in(row[5]),
                time_in(row[6]),
                row[7],
            )
            for row in rows
        ]

    # -- rows ------------------------------------------------------------------------

    def _json_or_none(self, value: Any) -> Any:
        return None if value is None else self._json_out(value)

    def _record(self, row: Sequence[Any]) -> IdempotencyRecord:
        time_in = self._time_in
        return IdempotencyRecord(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            None if row[6] is None else time_in(row[6]),
            row[7],
            time_in(row[8]),
            time_in(row[9]),
            None if row[10] is None else self._json_in(row[10]),
            row[11],
            row[12],
            row[13],
            None if row[14] is None else self._json_in(row[14]),
        )

    def _charge(self, row: Sequence[Any]) -> ChargeRecord:
        time_in = self._time_in
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
            time_in(row[9]),
            time_in(row[10]),
            time_in(row[11]),
            None if row[12] is None else self._json_in(row[12]),
        )
