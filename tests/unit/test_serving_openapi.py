"""The prediction service against its own OpenAPI schema, with schemathesis (issue 19).

Every operation of ``/openapi.json`` (``POST /predict``, ``GET /health``, ``GET /metrics``) is
called with requests generated from the schema, in process (ASGI, the real app on the fake model
and online store of ``test_serving_validation``), and every answer is checked by schemathesis'
default checks: no 5xx, documented status codes, content types and headers, bodies that match
their response schema, schema-violating requests refused (4xx), schema-valid ones accepted.

Its findings before the fix: ``[]`` refused though the schema allowed it (the schema now says
``minItems: 1``: an empty batch is a client bug worth a 422), and ``/metrics`` answering a content
type the schema did not document (now ``text/plain; version=0.0.4``, documented).

Two deliberate adjustments, both API decisions rather than blind spots:

* a schema-valid flight may still be refused with a 422 for its *meaning*: an unknown carrier or
  airport, a route to itself, a day not on the calendar (types ``unknown_carrier``,
  ``unknown_airport``, ``invalid_route``, ``invalid_departure``; the vocabulary is the model's
  and is not copied into the schema). Any other 422 to schema-valid data fails the test;
* a batch over ``maxItems`` is refused with 413 (the service's documented answer), which
  schemathesis does not list among the rejections it expects by default.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.unit._serving_fake import make_app

#: The 422 error types of a well-formed flight the model cannot score (mlops.serving.schemas).
MEANING = {"unknown_carrier", "unknown_airport", "invalid_route", "invalid_departure"}

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "404", "405", "406", "413", "415", "422"]
            }
        }
    }
)
# The app is built at import (schemathesis generates the tests from its schema at collection);
# it writes nothing (no prediction log) and starts when the first case is sent.
APP = make_app(Path(tempfile.gettempdir()) / "mlops-serving-openapi", max_batch=20)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


def refused_only_for_meaning(ctx, response, case) -> bool | None:
    """``positive_data_acceptance``, except that a 422 for the flights' meaning is an answer."""
    if response.status_code == 422 and case.meta is not None and case.meta.generation.mode.is_positive:
        # (Meaning is checked only once the structure is right: a capped list is all meaning.)
        kinds = {e["type"] for e in response.json()["detail"]} - {"too_many_errors"}
        assert kinds <= MEANING, (
            f"schema-valid request refused for its structure ({sorted(kinds - MEANING)}): "
            f"{response.text[:1000]}"
        )
        return None
    return positive_data_acceptance(ctx, response, case)


@SCHEMA.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is a finding, not noise
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_service_conforms_to_its_openapi(case):
    case.call_and_validate(
        excluded_checks=[positive_data_acceptance], additional_checks=[refused_only_for_meaning]
    )
