"""The capability matrix shown by ``paygate providers`` and in the README."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from .._models import MethodCapabilities


def _sample_settings(cls: Any) -> Any:
    """Settings good enough to ask an adapter for its capabilities (never used for I/O).

    The emulator's own account table is the most faithful sample; adapters without an
    emulator get placeholder values.
    """
    emulator = cls.emulator()
    if emulator is not None:
        from ..sandbox import EmulatorContext, SandboxClock

        ctx = EmulatorContext(
            clock=SandboxClock(),
            base_url=lambda: f"http://127.0.0.1:9/{cls.name}",
            deliver=lambda _delivery: None,
        )
        table = dict(emulator(ctx).account_settings())
        table.pop("provider", None)
        table.pop("methods", None)
        return cls.settings_model.model_validate(table)
    values: dict[str, Any] = {}
    for name, field in cls.settings_model.model_fields.items():
        if not field.is_required():
            continue
        annotation = str(field.annotation)
        if name.endswith("url"):
            values[name] = "https://example.invalid"
        elif "SecretStr" in annotation:
            values[name] = SecretStr("x" * 43)
        else:
            values[name] = "1"
    return cls.settings_model.model_validate(values)


def _refund_cell(method: MethodCapabilities) -> str:
    if method.refund == "none":
        return "none"
    if not method.refund_moves_money:
        return f"void (no money moves, {method.refund})"
    return method.refund + (" (multiple)" if method.multiple_refunds else "")


def capability_rows() -> list[tuple[str, ...]]:
    """One row per (provider, method)."""
    from .._registry import provider_classes

    rows: list[tuple[str, ...]] = []
    for name, cls in sorted(provider_classes().items()):
        try:
            caps = cls(_sample_settings(cls), account=name).capabilities()
        except Exception as exc:
            rows.append((name, f"(unavailable: {type(exc).__name__})", *([""] * 7)))
            continue
        sandbox = "yes" if cls.emulator() is not None else "no"
        for method in caps.methods.values():
            rows.append(
                (
                    name,
                    method.method,
                    _refund_cell(method),
                    "yes" if method.cancel else "no",
                    "yes" if method.capture else "no",
                    "yes" if caps.payout_balance else "no",
                    caps.webhook_auth if caps.webhooks else "no",
                    "yes" if method.metadata else "kept by paygate",
                    sandbox,
                )
            )
    return rows
