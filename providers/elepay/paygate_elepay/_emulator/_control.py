"""The elepay emulator's control actions: what the payer does, and what a test plays.

Each ``control_<action>`` method is one action of ``paygate sandbox control elepay
<action>``; the first line of its docstring is what ``paygate sandbox actions`` lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate.sandbox import ControlError

from ._state import ElepayState, payment_method

__all__ = ["ElepayControl"]


class ElepayControl(ElepayState):
    """The control actions over the emulator's state."""

    def control_pay_code(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The payer scans ``{code_id}`` and pays with ``payment_method`` (PayPay)."""
        return self._pay(_param(params, "code_id", "codeId"), payment_method(params))

    def control_fail_payment(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A payment attempt on ``{code_id}`` fails: the code stays pending, no webhook."""
        code = self._control_code(_param(params, "code_id", "codeId"))
        payment_method(params)
        if code.status != "pending":
            raise ControlError(f"code is {code.status}", status=409)
        code.attempts += 1
        return {"codeId": code.id, "status": code.status, "attempts": code.attempts}

    def control_rate_limit(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The next ``{count}`` (1) API calls answer ``M005000`` (too many requests)."""
        self._throttled = _count(params)
        return {"throttled": self._throttled}

    def control_busy(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The next ``{count}`` (1) closes, refunds and revokes answer ``M006001``."""
        self._busy = _count(params)
        return {"busy": self._busy}

    def control_refund_mode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Whether new refunds complete at once: ``{mode}`` immediate or pending."""
        self._refund_mode = _choice(params, "mode", ("immediate", "pending"))
        return {"mode": self._refund_mode}

    def control_complete_refund(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A pending refund ``{refund_id}`` completes (``refund.succeeded``)."""
        refund_id = _param(params, "refund_id", "refundId")
        for charge in self.charges.values():
            for refund in charge.refunds:
                if refund.id == refund_id:
                    if refund.status != "pending":
                        raise ControlError("the refund is not pending", status=409)
                    self._settle(charge, refund)
                    return {"refundId": refund.id, "status": refund.status}
        raise ControlError(f"no refund {refund_id!r}", status=404)

    def control_expired_flag(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """What ``expired`` says of a deleted code: ``{meaning}`` ran_out or invalid.

        ``ran_out`` (the default): the flag means "ran out", so a deleted code reads
        ``expired: false``; ``invalid``: it means "no longer valid" and reads true.
        """
        self._expired_flag = _choice(params, "meaning", ("ran_out", "invalid"))
        return {"meaning": self._expired_flag}

    def control_revoke_refunds(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """How a revoked paid charge lists its refunds: ``{mode}`` empty or listed.

        ``empty`` (the default): ``refunds`` stay as they were; ``listed``: the returned
        amount is listed there as a settled refund.
        """
        self._revoke_refunds = _choice(params, "mode", ("empty", "listed"))
        return {"mode": self._revoke_refunds}


def _param(params: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    raise ControlError(f"{names[0]} is required")


def _count(params: Mapping[str, Any]) -> int:
    count = params.get("count", 1)
    if not isinstance(count, int) or count < 0:
        raise ControlError("count must be a non-negative integer")
    return count


def _choice(params: Mapping[str, Any], name: str, allowed: tuple[str, str]) -> str:
    value = params.get(name)
    if value not in allowed:
        raise ControlError(f"{name} must be {allowed[0]!r} or {allowed[1]!r}")
    return str(value)
