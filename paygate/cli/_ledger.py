"""``paygate charges list`` / ``paygate charges show``: the local ledger from the shell.

Read from paygate's store only (no provider call), across every provider.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ._output import console, table


def _since(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        from .._errors import InvalidRequest

        raise InvalidRequest(f"{name} must be an ISO date or time", param=name) from None


def register(app: typer.Typer) -> None:
    """Add the ``charges`` commands to ``app``."""
    charges = typer.Typer(help="The charges paygate recorded (no provider call).")
    app.add_typer(charges, name="charges")

    @charges.command("list")
    def list_cmd(
        config_file: Annotated[
            Path, typer.Option("--config", "-c", help="paygate TOML file")
        ] = Path("paygate.toml"),
        account: Annotated[str | None, typer.Option(help="only this account")] = None,
        status: Annotated[
            list[str] | None, typer.Option(help="only these statuses (repeatable)")
        ] = None,
        since: Annotated[str | None, typer.Option(help="recorded at or after (ISO)")] = None,
        until: Annotated[str | None, typer.Option(help="recorded before (ISO)")] = None,
        limit: Annotated[int, typer.Option(help="at most this many")] = 50,
        after: Annotated[str | None, typer.Option(help="the next page (from --json)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
    ) -> None:
        """List recorded charges, newest first."""
        from .._gateway import Gateway

        with Gateway.from_config(config_file) as gw:
            page = gw.charges(
                account,
                status=status or None,
                since=_since(since, "since"),
                until=_since(until, "until"),
                limit=limit,
                after=after,
            )
        if as_json:
            for charge in page:
                typer.echo(json.dumps(_public(charge), ensure_ascii=False))
            if page.next:
                typer.echo(json.dumps({"next": page.next}))
            return
        rows = [
            (
                c.id,
                c.account,
                c.status.value,
                str(c.amount),
                str(c.amount_refunded),
                c.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for c in page
        ]
        out = console()
        if not rows:
            out.print("no charges recorded")
            return
        columns = ("id", "account", "status", "amount", "refunded", "created")
        out.print(table("paygate charges", columns, rows))
        if page.next:
            out.print(f"more: --after {page.next}")

    @charges.command("show")
    def show_cmd(
        charge_id: Annotated[str, typer.Argument(help="paygate's charge id (ch_...)")],
        config_file: Annotated[
            Path, typer.Option("--config", "-c", help="paygate TOML file")
        ] = Path("paygate.toml"),
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """One recorded charge with its history and refunds."""
        from .._errors import InvalidRequest
        from .._gateway import Gateway
        from .._ledger import charge_of

        with Gateway.from_config(config_file) as gw:
            record = gw.store.get_charge(charge_id)
            if record is None or record.account not in gw.accounts:
                raise InvalidRequest(f"unknown charge {charge_id!r}", param="charge_id")
            charge = charge_of(record)
            history = gw.history(record.account, charge_id)
            refunds = gw.refunds(record.account, charge_id=charge_id, limit=1000)
        if as_json:
            data = {
                "charge": _public(charge),
                "history": [t.model_dump(mode="json") for t in history],
                "refunds": [_public(r) for r in refunds],
            }
            typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        out = console()
        facts = [
            ("id", charge.id),
            ("account", f"{charge.account} ({charge.provider})"),
            ("provider_ref", charge.provider_ref),
            ("method", charge.method),
            ("status", charge.status.value),
            ("amount", str(charge.amount)),
            ("refunded", str(charge.amount_refunded)),
            ("created", charge.created_at.isoformat()),
        ]
        out.print(table(f"charge {charge.id}", ("field", "value"), facts))
        out.print(
            table(
                "history",
                ("observed", "from", "to", "refunded", "source"),
                [
                    (
                        t.observed_at.strftime("%Y-%m-%d %H:%M:%S"),
                        t.from_status.value if t.from_status else "-",
                        t.to_status.value,
                        str(t.amount_refunded),
                        t.source,
                    )
                    for t in history
                ],
            )
        )
        if refunds:
            out.print(
                table(
                    "refunds",
                    ("id", "amount", "kind", "status"),
                    [(r.id, str(r.amount), r.kind, r.status.value) for r in refunds],
                )
            )


def _public(model: Any) -> dict[str, Any]:
    """A model as JSON without its provider's raw object (and no personal fields)."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude={"raw", "reason"})
    return data
