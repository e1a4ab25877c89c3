"""The service around the routes: health, readiness, metrics, OpenAPI, request ids, gzip, CORS, outages."""

import gzip

from fastapi.testclient import TestClient

from api.main import create_app

from .conftest import auth, make_settings


def test_readiness_reports_pending_migrations_and_unreachable_databases(empty_database_url, tmp_path):
    pending = TestClient(create_app(make_settings(DATABASE_URL=empty_database_url)))  # no lifespan: not migrated
    response = pending.get("/readyz")
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["database"] == "ok" and "0001_extensions.sql" in response.json()["pending_migrations"]

    with TestClient(create_app(make_settings(DATABASE_URL=empty_database_url))) as migrated:  # start-up migrates
        assert migrated.get("/readyz").json() == {"status": "ready", "database": "ok", "pending_migrations": []}
        assert migrated.get("/healthz").json() == {"status": "ok"}

    down = TestClient(create_app(make_settings(DATABASE_URL="postgresql://nobody:s3cret-pw@127.0.0.1:9/none")))
    response = down.get("/readyz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"
    assert "s3cret-pw" not in response.text
    outage = down.get("/api/clients", headers=auth("viewer"))
    assert outage.status_code == 503 and outage.headers["retry-after"]
    assert outage.json()["type"] == "https://proposalflow.dev/problems/unavailable"
    assert "Traceback" not in outage.text and "psycopg" not in outage.text and "s3cret-pw" not in outage.text


def test_metrics_count_requests_by_route_template_and_status(api, viewer):
    client = api.post("/api/clients", json={"name": "Acme"}, headers=auth("editor")).json()
    api.get(f"/api/clients/{client['id']}", headers=viewer)
    api.get("/api/clients/00000000-0000-4000-8000-000000000000", headers=viewer)
    text = api.get("/metrics").text
    assert 'proposalflow_http_requests_total{method="GET",route="/api/clients/{client_id}",status="200"} 1.0' in text
    assert 'proposalflow_http_requests_total{method="GET",route="/api/clients/{client_id}",status="404"} 1.0' in text
    assert 'proposalflow_http_request_duration_seconds_bucket{le="0.5",method="POST",route="/api/clients"}' in text


def test_openapi_documents_security_models_and_problem_responses(api):
    schema = api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            ok = [s for s in responses if s.startswith("2")]
            assert ok and all(responses[s].get("content") for s in ok), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert {"401", "403", "422", "429"} <= responses.keys(), (method, path)
    assert api.get("/docs").status_code == 200


def test_request_ids_are_kept_when_sane_and_replaced_otherwise(api):
    assert api.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert replaced != "bad id\twith spaces" and len(replaced) == 32
    assert len(api.get("/healthz").headers.get_list("x-request-id")) == 1


def test_large_responses_are_gzipped(api, editor):
    for i in range(40):
        api.post("/api/clients", json={"name": f"Client {i}", "contact_info": {"notes": "x" * 50}}, headers=editor)
    response = api.get("/api/clients", params={"limit": 40}, headers={**editor, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip" and len(response.json()["items"]) == 40
    raw = api.get("/api/clients", params={"limit": 40}, headers={**editor, "Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and len(gzip.compress(raw.content)) < len(raw.content)


def test_cors_only_for_configured_origins(db_url):
    with TestClient(create_app(make_settings(PROPOSALFLOW_CORS_ORIGINS="https://app.agency.test"))) as api:
        preflight = api.options("/api/clients", headers={"Origin": "https://app.agency.test",
                                                          "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.agency.test"
        other = api.get("/healthz", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


def test_unknown_query_parameters_are_refused(api, viewer):
    response = api.get("/api/clients", params={"limt": 5}, headers=viewer)
    assert response.status_code == 422 and response.json()["errors"] == [
        {"field": "limt", "message": "is not a parameter of this route"}]


def test_a_burst_of_new_callers_does_not_exhaust_the_pool(db_url):
    """Each new caller's first request upserts its user on a connection of its own: that happens
    before the request takes its connection, so a burst larger than the pool cannot deadlock it."""
    from concurrent.futures import ThreadPoolExecutor

    with TestClient(create_app(make_settings(PROPOSALFLOW_API_POOL_SIZE="2"))) as api:
        def first_request(i: int) -> int:
            return api.get("/api/clients", headers=auth("viewer", f"new-{i}@agency.test")).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(first_request, range(16))) == [200] * 16


def test_nul_characters_are_refused_naming_the_field_not_a_500(api, editor, viewer, db):
    """PostgreSQL stores no NUL in text or jsonb: such a value is a 422 naming the field, before any
    write or flow run (schemathesis found a trigger parameter that reached the database)."""
    before = db.execute("SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM api_flow_runs)").fetchone()
    for path, body, field in [
        ("/api/clients", {"name": "Acme\u0000"}, "name"),
        ("/api/clients", {"name": "Acme", "contact_info": {"note": ["a\u0000"]}}, "contact_info"),
        ("/api/knowledge", {"title": "T", "content": "x", "metadata": {"k\u0000": 1}}, "metadata"),
        ("/api/flows/embed-knowledge/runs", {"category": "\u0000", "reembed": True}, "category"),
        ("/api/flows/ingest-clients/runs", {"source": "a\u0000.csv"}, "source"),
    ]:
        answer = api.post(path, json=body, headers=editor)
        assert answer.status_code == 422, (path, answer.text)
        problem = answer.json()
        assert any(e["field"].endswith(field) and "NUL" in e["message"] for e in problem["errors"]), problem
    assert db.execute("SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM api_flow_runs)").fetchone() == before
    for path, params in [("/api/clients", {"name": "a\u0000"}), ("/api/clients", {"domain": "\u0000"}),
                         ("/api/knowledge/search", {"q": "a\u0000"})]:  # query strings too
        answer = api.get(path, params=params, headers=viewer)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == next(iter(params)), answer.text
