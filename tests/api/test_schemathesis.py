"""Property-based tests of the whole API from its own OpenAPI schema (schemathesis).

With an admin token: no 5xx, every response matches its documented schema, schema-invalid input is
refused with a 4xx, and authentication is enforced (schemathesis repeats successful calls without
and with a broken token). Without a token: every protected operation refuses, as documented.
The example budget is small so the run stays within a minute or two; the examples are derandomised
so CI is repeatable.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, response_schema_conformance

from .conftest import auth, make_settings

EXAMPLES = 8


from api.main import create_app  # noqa: E402

# The schema is the app's own; the app each test calls is built on that test's database (below).
# (schemathesis.pytest.from_fixture would do both at once, but it does not work with pytest 9.)
# Read from app.openapi() rather than by a request: a request would start this app's lifespan at
# collection time, before any fixture has set DATABASE_URL, and with it an embedded server in the
# default PROPOSALFLOW_HOME that nothing stops.
_schema_app = create_app(make_settings())
schema = schemathesis.openapi.from_dict(_schema_app.openapi())
schema.app, schema.location = _schema_app, "/openapi.json"  # what from_asgi records (the fixture swaps the app)


@pytest.fixture(scope="module")
def app(pg_admin_url, template_url, prefect_api_url, tmp_path_factory):
    """One database and one app for every operation of the module (a database per operation costs more
    than its examples)."""
    from proposalflow.settings import get_settings
    from tests.conftest import create_database

    with pytest.MonkeyPatch.context() as env:  # flows run in-process read the environment's settings
        env.setenv("DATABASE_URL", create_database(pg_admin_url))
        env.setenv("PROPOSALFLOW_HOME", str(tmp_path_factory.mktemp("schemathesis-home")))
        get_settings.cache_clear()
        app = create_app(make_settings(PROPOSALFLOW_FLOW_RUNNER="in-process", PROPOSALFLOW_RATE_LIMIT="100000/minute",
                                       PROPOSALFLOW_RATE_LIMIT_TRIGGERS="100000/minute",
                                       PROPOSALFLOW_RATE_LIMIT_UPLOADS="100000/minute"))
        schema.app = app  # the auth probes of ignored_auth go to the same app
        yield app
        app.state.services.close()  # waits for the flow runs the examples started
    get_settings.cache_clear()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_with_a_valid_token(case, app):
    case.call_and_validate(app=app, headers=auth("admin"), checks=[
        not_a_server_error, response_schema_conformance, negative_data_rejection, ignored_auth])


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=max(2, EXAMPLES // 4), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_without_a_token(case, app):
    case.call_and_validate(app=app, checks=[not_a_server_error, response_schema_conformance, ignored_auth])
