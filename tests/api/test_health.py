from fastapi.testclient import TestClient

from api.main import app


def test_healthz():
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
