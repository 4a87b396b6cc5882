"""The Smaregi emulator of the local sandbox.

Served under ``/smaregi``: the ID host under ``/smaregi/id`` and the API host under
``/smaregi/api`` (so ``id_base_url = <sandbox>/smaregi/id`` and
``base_url = <sandbox>/smaregi/api``).

What it does as documented (see docs/providers/smaregi.md, "Sources"):

* ``POST /id/app/{contract_id}/token``: client credentials with HTTP Basic auth (the
  ``Basic {...}`` brace form some clients send is accepted), a form body, requested
  scopes checked against the app's; ``expires_in`` from the ``token_lifetime`` reading.
* Bearer check on every API call (401 problem JSON); a token lacking the operation's
  scope gets 403 problem JSON.
* The app payment method at ``/{contract_id}/pos/app_payment_method`` (the one path a
  developer used, forum discussion 539): one per (client id, contract); a second POST
  answers 403 with the exact message reported there; the app names it
  (``paymentMethodName``).
* Transactions: create (numbers must be JSON strings; ``subtotal`` must equal the sum of
  the detail lines; required fields; ``transactionDetailId`` 1..999; the app payment's
  slip fields on its ``depositOthers`` item; a terminal the store does not have needs
  ``sumDivision`` 2 with ``sumDate``; ``transactionUuid`` kept, or Smaregi's default),
  get, list (a bare array; a range filter is required; ranges over 31 days refused;
  ``limit``/``page``/``sort``) and cancel (取消: ``cancelDivision`` becomes 1).
* 返品取消 at the register (control ``dispose_transaction``): the original gets
  ``disposeDivision`` 1, a new offsetting record ``disposeDivision`` 2 points back to it
  through ``disposeServerTransactionHeadId``; ``cancelDivision`` stays 0.
* Problem-JSON errors ``{"type": "about:blank", "title", "detail", "status"}``.

Where no public source settles a fact, the emulator plays each reading; the
``configure`` control action picks one (defaults first; the Assumptions table of the
docs names each):

* ``payment_method_name``: ``required`` | ``optional`` (omitted: the app's name).
* ``sum_division``: ``enforced`` | ``lenient`` (a sale on a terminal the store does not
  have is refused without ``sumDivision`` 2, or accepted).
* ``transaction_uuid_filter``: ``exact`` | ``ignored`` | ``refused`` (the list's
  ``transaction_uuid`` parameter filters, is ignored, or is answered 400).
* ``cancel_time``: ``optional`` | ``required`` (``cancelDateTime`` in the cancel body).
* ``token_lifetime`` (seconds, default 3600) and ``token_calls_count`` (false: token
  requests are outside the API rate limit).

Other assumptions: GET of the app payment method answers a bare array (O-S1);
POST /transactions answers 200 with the created head (O-S6); no duplicate protection on
``terminalTranId`` (O-S7); cancel answers 200 ``{"message": "取消が完了しました"}`` and a
repeat is 400 (O-S8); rate limits are off until the ``rate_limit`` control sets
per-second quotas (O-S3); validation messages are the emulator's own wording.
"""

from __future__ import annotations

from ._control import SmaregiControl
from ._routes import SmaregiRoutes, problem
from ._state import READ, WRITE

__all__ = ["READ", "WRITE", "SmaregiEmulator", "problem"]


class SmaregiEmulator(SmaregiControl, SmaregiRoutes):
    """Stateful emulator of Smaregi's ID host and POS transactions API.

    Fixed test credentials (also from `credentials`): client id
    ``pgsbx_smaregi_client``, secret ``pgsbx_smaregi_secret_7c1e94a2``, contract id
    ``sb_pgsandbox``, store ``1`` (terminals ``1`` and ``2``) and store ``2``.

    The tables live in `._state`, the handlers in `._routes`, the control actions in
    `._control`; the ``paygate demo`` script is `paygate_smaregi._demo.demo`.
    """
