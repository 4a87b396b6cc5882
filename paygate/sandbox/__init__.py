"""The local sandbox: stateful emulators of every installed provider on one loopback port.

>>> from paygate.sandbox import running
>>> with running() as sandbox:  # doctest: +SKIP
...     sandbox.credentials()["payjp"]["base_url"]
'http://127.0.0.1:54321/payjp'

See ``docs/sandbox.md`` for the control API, faults, the clock and webhooks, and
``docs/adapters.md`` for writing an emulator with the kit (`KeyedReplies`, `paginate`,
`EmulatorError`, ``control_<action>`` methods).
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
from ._kit import (
    EmulatorError,
    KeptReply,
    KeyedReplies,
    Slice,
    account_table,
    endpoint,
    json_response,
    paginate,
    paginate_after,
)
from ._server import SandboxTLS, ServerThread, make_tls, running, serve_app
from ._webhooks import WebhookAttempt

__all__ = [
    "ACCOUNT_ALIASES",
    "ControlError",
    "Emulator",
    "EmulatorContext",
    "EmulatorError",
    "KeptReply",
    "KeyedReplies",
    "LedgerEntry",
    "Sandbox",
    "SandboxClient",
    "SandboxClock",
    "SandboxError",
    "SandboxHost",
    "SandboxTLS",
    "ServerThread",
    "Slice",
    "WebhookAttempt",
    "WebhookDelivery",
    "account_table",
    "discover_emulators",
    "endpoint",
    "json_response",
    "make_tls",
    "offline_accounts",
    "offline_credentials",
    "paginate",
    "paginate_after",
    "render_config",
    "running",
    "serve_app",
]
