"""The UnivaPay sandbox emulator: tokens, charges, cancels, refunds, transfers, webhooks.

Served by the paygate sandbox under ``/univapay``; the official ``univapay-client-sdk``
works against it with ``base_url`` pointing there.

What it does, and what it assumes where UnivaPay's documentation is silent:

* Authentication: ``Authorization: Bearer {secret}.{jwt}`` with the fixed test
  credentials below; ``Bearer {jwt}`` alone (the browser widget form) may only create
  tokens. Missing header: 401 ``AUTH_HEADER_MISSING``; wrong token: 401
  ``INVALID_APP_TOKEN`` / ``INVALID_CREDENTIALS``.
* Idempotency: every POST and PATCH honours ``Idempotency-Key`` for 24 hours of sandbox
  time (kept in `paygate.sandbox.KeyedReplies`). First use answers
  ``Idempotency-Status: successfully_stored``; the same key with the same method, path
  and JSON body replays the stored answer with ``retrieved_idempotent_response``; the
  same key with anything else is 409 ``IDEMPOTENCY_KEY_CONFLICT`` with
  ``conflicting_key``. A POST or PATCH without a key answers ``not_stored``
  (assumption: UnivaPay documents the value, not when it is sent). 5xx answers are not
  stored.
* Lifecycle: charges, refunds and cancels are created ``pending`` (the 201 body says
  so, as UnivaPay documents) and move on the moment after that answer is built, so
  every later read sees the next state: a konbini charge becomes ``awaiting`` with its
  slip issued (``charge_updated``), a card charge ``successful``, ``authorized`` or
  ``failed``, refunds and cancels ``successful``. The control action ``configure``
  (``auto_issue`` / ``auto_complete`` false) keeps them pending until ``issue_konbini``
  or ``complete_pending``, to exercise the ``polling=true`` hold and unissued slips.
* Konbini slip (UnivaPay's konbini guide): once the charge is ``awaiting`` its metadata
  holds ``internal_convenience_payment_number`` and, for 7-Eleven only,
  ``internal_convenience_payment_url`` (a slip page served at ``/_slips/{id}``).
  ``capture_at`` is null unless the charge request set it (the documented ``awaiting``
  charge has ``capture_at: null``). The deadline is the requested ``capture_at``, else
  the application date plus ``expiration_period`` (default 30 days) at 23:59:59 JST, or
  at ``expiration_time_shift`` when given; a period with a time part is added exactly.
* Expiry: when the sandbox clock passes the deadline of an unpaid slip the charge
  becomes ``failed`` (UnivaPay: an expired application "becomes failed"). Its ``error``
  is not documented: null by default, or the object set with ``configure
  {expiry_error}``.
* ``polling=true`` holds a GET of a pending charge, refund or cancel until it leaves
  ``pending`` or ``poll_hold_seconds`` (default 10) pass, waiting on an asyncio event.
* Cards: see `TEST_CARDS`; the same recurring token and amount again within 30 seconds
  is 400 ``CHARGE_TOO_QUICK`` (the two seed tokens, reusable test fixtures, are exempt).
  Konbini charges cannot be refunded (400 ``REFUND_NOT_ALLOWED``) and, once paid, not
  cancelled (400 ``CANCEL_NOT_ALLOWED``).
* Webhooks: ``{"id", "event", "data", "created_on"}`` (the OpenAPI envelope) or, with
  ``configure {webhook_envelope: "reference"}``, ``{"event", "data"}`` (the reference
  page's example and the Java SDK model), sent to every webhook registered
  through ``POST /stores/{storeId}/webhooks`` whose triggers match, with its
  ``auth_token`` as the whole ``Authorization`` header; when none is registered, to the
  sandbox's webhook URL with `WEBHOOK_AUTH_TOKEN`. Retries after 1, 5 and 15 minutes of
  sandbox time (assumption: UnivaPay documents only that retries depend on the answer).
* Ledgers and transfers: each paid charge adds a ledger line (each refund a negative
  one) without fees; the control action ``run_transfer`` gathers unassigned lines into a
  ``created`` transfer and ``set_transfer_status`` moves it on.

The package: `._state` (credentials, tables, lifecycle), `._routes` (the HTTP API),
`._control` (the ``control_<action>`` methods).
"""

from __future__ import annotations

from ._control import UnivapayControl
from ._routes import UnivapayRoutes
from ._state import (
    JWT,
    MERCHANT_ID,
    SECRET,
    SEED_CARD_TOKENS,
    STORE_ID,
    TEST_CARDS,
    WEBHOOK_AUTH_TOKEN,
)

__all__ = [
    "JWT",
    "MERCHANT_ID",
    "SECRET",
    "SEED_CARD_TOKENS",
    "STORE_ID",
    "TEST_CARDS",
    "WEBHOOK_AUTH_TOKEN",
    "UnivapayEmulator",
]


class UnivapayEmulator(UnivapayControl, UnivapayRoutes):
    """A stateful UnivaPay API on the sandbox clock (see the module notes).

    >>> sorted(UnivapayEmulator.actions())[:3]
    ['card_token', 'complete_pending', 'configure']
    """

    def catch_up(self) -> None:
        """Expire the slips whose deadline the clock passed."""
        self._expire(self.now)
