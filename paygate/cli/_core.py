"""Core commands: version, providers, demo, reconcile, config check."""

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
        from ._matrix import capability_rows
        from ._output import console, table

        columns = (
            "provider",
            "method",
            "refund",
            "cancel",
            "capture",
            "payout",
            "webhooks",
            "metadata",
            "sandbox",
        )
        console().print(table("paygate providers", columns, capability_rows()))

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
                "needs paygate-jp\\[postgres-embedded]) or a postgresql:// URL",
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

        from .._gateway import Gateway
        from .._reconcile import reconcile
        from ._output import console, table, with_progress

        # The progress bar goes to standard error, and only on a terminal: never in
        # --json, never into a pipe or a log.
        show = not as_json and console(stderr=True).is_terminal
        with Gateway.from_config(config_file) as gw:
            rows = with_progress(
                gw,
                lambda: reconcile(
                    gw,
                    account=account,
                    stale_after=timedelta(seconds=stale_after),
                    dry_run=dry_run,
                ),
                show=show,
            )
        if as_json:
            for row in rows:
                typer.echo(json.dumps(dataclasses.asdict(row), ensure_ascii=False))
            return
        if not rows:
            console().print("nothing to reconcile")
            return
        columns = ("account", "kind", "reference", "before", "after", "action")
        cells = [
            (row.account, row.kind, row.reference, row.before, row.after, row.action)
            for row in rows
        ]
        console().print(table("paygate reconcile", columns, cells))

    config = typer.Typer(help="Configuration tools.")
    app.add_typer(config, name="config")

    @config.command("check")
    def check(
        file: Annotated[Path, typer.Argument(help="paygate TOML file")],
        connect: Annotated[
            bool, typer.Option("--connect", help="also open the store and read from it")
        ] = False,
    ) -> None:
        """Validate a config file: providers exist, credentials present, methods offered,
        the store URL well formed (and, with --connect, the store reachable)."""
        from rich.markup import escape

        from .._config import load_config
        from .._errors import ConfigurationError
        from ._output import connect_problem, console, store_label, store_problem

        out = console()
        try:
            cfg = load_config(file)
        except ConfigurationError as exc:
            out.print(f"[red]invalid[/red]: {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        problem = store_problem(cfg.store)
        if problem is not None:
            out.print(f"[red]invalid[/red]: store: {escape(problem)}", soft_wrap=True)
            raise typer.Exit(1)
        label = escape(store_label(cfg.store))
        out.print(f"[green]ok[/green]: store {label}", soft_wrap=True)
        for name, acct in cfg.accounts.items():
            out.print(
                f"  account [bold]{escape(name)}[/bold]: {acct.provider.name} "
                f"({', '.join(acct.methods)})"
            )
        if connect:
            failed = connect_problem(cfg.store)
            if failed is not None:
                out.print(
                    f"[red]unreachable[/red]: store {label}: {escape(failed)}", soft_wrap=True
                )
                raise typer.Exit(1)
            out.print(f"[green]ok[/green]: store {label} opened and read", soft_wrap=True)
