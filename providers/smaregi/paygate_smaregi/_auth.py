"""App access tokens (OAuth2 client credentials, one per client id and contract).

``POST {id_base_url}/app/{contract_id}/token`` with HTTP Basic auth and the form body
``grant_type=client_credentials&scope=...``. A token is kept in two places:

* the store's entity cache under ``smaregi:token:{client_id}:{contract_id}``, shared by
  every process that uses the same store, so a fleet asks for one token per lifetime
  rather than one per process;
* an in-memory copy on the provider instance, guarded by a `threading.Lock`, so the
  common path costs no store round trip.

Single-flight. Flows are generators that the sync driver runs on many threads and the
async driver on one event loop, so nothing may block while a token is being fetched.
The rules that keep refreshes to one in steady state are therefore:

1. A token is *fresh* until ``REFRESH_BEFORE`` ahead of its expiry and *usable* until
   ``EXPIRY_MARGIN`` ahead of it.
2. When a caller finds the token usable but no longer fresh, it claims the refresh under
   the lock (at most one claim at a time, with a lease); every other caller keeps using
   the still-usable token meanwhile. So under steady load exactly one request refreshes.
3. After a 401 a caller asks for a new token *naming the rejected one*; the cached
   token is replaced only if it is still the rejected one. Calls that fail with the same
   old token after someone already refreshed simply pick up the new one.
4. With no usable token at all (cold start, clock jump), a caller that cannot claim
   fetches anyway rather than wait: client-credentials tokens coexist at Smaregi, so
   the cost of this rare overlap is one extra token request, never a failure.
"""

from __future__ import annotations

import base64
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paygate import MalformedResponse
from paygate.adapter import CacheGet, CachePut, Call, Flow, OpContext, Retry, register_secret

from ._errors import error_from_reply
from ._settings import SmaregiSettings
from ._wire import PROVIDER, parse_datetime

__all__ = ["AccessToken", "TokenKeeper"]

#: Refresh proactively this long before expiry (one caller does, the rest keep going).
REFRESH_BEFORE = timedelta(minutes=2)
#: Never send a token with less than this left: clocks differ and requests take time.
EXPIRY_MARGIN = timedelta(seconds=30)
#: How long a refresh claim holds before another caller may take it over.
CLAIM_LEASE = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An app access token and when it expires (the caller's clock)."""

    value: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at.isoformat()})"

    def usable(self, now: datetime) -> bool:
        """Safe to send now."""
        return now < self.expires_at - EXPIRY_MARGIN

    def fresh(self, now: datetime) -> bool:
        """Not yet due for a proactive refresh."""
        return now < self.expires_at - REFRESH_BEFORE

    def to_cache(self) -> dict[str, str]:
        """The entity-cache value."""
        return {"access_token": self.value, "expires_at": self.expires_at.isoformat()}

    @classmethod
    def from_cache(cls, value: Any) -> AccessToken | None:
        """Read an entity-cache value (None when absent or unreadable)."""
        if not isinstance(value, dict):
            return None
        token = value.get("access_token")
        expires = parse_datetime(value.get("expires_at"))
        if not isinstance(token, str) or not token or expires is None:
            return None
        register_secret(token)
        return cls(token, expires)


class TokenKeeper:
    """Gets, caches and refreshes the app access token of one (client id, contract)."""

    def __init__(self, settings: SmaregiSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._claimed_at: datetime | None = None
        basic = f"{settings.client_id}:{settings.client_secret.get_secret_value()}"
        self._basic = base64.b64encode(basic.encode()).decode()
        register_secret(self._basic)
        self.cache_key = f"smaregi:token:{settings.client_id}:{settings.contract_id}"

    @property
    def token_url(self) -> str:
        """Where tokens come from."""
        contract = urllib.parse.quote(self._settings.contract_id, safe="")
        return f"{self._settings.id_base_url}/app/{contract}/token"

    # -- in-memory state (the lock is never held across a yield) -----------------------

    def _plan(self, now: datetime, rejected: str | None) -> tuple[str | None, bool]:
        """(a token to use now, or None; whether this caller now owns the refresh)."""
        with self._lock:
            tok = self._token
            claim_free = self._claimed_at is None or now - self._claimed_at > CLAIM_LEASE
            if tok is not None and tok.value != rejected and tok.usable(now):
                if tok.fresh(now) or not claim_free:
                    return tok.value, False
                self._claimed_at = now
                return None, True
            if claim_free:
                self._claimed_at = now
                return None, True
            return None, False

    def _adopt(self, tok: AccessToken) -> None:
        with self._lock:
            if self._token is None or tok.expires_at >= self._token.expires_at:
                self._token = tok

    def _release(self, owned: bool) -> None:
        if owned:
            with self._lock:
                self._claimed_at = None

    def _current(self, now: datetime) -> AccessToken | None:
        with self._lock:
            tok = self._token
        return tok if tok is not None and tok.usable(now) else None

    def forget(self) -> None:
        """Drop the in-memory token (the store copy stays)."""
        with self._lock:
            self._token = None
            self._claimed_at = None

    # -- the flow ---------------------------------------------------------------------

    def token(self, ctx: OpContext, *, rejected: str | None = None) -> Flow[str]:
        """A usable access token; ``rejected`` names one the API just refused (401)."""
        now = ctx.now()
        ready, owned = self._plan(now, rejected)
        if ready is not None:
            return ready
        try:
            cached = AccessToken.from_cache((yield CacheGet(self.cache_key)))
            if cached is not None and cached.value != rejected and cached.fresh(now):
                self._adopt(cached)
                return cached.value
            try:
                tok = yield from self._fetch(ctx)
            except Exception:
                # A failed proactive refresh is no reason to fail the request: the old
                # token still works for a while. Without one, the failure is the answer.
                fallback = self._current(now)
                if fallback is not None and fallback.value != rejected:
                    return fallback.value
                raise
            self._adopt(tok)
            yield CachePut(self.cache_key, tok.to_cache())
            return tok.value
        finally:
            self._release(owned)

    def _fetch(self, ctx: OpContext) -> Flow[AccessToken]:
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "scope": self._settings.scope}
        ).encode()
        reply = yield Call(
            "POST",
            self.token_url,
            headers={
                "Authorization": f"Basic {self._basic}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            content=body,
            # Asking twice only yields two valid tokens.
            retry=Retry.SAFE,
            step="token",
        )
        if not reply.ok:
            raise error_from_reply(reply, action="the access token request")
        data = reply.json_object()
        value = data.get("access_token")
        if not isinstance(value, str) or not value:
            raise MalformedResponse(
                "token response without access_token", provider=PROVIDER, http_status=reply.status
            )
        register_secret(value)
        expires_in = data.get("expires_in")
        try:
            seconds = int(expires_in) if expires_in is not None else 3600
        except (TypeError, ValueError):
            # O-S5: the lifetime is undocumented; 3600 s is the only example seen.
            seconds = 3600
        return AccessToken(value, ctx.now() + timedelta(seconds=max(seconds, 0)))
