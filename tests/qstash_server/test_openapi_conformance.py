"""Schema conformance: schemathesis drives every operation of the official OpenAPI document,
one test id per operation (``-k "GET /v2/logs"`` runs one).

Bounded (a few examples per operation) and run against an accept-only server so generated
destinations are never called. Deliberate deviations are listed in docs/qstash-server.md.

The document is not part of the repository. It is read from ``$QSTASH_OPENAPI_SPEC`` if set,
else from ``../shared/specs/qstash-openapi.yaml`` beside the checkout; without it these tests
are skipped with the reason (nothing else is).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    status_code_conformance,
    unsupported_method,
)

from tests.fixtures.qstash import QStashServer, start_qstash_server

pytestmark = pytest.mark.qstash

SPEC_SETTING = "QSTASH_OPENAPI_SPEC"


def spec_path() -> Path:
    """``$QSTASH_OPENAPI_SPEC``, else the shared folder beside the checkout."""
    setting = os.environ.get(SPEC_SETTING)
    if setting:
        return Path(setting)
    return Path(__file__).resolve().parents[3] / "shared" / "specs" / "qstash-openapi.yaml"


SPEC = spec_path()
if not SPEC.is_file():
    pytest.skip(f"no QStash OpenAPI document at {SPEC}: set {SPEC_SETTING} to its path "
                "(or put it in ../shared/specs/ beside the checkout)", allow_module_level=True)

OPERATIONS = {operation.label: operation for operation in (
    result.ok() for result in schemathesis.openapi.from_path(str(SPEC)).get_all_operations()
    if isinstance(result, Ok))}


@pytest.fixture(scope="module")
def conformance_server() -> Iterator[QStashServer]:
    server = start_qstash_server(accept_only=True)
    yield server
    server.close()


# Deliberate deviations, each explained in docs/qstash-server.md ("OpenAPI deviations").
_NOT_FOUND = [status_code_conformance]  # 404 (as GET answers) for unknown names / bad bodies
DEVIATIONS = {
    "POST /v2/publish/{destination}": [*_NOT_FOUND, positive_data_acceptance],
    "DELETE /v2/messages": _NOT_FOUND,
    "DELETE /v2/queues/{queueName}": _NOT_FOUND,
    "POST /v2/queues/{queueName}/pause": _NOT_FOUND,
    "POST /v2/queues/{queueName}/resume": _NOT_FOUND,
    "DELETE /v2/topics/{urlGroupName}": _NOT_FOUND,
    "POST /v2/topics/{urlGroupName}/endpoints": [*_NOT_FOUND, positive_data_acceptance],
    "DELETE /v2/topics/{urlGroupName}/endpoints": [*_NOT_FOUND, positive_data_acceptance],
    # out-of-range count (the spec has no minimum) answers 400 (docs: fromDate/toDate/count/cursor)
    "GET /v2/dlq": [*_NOT_FOUND, positive_data_acceptance],
    # count below 1 is ignored (the newer spec ignores count on bulk deletes)
    "DELETE /v2/dlq": [*_NOT_FOUND, negative_data_rejection],
    "POST /v2/dlq/retry": _NOT_FOUND,
    # count up to 1000 (the qstash-py docstring), not the spec's 100
    # (and an unknown cursor is refused with 400)
    "GET /v2/logs": [*_NOT_FOUND, negative_data_rejection, positive_data_acceptance],
    "POST /v2/flowControl/{flowControlKey}/pause": _NOT_FOUND,
    "POST /v2/flowControl/{flowControlKey}/resume": _NOT_FOUND,
    "POST /v2/flowControl/{flowControlKey}/pin": [*_NOT_FOUND, positive_data_acceptance],
    "POST /v2/flowControl/{flowControlKey}/unpin": _NOT_FOUND,
    "POST /v2/flowControl/{flowControlKey}/resetRate": _NOT_FOUND,
    # header values and names are validated (durations, expressions, names, destinations)
    "POST /v2/enqueue/{queueName}/{destination}": [positive_data_acceptance],
    "POST /v2/queues": [positive_data_acceptance],
    # ... and a one-segment destination shares its path with GET/DELETE /v2/schedules/{id}
    "POST /v2/schedules/{destination}": [positive_data_acceptance, allow_header_conformance,
                                         unsupported_method],
    # batch items may carry "queue": null, which both SDKs send
    "POST /v2/batch": [negative_data_rejection],
    # PATCH is accepted too: both SDKs pause/resume schedules with PATCH
    "POST /v2/schedules/{scheduleId}/pause": [*_NOT_FOUND, allow_header_conformance,
                                              unsupported_method],
    "POST /v2/schedules/{scheduleId}/resume": [*_NOT_FOUND, allow_header_conformance,
                                               unsupported_method],
}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_conforms(label: str, conformance_server: QStashServer) -> None:
    @given(case=OPERATIONS[label].as_strategy())
    @settings(
        max_examples=3,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(
            base_url=conformance_server.url,
            headers={"Authorization": f"Bearer {conformance_server.token}"},
            excluded_checks=DEVIATIONS.get(label, []),
        )

    conforms()


def test_every_deviation_names_an_operation() -> None:
    assert set(DEVIATIONS) <= set(OPERATIONS), set(DEVIATIONS) - set(OPERATIONS)
