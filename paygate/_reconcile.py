"""Reconciliation: resolve unknown outcomes and refresh stale charges.

Unknown outcomes (a request that may have reached the provider, no answer) are asked
for through the provider's lookup. Providers without a lookup cannot tell; the row then
says what the merchant can do (retry with the same key inside the provider's window).
Stale non-terminal charges are refreshed with a status call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _operations as ops
from ._adapter import ChargeRequest, Operation
from ._errors import OutcomeUnknown, PaygateError
from ._gateway import Gateway
from ._models import Card, ChargeStatus, Konbini, PosSale, QRCode, Wallet
from ._money import Money

__all__ = ["ReconcileRow", "reconcile"]

_METHODS: dict[str, Any] = {
    "card": Card,
    "konbini": Konbini,
    "qr": QRCode,
    "wallet": Wallet,
    "pos": PosSale,
}
_WAITING = (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION, ChargeStatus.AUTHORIZED)


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    """What reconciliation found for one record."""

    account: str
    kind: str
    reference: str
    before: str
    after: str
    action: str


def reconcile(
    gateway: Gateway,
    *,
    account: str | None = None,
    stale_after: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[ReconcileRow]:
    """Resolve what can be resolved; return a row per record looked at.

    Unknown charge outcomes are asked of the provider's lookup (found: the key completes
    and a retry replays the charge; not found inside the key window: the key is released;
    otherwise it stays unknown with what to do next). Stale pending charges are refreshed.
    ``dry_run`` only lists what would be asked, changing nothing and calling no provider.

    >>> from paygate import Gateway, reconcile
    >>> rows = reconcile(Gateway.from_config("paygate.toml"))  # doctest: +SKIP
    >>> [(row.reference, row.action) for row in rows]  # doctest: +SKIP
    [('ch_...', 'found ch_9f...: a retry replays it')]
    """
    now = now or datetime.now(UTC)
    rows: list[ReconcileRow] = []
    for record in gateway.store.records(states=["unknown", "started"], account=account):
        if (
            record.state == "started"
            and record.lease_until is not None
            and record.lease_until > now
        ):
            continue  # in flight right now
        acct, operation, key = record.key.split("\x1f", 2)
        ref = record.charge_id or key
        if acct not in gateway.accounts:
            rows.append(
                ReconcileRow(
                    acct,
                    "unknown outcome",
                    ref,
                    record.state,
                    record.state,
                    "account not configured",
                )
            )
            continue
        provider = gateway.provider(acct)
        if operation != Operation.CHARGE:
            rows.append(
                ReconcileRow(
                    acct,
                    f"unknown {operation}",
                    ref,
                    record.state,
                    record.state,
                    f"retry the {operation} with the same key (the provider deduplicates)",
                )
            )
            continue
        policy = provider.policy(Operation.CHARGE)
        if dry_run:
            action = "would ask the provider's lookup" if policy.lookup else "no lookup"
            rows.append(
                ReconcileRow(acct, "unknown outcome", ref, record.state, record.state, action)
            )
            continue
        if not policy.lookup:
            if policy.key_window == "unknown":
                window = " (its key window is not stated: check its dashboard first)"
            elif policy.key_window:
                window = f" within {policy.key_window}"
            else:
                window = ""
            action = (
                f"{provider.name} has no lookup: retry with the same key{window}"
                if policy.keyed
                else f"{provider.name} can neither deduplicate nor look up: check its dashboard"
            )
            rows.append(
                ReconcileRow(acct, "unknown outcome", ref, record.state, record.state, action)
            )
            continue
        hint = record.lookup or {}
        method_cls = _METHODS.get(str(hint.get("method")))
        if method_cls is None or "amount" not in hint:
            rows.append(
                ReconcileRow(
                    acct, "unknown outcome", ref, record.state, record.state, "no lookup hint kept"
                )
            )
            continue
        fields = hint.get("method_fields")
        fields = dict(fields) if isinstance(fields, dict) else {}
        fields["type"] = hint["method"]
        # Personal fields were never kept; a lookup that needs them fails below, per row.
        method = method_cls.model_construct(**fields)
        if "lines" in fields and isinstance(fields["lines"], list):
            from ._models import PosLine

            lines = tuple(PosLine.model_validate(line) for line in fields["lines"])
            method = method_cls.model_construct(**{**fields, "lines": lines})
        req = ChargeRequest(
            amount=Money(amount=int(hint["amount"]), currency=str(hint.get("currency", "JPY"))),
            method=method,
        )
        try:
            found = gateway._run(
                acct,
                "reconcile",
                ops.resolve_charge(provider, gateway._env, key, record.fingerprint, req),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            rows.append(
                ReconcileRow(
                    acct,
                    "unknown outcome",
                    ref,
                    record.state,
                    record.state,
                    f"lookup needs data that is not kept ({type(exc).__name__}): "
                    "retry with the same key",
                )
            )
            continue
        except PaygateError as exc:
            rows.append(
                ReconcileRow(
                    acct,
                    "unknown outcome",
                    ref,
                    record.state,
                    record.state,
                    f"still unknown: {exc.message}"
                    if isinstance(exc, OutcomeUnknown)
                    else f"still unknown ({exc.code})",
                )
            )
            continue
        if found is None:
            rows.append(
                ReconcileRow(
                    acct,
                    "unknown outcome",
                    ref,
                    record.state,
                    "not created",
                    "released: a retry creates it",
                )
            )
        else:
            rows.append(
                ReconcileRow(
                    acct,
                    "unknown outcome",
                    found.id,
                    record.state,
                    found.status.value,
                    f"found {found.provider_ref}: a retry replays it",
                )
            )
    for charge in gateway.store.charges(
        account=account, statuses=_WAITING, updated_before=now - stale_after
    ):
        if charge.account not in gateway.accounts:
            continue
        if dry_run:
            rows.append(
                ReconcileRow(
                    charge.account,
                    "stale charge",
                    charge.charge_id,
                    charge.status.value,
                    charge.status.value,
                    "would refresh its status",
                )
            )
            continue
        try:
            fresh = gateway.status(charge.account, charge.charge_id)
        except PaygateError as exc:
            rows.append(
                ReconcileRow(
                    charge.account,
                    "stale charge",
                    charge.charge_id,
                    charge.status.value,
                    charge.status.value,
                    f"status failed ({exc.code})",
                )
            )
            continue
        changed = fresh.status != charge.status
        rows.append(
            ReconcileRow(
                charge.account,
                "stale charge",
                charge.charge_id,
                charge.status.value,
                fresh.status.value,
                "updated" if changed else "unchanged",
            )
        )
    return rows
