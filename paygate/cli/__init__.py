"""The ``paygate`` command.

Sub-commands live in their own modules and are added to `app` here; heavy imports happen
inside the commands so ``paygate --help`` starts fast.
"""

from __future__ import annotations

import typer

from ._core import register as _register_core
from ._ledger import register as _register_ledger
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
_register_ledger(app)
_register_sandbox(app)


def main() -> None:
    """Entry point of the ``paygate`` console script.

    A paygate error (a missing or invalid config, a provider refusal) is one clear line
    on standard error and exit status 1, never a traceback.
    """
    from .._errors import PaygateError

    try:
        app()
    except PaygateError as exc:
        typer.echo(f"paygate: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
