"""Prefect blocks: registrable with the Prefect CLI, and settings resolve from a named block."""

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from blocks import ProposalflowDatabase, ProposalflowGoogle, ProposalflowLLM, ProposalflowReader
from blocks.resolve import block_environment
from proposalflow.errors import ConfigurationError
from proposalflow.settings import Settings
from tests.support import run_cli

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


def test_prefect_block_register_finds_the_four_types(prefect_api_url):
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    result = subprocess.run([PREFECT, "block", "register", "-m", "blocks"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    types = httpx.post(f"{prefect_api_url}/block_types/filter", json={}).json()
    assert {"proposalflow-database", "proposalflow-llm", "proposalflow-reader", "proposalflow-google"} <= \
        {t["slug"] for t in types}


def test_one_name_resolves_every_kind_saved_under_it(prefect_api_url, tmp_path, monkeypatch):
    name = f"prod-{uuid.uuid4().hex[:8]}"
    ProposalflowLLM(llm="openai", openai_api_key="sk-from-the-block", llm_model="gpt-4.1").save(name)
    ProposalflowReader(reader="jina", jina_api_key="jina-key", allow_private_urls=False).save(name)
    key = {"type": "service_account", "client_email": "bot@p.iam.gserviceaccount.com", "private_key": "x"}
    ProposalflowGoogle(service_account_info=json.dumps(key), subject="sales@agency.test").save(name)
    monkeypatch.setenv("PROPOSALFLOW_BLOCK", name)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")

    env, loaded = block_environment(Settings())

    # no database block under that name: skipped, DATABASE_URL stays the environment's
    assert loaded == [f"proposalflow-llm/{name}", f"proposalflow-reader/{name}", f"proposalflow-google/{name}"]
    assert "DATABASE_URL" not in env
    assert (env["OPENAI_API_KEY"], env["PROPOSALFLOW_LLM_MODEL"], env["PROPOSALFLOW_LLM"]) == \
        ("sk-from-the-block", "gpt-4.1", "openai")
    assert (env["JINA_API_KEY"], env["PROPOSALFLOW_READER"], env["PROPOSALFLOW_ALLOW_PRIVATE_URLS"]) == \
        ("jina-key", "jina", "false")
    key_file = Path(env["GOOGLE_APPLICATION_CREDENTIALS"])
    assert json.loads(key_file.read_text()) == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert env["PROPOSALFLOW_GOOGLE_SUBJECT"] == "sales@agency.test"
    resolved = Settings(_env_file=None, **{k: v for k, v in env.items()})
    assert resolved.llm_model == "gpt-4.1" and resolved.openai_api_key.get_secret_value() == "sk-from-the-block"


def test_a_block_named_for_one_kind_must_exist(prefect_api_url, monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_LLM_BLOCK", "no-such-block")
    with pytest.raises(ConfigurationError, match="PROPOSALFLOW_LLM_BLOCK=no-such-block: there is no proposalflow-llm"):
        block_environment(Settings())


def test_a_cli_run_takes_its_database_from_the_block(cli_env, db_url, tmp_path):
    name = f"db-{uuid.uuid4().hex[:8]}"
    ProposalflowDatabase(database_url=db_url).save(name)
    env = {k: v for k, v in cli_env.items() if k != "DATABASE_URL"}
    env["PROPOSALFLOW_DATABASE_BLOCK"] = name
    path = tmp_path / "clients.csv"
    path.write_text("name,website\nAcme,acme.com\nBeta,beta.io\n")
    summary = json.loads(run_cli(["ingest", "clients", str(path), "--json"], env).stdout)
    assert summary["inserted"] == 2
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 2

    env["PROPOSALFLOW_DATABASE_BLOCK"] = "missing-one"
    failed = run_cli(["ingest", "clients", str(path), "--json"], env, check=False)
    assert failed.returncode == 1
    assert "there is no proposalflow-database block named 'missing-one'" in json.loads(failed.stdout)["error"]["message"]


def test_every_cli_command_and_the_api_read_the_configured_blocks(cli_env, db_url):
    """Not only the commands that run a flow: `db url` (no flow, no Prefect otherwise) and the API
    take DATABASE_URL from the named block, and a block that is not there stops them, named."""
    name = f"db-{uuid.uuid4().hex[:8]}"
    ProposalflowDatabase(database_url=db_url).save(name)
    from_env = "postgresql://nobody@127.0.0.1:9/from-the-environment"  # the block overrides it
    env = {**cli_env, "DATABASE_URL": from_env, "PROPOSALFLOW_DATABASE_BLOCK": name}
    assert run_cli(["db", "url"], env).stdout.strip() == db_url
    probe = "from api.main import app; print(app.state.services.settings.database_url.get_secret_value())"
    api = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert api.returncode == 0 and api.stdout.strip() == db_url, api.stderr[-2000:]

    env["PROPOSALFLOW_DATABASE_BLOCK"] = "no-such-block"
    failed = run_cli(["db", "url"], env, check=False)
    assert failed.returncode == 1 and failed.stdout == ""
    assert "PROPOSALFLOW_DATABASE_BLOCK=no-such-block: there is no proposalflow-database block named " \
           "'no-such-block'" in " ".join(failed.stderr.split())  # the terminal wraps the message
    failed = run_cli(["db", "migrate", "--json"], env, check=False)
    assert failed.returncode == 1 and "no-such-block" in json.loads(failed.stdout)["error"]["message"]
    assert "Usage: proposalflow db" in run_cli(["db", "--help"], env).stdout  # help needs no settings
    api = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert api.returncode != 0 and "there is no proposalflow-database block named 'no-such-block'" in api.stderr
