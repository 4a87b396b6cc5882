"""Store implementations behind one interface; `open_store` picks one by URL.

The implementations are imported on first use, so ``import paygate`` loads neither
``sqlite3`` nor ``psycopg``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .._errors import ConfigurationError
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
from ._common import new_owner

if TYPE_CHECKING:
    from ._memory import MemoryStore
    from ._postgres import PostgresStore
    from ._sqlite import SQLiteStore

__all__ = [
    "Begin",
    "BeginOutcome",
    "ChargeRecord",
    "ChargeUpdate",
    "ClaimOutcome",
    "IdempotencyRecord",
    "MemoryStore",
    "PostgresStore",
    "RecordState",
    "SQLiteStore",
    "Store",
    "Transition",
    "new_owner",
    "open_store",
]

_LAZY = {
    "MemoryStore": "._memory",
    "SQLiteStore": "._sqlite",
    "PostgresStore": "._postgres",
}

_named_memory: dict[str, MemoryStore] = {}
_named_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def open_store(url: str) -> Store:
    """Open the store named by ``url``.

    * ``memory://`` — a new in-process store; ``memory://NAME`` — the same in-process
      store for the same name (so several gateways of one process can share it).
    * ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — a SQLite file;
      query options ``busy_timeout`` (milliseconds) and ``synchronous`` (NORMAL, FULL).
    * ``postgresql://user:password@host:port/db`` (or ``postgres://``) — PostgreSQL;
      query options ``schema``, ``pool_min_size``, ``pool_max_size``,
      ``pool_timeout`` (seconds), ``prepare_threshold`` (``none`` behind a
      transaction-mode pooler); other query parameters go to libpq
      (``connect_timeout`` defaults to 10 seconds).

    A password in the URL is registered as a secret, so it never shows in reprs,
    logs or errors.

    >>> open_store("memory://")
    MemoryStore()
    >>> open_store("redis://localhost")
    Traceback (most recent call last):
    ...
    paygate._errors.ConfigurationError: store: unsupported store URL scheme 'redis' ...
    """
    if not url:
        raise ConfigurationError(
            "a store URL is required (memory://, sqlite:///path, postgresql://...)", key="store"
        )
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
        register_secret(unquote(parts.password))
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from ._memory import MemoryStore

        name = (parts.netloc + parts.path).strip("/")
        if not name:
            return MemoryStore()
        with _named_lock:
            store = _named_memory.get(name)
            if store is None:
                store = _named_memory[name] = MemoryStore(name)
            return store
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("postgresql", "postgres"):
        from ._postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigurationError(
        f"unsupported store URL scheme {scheme!r}; use memory://, sqlite:///path or "
        "postgresql://...",
        key="store",
    )


def _open_sqlite(url: str) -> Store:
    from datetime import timedelta

    from ._sqlite import SQLiteStore

    rest = url[len("sqlite:") :]
    if not rest.startswith("//"):
        raise ConfigurationError(
            "a SQLite URL looks like sqlite:///relative.db or sqlite:////absolute.db",
            key="store",
        )
    rest = rest[2:]
    path, _, query = rest.partition("?")
    host, slash, path = path.partition("/")
    if host not in ("", "localhost") or not slash or not path:
        raise ConfigurationError(
            "a SQLite URL looks like sqlite:///relative.db or sqlite:////absolute.db",
            key="store",
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    kwargs: dict[str, Any] = {}
    unknown = set(options) - {"busy_timeout", "synchronous"}
    if unknown:
        raise ConfigurationError(
            f"unknown SQLite store option(s): {', '.join(sorted(unknown))}", key="store"
        )
    if "busy_timeout" in options:
        try:
            kwargs["busy_timeout"] = timedelta(milliseconds=int(options["busy_timeout"]))
        except ValueError:
            raise ConfigurationError(
                "busy_timeout must be a whole number of milliseconds", key="store"
            ) from None
    if "synchronous" in options:
        kwargs["synchronous"] = options["synchronous"]
    return SQLiteStore(unquote(path), **kwargs)
