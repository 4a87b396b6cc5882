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

The algorithm is `SQLStore` (``._sql``); this module supplies PostgreSQL's side of its
dialect seam (types, ``%s`` parameters, ``FOR UPDATE``, JSONB, the pool) and the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .._errors import ConfigurationError
from .._redact import register_secret
from ._common import utc, utcnow
from ._sql import SQLStore

__all__ = ["PostgresStore"]

# Any fixed number: serialises schema creation between instances opening together.
_SCHEMA_LOCK = 0x70617967  # "payg"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_OPTIONS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout", "prepare_threshold")
# libpq waits for ever by default; an unreachable server should fail the open instead.
_DEFAULT_CONNECT_TIMEOUT = "10"

_TYPES = {
    "text": "text",
    "int": "integer",
    "bigint": "bigint",
    "time": "timestamptz",
    "json": "jsonb",
    "serial": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "rowid": "",
}


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:***@{netloc[2]}"))


class PostgresStore(SQLStore[psycopg.Connection[Any]]):
    """A store in PostgreSQL, shared by every instance of the application.

    >>> store = open_store("postgresql://app:secret@db.internal/shop?schema=paygate")
    ... # doctest: +SKIP
    """

    _types: ClassVar[dict[str, str]] = _TYPES
    _param = "%s"
    _lock = " FOR UPDATE"

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
        self._described = "the PostgreSQL store"
        self._build_queries()
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

    # -- the dialect seam ----------------------------------------------------------

    def _table(self, name: str) -> str:
        identifier = sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)
        return identifier.as_string()

    @staticmethod
    def _time_out(value: datetime) -> datetime:
        return utc(value)

    @staticmethod
    def _json_out(value: Any) -> Jsonb:
        return Jsonb(value)

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._pool.connection()

    def _transaction(self, conn: psycopg.Connection[Any]) -> AbstractContextManager[object]:
        return conn.transaction()

    def _prepare_schema(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if self.schema:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    def close(self) -> None:
        self._pool.close()


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Datetimes come back in UTC, like the other stores'.
    conn.execute("SET TIME ZONE 'UTC'")
