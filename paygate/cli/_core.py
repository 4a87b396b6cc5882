"""Core commands: version, providers, config check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.command()
    def version() -> None:
        """Print the paygate version."""
        from .._version import __version__

        typer.echo(__version__)

    @app.command()
    def providers() -> None:
        """Installed provider adapters and what they can do."""
        from rich.console import Console
        from rich.table import Table

        from ._matrix import capability_rows

        table = Table(title="paygate providers")
        for column in (
            "provider",
            "method",
            "refund",
            "cancel",
            "capture",
            "payout",
            "webhooks",
            "metadata",
            "sandbox",
        ):
            table.add_column(column)
        for row in capability_rows():
            table.add_row(*row)
        Console().print(table)

    @app.command()
    def demo(
        provider: Annotated[
            list[str] | None, typer.Option("--provider", "-p", help="only these providers")
        ] = None,
        store: Annotated[
            str,
            typer.Option(
                "--store",
                "-s",
                help="sqlite (a temporary file), memory, postgresql (a throwaway server; "
                "needs paygate\\[postgres-embedded]) or a postgresql:// URL",
            ),
        ] = "sqlite",
    ) -> None:
        """Run every provider's real flows end to end against the built-in sandbox."""
        from ._demo import run_demo

        raise typer.Exit(run_demo(providers=provider or None, store=store))

    @app.command("reconcile")
    def reconcile_cmd(
        config_file: Annotated[
            Path, typer.Option("--config", "-c", help="paygate TOML file")
        ] = Path("paygate.toml"),
        account: Annotated[str | None, typer.Option(help="only this account")] = None,
        stale_after: Annotated[
            float, typer.Option(help="seconds before a waiting charge is stale")
        ] = 3600.0,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="list what would be asked; change nothing")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
    ) -> None:
        """Resolve unknown outcomes and refresh stale charges; print what changed."""
        import dataclasses
        import json
        from datetime import timedelta

        from rich.console import Console
        from rich.table import Table

        from .._gateway import Gateway
        from .._reconcile import reconcile

        with Gateway.from_config(config_file) as gw:
            rows = reconcile(
                gw,
                account=account,
                stale_after=timedelta(seconds=stale_after),
                dry_run=dry_run,
            )
        if as_json:
            for row in rows:
                typer.echo(json.dumps(dataclasses.asdict(row), ensure_ascii=False))
            return
        table = Table(title="paygate reconcile")
        for column in ("account", "kind", "reference", "before", "after", "action"):
            table.add_column(column)
        for row in rows:
            table.add_row(row.account, row.kind, row.reference, row.before, row.after, row.action)
        Console().print(table if rows else "nothing to reconcile")

    config = typer.Typer(help="Configuration tools.")
    app.add_typer(config, name="config")

    @config.command("check")
    def check(file: Annotated[Path, typer.Argument(help="paygate TOML file")]) -> None:
        """Validate a config file: providers exist, credentials present, methods offered."""
        from rich.console import Console

        from .._config import load_config
        from .._errors import ConfigurationError

        console = Console()
        try:
            cfg = load_config(file)
        except ConfigurationError as exc:
            console.print(f"[red]invalid[/red]: {exc}")
            raise typer.Exit(1) from None
        console.print(f"[green]ok[/green]: store {cfg.store.split('://')[0]}://…")
        for name, acct in cfg.accounts.items():
            console.print(
                f"  account [bold]{name}[/bold]: {acct.provider.name} ({', '.join(acct.methods)})"
            )
