"""OpenTelemetry spans. paygate depends on opentelemetry-api only: without an SDK
configured by the application every span is a no-op.

Attributes never carry secrets or personal data: account and provider names, operation
and step names, status codes, attempt numbers and error types only.
"""

from __future__ import annotations

from opentelemetry import trace

from ._version import __version__

tracer = trace.get_tracer("paygate", __version__)
