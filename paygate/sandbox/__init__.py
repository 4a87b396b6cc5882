"""The local sandbox: stateful emulators of every installed provider on one loopback port.

>>> from paygate.sandbox import running
>>> with running() as sandbox:  # doctest: +SKIP
...     sandbox.credentials()["payjp"]["base_url"]
'http://127.0.0.1:54321/payjp'

See ``docs/sandbox.md`` for the control API, faults, the clock and webhooks.
"""

from ._accounts import ACCOUNT_ALIASES, offline_accounts, offline_credentials, render_config
from ._client import Sandbox, SandboxClient, SandboxError
from ._emulator import (
    ControlError,
    Emulator,
    EmulatorContext,
    LedgerEntry,
    SandboxClock,
    WebhookDelivery,
)
from ._host import SandboxHost, discover_emulators
from ._server import SandboxTLS, ServerThread, make_tls, running, serve_app
from ._webhooks import WebhookAttempt

__all__ = [
    "ACCOUNT_ALIASES",
    "ControlError",
    "Emulator",
    "EmulatorContext",
    "LedgerEntry",
    "Sandbox",
    "SandboxClient",
    "SandboxClock",
    "SandboxError",
    "SandboxHost",
    "SandboxTLS",
    "ServerThread",
    "WebhookAttempt",
    "WebhookDelivery",
    "discover_emulators",
    "make_tls",
    "offline_accounts",
    "offline_credentials",
    "render_config",
    "running",
    "serve_app",
]
