"""Core commands: version, providers, config check."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.command()
    def version() -> None:
        """Print the paygate version."""
        from .._version import __version__

        typer.echo(__version__)
