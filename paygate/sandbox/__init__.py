"""The local sandbox: stateful emulators of every installed provider on one loopback port."""

from ._emulator import (
    ControlError,
    Emulator,
    EmulatorContext,
    LedgerEntry,
    SandboxClock,
    WebhookDelivery,
)

__all__ = [
    "ControlError",
    "Emulator",
    "EmulatorContext",
    "LedgerEntry",
    "SandboxClock",
    "WebhookDelivery",
]
