"""Building Smaregi calls and reading their answers.

Every API call carries the app's Bearer token (`TokenKeeper`); a 401 refreshes the
token once and repeats the call (Smaregi did not process a request it answered 401, so
repeating is safe even for a create). Bodies are JSON. Reads and cancels are
``Retry.SAFE``; the sale create is ``Retry.UNSAFE`` (no idempotency key at Smaregi);
the app payment method create is ``Retry.KEYED`` (Smaregi keeps one per client id and
answers a repeat with a 403 the flow resolves).
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime
from typing import Any

from paygate.adapter import Call, Flow, OpContext, Reply, Retry

from ._auth import TokenKeeper
from ._errors import error_from_reply
from ._settings import SmaregiSettings
from ._wire import format_jst

__all__ = ["LOOKUP_PAGE_SIZE", "Api"]

#: The largest ``limit`` GET /transactions takes.
LOOKUP_PAGE_SIZE = 1000


class Api:
    """Call factory and sender for one Smaregi app on one contract.

    >>> settings = SmaregiSettings(client_id="cid", client_secret="s", contract_id="c1")
    >>> Api(settings, TokenKeeper(settings)).transaction_url("1001", "/cancel")
    'https://api.smaregi.jp/c1/pos/transactions/1001/cancel'
    """

    def __init__(self, settings: SmaregiSettings, tokens: TokenKeeper) -> None:
        self.settings = settings
        self.tokens = tokens
        contract = urllib.parse.quote(settings.contract_id, safe="")
        self.pos = f"{settings.base_url}/{contract}/pos"
        self.payment_method_url = f"{self.pos}/{settings.app_payment_method_path}"
        self.transactions_url = f"{self.pos}/transactions"

    def transaction_url(self, head_id: str, suffix: str = "") -> str:
        """The URL of one transaction (``suffix``: ``/cancel``)."""
        return f"{self.transactions_url}/{urllib.parse.quote(head_id, safe='')}{suffix}"

    def search_url(self, start: datetime, end: datetime, *, page: int, uuid: str | None) -> str:
        """GET /transactions over a ``terminal_tran_date_time`` range, one page.

        ``uuid``: the ``transaction_uuid`` exact filter (None: without it).
        """
        params = {
            "terminal_tran_date_time-from": format_jst(start),
            "terminal_tran_date_time-to": format_jst(end),
            "limit": str(LOOKUP_PAGE_SIZE),
            "page": str(page),
            # The range field first, as the list operation recommends.
            "sort": "terminalTranDateTime,transactionHeadId",
        }
        if uuid is not None:
            params["transaction_uuid"] = uuid
        return f"{self.transactions_url}?{urllib.parse.urlencode(params)}"

    @staticmethod
    def call(method: str, url: str, token: str, body: Any, retry: Retry, step: str) -> Call:
        """One call with the Bearer ``token`` and, when given, a JSON ``body``."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Call(method, url, headers=headers, content=content, retry=retry, step=step)

    def send(
        self,
        ctx: OpContext,
        method: str,
        url: str,
        *,
        body: Any = None,
        retry: Retry = Retry.SAFE,
        step: str,
    ) -> Flow[Reply]:
        """One API call with the app token; a 401 refreshes the token once and repeats.

        Repeating after 401 is safe even for a create: Smaregi did not process it.
        """
        token = yield from self.tokens.token(ctx)
        reply: Reply = yield self.call(method, url, token, body, retry, step)
        if reply.status == 401:
            token = yield from self.tokens.token(ctx, rejected=token)
            reply = yield self.call(method, url, token, body, retry, step)
        return reply

    def get_transaction(self, ctx: OpContext, head_id: str) -> Flow[dict[str, Any]]:
        """GET one transaction (its head); a non-2xx answer raises the mapped error."""
        reply = yield from self.send(
            ctx, "GET", self.transaction_url(head_id), step="transactions.get"
        )
        if not reply.ok:
            raise error_from_reply(reply, action="reading the sale")
        return reply.json_object()
