"""Worker functions for multi-process tests (importable by spawned children)."""

from __future__ import annotations

from typing import Any

from paygate import Card, Gateway, IdempotencyInProgress, Money, RetryPolicy


def charge_once(gw: Any, key: str) -> str:
    """Charge ¥1,200 with ``key``; the provider ref, or "in_progress"."""
    try:
        charge = gw.charge(
            "fake", amount=Money.jpy(1200), method=Card(token="tok"), idempotency_key=key
        )
    except IdempotencyInProgress:
        return "in_progress"
    return str(charge.provider_ref)


def process_worker(config: dict[str, Any], store: str, key: str, start: Any, out: Any) -> None:
    """One process of a same-key storm."""
    from paygate.adapter import register_provider

    from . import FakeProvider

    register_provider(FakeProvider)
    with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
        start.wait()
        out.put(charge_once(gw, key))


def crash_loop(config_json: str, store: str, count: int) -> None:
    """Charge keys crash-0 .. crash-<count-1> in order (the crash test kills this)."""
    import json
    import sys

    from paygate import Money
    from paygate.adapter import register_provider

    from . import FakeProvider

    register_provider(FakeProvider)
    config = json.loads(config_json)
    with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
        for i in range(count):
            charge = gw.charge(
                "fake",
                amount=Money.jpy(100 + i),
                method=Card(token="tok"),
                idempotency_key=f"crash-{i}",
            )
            sys.stdout.write(f"{i} {charge.provider_ref}\n")
            sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - run by the crash test
    import sys

    crash_loop(sys.argv[1], sys.argv[2], int(sys.argv[3]))
