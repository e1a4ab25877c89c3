from fastapi.testclient import TestClient

from api.main import app


def test_healthz():
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_does_not_tell_anonymous_callers_where_the_database_is(db_url, caplog):
    """503 with a generic detail; the driver's message (host, port, user) goes to the log only."""
    import socket

    from api.main import create_app

    from .conftest import make_settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://secret_user:s3cret-pw@127.0.0.1:{port}/private_db?connect_timeout=2"
    with caplog.at_level("WARNING", logger="proposalflow.api.health"):
        response = TestClient(create_app(make_settings(DATABASE_URL=url))).get("/readyz")
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://proposalflow.dev/problems/unavailable" and body["database"] == "unreachable"
    assert body["detail"] == "database unreachable (the reason is in the server log)"
    for secret in (str(port), "127.0.0.1", "secret_user", "s3cret", "private_db"):
        assert secret not in response.text
    assert str(port) in caplog.text  # the operator still learns why


def test_readyz_is_ready_on_a_migrated_database(db_url):
    from api.main import create_app

    from .conftest import make_settings

    response = TestClient(create_app(make_settings())).get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready", "database": "ok",
                                                                 "pending_migrations": []}
