"""``paygate demo``: the real flows, end to end, against the built-in sandbox.

Starts the sandbox in-process, configures one account per installed provider against
it with a store (by default SQLite in a temporary folder; ``--store postgresql`` starts a
throwaway PostgreSQL server), and runs each provider's demo script
(`paygate.adapter.Provider.demo_script`). Every step is a real call through `Gateway`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from .._models import ChargeStatus
from .._money import Money

T = TypeVar("T")

BUILT_IN = ("pokepay", "univapay", "elepay", "payjp", "smaregi")


@dataclass
class Row:
    provider: str
    operation: str
    status: str
    ids: str
    millis: float | None
    ok: bool


@dataclass
class Demo:
    """What a provider's demo script gets: the gateway, the sandbox, and `step`."""

    gateway: Any
    sandbox: Any
    provider: str
    rows: list[Row] = field(default_factory=list)

    @property
    def account(self) -> str:
        """The account configured for this provider."""
        return self.provider

    def step(
        self, operation: str, fn: Callable[[], T], *, expect: Callable[[T], bool] | None = None
    ) -> T:
        """Run one step, time it and record a row; re-raises failures (the script stops)."""
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            self.rows.append(
                Row(
                    self.provider,
                    operation,
                    f"error: {type(exc).__name__}",
                    str(exc)[:80],
                    None,
                    False,
                )
            )
            raise
        millis = (time.perf_counter() - started) * 1000
        ok = expect(result) if expect is not None else True
        self.rows.append(Row(self.provider, operation, _status(result), _ids(result), millis, ok))
        if not ok:
            raise AssertionError(f"{operation}: unexpected result")
        return result

    # -- the usual steps -------------------------------------------------------------
    # Each is one `step` around one `Gateway` call on this provider's account.
    # Idempotency keys are ``demo-<provider>-<key>``; ``expect`` is the status the
    # result must have (None: any).

    def charge(
        self,
        operation: str,
        method: Any,
        *,
        amount: int,
        key: str,
        expect: ChargeStatus | None = None,
        **options: Any,
    ) -> Any:
        """Charge ``amount`` JPY with ``method``::

        paid = d.charge("charge (wallet)", Wallet(customer_id=c), amount=1200, key="order-1",
                        expect=ChargeStatus.SUCCEEDED)
        """
        return self.step(
            operation,
            lambda: self.gateway.charge(
                self.account,
                amount=Money.jpy(amount),
                method=method,
                idempotency_key=self.key(key),
                **options,
            ),
            expect=_has(expect),
        )

    def status(
        self, charge: Any, expect: ChargeStatus | None = None, *, operation: str = "status"
    ) -> Any:
        """The charge's status from the provider: ``d.status(paid, ChargeStatus.REFUNDED)``."""
        return self.step(
            operation, lambda: self.gateway.status(self.account, charge.id), expect=_has(expect)
        )

    def refund(self, operation: str, charge: Any, *, key: str, amount: int | None = None) -> Any:
        """Refund ``amount`` JPY (None: the rest): ``d.refund("refund", paid, key="r1")``."""
        return self.step(
            operation,
            lambda: self.gateway.refund(
                self.account,
                charge.id,
                amount=None if amount is None else Money.jpy(amount),
                idempotency_key=self.key(key),
            ),
        )

    def cancel(self, operation: str, charge: Any, *, key: str | None = None) -> Any:
        """Cancel ``charge``; the step passes when it is canceled."""
        return self.step(
            operation,
            lambda: self.gateway.cancel(
                self.account, charge.id, idempotency_key=None if key is None else self.key(key)
            ),
            expect=_has(ChargeStatus.CANCELED),
        )

    def capture(self, operation: str, charge: Any, *, key: str, amount: int | None = None) -> Any:
        """Capture ``amount`` JPY of an authorisation (None: all of it)."""
        return self.step(
            operation,
            lambda: self.gateway.capture(
                self.account,
                charge.id,
                amount=None if amount is None else Money.jpy(amount),
                idempotency_key=self.key(key),
            ),
            expect=_has(ChargeStatus.SUCCEEDED),
        )

    def act(self, operation: str, action: str, **params: Any) -> Any:
        """A customer's or operator's action on the sandbox (``control_<action>``)."""
        return self.step(operation, lambda: self.sandbox.control(self.provider, action, **params))

    def payout_balance(
        self, operation: str = "payout balance", *, expect: Callable[[Any], bool] | None = None
    ) -> Any:
        """What the provider will pay out: ``d.payout_balance(expect=lambda b: ...)``."""
        return self.step(
            operation, lambda: self.gateway.payout_balance(self.account), expect=expect
        )

    def key(self, key: str) -> str:
        """The idempotency key ``demo-<provider>-<key>``."""
        return f"demo-{self.provider}-{key}"


def _has(status: ChargeStatus | None) -> Callable[[Any], bool] | None:
    if status is None:
        return None
    return lambda result: bool(result.status is status)


def _status(result: Any) -> str:
    status = getattr(result, "status", None)
    if status is not None:
        return str(getattr(status, "value", status))
    if result.__class__.__name__ == "PayoutBalance":
        return f"collecting {result.collecting}, scheduled {result.scheduled}"
    return "ok"


def _ids(result: Any) -> str:
    parts = []
    for name, width in (("id", 14), ("provider_ref", 22)):
        value = getattr(result, name, None)
        if value:
            text = str(value)
            parts.append(text if len(text) <= width else text[: width - 1] + "…")
    action = getattr(result, "next_action", None)
    if action is not None:
        parts.append(action.type)
    return " ".join(parts)


#: What ``paygate demo --store`` takes besides a ``postgresql://`` URL.
STORES = ("sqlite", "memory", "postgresql")


@contextlib.contextmanager
def demo_store(store: str) -> Iterator[tuple[str, str]]:
    """The store URL for ``--store`` and how to describe it; nothing is left afterwards.

    ``sqlite``: a temporary file; ``memory``; ``postgresql``: a throwaway embedded server
    (``paygate-jp[postgres-embedded]``); a ``postgresql://`` URL: that server, in a schema of
    the demo's own that is dropped afterwards (or the ``?schema=`` the URL names, kept).
    """
    from .._embedded_pg import embedded_postgres

    kind = store.strip().lower()
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="paygate-demo-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'paygate.db'}", "sqlite store (temporary)"
    elif kind == "memory":
        yield "memory://", "memory store"
    elif kind in ("postgresql", "postgres"):
        with embedded_postgres() as server:
            yield (
                f"{server.url}?schema=paygate_demo",
                f"postgresql store (embedded PostgreSQL {server.version}, temporary)",
            )
    elif store.startswith(("postgresql://", "postgres://")):
        if "schema=" in store.partition("?")[2]:
            yield store, "postgresql store (the schema given)"
            return
        schema = f"paygate_demo_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in store else "?"
        try:
            yield f"{store}{sep}schema={schema}", f"postgresql store (schema {schema}, temporary)"
        finally:
            _drop_schema(store, schema)
    else:
        raise ValueError(
            f"--store: one of {', '.join(STORES)} or a postgresql:// URL, not {store!r}"
        )


def _drop_schema(url: str, schema: str) -> None:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    from .._stores._postgres import _OPTIONS

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OPTIONS]
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run_demo(
    console: Console | None = None, providers: list[str] | None = None, store: str = "sqlite"
) -> int:
    """Run the demo; returns the process exit code (0: every step passed; 2: no such
    store, or it could not be set up)."""
    from .._embedded_pg import EmbeddedPostgresError

    console = console or Console()
    with contextlib.ExitStack() as stack:
        try:
            url, description = stack.enter_context(demo_store(store))
        except (ValueError, EmbeddedPostgresError) as exc:
            console.print(f"[red bold]paygate demo[/red bold]: {exc}")
            return 2
        return _run(console, providers, url, description)
    raise AssertionError("unreachable")  # pragma: no cover


def _run(console: Console, providers: list[str] | None, store: str, description: str) -> int:
    from .._gateway import Gateway
    from .._registry import provider_classes
    from ..sandbox import running

    installed = provider_classes()
    wanted = providers or [name for name in BUILT_IN]
    unknown = [name for name in wanted if name not in installed and name not in BUILT_IN]
    if unknown:
        from .._errors import ConfigurationError

        raise ConfigurationError(
            f"no provider {', '.join(map(repr, unknown))} "
            f"(installed: {', '.join(sorted(installed)) or 'none'})",
            key="--provider",
        )
    rows: list[Row] = []
    failures = 0
    with running() as sandbox:
        accounts = sandbox.accounts()
        config = {"store": store, "accounts": {n: accounts[n] for n in wanted if n in accounts}}
        console.print(f"[bold]paygate demo[/bold]: sandbox at {sandbox.url}, {description}")
        with Gateway.from_config(config) as gw:
            for name in wanted:
                if name not in installed:
                    rows.append(Row(name, "—", "adapter not installed", "", None, True))
                    continue
                if name not in accounts:
                    rows.append(Row(name, "—", "no sandbox emulator", "", None, True))
                    continue
                demo = Demo(gateway=gw, sandbox=sandbox, provider=name)
                script = installed[name].demo_script()
                if script is None:
                    demo.rows.append(Row(name, "—", "no demo script", "", None, True))
                else:
                    try:
                        script(demo)
                    except Exception:
                        failures += 1
                    else:
                        failures += sum(1 for r in demo.rows if not r.ok)
                rows.extend(demo.rows)
                _print_table(console, name, demo.rows)
    _summary(console, rows, failures)
    return 1 if failures else 0


def _print_table(console: Console, provider: str, rows: list[Row]) -> None:
    table = Table(title=provider, title_justify="left", expand=False, min_width=100)
    for column in ("operation", "status", "ids", "latency"):
        table.add_column(column)
    for row in rows:
        style = "" if row.ok else "red"
        latency = f"{row.millis:.1f} ms" if row.millis is not None else ""
        table.add_row(row.operation, row.status, row.ids, latency, style=style)
    console.print(table)


def _summary(console: Console, rows: list[Row], failures: int) -> None:
    steps = [r for r in rows if r.millis is not None]
    providers = sorted({r.provider for r in steps})
    if failures:
        console.print(f"[red bold]{failures} provider demo(s) failed[/red bold]")
    else:
        total = sum(r.millis or 0 for r in steps)
        console.print(
            f"[green bold]all {len(steps)} steps passed[/green bold] across "
            f"{len(providers)} providers ({', '.join(providers)}) in {total:.0f} ms of calls"
        )
