"""Output helpers of the ``paygate`` command: tables that fit 80 columns, the store checks
of ``config check`` and the progress bar of ``reconcile``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from .._gateway import Gateway
    from .._stores import ChargeRecord, IdempotencyRecord, Store

T = TypeVar("T")

STORE_SHAPES = "memory://, sqlite:///path or postgresql://..."
_SQLITE_SHAPE = "a SQLite URL looks like sqlite:///relative.db or sqlite:////absolute.db"
_SQLITE_OPTIONS = {"busy_timeout", "synchronous"}


def console(*, stderr: bool = False) -> Console:
    """The console every command prints through (tests replace it with a narrow one)."""
    from rich.console import Console

    return Console(stderr=stderr)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table that fits the console's width (80 columns included): a light frame, one
    space between columns, headers whole, and cells that wrap at spaces (or fold inside
    a word longer than the column) instead of being cut off with an ellipsis."""
    from rich import box
    from rich.table import Table

    out = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )
    for name in columns:
        out.add_column(name, overflow="fold", min_width=len(name))
    for row in rows:
        out.add_row(*row)
    return out


def store_problem(url: str) -> str | None:
    """What is wrong with a store URL, without opening the store (None: nothing).

    The rules are `paygate._stores.open_store`'s: memory://[NAME], sqlite:///relative.db
    or sqlite:////absolute.db (options busy_timeout, synchronous), postgresql:// or
    postgres:// with a numeric port if one is given.
    """
    if not url:
        return f"a store URL is required ({STORE_SHAPES})"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return None
    if scheme == "sqlite":
        rest = url[len("sqlite:") :]
        if not rest.startswith("//"):
            return _SQLITE_SHAPE
        path, _, query = rest[2:].partition("?")
        host, slash, path = path.partition("/")
        if host not in ("", "localhost") or not slash or not path:
            return _SQLITE_SHAPE
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = set(options) - _SQLITE_OPTIONS
        if unknown:
            return f"unknown SQLite store option(s): {', '.join(sorted(unknown))}"
        if "busy_timeout" in options and not options["busy_timeout"].isdigit():
            return "busy_timeout must be a whole number of milliseconds"
        return None
    if scheme in ("postgresql", "postgres"):
        try:
            _ = parts.port
        except ValueError:
            return "the port of the PostgreSQL URL is not a number"
        return None
    if not scheme:
        return f"the store is not a URL; use {STORE_SHAPES}"
    return f"unsupported store URL scheme {scheme!r}; use {STORE_SHAPES}"


def store_label(url: str) -> str:
    """The store URL without user or password (for printing)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("postgresql", "postgres"):
        host = parts.hostname or "localhost"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{scheme}://{host}{port}{parts.path}"
    return url.split("?", 1)[0]


def connect_problem(url: str) -> str | None:
    """Open the store and read from it once; what went wrong, in one line (None: OK)."""
    from .._redact import redact
    from .._stores import open_store

    try:
        store = open_store(url)
        try:
            store.records(states=["unknown"])
        finally:
            store.close()
    except Exception as exc:  # any failure is reported, never raised
        words = " ".join(str(exc).split()) or "no message"
        return redact(f"{type(exc).__name__}: {words}")
    return None


class _ProgressStore:
    """A view of a gateway's store for `reconcile`: the records and charges it reads are
    counted on a progress bar as reconcile goes through them; everything else is the
    store's own."""

    def __init__(self, store: Store, progress: Progress, task: TaskID) -> None:
        self._store = store
        self._progress = progress
        self._task = task
        self._total = 0

    def records(self, **kwargs: Any) -> Iterator[IdempotencyRecord]:
        return self._track(self._store.records(**kwargs))

    def charges(self, **kwargs: Any) -> Iterator[ChargeRecord]:
        return self._track(self._store.charges(**kwargs))

    def _track(self, items: Iterable[T]) -> Iterator[T]:
        found = list(items)
        self._total += len(found)
        self._progress.update(self._task, total=self._total)
        for item in found:
            yield item
            self._progress.advance(self._task)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def with_progress(gw: Gateway, run: Callable[[], T], *, show: bool) -> T:
    """Call ``run()`` with a progress bar on standard error over the keys and charges
    ``gw``'s store hands to reconcile (only when ``show``: a terminal, not --json)."""
    if not show:
        return run()
    from typing import cast

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("reconcile"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("reconcile", total=None)
        store = gw.store
        gw.store = cast("Store", _ProgressStore(store, progress, task))
        try:
            return run()
        finally:
            gw.store = store
