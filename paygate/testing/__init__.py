"""Test support: the pytest plugin, the provider conformance suite and cassette settings.

>>> from paygate.testing import ProviderContract
"""

from ._cassettes import cassette_secrets, path_matcher, scrub_request, scrub_response, vcr_config
from ._contract import ProviderContract
from ._runner import BlockingAsyncGateway
from ._time import VirtualTime

__all__ = [
    "BlockingAsyncGateway",
    "ProviderContract",
    "VirtualTime",
    "cassette_secrets",
    "path_matcher",
    "scrub_request",
    "scrub_response",
    "vcr_config",
]
