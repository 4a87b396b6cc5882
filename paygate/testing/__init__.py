"""Test support: the pytest plugin, the provider conformance suite, cassette settings, a
throwaway PostgreSQL server (`embedded_postgres`, with ``paygate-jp[postgres-embedded]``)
and the test kit: gateways on both drivers (`gateway_on`, `Gateways`), scripted answers
(`ScriptedResponder`) and emulators reached without a server (`EmulatorClient`,
`EmulatorResponder`).

>>> from paygate.testing import ProviderContract, Gateways, ScriptedResponder
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
    documented_outcome,
    load_cases,
    request_body,
)
from ._kit import (
    DRIVERS,
    Answer,
    AnyGateway,
    Driver,
    EmulatorClient,
    EmulatorResponder,
    Gateways,
    ScriptedResponder,
    emulator_app,
    gateway_on,
    share_tls_contexts,
)
from ._runner import BlockingAsyncGateway
from ._time import VirtualTime

__all__ = [
    "DRIVERS",
    "Answer",
    "AnyGateway",
    "BlockingAsyncGateway",
    "CassetteLeak",
    "DocumentedCase",
    "Driver",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EmbeddedPostgresUnavailable",
    "EmulatorClient",
    "EmulatorResponder",
    "Exchange",
    "Gateways",
    "ProviderContract",
    "ScriptedResponder",
    "ScriptedTransport",
    "VirtualTime",
    "assert_shape",
    "cassette_secrets",
    "documented_outcome",
    "embedded_postgres",
    "emulator_app",
    "gateway_on",
    "load_cases",
    "path_matcher",
    "protect",
    "request_body",
    "scrub_request",
    "scrub_response",
    "share_tls_contexts",
    "start_embedded_postgres",
    "vcr_config",
]
