"""``paygate sandbox ...`` commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the sandbox command group to ``app``."""
    sandbox = typer.Typer(help="The local stateful sandbox of every installed provider.")
    app.add_typer(sandbox, name="sandbox")
