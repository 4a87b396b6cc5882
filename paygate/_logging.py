"""Standard `logging` records from the drivers, on the logger ``paygate``.

One record per operation (INFO; WARNING when its outcome is unknown) and one per HTTP
attempt (DEBUG), a WARNING before each retry. Each record carries the attributes of the
matching OpenTelemetry span, under their span names (``record.__dict__["paygate.step"]``)
and together as ``record.paygate`` (a dict): account, provider, operation and step
names, HTTP method and status code, attempt number, error type and code, duration.
Never a URL, an id, a body, a key or personal data; the message and every text
attribute also pass through `paygate._redact.redact`.

Nothing is printed unless the application asks for it::

    import logging
    logging.basicConfig()
    logging.getLogger("paygate").setLevel(logging.DEBUG)   # or INFO: operations only
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ._redact import redact

__all__ = ["enabled", "log", "logger"]

logger = logging.getLogger("paygate")
# A library leaves output to the application: without its handlers nothing is printed
# (not even warnings, through logging's last-resort handler).
logger.addHandler(logging.NullHandler())


def enabled(level: int) -> bool:
    """Whether a record at ``level`` would be handled (cheap: logging caches it)."""
    return logger.isEnabledFor(level)


def log(level: int, message: str, attributes: Mapping[str, object]) -> None:
    """Emit one record with ``attributes`` (span names), redacted."""
    if not logger.isEnabledFor(level):
        return
    attrs = {k: redact(v) if isinstance(v, str) else v for k, v in attributes.items()}
    logger.log(level, redact(message), extra={"paygate": attrs, **attrs})
