"""Functions run in child processes by the reliability tests (importable after spawn)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import TypeAdapter

from paygate import (
    Gateway,
    IdempotencyInProgress,
    Money,
    OutcomeUnknown,
    PaygateError,
    PaymentMethod,
    RetryPolicy,
)

METHOD: TypeAdapter[Any] = TypeAdapter(PaymentMethod)


def charge_spec(account: str, key: str, amount: int, method: Any) -> dict[str, Any]:
    """A picklable description of one charge."""
    return {
        "account": account,
        "key": key,
        "amount": amount,
        "method": method.model_dump(mode="json"),
    }


def refund_spec(account: str, charge_id: str, key: str, amount: int | None) -> dict[str, Any]:
    """A picklable description of one refund."""
    return {
        "op": "refund",
        "account": account,
        "charge_id": charge_id,
        "key": key,
        "amount": amount,
    }


def charge_from_spec(gw: Gateway, spec: dict[str, Any]) -> str:
    """Run the charge (or refund) once; the provider ref, or the name of the error."""
    try:
        if spec.get("op") == "refund":
            amount = spec["amount"]
            refund = gw.refund(
                spec["account"],
                spec["charge_id"],
                idempotency_key=spec["key"],
                amount=None if amount is None else Money.jpy(amount),
            )
            return refund.provider_ref
        charge = gw.charge(
            spec["account"],
            amount=Money.jpy(spec["amount"]),
            method=METHOD.validate_python(spec["method"]),
            idempotency_key=spec["key"],
        )
    except IdempotencyInProgress:
        return "in_progress"
    except OutcomeUnknown:
        return "unknown"
    except PaygateError as exc:
        return f"error:{exc.code}"
    return charge.provider_ref


def storm_worker(
    config: dict[str, Any],
    store: str,
    specs: list[dict[str, Any]],
    ready: Any,
    start: Any,
    out: Any,
) -> None:
    """One process (one app instance) of a same-key storm: the same charges, in order."""
    with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
        ready.put(True)
        start.wait(60)
        out.put([charge_from_spec(gw, spec) for spec in specs])


def crash_loop(config_json: str, store: str, specs_json: str) -> None:
    """Charge every spec in order, printing ``index ref``; the crash test kills this."""
    config = json.loads(config_json)
    specs = json.loads(specs_json)
    with Gateway.from_config(config, store=store, retry=RetryPolicy.no_wait()) as gw:
        for i, spec in enumerate(specs):
            ref = charge_from_spec(gw, spec)
            sys.stdout.write(f"{i} {ref}\n")
            sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - run by the crash test
    crash_loop(sys.argv[1], sys.argv[2], sys.argv[3])
