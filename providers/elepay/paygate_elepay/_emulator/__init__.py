"""The elepay sandbox emulator: EasyQR codes, charges and refunds, in memory.

Faithful to what is documented (paths, camelCase JSON, the exact media type
``application/json;charset=utf-8``, 201 on create, 204 on close, ``{total, charges}``
offset pagination, M-codes as HTTP 400, webhook retries 1 min x3 then 10 min x3, and the
server FAQ's rule that an ``orderNo`` is refused with ``M002007`` while it is paid *or*
its code is still valid), and wire-compatible with the official ``elepay-python-sdk``.
There is no code list, as in elepay's API. Where elepay's documents are silent the
emulator assumes, says so in ``docs/providers/elepay.md`` ("Assumptions"), and lets a
test play each reading through a control action:

* error bodies are ``{"code": "<internal string>", "errorCode": "M…", "message": "…"}``
  (the FAQ's ``M002007`` example; other internal codes are made up in its pattern);
* a failed payment attempt leaves the code ``pending`` and creates no charge and no
  webhook; the payer may try again until the code expires;
* what ``expired`` says about a deleted code (``expired_flag``), and whether a revoke
  is listed under the charge's ``refunds`` (``revoke_refunds``);
* ``M005000`` and ``M006001`` are only sent when a test asks (``rate_limit``, ``busy``);
* closing a paid code answers ``M006003``, an expired one ``M006004``.

Control actions (``POST /_sandbox/elepay/<action>``; ``paygate sandbox actions elepay``
lists them): ``pay_code``, ``fail_payment``, ``rate_limit``, ``busy``, ``refund_mode``,
``complete_refund``, ``expired_flag``, ``revoke_refunds`` (see `._control`).

The package: `._state` (credentials, tables, lifecycle), `._routes` (the HTTP API and
elepay's error bodies), `._control` (the ``control_<action>`` methods).
"""

from __future__ import annotations

from ._control import ElepayControl
from ._routes import ElepayRoutes
from ._state import APP_ID, PUBLIC_KEY, SECRET_KEY, WEBHOOK_SCHEDULE

__all__ = ["APP_ID", "PUBLIC_KEY", "SECRET_KEY", "WEBHOOK_SCHEDULE", "ElepayEmulator"]


class ElepayEmulator(ElepayControl, ElepayRoutes):
    """Stateful elepay EasyQR emulator (see the module notes for its assumptions).

    Test credentials are fixed: secret key ``sk_test_paygate_sandbox_elepay_0001``.

    >>> from paygate.sandbox import EmulatorContext, SandboxClock
    >>> emu = ElepayEmulator(EmulatorContext(SandboxClock(), lambda: "http://127.0.0.1:1/elepay",
    ...                                      lambda delivery: None))
    >>> emu.credentials()["secret_key"]
    'sk_test_paygate_sandbox_elepay_0001'
    >>> sorted(ElepayEmulator.actions())[:3]
    ['busy', 'complete_refund', 'expired_flag']
    """

    def catch_up(self) -> None:
        """Close the codes whose expiry the clock passed."""
        self._sweep()
