"""``postgresql://...``: the store for several application instances (psycopg 3).

* Connections come from a `psycopg_pool.ConnectionPool` in autocommit mode; a
  read-modify-write opens an explicit transaction.
* `begin`, `claim_event` and `cache_put_if_absent` first try ``INSERT ... ON CONFLICT
  DO NOTHING``: the unique key makes exactly one concurrent caller win. A caller that
  lost reads the row; only a possible takeover then re-reads it ``FOR UPDATE`` inside a
  transaction and decides again under the row lock.
* `record_charge` locks the charge row (``SELECT ... FOR UPDATE``), so updates to one
  charge are applied one after the other, from any instance.
* Owners on other machines cannot be probed, so a started record is taken over only when
  its lease has run out (or it was marked unknown); choose leases longer than the
  slowest provider call.
* Tables are named ``paygate_*``, in the schema given by ``?schema=NAME`` (created when
  missing) or else the connection's default; they are created on open, under an
  advisory lock so instances starting together do not race.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .._errors import ConfigurationError
from .._models import ChargeStatus
from .._redact import register_secret
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
    plan_charge,
    utc,
    utcnow,
)

__all__ = ["PostgresStore"]

SCHEMA_VERSION = 1

# Any fixed number: serialises schema creation between instances opening together.
_SCHEMA_LOCK = 0x70617967  # "payg"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_OPTIONS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout", "prepare_threshold")
# libpq waits for ever by default; an unreachable server should fail the open instead.
_DEFAULT_CONNECT_TIMEOUT = "10"

_IDEM_COLUMNS = (
    "key, account, operation, fingerprint, state, owner, lease_until, attempts, "
    "created_at, updated_at, result, charge_id, provider_ref, detail"
)
_CHARGE_COLUMNS = (
    "charge_id, account, provider, provider_ref, method, status, amount, currency, "
    "amount_refunded, created_at, updated_at, observed_at, charge_json"
)


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {version} (
        version integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {idem} (
        key text PRIMARY KEY,
        account text NOT NULL,
        operation text NOT NULL,
        fingerprint text NOT NULL,
        state text NOT NULL,
        owner text,
        lease_until timestamptz,
        attempts integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        result jsonb,
        charge_id text,
        provider_ref text,
        detail text)""",
    """CREATE INDEX IF NOT EXISTS paygate_idempotency_state
        ON {idem} (state, updated_at)""",
    """CREATE TABLE IF NOT EXISTS {cache} (
        key text PRIMARY KEY,
        value jsonb NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {events} (
        account text NOT NULL,
        event_id text NOT NULL,
        state text NOT NULL,
        owner text,
        lease_until timestamptz,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (account, event_id))""",
    """CREATE TABLE IF NOT EXISTS {charges} (
        charge_id text PRIMARY KEY,
        account text NOT NULL,
        provider text NOT NULL,
        provider_ref text NOT NULL,
        method text NOT NULL,
        status text NOT NULL,
        amount bigint NOT NULL,
        currency text NOT NULL,
        amount_refunded bigint NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        observed_at timestamptz NOT NULL,
        charge_json jsonb)""",
    """CREATE INDEX IF NOT EXISTS paygate_charges_ref
        ON {charges} (account, provider_ref)""",
    """CREATE INDEX IF NOT EXISTS paygate_charges_updated
        ON {charges} (updated_at)""",
    """CREATE TABLE IF NOT EXISTS {transitions} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        charge_id text NOT NULL,
        from_status text,
        to_status text NOT NULL,
        amount_refunded bigint NOT NULL,
        source text NOT NULL,
        observed_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL,
        note text)""",
    """CREATE INDEX IF NOT EXISTS paygate_transitions_charge
        ON {transitions} (charge_id, id)""",
)


def _renderer(schema: str | None) -> Callable[[str], str]:
    """Fill the table names (quoted, schema-qualified) into a query template once."""

    def table(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name) if schema else sql.Identifier(name)

    names = {
        "version": table("paygate_schema_version"),
        "idem": table("paygate_idempotency"),
        "cache": table("paygate_cache"),
        "events": table("paygate_events"),
        "charges": table("paygate_charges"),
        "transitions": table("paygate_transitions"),
        "idem_columns": sql.SQL(_IDEM_COLUMNS),
        "charge_columns": sql.SQL(_CHARGE_COLUMNS),
    }

    def render(template: str) -> str:
        return sql.SQL(template).format(**names).as_string()

    return render


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:***@{netloc[2]}"))


class PostgresStore(Store):
    """A store in PostgreSQL, shared by every instance of the application.

    >>> store = open_store("postgresql://app:secret@db.internal/shop?schema=paygate")
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for name, value in query:
            if name == "password":
                register_secret(value)
        if parts.password:
            register_secret(parts.password)
            register_secret(unquote(parts.password))
        shown = [(k, "***" if k == "password" else v) for k, v in query]
        self._url = _masked(urlunsplit(parts._replace(query=urlencode(shown, safe="*"))))
        options = {k: v for k, v in query if k in _OPTIONS}
        rest = [(k, v) for k, v in query if k not in _OPTIONS]
        if not any(k == "connect_timeout" for k, _ in rest):
            rest.append(("connect_timeout", _DEFAULT_CONNECT_TIMEOUT))
        conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))

        schema = options.get("schema")
        if schema is not None and not _IDENTIFIER.match(schema):
            raise ConfigurationError(
                "schema must be a plain identifier (letters, digits, underscore)", key="store"
            )
        self.schema = schema
        try:
            min_size = int(options.get("pool_min_size", "1"))
            max_size = int(options.get("pool_max_size", "10"))
            timeout = float(options.get("pool_timeout", "30"))
        except ValueError:
            raise ConfigurationError(
                "pool_min_size and pool_max_size must be whole numbers, pool_timeout seconds",
                key="store",
            ) from None
        if min_size < 0 or max_size < max(1, min_size) or timeout <= 0:
            raise ConfigurationError(
                "need 0 <= pool_min_size <= pool_max_size, pool_max_size >= 1, pool_timeout > 0",
                key="store",
            )
        # Server-side prepared statements speed up the hot queries; a transaction-mode
        # pooler older than PgBouncer 1.21 cannot keep them: ?prepare_threshold=none.
        threshold_text = options.get("prepare_threshold", "5").lower()
        prepare_threshold: int | None
        if threshold_text in ("none", "off", ""):
            prepare_threshold = None
        elif threshold_text.isdigit():
            prepare_threshold = int(threshold_text)
        else:
            raise ConfigurationError(
                "prepare_threshold must be a whole number or none", key="store"
            )
        connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": prepare_threshold,
        }
        self._clock = clock
        self._build_sql(schema)
        try:
            with psycopg.connect(conninfo, **connect_kwargs) as conn:
                self._create_schema(conn)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot open the PostgreSQL store {self._url}: {exc}", key="store"
            ) from exc
        self._pool: ConnectionPool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs=connect_kwargs,
            configure=_configure,
            name="paygate-store",
            open=True,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._url!r})"

    # -- setup -------------------------------------------------------------------

    def _build_sql(self, schema: str | None) -> None:
        render = _renderer(schema)
        self._schema_statements = [render(statement) for statement in _SCHEMA]
        self._sql_version = render("SELECT max(version) FROM {version}")
        self._sql_set_version = render("INSERT INTO {version} (version) VALUES (%s)")
        self._sql_insert_started = render(
            "INSERT INTO {idem} (key, account, operation, fingerprint, state, owner,"
            " lease_until, attempts, created_at, updated_at, charge_id)"
            " VALUES (%s, %s, %s, %s, 'started', %s, %s, 1, %s, %s, %s)"
            " ON CONFLICT (key) DO NOTHING"
        )
        self._sql_select_record = render("SELECT {idem_columns} FROM {idem} WHERE key = %s")
        self._sql_lock_record = self._sql_select_record + " FOR UPDATE"
        self._sql_take_over = render(
            "UPDATE {idem} SET state = 'started', owner = %s, lease_until = %s,"
            " attempts = %s, updated_at = %s, result = NULL, charge_id = %s WHERE key = %s"
        )
        self._sql_finish = render(
            "UPDATE {idem} SET state = %s, lease_until = NULL, updated_at = %s, result = %s,"
            " provider_ref = COALESCE(%s, provider_ref), detail = COALESCE(%s, detail)"
            " WHERE key = %s AND owner = %s AND state = 'started'"
        )
        self._sql_release_fresh = render(
            "DELETE FROM {idem} WHERE key = %s AND owner = %s AND state = 'started'"
            " AND attempts = 1"
        )
        self._sql_release_recovered = render(
            "UPDATE {idem} SET state = 'unknown', lease_until = NULL, updated_at = %s,"
            " detail = COALESCE(detail, %s) WHERE key = %s AND owner = %s AND state = 'started'"
        )
        self._sql_records = render("SELECT {idem_columns} FROM {idem}")
        self._sql_purge = render(
            "DELETE FROM {idem} WHERE state IN ('completed', 'failed') AND updated_at < %s"
        )
        self._sql_cache_get = render("SELECT value FROM {cache} WHERE key = %s")
        self._sql_cache_put = render(
            "INSERT INTO {cache} (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        self._sql_cache_add = render(
            "INSERT INTO {cache} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
        )
        self._sql_event_insert = render(
            "INSERT INTO {events} (account, event_id, state, owner, lease_until, updated_at)"
            " VALUES (%s, %s, 'processing', %s, %s, %s)"
            " ON CONFLICT (account, event_id) DO NOTHING"
        )
        self._sql_event_select = render(
            "SELECT state, owner, lease_until FROM {events} WHERE account = %s AND event_id = %s"
        )
        self._sql_event_lock = self._sql_event_select + " FOR UPDATE"
        self._sql_event_take = render(
            "UPDATE {events} SET state = 'processing', owner = %s, lease_until = %s,"
            " updated_at = %s WHERE account = %s AND event_id = %s"
        )
        self._sql_event_finish = render(
            "INSERT INTO {events} (account, event_id, state, owner, lease_until, updated_at)"
            " VALUES (%s, %s, 'done', %s, NULL, %s) ON CONFLICT (account, event_id) DO UPDATE"
            " SET state = 'done', lease_until = NULL, updated_at = excluded.updated_at"
        )
        self._sql_event_release = render(
            "DELETE FROM {events} WHERE account = %s AND event_id = %s AND owner = %s"
            " AND state = 'processing'"
        )
        self._sql_charge_select = render(
            "SELECT {charge_columns} FROM {charges} WHERE charge_id = %s"
        )
        self._sql_charge_lock = self._sql_charge_select + " FOR UPDATE"
        self._sql_charge_insert = render(
            "INSERT INTO {charges} ({charge_columns})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (charge_id) DO NOTHING"
        )
        self._sql_charge_update = render(
            "UPDATE {charges} SET provider_ref = %s, status = %s, amount_refunded = %s,"
            " updated_at = %s, observed_at = %s, charge_json = %s WHERE charge_id = %s"
        )
        self._sql_charge_find = render(
            "SELECT {charge_columns} FROM {charges} WHERE account = %s AND provider_ref = %s"
            " ORDER BY created_at DESC LIMIT 1"
        )
        self._sql_charges = render("SELECT {charge_columns} FROM {charges}")
        self._sql_transition_insert = render(
            "INSERT INTO {transitions} (charge_id, from_status, to_status, amount_refunded,"
            " source, observed_at, recorded_at, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self._sql_history = render(
            "SELECT charge_id, from_status, to_status, amount_refunded, source, observed_at,"
            " recorded_at, note FROM {transitions} WHERE charge_id = %s ORDER BY id"
        )

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            if self.schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            for statement in self._schema_statements:
                conn.execute(statement)
            row = conn.execute(self._sql_version).fetchone()
            version = None if row is None else row[0]
            if version is None:
                conn.execute(self._sql_set_version, (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the PostgreSQL store has schema version {version}; this paygate "
                    f"understands up to {SCHEMA_VERSION} (upgrade paygate)",
                    key="store",
                )

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            yield conn

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
        lease_until = now + lease
        with self._conn() as conn:
            while True:
                cursor = conn.execute(
                    self._sql_insert_started,
                    (key, account, operation, fingerprint, owner, lease_until, now, now, charge_id),
                )
                if cursor.rowcount == 1:
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
                # Replays, conflicts and live owners are answered from a plain read; only
                # a takeover locks the row and decides again under the lock.
                row = conn.execute(self._sql_select_record, (key,)).fetchone()
                if row is None:
                    continue  # released meanwhile: try to insert again
                current = _record(row)
                outcome = begin_decision(current, fingerprint, now, check_owner=False)
                if outcome is not None:
                    return Begin(outcome, current)
                with conn.transaction():
                    row = conn.execute(self._sql_lock_record, (key,)).fetchone()
                    if row is None:
                        continue
                    current = _record(row)
                    outcome = begin_decision(current, fingerprint, now, check_owner=False)
                    if outcome is not None:
                        return Begin(outcome, current)
                    new_charge_id = (
                        current.charge_id if current.charge_id is not None else charge_id
                    )
                    attempts = current.attempts + 1
                    conn.execute(
                        self._sql_take_over,
                        (owner, lease_until, attempts, now, new_charge_id, key),
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
        with self._conn() as conn:
            conn.execute(
                self._sql_finish,
                (
                    state,
                    self._clock(),
                    None if result is None else Jsonb(result),
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
        with self._conn() as conn:
            if conn.execute(self._sql_release_fresh, (key, owner)).rowcount:
                return
            # Taken over earlier: an earlier attempt may have reached the provider, so
            # the record stays (as unknown) for the next `begin` to recover.
            conn.execute(
                self._sql_release_recovered,
                (self._clock(), RELEASED_AFTER_RECOVERY, key, owner),
            )

    def get(self, key: str) -> IdempotencyRecord | None:
        with self._conn() as conn:
            row = conn.execute(self._sql_select_record, (key,)).fetchone()
        return None if row is None else _record(row)

    def records(
        self, *, states: Iterable[RecordState] | None = None, account: str | None = None
    ) -> list[IdempotencyRecord]:
        query = self._sql_records
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            where.append("state = ANY(%s)")
            params.append(list(states))
        if account is not None:
            where.append("account = %s")
            params.append(account)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at, key"
        with self._conn() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_record(row) for row in rows]

    def purge(self, *, older_than: datetime) -> int:
        with self._conn() as conn:
            return conn.execute(self._sql_purge, (utc(older_than),)).rowcount

    # -- entity cache ------------------------------------------------------------

    def cache_get(self, key: str) -> Any | None:
        with self._conn() as conn:
            row = conn.execute(self._sql_cache_get, (key,)).fetchone()
        return None if row is None else row[0]

    def cache_put(self, key: str, value: Any) -> None:
        with self._conn() as conn:
            conn.execute(self._sql_cache_put, (key, Jsonb(value)))

    def cache_put_if_absent(self, key: str, value: Any) -> Any:
        with self._conn() as conn:
            # The unique key lets one concurrent caller insert; the others wait for it
            # (ON CONFLICT waits for the inserting transaction) and then read its value.
            if conn.execute(self._sql_cache_add, (key, Jsonb(value))).rowcount == 1:
                return value
            row = conn.execute(self._sql_cache_get, (key,)).fetchone()
        # Cache entries are never deleted, so a conflicting row is there to read.
        assert row is not None
        return row[0]

    # -- webhook dedup -----------------------------------------------------------

    def claim_event(
        self, account: str, event_id: str, *, owner: str, lease: timedelta, now: datetime
    ) -> ClaimOutcome:
        now = utc(now)
        lease_until = now + lease
        with self._conn() as conn:
            while True:
                cursor = conn.execute(
                    self._sql_event_insert, (account, event_id, owner, lease_until, now)
                )
                if cursor.rowcount == 1:
                    return ClaimOutcome.NEW
                row = conn.execute(self._sql_event_select, (account, event_id)).fetchone()
                if row is None:
                    continue
                outcome = claim_decision(row[0], row[1], row[2], now, check_owner=False)
                if outcome is not None:
                    return outcome
                with conn.transaction():
                    row = conn.execute(self._sql_event_lock, (account, event_id)).fetchone()
                    if row is None:
                        continue
                    outcome = claim_decision(row[0], row[1], row[2], now, check_owner=False)
                    if outcome is not None:
                        return outcome
                    conn.execute(self._sql_event_take, (owner, lease_until, now, account, event_id))
                return ClaimOutcome.NEW

    def finish_event(self, account: str, event_id: str, owner: str) -> None:
        # Processed is a fact whoever finished it, even a claimer whose lease ran out.
        with self._conn() as conn:
            conn.execute(self._sql_event_finish, (account, event_id, owner, self._clock()))

    def release_event(self, account: str, event_id: str, owner: str) -> None:
        with self._conn() as conn:
            conn.execute(self._sql_event_release, (account, event_id, owner))

    # -- charge tracking ---------------------------------------------------------

    def record_charge(self, update: ChargeUpdate, *, now: datetime) -> ChargeRecord:
        now = utc(now)
        with self._conn() as conn, conn.transaction():
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
        with self._conn() as conn, conn.transaction():
            record = self._record_charge(conn, update, now)
            result = Jsonb(charge_view(update.charge_json, record))
            conn.execute(
                self._sql_finish,
                ("completed", self._clock(), result, provider_ref, None, key, owner),
            )
        return record

    def _record_charge(
        self, conn: psycopg.Connection[Any], update: ChargeUpdate, now: datetime
    ) -> ChargeRecord:
        row = conn.execute(self._sql_charge_lock, (update.charge_id,)).fetchone()
        if row is None:
            record, _ = plan_charge(None, update, now)
            inserted = conn.execute(
                self._sql_charge_insert,
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
                    record.created_at,
                    record.updated_at,
                    record.observed_at,
                    None if record.charge_json is None else Jsonb(record.charge_json),
                ),
            ).rowcount
            if inserted == 1:
                self._transition(conn, None, record, update, now)
                return record
            # Another instance created it meanwhile: lock it and apply on top.
            row = conn.execute(self._sql_charge_lock, (update.charge_id,)).fetchone()
            assert row is not None  # charges are never deleted
        current = _charge(row)
        record, applied = plan_charge(current, update, now)
        if record is current:
            return record
        conn.execute(
            self._sql_charge_update,
            (
                record.provider_ref,
                record.status.value,
                record.amount_refunded,
                record.updated_at,
                record.observed_at,
                None if record.charge_json is None else Jsonb(record.charge_json),
                record.charge_id,
            ),
        )
        if applied:
            self._transition(conn, current.status, record, update, now)
        return record

    def _transition(
        self,
        conn: psycopg.Connection[Any],
        from_status: ChargeStatus | None,
        record: ChargeRecord,
        update: ChargeUpdate,
        now: datetime,
    ) -> None:
        conn.execute(
            self._sql_transition_insert,
            (
                record.charge_id,
                None if from_status is None else from_status.value,
                record.status.value,
                record.amount_refunded,
                update.source,
                record.observed_at,
                now,
                update.note,
            ),
        )

    def get_charge(self, charge_id: str) -> ChargeRecord | None:
        with self._conn() as conn:
            row = conn.execute(self._sql_charge_select, (charge_id,)).fetchone()
        return None if row is None else _charge(row)

    def find_charge(self, account: str, provider_ref: str) -> ChargeRecord | None:
        with self._conn() as conn:
            row = conn.execute(self._sql_charge_find, (account, provider_ref)).fetchone()
        return None if row is None else _charge(row)

    def charges(
        self,
        *,
        account: str | None = None,
        statuses: Iterable[ChargeStatus] | None = None,
        updated_before: datetime | None = None,
    ) -> list[ChargeRecord]:
        query = self._sql_charges
        where: list[str] = []
        params: list[Any] = []
        if account is not None:
            where.append("account = %s")
            params.append(account)
        if statuses is not None:
            where.append("status = ANY(%s)")
            params.append([ChargeStatus(s).value for s in statuses])
        if updated_before is not None:
            where.append("updated_at < %s")
            params.append(utc(updated_before))
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY updated_at, charge_id"
        with self._conn() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_charge(row) for row in rows]

    def history(self, charge_id: str) -> list[Transition]:
        with self._conn() as conn:
            rows = conn.execute(self._sql_history, (charge_id,)).fetchall()
        return [
            Transition(
                row[0],
                None if row[1] is None else ChargeStatus(row[1]),
                ChargeStatus(row[2]),
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
            )
            for row in rows
        ]


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Datetimes come back in UTC, like the other stores'.
    conn.execute("SET TIME ZONE 'UTC'")


def _record(row: tuple[Any, ...]) -> IdempotencyRecord:
    return IdempotencyRecord(*row)


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
        row[9],
        row[10],
        row[11],
        row[12],
    )
