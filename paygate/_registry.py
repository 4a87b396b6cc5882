"""Provider discovery through the ``paygate.providers`` entry-point group.

The built-in adapters register exactly as a third-party one would. A plugin that fails
to load is logged and skipped, so one broken adapter cannot break the others.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from ._adapter import Provider
from ._errors import ConfigurationError

__all__ = ["provider_class", "provider_classes", "register_provider"]

GROUP = "paygate.providers"
log = logging.getLogger("paygate")

_lock = threading.Lock()
_loaded: dict[str, type[Provider]] | None = None
_extra: dict[str, type[Provider]] = {}


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Register an adapter class in-process (tests, private adapters). Returns ``cls``.

    >>> register_provider(MyProvider)  # doctest: +SKIP
    """
    _extra[cls.name] = cls
    return cls


def provider_classes() -> dict[str, type[Provider]]:
    """Every installed adapter by provider name."""
    global _loaded
    with _lock:
        if _loaded is None:
            found: dict[str, type[Provider]] = {}
            for ep in entry_points(group=GROUP):
                try:
                    cls = ep.load()
                except Exception as exc:
                    log.warning(
                        "paygate: provider plugin %r failed to load: %s",
                        ep.name,
                        type(exc).__name__,
                    )
                    continue
                if not (isinstance(cls, type) and issubclass(cls, Provider)):
                    log.warning("paygate: provider plugin %r is not a Provider subclass", ep.name)
                    continue
                found[ep.name] = cls
            _loaded = found
        return {**_loaded, **_extra}


def provider_class(name: str, *, key: str = "provider") -> type[Provider]:
    """The adapter class for ``name`` or `ConfigurationError` naming the known ones."""
    classes = provider_classes()
    try:
        return classes[name]
    except KeyError:
        known = ", ".join(sorted(classes)) or "none installed"
        raise ConfigurationError(
            f"unknown provider {name!r} (installed: {known})", key=key
        ) from None
