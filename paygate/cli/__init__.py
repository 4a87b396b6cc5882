"""The ``paygate`` command.

Sub-commands live in their own modules and are added to `app` here; heavy imports happen
inside the commands so ``paygate --help`` starts fast.
"""

from __future__ import annotations

import typer

from ._core import register as _register_core
from ._sandbox import register as _register_sandbox

__all__ = ["app", "main"]

app = typer.Typer(
    name="paygate",
    help="One payment API for Japanese merchants: adapters, a local sandbox, tools.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

_register_core(app)
_register_sandbox(app)


def main() -> None:
    """Entry point of the ``paygate`` console script."""
    app()
