"""``paygate sandbox ...`` commands."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_PORT = 8765
_REMOTE_WARNING = (
    "the sandbox answers with fixed, published test credentials and lets anyone who "
    "reaches it drive payments and webhooks; serve it on loopback only, or pass "
    "--allow-remote if you really mean to expose it"
)


def register(app: typer.Typer) -> None:
    """Add the sandbox command group to ``app``."""
    sandbox = typer.Typer(
        help="The local stateful sandbox of every installed provider.", no_args_is_help=True
    )
    app.add_typer(sandbox, name="sandbox")

    @sandbox.command()
    def serve(
        port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = (
            DEFAULT_PORT
        ),
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        webhook_url: Annotated[
            str | None, typer.Option(help="Send every provider's webhooks to this URL.")
        ] = None,
        provider: Annotated[
            list[str] | None,
            typer.Option("--provider", "-p", help="Serve only this provider (repeatable)."),
        ] = None,
        allow_remote: Annotated[
            bool, typer.Option(help="Allow a non-loopback --host (see the warning).")
        ] = False,
    ) -> None:
        """Serve every installed provider's emulator on one port, in the foreground."""
        from .._adapter import is_loopback

        if not is_loopback(host) and not allow_remote:
            raise typer.BadParameter(_REMOTE_WARNING, param_hint="--host")
        _serve(port=port, host=host, webhook_url=webhook_url, providers=provider)

    @sandbox.command()
    def credentials(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the default).")] = False,
        as_toml: Annotated[
            bool, typer.Option("--toml", help="Print a ready paygate config instead.")
        ] = False,
        port: Annotated[int, typer.Option(help="Port of the sandbox.")] = DEFAULT_PORT,
        url: Annotated[
            str | None, typer.Option(help="Root URL of the sandbox (overrides --port).")
        ] = None,
        store: Annotated[
            str, typer.Option(help="Store URL written into the --toml config.")
        ] = "sqlite:///paygate.db",
        provider: Annotated[
            list[str] | None,
            typer.Option("--provider", "-p", help="Only this provider (repeatable)."),
        ] = None,
    ) -> None:
        """Print the sandbox's fixed test credentials (no running sandbox needed)."""
        if as_json and as_toml:
            raise typer.BadParameter("choose one of --json and --toml")
        typer.echo(
            credentials_text(
                url or f"http://127.0.0.1:{port}",
                toml=as_toml,
                store=store,
                providers=provider,
            ),
            nl=False,
        )

    @sandbox.command()
    def actions(
        provider: Annotated[
            str | None, typer.Argument(help="Only this provider (default: every one).")
        ] = None,
    ) -> None:
        """List each emulator's control actions (POST /_sandbox/<provider>/<action>)."""
        _print_actions(provider)


def _print_actions(provider: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..sandbox import discover_emulators

    found, skipped = discover_emulators([provider] if provider else None)
    if provider and provider not in found:
        reason = skipped.get(provider, "not installed")
        raise typer.BadParameter(f"no emulator for {provider}: {reason}", param_hint="PROVIDER")
    console = Console()
    for name, emulator in sorted(found.items()):
        table = Table(title=name, title_justify="left", min_width=60)
        table.add_column("action", style="cyan", no_wrap=True)
        table.add_column("what it does")
        listed = emulator.actions()
        for action, description in listed.items():
            table.add_row(action, description)
        if not listed:
            table.add_row("[dim]none listed[/dim]", "")
        console.print(table)
    for name, reason in sorted(skipped.items()):
        if reason != "ships no emulator":
            console.print(f"[dim]{name}: {reason}[/dim]")


def credentials_text(
    url: str,
    *,
    toml: bool = False,
    store: str = "sqlite:///paygate.db",
    providers: list[str] | None = None,
) -> str:
    """The output of ``paygate sandbox credentials`` for a sandbox at ``url``."""
    import json

    from ..sandbox import (
        discover_emulators,
        offline_accounts,
        offline_credentials,
        render_config,
    )

    found, _skipped = discover_emulators(providers)
    if providers:
        missing = sorted(set(providers) - set(found))
        if missing:
            raise typer.BadParameter(
                f"no emulator installed for {', '.join(missing)}", param_hint="--provider"
            )
    classes = list(found.values())
    if toml:
        return render_config(offline_accounts(classes, url), store=store)
    from ..sandbox._host import json_default

    creds = offline_credentials(classes, url)
    return json.dumps(creds, indent=2, ensure_ascii=False, default=json_default) + "\n"


def _serve(*, port: int, host: str, webhook_url: str | None, providers: list[str] | None) -> None:
    import logging
    import signal
    import threading

    from rich.console import Console
    from rich.logging import RichHandler

    from .._errors import ConfigurationError
    from ..sandbox import SandboxHost, ServerThread

    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    try:
        sandbox_host = SandboxHost(providers=providers, webhook_url=webhook_url)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--provider") from None
    try:
        server = ServerThread(sandbox_host.app, host=host, port=port)
    except OSError as exc:
        console.print(f"[red]cannot listen on {host}:{port}[/red]: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    sandbox_host.url = server.url
    mounted = ", ".join(sandbox_host.emulators) or "none"
    console.print(f"[bold]paygate sandbox[/bold] on [cyan]{server.url}[/cyan]")
    for name in sandbox_host.emulators:
        console.print(f"  {name:<10} {sandbox_host.base_url(name)}")
    for name, reason in sandbox_host.skipped.items():
        console.print(f"  [dim]{name:<10} not mounted: {reason}[/dim]")
    console.print(f"  credentials: paygate sandbox credentials --url {server.url} --toml")
    if webhook_url:
        console.print(f"  webhooks -> {webhook_url}")

    def line() -> str:
        now = sandbox_host.clock.now().strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"{server.url} · {mounted} · {sandbox_host.request_count} requests · "
            f"clock {now} UTC · Ctrl-C to stop"
        )

    stop = threading.Event()
    # SIGTERM (a process manager, `docker stop`) shuts down as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    with server, console.status(line()) as status:
        try:
            while server.alive and not stop.is_set():
                status.update(line())
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
    console.print("sandbox stopped")
