"""Cassette settings: scrub secrets and personal data at record time, match requests in
a way that survives a different sandbox port or a real provider host.

Requests are matched on method, the provider-relative path (the ``/<provider>`` prefix
of the sandbox is dropped, so a cassette recorded against the sandbox and one recorded
against the real provider match the same code) and the query string. Bodies are not
matched: they carry timestamps, random IVs (Pokepay) and call ids that differ on every
run; the order of interactions in the cassette is the order of the calls.

`protect` puts all of this on a vcrpy ``VCR`` instance itself (the paygate plugin calls it
from pytest-recording's ``pytest_recording_configure`` hook): it holds whatever order
the plugins load in and whatever ``vcr_config`` a merchant's conftest defines, and a
cassette that would still hold a registered secret or personal data is not written:
`CassetteLeak` is raised instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from .._redact import redact, registered_secrets

__all__ = [
    "SCRUBBED_HEADERS",
    "CassetteLeak",
    "path_matcher",
    "protect",
    "scrub_request",
    "scrub_response",
    "vcr_config",
]

SCRUBBED_HEADERS = (
    "authorization",
    "x-payjp-webhook-token",
    "cookie",
    "set-cookie",
    "x-refresh-authorization",
)
PROVIDERS = ("pokepay", "univapay", "elepay", "payjp", "smaregi", "fakepay")
_PREFIX = re.compile(r"^/(?:" + "|".join(PROVIDERS) + r")(?=/|$)")


def provider_path(uri: str) -> str:
    """The request path without the sandbox's ``/<provider>`` mount prefix."""
    path = urlsplit(uri).path
    return _PREFIX.sub("", path) or "/"


def path_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: equal provider-relative paths (raises AssertionError otherwise)."""
    assert provider_path(r1.uri) == provider_path(r2.uri), (r1.uri, r2.uri)


def _scrub_text(body: Any) -> Any:
    if body is None:
        return None
    raw = body if isinstance(body, bytes) else str(body).encode()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return body
    cleaned = redact(text)
    return cleaned.encode() if isinstance(body, bytes) else cleaned


# Sandbox housekeeping is not part of a flow: never recorded. Customer actions and the
# clock are (a replay answers them from the cassette).
_HOUSEKEEPING = re.compile(
    r"^/_sandbox/(health|reset|faults|credentials|accounts|ledger|webhooks|clock$)"
)


def scrub_request(request: Any) -> Any:
    """Remove credentials and personal data from a request before it is written.

    Returns None (not recorded) for the sandbox's housekeeping calls.
    """
    if _HOUSEKEEPING.match(urlsplit(request.uri).path):
        return None
    for name in list(request.headers):
        value = request.headers[name]
        if name.lower() in SCRUBBED_HEADERS:
            request.headers[name] = "[redacted]"
        elif isinstance(value, str):
            request.headers[name] = redact(value)
    request.body = _scrub_text(request.body)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Remove credentials and personal data from a response before it is written."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SCRUBBED_HEADERS:
            headers[name] = ["[redacted]"]
        else:
            values = headers[name]
            if isinstance(values, list):
                headers[name] = [redact(v) if isinstance(v, str) else v for v in values]
            elif isinstance(values, str):
                headers[name] = redact(values)
    body = response.get("body", {})
    if isinstance(body, dict) and "string" in body:
        body["string"] = _scrub_text(body["string"])
    return response


def vcr_config(extra_headers: Iterable[str] = ()) -> dict[str, Any]:
    """The settings paygate's cassette tests use (pytest-recording's ``vcr_config``)."""
    return {
        "filter_headers": [(h, "[redacted]") for h in (*SCRUBBED_HEADERS, *extra_headers)],
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "match_on": ["method", "paygate_path", "query"],
        "decode_compressed_response": True,
    }


def cassette_secrets(cassette_text: str, secrets: Iterable[str]) -> list[str]:
    """Which of ``secrets`` (and which personal-data patterns) appear in a cassette."""
    found = [s for s in secrets if s and s in cassette_text]
    if redact(cassette_text) != cassette_text:
        found.append("personal-data pattern")
    for marker in ("Bearer ", "Basic "):
        if re.search(marker.replace(" ", "[ \t]+") + r"(?!\[redacted\])[A-Za-z0-9]", cassette_text):
            found.append(marker.strip())
    return found


class CassetteLeak(Exception):
    """A cassette about to be written still holds a secret or personal data.

    The message says what kind of thing was found, never the value; the file is not
    written.
    """


def _describe(found: list[str], secrets: Iterable[str]) -> str:
    known = set(secrets)
    kinds = [f for f in found if f not in known]
    count = len(found) - len(kinds)
    parts = ([f"{count} registered secret(s)"] if count else []) + kinds
    return ", ".join(parts)


def _plain_text(cassette_dict: dict[str, Any]) -> str:
    """The cassette's requests and responses as text, non-ASCII left as it is (the YAML
    serializer escapes it, which would hide a customer's name from a text search)."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    requests = [plain(r._to_dict()) for r in cassette_dict.get("requests", [])]
    responses = [plain(r) for r in cassette_dict.get("responses", [])]
    return json.dumps([requests, responses], ensure_ascii=False, default=str)


class CheckedPersister:
    """A vcrpy persister that refuses to write a cassette holding a secret.

    ``secrets`` are the values seen registered while recording (paygate forgets them
    between tests); the check also takes the ones registered at save time, personal-data
    patterns and unredacted ``Bearer`` / ``Basic`` credentials (`cassette_secrets`).
    """

    def __init__(self, inner: Any, secrets: set[str]) -> None:
        self.inner = inner
        self.secrets = secrets

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        return self.inner.load_cassette(cassette_path, serializer)

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        from vcr.serialize import serialize

        secrets = self.secrets | registered_secrets()
        text = serialize(cassette_dict, serializer) + "\n" + _plain_text(cassette_dict)
        found = cassette_secrets(text, secrets)
        if found:
            raise CassetteLeak(
                f"cassette {cassette_path} not written: it would hold {_describe(found, secrets)}"
            )
        self.inner.save_cassette(cassette_path, cassette_dict, serializer=serializer)


def _chain(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        value = first(value)
        return None if value is None else then(value)

    return run


def protect(vcr: Any) -> Any:
    """Make paygate's cassette settings part of a vcrpy ``VCR`` instance; returns it.

    The instance's defaults become paygate's (`vcr_config`), and whatever a
    ``use_cassette`` call passes is merged with them, never replacing them: paygate's
    scrubbing runs after the caller's ``before_record_*`` filters, paygate's matchers are
    added to the caller's ``match_on``, and the persister refuses to write a cassette
    that still holds a secret (`CassetteLeak`).
    """
    from vcr.filters import decode_response

    if getattr(vcr, "_paygate_protected", False):
        return vcr
    defaults = vcr_config()
    vcr.register_matcher("paygate_path", path_matcher)
    vcr.match_on = tuple(defaults["match_on"])
    vcr.filter_headers = defaults["filter_headers"]
    vcr.decode_compressed_response = True
    ours = [vcr.matchers[name] for name in defaults["match_on"]]
    seen: set[str] = set()
    base = vcr.get_merged_config

    def remember(value: Any) -> Any:
        seen.update(registered_secrets())
        return value

    def merged_config(**kwargs: Any) -> dict[str, Any]:
        config: dict[str, Any] = base(**kwargs)
        config["before_record_request"] = _chain(
            _chain(remember, config["before_record_request"]), scrub_request
        )
        config["before_record_response"] = _chain(
            _chain(remember, config["before_record_response"]),
            _chain(decode_response, scrub_response),
        )
        match_on = list(config["match_on"])
        config["match_on"] = match_on + [m for m in ours if m not in match_on]
        config["persister"] = CheckedPersister(config["persister"], seen)
        return config

    vcr.get_merged_config = merged_config
    vcr._paygate_protected = True
    return vcr
