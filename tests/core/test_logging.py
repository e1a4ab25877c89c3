"""Structured logs: JSON lines with request/run ids, rotation by size, secrets never written."""

import asyncio
import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from proposalflow import logging as pflog
from proposalflow.settings import get_settings

OPENAI_KEY = "sk-proj-Abc123SECRETopenaiKEY456xyz"
JWT_SECRET = "jwt-secret-0123456789-abcdefghijklmnop-XYZ"
DB_PASSWORD = "pg-Pa55word-not-for-logs"


@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("PROPOSALFLOW_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{DB_PASSWORD}@db.example.com:5432/postgres")
    get_settings.cache_clear()
    yield tmp_path / "logs"
    for name in (*pflog.PRODUCT_LOGGERS, *pflog.OWN_LINE_LOGGERS):  # leave no handler behind for other tests
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    get_settings.cache_clear()


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_are_json_with_run_id_and_fields_and_no_secret(log_dir):
    path = pflog.configure_logging("cli")
    log = logging.getLogger("proposalflow.test")
    with pflog.bound(run_id="run-1"):
        log.info("calling %s with key %s", "https://api.openai.com", OPENAI_KEY, extra={"client_id": "c-1"})
        log.warning("connect to postgresql://app:%s@db.example.com/postgres failed", DB_PASSWORD)
        log.info("headers", extra={"headers": {"Authorization": f"Bearer {JWT_SECRET}"}})
        try:
            raise RuntimeError(f"token={JWT_SECRET}")
        except RuntimeError:
            log.exception("it broke")
    text = path.read_text()
    for secret in (OPENAI_KEY, JWT_SECRET, DB_PASSWORD):
        assert secret not in text
    first, second, third, fourth = lines(path)
    assert first["message"] == "calling https://api.openai.com with key ***"
    assert (first["run_id"], first["client_id"], first["level"], first["component"]) == ("run-1", "c-1", "INFO", "cli")
    assert second["message"] == "connect to postgresql://app:***@db.example.com/postgres failed"
    assert third["headers"] == {"Authorization": "Bearer ***"}
    assert "RuntimeError: token=***" in fourth["exception"] and fourth["level"] == "ERROR"


def test_patterns_catch_secrets_that_are_not_configured():
    text = pflog.redact('url=https://bob:hunter22@example.com/x sk-abcdefghijklmnopqrstu password="p@ss!" '
                        '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----', secrets=set())
    assert "hunter22" not in text and "abcdefghijklmnop" not in text and "p@ss!" not in text and "MIIE" not in text
    assert "https://bob:***@example.com/x" in text


def test_rotation_by_size(log_dir, monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_LOG_MAX_BYTES", "20000")
    monkeypatch.setenv("PROPOSALFLOW_LOG_BACKUPS", "2")
    get_settings.cache_clear()
    path = pflog.configure_logging("cli")
    log = logging.getLogger("proposalflow.test")
    for i in range(1000):
        log.info("line %d %s", i, "x" * 100)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == ["cli.log", "cli.log.1", "cli.log.2"]
    assert all((log_dir / f).stat().st_size <= 20000 for f in files)
    assert lines(path)[-1]["message"].startswith("line 999 ")


def test_api_requests_get_an_id_and_an_access_line(log_dir):
    path = pflog.configure_logging("api")
    app = FastAPI()

    @app.get("/clients/{client_id}")
    def read(client_id: str):
        logging.getLogger("api.routes").info("reading client", extra={"client_id": client_id})
        return {"id": client_id}

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"database password is {DB_PASSWORD}")

    wrapped = pflog.RequestLogMiddleware(app)

    async def calls():
        transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            given = await client.get("/clients/42?api_key=" + OPENAI_KEY, headers={"X-Request-ID": "req-abc"})
            made = await client.get("/clients/7", headers={"Authorization": f"Bearer {JWT_SECRET}"})
            crashed = await client.get("/boom")
            return given, made, crashed

    given, made, crashed = asyncio.run(calls())
    assert given.headers["x-request-id"] == "req-abc"
    assert len(made.headers["x-request-id"]) == 32 and crashed.status_code == 500
    text = path.read_text()
    assert OPENAI_KEY not in text and JWT_SECRET not in text and DB_PASSWORD not in text
    records = lines(path)
    route_line = next(r for r in records if r["message"] == "reading client" and r["client_id"] == "42")
    access = [r for r in records if r["logger"] == "api.access"]
    assert route_line["request_id"] == "req-abc"
    assert access[0] | {"duration_ms": 0} == access[0] | {
        "message": "request", "method": "GET", "path": "/clients/42", "query": "api_key=***", "status": 200,
        "request_id": "req-abc", "duration_ms": 0}
    assert access[1]["request_id"] == made.headers["x-request-id"]
    crash = next(r for r in records if r["message"] == "request crashed")
    assert crash["status"] == 500 and "database password is ***" in crash["exception"]


def test_two_processes_rotating_one_log_lose_no_line(log_dir, tmp_path):
    """Several uvicorn workers or CLI commands write one cli.log/api.log: the file is rotated under a
    lock, a process reopens the file another one rotated away, so every line of both is kept (in
    cli.log or a backup, each once) and no file outgrows the limit."""
    import subprocess
    import sys

    per_process, max_bytes = 1500, 10_000
    script = (
        "import logging, os, sys, time\n"
        "from proposalflow import logging as pflog\n"
        "pflog.configure_logging('cli')\n"
        "log = logging.getLogger('proposalflow.test')\n"
        "go = sys.argv[2]\n"
        "while not os.path.exists(go): time.sleep(0.005)\n"  # both start writing at once
        "for i in range(%d): log.info('%%s line %%d %%s', sys.argv[1], i, 'x' * 80)\n" % per_process
    )
    go = tmp_path / "go"
    env = {**__import__("os").environ, "PROPOSALFLOW_LOG_MAX_BYTES": str(max_bytes), "PROPOSALFLOW_LOG_BACKUPS": "500"}
    writers = [subprocess.Popen([sys.executable, "-c", script, name, str(go)], env=env) for name in ("A", "B")]
    go.touch()
    for writer in writers:
        assert writer.wait(120) == 0
    files = [p for p in log_dir.iterdir() if p.name.startswith("cli.log")]
    assert len(files) > 10  # it rotated, many times, from both processes
    assert all(p.stat().st_size <= max_bytes for p in files), sorted((p.name, p.stat().st_size) for p in files)
    messages = [line["message"] for p in files for line in lines(p)]
    for name in ("A", "B"):
        seen = sorted(int(m.split()[2]) for m in messages if m.startswith(f"{name} line "))
        assert seen == list(range(per_process)), f"{name}: {per_process - len(set(seen))} lines lost"
