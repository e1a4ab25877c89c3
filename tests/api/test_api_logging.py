"""The API's JSON log under real requests, with secrets configured: request ids in, secrets out."""

import json
from pathlib import Path

import jwt

from tests.api.conftest import SECRET, auth

OPENAI_KEY = "sk-api-log-test-0123456789abcdefSECRET"
DB_PASSWORD = "Api-Db-Pa55-secret"


def test_requests_are_logged_with_ids_and_no_secret(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("PROPOSALFLOW_JWT_SECRET", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("PROPOSALFLOW_LLM", "offline")
    # the embedded server trusts local connections: the password is carried, not checked
    monkeypatch.setenv("DATABASE_URL", db_url.replace("postgresql://postgres:@", f"postgresql://postgres:{DB_PASSWORD}@"))
    from fastapi.testclient import TestClient

    from api.main import create_app
    from proposalflow.settings import Settings, get_settings

    get_settings.cache_clear()
    viewer = auth("viewer")
    forged = jwt.encode({"sub": "x", "aud": "authenticated", "exp": 4102444800}, "not-the-secret-" * 4,
                        algorithm="HS256")
    with TestClient(create_app(Settings())) as client:
        ok = client.get("/api/clients", headers={**viewer, "X-Request-ID": "trace-42"})
        refused = client.get("/api/clients", headers={"Authorization": f"Bearer {forged}"})
        queried = client.get(f"/api/clients?api_key={OPENAI_KEY}", headers=viewer)
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "trace-42"
    assert refused.status_code == 401 and queried.status_code in (200, 422)

    log = Path(get_settings().log_folder) / "api.log"
    text = log.read_text()
    for secret in (SECRET, OPENAI_KEY, DB_PASSWORD, viewer["Authorization"].split()[1], forged):
        assert secret not in text
    access = [r for r in map(json.loads, text.splitlines()) if r["logger"] == "api.access"]
    assert [(r["path"], r["status"]) for r in access] == [("/api/clients", ok.status_code),
                                                          ("/api/clients", 401), ("/api/clients", queried.status_code)]
    assert access[0]["request_id"] == "trace-42" and access[1]["request_id"] == refused.headers["x-request-id"]
    assert access[2]["query"] == "api_key=***" and access[1]["level"] == "WARNING"
