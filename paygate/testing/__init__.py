"""Test support: the pytest plugin, the provider conformance suite, cassette settings and a
throwaway PostgreSQL server (`embedded_postgres`, with ``paygate-jp[postgres-embedded]``).

>>> from paygate.testing import ProviderContract
"""

from .._embedded_pg import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    EmbeddedPostgresUnavailable,
    embedded_postgres,
    start_embedded_postgres,
)
from ._cassettes import (
    CassetteLeak,
    cassette_secrets,
    path_matcher,
    protect,
    scrub_request,
    scrub_response,
    vcr_config,
)
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
    "CassetteLeak",
    "DocumentedCase",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EmbeddedPostgresUnavailable",
    "Exchange",
    "ProviderContract",
    "ScriptedTransport",
    "VirtualTime",
    "assert_shape",
    "cassette_secrets",
    "embedded_postgres",
    "load_cases",
    "path_matcher",
    "protect",
    "request_body",
    "scrub_request",
    "scrub_response",
    "start_embedded_postgres",
    "vcr_config",
]
