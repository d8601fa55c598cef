"""Schemathesis against the served OpenAPI document: generated requests, valid and invalid, never get a 500, and
every response matches its documented codes and schema. All five models are served by champions trained on the
tiny shop, so the generated requests reach the models, not the 503 of a model without a champion.

Bounded: ``MAX_EXAMPLES`` valid and as many invalid requests per operation, derandomized (the same requests each
run). Schemathesis' pytest plugin does not run under pytest 9 here, so the test drives its strategies itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance
from serving_stack import OTHER_MODELS, ServingStack, champions, settings_env, uvicorn_server, wait_ready

from serving.app import create_app

MAX_EXAMPLES = 25
# Rules across fields that JSON Schema cannot state (documented in the fields' descriptions): a request that the
# schema accepts may still get a 422 for these, and only for these.
CROSS_FIELD_RULES = {("/v1/rankings", "body.prices"), ("/v1/rankings", "body.alpha"),
                     ("/v1/rankings", "body.product_ids")}


@pytest.fixture(scope="module")
def api_schema(serving_stack: ServingStack) -> Iterator[schemathesis.BaseSchema]:
    """The OpenAPI document of a live server (uvicorn in a thread, the stack's models and features)."""
    import httpx

    with champions(serving_stack, *OTHER_MODELS), pytest.MonkeyPatch.context() as mp:
        app_settings = settings_env(mp, serving_stack.var_root, serving_stack.lake_root, profile="embedded",
                                    serving_admin_api_key="fuzz-key-not-sent")
        with uvicorn_server(create_app(app_settings)) as base_url:
            with httpx.Client(base_url=base_url) as probe:
                assert wait_ready(probe)["ready"]
            yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_no_server_errors_and_responses_match_the_schema(
    api_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/conversion/score", "/v1/admin/retrain", "/ready"}
    if mode == schemathesis.GenerationMode.NEGATIVE:  # a call without any input has no invalid form
        operations = [op for op in operations if op.method.upper() == "POST"]
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            case.validate_response(response, excluded_checks=[not_a_server_error, positive_data_acceptance])
            assert response.status_code < 500, (case.path, response.text)
            if mode == schemathesis.GenerationMode.POSITIVE and response.status_code == 422:
                fields = {(case.path, e["field"]) for e in response.json()["errors"]}
                assert fields <= CROSS_FIELD_RULES, (case.path, case.body, response.text)
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

        run()
    assert all(n > 0 for n in calls.values()) and len(calls) == len(operations)
