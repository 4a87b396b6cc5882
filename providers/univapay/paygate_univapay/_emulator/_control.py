"""The UnivaPay emulator's control actions: what the customer or the operator does.

Each ``control_<action>`` method is one action of ``paygate sandbox control univapay
<action>``; the first line of its docstring is what ``paygate sandbox actions`` lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from paygate.sandbox import ControlError

from ._state import (
    BANK_ACCOUNT_ID,
    CARD_ALIASES,
    MERCHANT_ID,
    TRANSFER_STATUSES,
    StoredCharge,
    UnivapayState,
    public,
    ts,
)

__all__ = ["UnivapayControl"]


class UnivapayControl(UnivapayState):
    """The control actions over the emulator's state."""

    def control_pay_konbini(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The customer pays an issued slip ``{charge_id}``."""
        charge = self._control_charge(params)
        if charge.wire["status"] == "pending":
            raise ControlError("the slip is not issued yet", status=409)
        if charge.wire["status"] != "awaiting":
            raise ControlError(f"the charge is {charge.wire['status']}", status=409)
        self._succeed(charge, int(charge.wire["requested_amount"]))
        return public(charge.wire)

    def control_issue_konbini(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Issue a slip ``{charge_id}`` held back by ``configure {auto_issue: false}``."""
        charge = self._control_charge(params)
        if charge.wire["status"] != "pending":
            raise ControlError(f"the charge is {charge.wire['status']}", status=409)
        self._issue(charge)
        return public(charge.wire)

    def control_finish_three_ds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """End the customer's 3-D Secure step ``{charge_id, result}`` (success or fail)."""
        charge = self._control_charge(params, "card")
        if charge.wire["status"] != "awaiting":
            raise ControlError(f"the charge is {charge.wire['status']}", status=409)
        if str(params.get("result", "success")) == "success":
            if charge.capture_after_3ds:
                self._succeed(charge, int(charge.wire["requested_amount"]))
            else:
                charge.wire["status"] = "authorized"
                charge.wire["capture_status"] = "authorized"
                self._notify(charge.wire["id"])
                self._emit("charge_updated", charge.wire)
        else:
            charge.wire["status"] = "failed"
            charge.wire["error"] = {
                "code": 309,
                "message": "THREE_DS_AUTHENTICATION_FAILED",
                "detail": "sandbox 3-D Secure failed",
            }
            self._notify(charge.wire["id"])
            self._emit("charge_finished", charge.wire)
        return public(charge.wire)

    def control_complete_pending(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Move every pending charge, refund and cancel on."""
        self._complete_pending()
        return {}

    def control_card_token(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh one-time card token ``{card}`` (a test card name or a card number).

        Names: ``success``, ``declined``, ``expired``, ``error``, ``three_ds``.
        """
        card = str(params.get("card", "success"))
        number = CARD_ALIASES.get(card, re.sub(r"\D", "", card))
        if not 12 <= len(number) <= 19:
            raise ControlError(
                "card must be success, declined, expired, error, three_ds or a number"
            )
        return {"id": self._card_token(number)["id"]}

    def control_set_transfer_status(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Move a transfer on ``{transfer_id, status}``."""
        transfer = self.transfers.get(str(params.get("transfer_id")))
        if transfer is None:
            raise ControlError("unknown transfer", status=404)
        status = str(params.get("status"))
        if status not in TRANSFER_STATUSES:
            raise ControlError(f"status must be one of {sorted(TRANSFER_STATUSES)}")
        transfer["status"] = status
        return dict(transfer)

    def _control_charge(self, params: Mapping[str, Any], kind: str = "konbini") -> StoredCharge:
        charge = self.charges.get(str(params.get("charge_id")))
        if charge is None:
            raise ControlError("unknown charge", status=404)
        if charge.payment_type != kind:
            raise ControlError(f"not a {kind} charge", status=409)
        return charge

    def control_configure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Change how the emulator behaves (slips, holds, webhooks, limits, keys).

        Keys: ``auto_issue``, ``auto_complete``, ``poll_hold_seconds``,
        ``webhook_envelope``, ``expiry_error``, ``over_limit``, ``idempotency_error``.

        ``webhook_envelope`` is ``"openapi"`` or ``"reference"``; ``expiry_error`` the
        ``error`` object of an expired slip (null: none); ``over_limit`` 429 (an empty
        429) or 400 (``RATE_LIMIT_EXCEEDED``) for an injected rate limit;
        ``idempotency_error`` true answers every keyed request ``Idempotency-Status:
        error`` and stores nothing (best effort). Answers the settings now in force.
        """
        for name in ("auto_issue", "auto_complete"):
            if name in params:
                value = params[name]
                if not isinstance(value, bool):
                    raise ControlError(f"{name} must be true or false")
                setattr(self, name, value)
        if "poll_hold_seconds" in params:
            hold = params["poll_hold_seconds"]
            if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 <= hold <= 60:
                raise ControlError("poll_hold_seconds must be between 0 and 60")
            self.poll_hold_seconds = float(hold)
        if "webhook_envelope" in params:
            envelope = params["webhook_envelope"]
            if envelope not in ("openapi", "reference"):
                raise ControlError('webhook_envelope must be "openapi" or "reference"')
            self.webhook_envelope = envelope
        if "over_limit" in params:
            if params["over_limit"] not in (400, 429):
                raise ControlError("over_limit must be 429 or 400")
            self.over_limit = int(params["over_limit"])
        if "idempotency_error" in params:
            if not isinstance(params["idempotency_error"], bool):
                raise ControlError("idempotency_error must be true or false")
            self.idempotency_error = params["idempotency_error"]
        if "expiry_error" in params:
            error = params["expiry_error"]
            if error is not None and not isinstance(error, dict):
                raise ControlError("expiry_error must be an object or null")
            self.expiry_error = dict(error) if error else None
        return {
            "auto_issue": self.auto_issue,
            "auto_complete": self.auto_complete,
            "poll_hold_seconds": self.poll_hold_seconds,
            "webhook_envelope": self.webhook_envelope,
            "expiry_error": self.expiry_error,
            "over_limit": self.over_limit,
            "idempotency_error": self.idempotency_error,
        }

    def control_run_transfer(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Gather the unassigned ledger lines into a ``created`` transfer."""
        lines = [i for i in self.ledgers.values() if i["transfer_id"] is None]
        if not lines:
            raise ControlError("no ledger lines to transfer", status=409)
        transfer_id = self._new_id()
        amount = sum(int(i["amount"]) for i in lines)
        for line in lines:
            line["transfer_id"] = transfer_id
        now = ts(self.now)
        transfer = {
            "id": transfer_id,
            "merchant_id": MERCHANT_ID,
            "bank_account_id": BANK_ACCOUNT_ID,
            "amount": amount,
            "currency": "JPY",
            "amount_formatted": amount,
            "status": "created",
            "error_code": None,
            "error_text": None,
            "metadata": {},
            "started_by": "system",
            "created_on": now,
            "from": min(i["created_on"] for i in lines),
            "to": now,
        }
        self.transfers[transfer_id] = transfer
        return dict(transfer)
