"""Test support: the pytest plugin, the provider conformance suite and cassette settings.

>>> from paygate.testing import ProviderContract
"""

from ._cassettes import cassette_secrets, path_matcher, scrub_request, scrub_response, vcr_config
from ._contract import ProviderContract
from ._documented import (
    DocumentedCase,
    Exchange,
    ScriptedTransport,
    assert_shape,
    load_cases,
    request_body,
)
from ._runner import BlockingAsyncGateway
from ._time import VirtualTime

__all__ = [
    "BlockingAsyncGateway",
    "DocumentedCase",
    "Exchange",
    "ProviderContract",
    "ScriptedTransport",
    "VirtualTime",
    "assert_shape",
    "cassette_secrets",
    "load_cases",
    "path_matcher",
    "request_body",
    "scrub_request",
    "scrub_response",
    "vcr_config",
]
