"""deployments/compose.yaml and the Dockerfile, checked without Docker (it does not run here):
the services exist and are wired to each other by env vars, and the image is built and tested
with the same Makefile targets CI runs."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from proposalflow.cli import app

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENTS = REPO / "deployments"


def compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, innermost first."""
    pattern = re.compile(r"\$\{(\w+)(?::([-?])((?:[^{}]|\{[^{}]*\})*))?\}")
    while (match := pattern.search(value)) is not None:
        name, kind, rest = match.groups()
        replacement = env.get(name) or (rest if kind == "-" else "")
        if kind == "?" and not env.get(name):
            raise KeyError(f"{name} is required: {rest}")
        value = value[:match.start()] + replacement + value[match.end():]
    return value


def test_services_and_how_they_are_wired():
    services = compose()["services"]
    assert {"db", "prefect-server", "migrate", "deploy", "worker", "api"} <= set(services)
    env = {"POSTGRES_PASSWORD": "pw"}

    assert "pgvector" in services["db"]["image"] and services["db"]["environment"]["POSTGRES_DB"] == "proposalflow"
    prefect_db = urlsplit(interpolate(services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"], env))
    assert (prefect_db.scheme, prefect_db.hostname, prefect_db.path) == ("postgresql+asyncpg", "db", "/prefect")
    assert "CREATE DATABASE prefect" in (DEPLOYMENTS / "initdb" / "01-prefect-database.sql").read_text()
    assert services["prefect-server"]["image"].endswith(":3.9.1-python3.11")  # the pinned Prefect

    product = ("migrate", "deploy", "worker", "api")
    for name in product:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deployments/Dockerfile"}, name
        variables = {k: interpolate(str(v), env) for k, v in service["environment"].items()}
        database = urlsplit(variables["DATABASE_URL"])
        assert (database.hostname, database.path, database.password) == ("db", "/proposalflow", "pw"), name
        assert variables["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert variables["PROPOSALFLOW_HOME"] == "/data" and "home:/data" in service["volumes"], name
    # Supabase instead of the db service: one variable
    supabase = "postgresql://postgres.ref:secret@aws-0-eu.pooler.supabase.com:5432/postgres"
    assert interpolate(services["api"]["environment"]["DATABASE_URL"], {**env, "DATABASE_URL": supabase}) == supabase

    assert services["worker"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                                "deploy": {"condition": "service_completed_successfully"}}
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["api"]["environment"]["PROPOSALFLOW_FLOW_RUNNER"] == "deployment"
    assert services["deploy"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"


def test_commands_are_real_commands_and_the_pool_is_prefect_yaml_s():
    services = compose()["services"]
    pools = {d["work_pool"]["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    worker = services["worker"]["command"]
    assert worker[:3] == ["prefect", "worker", "start"] and pools == {worker[worker.index("--pool") + 1]}
    deploy = services["deploy"]["command"][-1]
    assert "prefect --no-prompt deploy --all" in deploy and "prefect work-pool create proposalflow --type process" in deploy
    assert "prefect block register -m blocks" in deploy
    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for name in ("migrate", "api"):
        assert services[name]["command"][0] == "proposalflow" and services[name]["command"][1] in commands


def test_the_dockerfile_installs_and_tests_with_ci_s_make_targets():
    dockerfile = (DEPLOYMENTS / "Dockerfile").read_text()
    instructions = re.split(r"\n(?=[A-Z]+ )", dockerfile.replace("\\\n", " "))
    runs = [i for i in instructions if i.startswith("RUN ")]
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    used = {target for run in runs for target in re.findall(r"(?:^RUN|&&|;)\s*make ([a-z-]+)", run)}
    assert used == {"install", "test"} and used <= targets
    assert not any(re.search(r"\bpip install\b", run) for run in runs)  # installing is make's job, as in CI
    assert "make test" in (REPO / ".ci" / "run").read_text()  # what CI runs is what the test stage runs
    assert re.search(r"^FROM product AS test\nRUN make test$", dockerfile, re.MULTILINE)
    assert "WORKDIR /app" in dockerfile  # the path `prefect deploy` (in the deploy service) records
    assert ".venv" in (DEPLOYMENTS / "Dockerfile.dockerignore").read_text()


def test_the_hourly_knowledge_run_has_a_real_folder_to_embed():
    """Without PROPOSALFLOW_KNOWLEDGE_DIR the hourly embed-knowledge run has nothing to do: compose
    sets it to a folder mounted from the host, and the default host folder is in the repository."""
    services = compose()["services"]
    for name in ("worker", "api"):
        knowledge = services[name]["environment"]["PROPOSALFLOW_KNOWLEDGE_DIR"]
        def mounts(env: dict) -> dict[str, str]:
            return {v.split(":")[1]: v.split(":")[0] for v in (interpolate(v, env) for v in services[name]["volumes"])}

        assert knowledge in mounts({}), name
        assert (DEPLOYMENTS / mounts({})[knowledge]).is_dir()  # relative to the compose file, as compose resolves it
        override = "/srv/agency/knowledge"
        assert mounts({"KNOWLEDGE_HOST_DIR": override})[knowledge] == override
    example = (DEPLOYMENTS / ".env.example").read_text()
    assert re.search(r"^KNOWLEDGE_HOST_DIR=\./knowledge$", example, re.MULTILINE)
