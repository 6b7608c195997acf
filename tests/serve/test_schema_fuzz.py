"""schemathesis against the served OpenAPI document: generated requests, valid and invalid (a
bounded number per route), never get a 5xx. Cases are drawn with Hypothesis directly (the
schemathesis pytest plugin does not run under this pytest)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (requirements/dev.txt)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = 20


@pytest.fixture(scope="module")
def operations(server):
    with server.client() as c:  # something to find: a collection with items, so routes go deep
        c.post("/collections", json={"name": "fuzz", "nbits": 16, "index": "mih"})
        c.post("/collections/fuzz/items", json={"codes": ["AAA=", "AQA=", "//8="], "payloads": [{"a": 1}, {}, None]})
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[operation.label] = operation
    return found


ROUTES = ["POST /collections", "GET /collections", "GET /collections/{name}", "DELETE /collections/{name}",
          "POST /collections/{name}/items", "GET /collections/{name}/items/{item_id}",
          "POST /collections/{name}/items/delete", "POST /collections/{name}/search",
          "POST /collections/{name}/snapshot", "POST /collections/{name}/payload_indexes",
          "DELETE /collections/{name}/payload_indexes/{field}", "GET /health", "GET /metrics"]


# invalid requests exist only where a body or an integer is expected (any string is a name)
INVALIDABLE = ["POST /collections", "POST /collections/{name}/items", "GET /collections/{name}/items/{item_id}",
               "POST /collections/{name}/items/delete", "POST /collections/{name}/search",
               "POST /collections/{name}/payload_indexes"]
CASES = [(r, GenerationMode.POSITIVE) for r in ROUTES] + [(r, GenerationMode.NEGATIVE) for r in INVALIDABLE]


@pytest.mark.parametrize("route, mode", CASES)
def test_no_server_errors(operations, server, route, mode):
    operation = operations[route]

    # routes of one collection go to the one that has items (a random name only finds a 404)
    fixed = {"name": "fuzz"} if "{name}" in route and route != "DELETE /collections/{name}" else None

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(base_url=server.url)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])

    run()
