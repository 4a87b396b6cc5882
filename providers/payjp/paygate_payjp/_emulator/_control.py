"""The PAY.JP emulator's control actions (``POST /_sandbox/payjp/<action>``).

Each ``control_<action>`` method is one action; the sandbox's `Emulator.control` runs
it, and ``paygate sandbox actions payjp`` lists them with their first docstring line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate.sandbox import ControlError

from ._books import BookConfig
from ._state import TEST_TOKENS, ChargeRec, PayjpState, Readings

__all__ = ["PayjpControl"]


class PayjpControl(PayjpState):
    """Customer- and operator-side actions; each first runs what the clock made due."""

    def catch_up(self) -> None:
        """Run the closings and expiries now due."""
        self._catch_up(self._ts())

    def control_reading(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """How facts PAY.JP does not document are played (see Readings)."""
        current = self.readings.__dict__
        unknown = set(params) - set(current)
        if unknown:
            raise ControlError(f"unknown readings {sorted(unknown)}; known: {sorted(current)}")
        merged = {**current, **params}
        if merged["idempotent_writes"] not in ("all", "create"):
            raise ControlError("idempotent_writes must be all or create")
        if merged["capture_amount"] not in ("authorized", "captured"):
            raise ControlError("capture_amount must be authorized or captured")
        if merged["terms_order"] not in ("newest", "oldest"):
            raise ControlError("terms_order must be newest or oldest")
        try:
            self.readings = Readings(
                idempotent_writes=str(merged["idempotent_writes"]),
                capture_amount=str(merged["capture_amount"]),
                refunded_after_capture=bool(merged["refunded_after_capture"]),
                expiry_marks_refunded=bool(merged["expiry_marks_refunded"]),
                tds_timeout_minutes=int(merged["tds_timeout_minutes"]),
                terms_order=str(merged["terms_order"]),
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad reading: {exc}") from None
        return dict(self.readings.__dict__)

    def control_close_term(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run a closing now: the current Term ends, Statements and Balances follow."""
        term, statements = self.books.close_term(self._ts())
        return {
            "term": term.wire(),
            "statements": [self.books.statement_wire(st) for st in statements],
            "balances": [self.books.balance_wire(b) for b in self.books.balances.values()],
        }

    def control_configure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Payout rules (cycle, payout days, fees, minimum payout), from the next Term."""
        current = self.books.config
        try:
            config = BookConfig(
                cycle_days=_opt_int(params.get("cycle_days", current.cycle_days)),
                payout_days=_opt_int(params.get("payout_days", current.payout_days)),
                fee_rate=str(params.get("fee_rate", current.fee_rate)),
                transfer_fee=int(params.get("transfer_fee", current.transfer_fee)),
                minimum_payout=int(params.get("minimum_payout", current.minimum_payout)),
                forfeit_threshold=int(params.get("forfeit_threshold", current.forfeit_threshold)),
            )
            config.fee_basis_points  # noqa: B018 - validates the rate
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad configuration: {exc}") from None
        self.books.configure(config)
        return {"applies_from": "next_term", **config.__dict__}

    def control_token(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Mint a single-use test card token (card: success, card_declined, ...)."""
        card = str(params.get("card", "success"))
        behaviour = f"tok_{card}"
        if behaviour not in TEST_TOKENS:
            raise ControlError(f"unknown test card {card!r}; known: {sorted(TEST_TOKENS)}")
        token = self._id("tok")
        self.tokens[token] = (behaviour, False)
        return {"id": token, "card": card, "single_use": True}

    def control_tds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The customer completes or fails 3-D Secure (charge, result)."""
        charge = self._charge_or_control_error(params.get("charge"))
        result = str(params.get("result", "verified"))
        if result not in ("verified", "attempted", "failed", "error"):
            raise ControlError("result must be verified, attempted, failed or error")
        if charge.wire.get("three_d_secure_status") != "unverified":
            raise ControlError("the charge is not waiting for 3-D Secure", status=409)
        charge.wire["three_d_secure_status"] = result
        return dict(charge.wire)

    def control_payout(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Pay a transfer Balance out now (balance)."""
        try:
            balance = self.books.pay(str(params.get("balance")), self._ts())
        except (KeyError, ValueError) as exc:
            raise ControlError(f"cannot pay out: {exc}", status=409) from None
        return self.books.balance_wire(balance)

    def control_settle_claim(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The merchant paid a claim Balance (balance)."""
        try:
            balance = self.books.settle_claim(str(params.get("balance")), self._ts())
        except (KeyError, ValueError) as exc:
            raise ControlError(f"cannot settle: {exc}", status=409) from None
        return self.books.balance_wire(balance)

    def control_tenant(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Create a tenant (id, name, platform_fee_rate)."""
        tid = str(params.get("id") or self._id("ten"))
        if tid in self.tenants:
            raise ControlError(f"tenant {tid} exists", status=409)
        tenant = self._tenant_wire(
            tid,
            str(params.get("name", tid)),
            str(params.get("platform_fee_rate", "0.00")),
            self._ts(),
        )
        self.tenants[tid] = tenant
        return tenant

    def control_webhook(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Deliver an event again (type, id of an existing object)."""
        kind = str(params.get("type", ""))
        oid = str(params.get("id", ""))
        obj: Mapping[str, Any] | None = None
        if oid in self.charges:
            obj = self.charges[oid].wire
        elif oid in self.books.balances:
            obj = self.books.balance_wire(self.books.balances[oid])
        elif oid in self.books.statements:
            obj = self.books.statement_wire(self.books.statements[oid])
        elif self.books.term(oid) is not None:
            term = self.books.term(oid)
            assert term is not None
            obj = term.wire()
        if obj is None or "." not in kind:
            raise ControlError("give an event type and the id of an existing object")
        self._emit(kind, obj)
        return self.events[-1]

    def _charge_or_control_error(self, oid: Any) -> ChargeRec:
        charge = self.charges.get(str(oid))
        if charge is None:
            raise ControlError(f"no charge {oid!r}", status=404)
        return charge


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
