"""Redaction of secrets and personal data from anything that may be shown.

paygate never puts secrets or personal data into logs, spans, exception messages or
reprs. Two mechanisms keep that promise:

* values known to be secret (API keys, tokens, customer names, phone numbers, e-mail
  addresses passed in payment methods) are registered here when they enter paygate and
  replaced wherever text leaves it;
* patterns catch what was never registered (e-mail addresses, phone-like digit runs,
  bearer tokens) in text that comes from a provider.
"""

from __future__ import annotations

import re
import threading

__all__ = ["redact", "register_secret", "registered_secrets"]

_MASK = "[redacted]"
_lock = threading.Lock()
# Secrets are kept in a set of strings; they are few (configuration values and the
# personal data of requests in flight) and cleared with `forget_secrets` in tests.
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Japanese phone numbers: a leading 0 (or +81), 10-11 digits, optionally split by
# hyphens. Unix timestamps and amounts do not start with 0, so they are left alone.
_PHONE = re.compile(r"(?<![\w.-])(?:\+81[- ]?|0)\d{1,4}-?\d{1,4}-?\d{3,4}(?![\w-])")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)[ \t]+[A-Za-z0-9._~+/=-]{8,}")


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that `redact` masks it from now on.

    Short values (under 4 characters) are ignored: masking them would destroy
    ordinary text.
    """
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _pattern = None


def registered_secrets() -> frozenset[str]:
    """The values registered so far (for checks that must not miss one, e.g. cassettes)."""
    with _lock:
        return frozenset(_secrets)


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            alternatives = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in alternatives))
        return _pattern


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and personal-data patterns masked.

    >>> redact("contact demo@example.com or 03-6441-3400")
    'contact [redacted] or [redacted]'
    """
    if not text:
        return text
    pattern = _compiled()
    if pattern is not None:
        text = pattern.sub(_MASK, text)
    text = _EMAIL.sub(_MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {_MASK}", text)
    return _PHONE.sub(_phone_mask, text)


def _phone_mask(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    # Only phone-length runs are masked (with +81 the country code adds two digits).
    return _MASK if 10 <= digits <= 13 else match.group(0)
