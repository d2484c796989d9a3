"""Schemathesis over the dashboard's OpenAPI schema, in process against the ASGI app: whatever
it sends (values that fit the schema and values that do not), no answer is a 5xx. The form
token is supplied, so label writes are explored past the cross-site check.

A bounded, derandomised run keeps this test short and repeatable; set
LAMBDASCOPE_FUZZ_EXAMPLES=500 for a longer, random exploration. (The schema is loaded when the
module is collected: schemathesis's lazy `from_fixture` does not work with this pytest.)"""

import os
import tempfile
import warnings

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from app.settings import Settings
from app.main import create_app
from tests.app_store import build_small_store

EXAMPLES = int(os.environ.get("LAMBDASCOPE_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = "LAMBDASCOPE_FUZZ_EXAMPLES" not in os.environ

_store = build_small_store(f"sqlite:///{tempfile.mkdtemp(prefix='lambdascope-fuzz-')}/store.db", n_traces=12)
SETTINGS = Settings(db_url=_store.url, warm_caches=False)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case):
    case.headers = {**(case.headers or {}), "X-CSRF-Token": SETTINGS.csrf_token}
    case.call_and_validate(checks=[not_a_server_error])
