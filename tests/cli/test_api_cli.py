"""`proposalflow token` and `proposalflow api` as a user runs them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import PROPOSALFLOW, run_cli

SECRET = "cli-test-secret-that-is-long-enough-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def wait_until_ready(base: str, server, log) -> None:
    """Until the API answers /readyz with 200; fails with the end of its log if it exits or takes 90 s."""
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)

def test_token_then_api_serves_the_routes_with_it(cli_env, tmp_path):
    env = {**cli_env, "PROPOSALFLOW_JWT_SECRET": SECRET}
    minted = json.loads(run_cli(["token", "--email", "Ed@Agency.test", "--role", "editor", "--ttl", "15m", "--json"],
                                env).stdout)
    assert minted["email"] == "ed@agency.test" and minted["role"] == "editor"
    plain = run_cli(["token", "--email", "v@agency.test"], env).stdout.strip()
    assert plain.count(".") == 2  # a JWT, alone on stdout

    port = free_port()
    server = subprocess.Popen([PROPOSALFLOW, "api", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "api.log", "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, tmp_path / "api.log")
        editor = {"Authorization": f"Bearer {minted['token']}"}
        created = httpx.post(f"{base}/api/clients", json={"name": "Acme", "website": "acme.com"}, headers=editor)
        assert created.status_code == 201, created.text
        assert httpx.get(f"{base}/api/clients/{created.json()['id']}",
                         headers={"Authorization": f"Bearer {plain}"}).json()["name"] == "Acme"
        assert httpx.post(f"{base}/api/clients", json={"name": "Beta"},
                          headers={"Authorization": f"Bearer {plain}"}).status_code == 403  # a viewer
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "proposalflow API on http://127.0.0.1" in (tmp_path / "api.log").read_text()


def test_token_refuses_bad_input_and_needs_a_secret_outside_local_use(cli_env):
    bad = run_cli(["token", "--email", "x@y.io", "--role", "root", "--json"], cli_env, check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["type"] == "validation"
    no_secret = run_cli(["token", "--email", "x@y.io", "--json"],
                        {**cli_env, "PROPOSALFLOW_ENV": "production", "PROPOSALFLOW_JWKS_URL": "https://x.supabase.co/jwks"},
                        check=False)
    assert no_secret.returncode == 1 and "Supabase Auth" in json.loads(no_secret.stdout)["error"]["message"]


def test_token_without_a_configured_secret_uses_a_local_development_secret_the_api_shares(cli_env):
    first = run_cli(["token", "--email", "a@b.io"], cli_env)
    assert "development secret" in first.stderr
    from api.main import create_app  # noqa: F401 - the API reads the same file (proposalflow.security.signing_secret)
    from proposalflow.security import TokenVerifier
    from proposalflow.settings import Settings

    settings = Settings(PROPOSALFLOW_HOME=cli_env["PROPOSALFLOW_HOME"])
    assert TokenVerifier.from_settings(settings).verify(first.stdout.strip()).email == "a@b.io"


def test_token_does_not_import_prefect(cli_env):
    probe = ("import sys\nfrom proposalflow.cli import app\n"
             "try:\n    app(['token', '--email', 'a@b.io'])\nexcept SystemExit:\n    pass\n"
             "print('PREFECT-IMPORTED' if 'prefect' in sys.modules else 'PREFECT-NOT-IMPORTED', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=120)
    assert "PREFECT-NOT-IMPORTED" in result.stderr, result.stderr[-2000:]


def processes_in_group(pgid: int) -> dict[int, str]:
    """pid → command line of every live process in a process group (from /proc; zombies left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, …
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.slow
def test_sigterm_stops_the_temporary_prefect_server_of_in_process_runs(cli_env, tmp_path):
    """Without PREFECT_API_URL a run makes Prefect start a temporary server (a uvicorn child); after
    SIGTERM the API leaves nothing behind."""
    env = {k: v for k, v in cli_env.items() if not k.startswith("PREFECT_API")}
    env.update(PROPOSALFLOW_JWT_SECRET=SECRET, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    imports = Path(env["PROPOSALFLOW_HOME"]) / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    (imports / "c.csv").write_text("name\nAcme\n")
    token = run_cli(["token", "--email", "ed@agency.test", "--role", "editor"], env).stdout.strip()
    port = free_port()
    server = subprocess.Popen([PROPOSALFLOW, "api", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "api.log", "w"), start_new_session=True)  # its own group
    log = tmp_path / "api.log"
    try:
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        wait_until_ready(base, server, log)
        started = httpx.post(f"{base}/api/flows/ingest-clients/runs", json={"source": "c.csv"}, headers=headers,
                             timeout=120)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 120
        while httpx.get(f"{base}/api/runs/{started.json()['id']}", headers=headers,
                        timeout=30).json()["state"] != "completed":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        prefect = [pid for pid, cmd in processes_in_group(server.pid).items() if "prefect.server.api.server" in cmd]
        assert len(prefect) == 1, processes_in_group(server.pid)  # the temporary server exists
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    deadline = time.monotonic() + 15
    while (left := processes_in_group(server.pid)) and time.monotonic() < deadline:
        time.sleep(0.3)
    try:
        assert left == {}, log.read_text()[-2000:]
    finally:
        for pid in left:  # never leave them to the next test
            os.kill(pid, signal.SIGKILL)
