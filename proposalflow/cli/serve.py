"""`proposalflow serve`: the deployments of prefect.yaml — same names, parameters, tags and
schedules — served by this one process, for a machine without a work pool and workers.

Each run executes in a subprocess of this one. With PREFECT_API_URL set the deployments and
their runs show in that server's UI; without it Prefect starts a temporary server inside this
process (schedules then live only as long as it does). A deployment served here replaces the
work-pool deployment of the same name on that server: use one way or the other.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigurationError
from .output import err, reported_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "active", "parameters", "slug", "day_or", "anchor_date"}


@dataclass
class DeploymentSpec:
    """One `deployments:` entry of prefect.yaml, as far as serving needs it."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: int | None = None


def default_prefect_yaml() -> Path:
    return Path.cwd() / "prefect.yaml" if (Path.cwd() / "prefect.yaml").is_file() else REPO_ROOT / "prefect.yaml"


def read_deployments(path: Path, only: list[str] | None = None) -> list[DeploymentSpec]:
    """The deployments in prefect.yaml (all, or the ones named in `only`), validated."""
    import yaml

    if not path.is_file():
        raise ConfigurationError(f"{path}: no such file (give --file PATH to a prefect.yaml)")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    specs = []
    for number, entry in enumerate(document.get("deployments") or [], start=1):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("entrypoint"):
            raise ConfigurationError(f"{path}: deployment {number} needs a name and an entrypoint")
        schedules = []
        for schedule in entry.get("schedules") or []:
            unknown = set(schedule) - SCHEDULE_KEYS
            if unknown:
                raise ConfigurationError(f"{path}: deployment {entry['name']}: unknown schedule key(s) "
                                         f"{', '.join(sorted(unknown))}")
            schedules.append(schedule)
        limit = entry.get("concurrency_limit")
        specs.append(DeploymentSpec(
            name=entry["name"], entrypoint=entry["entrypoint"], description=entry.get("description"),
            tags=list(entry.get("tags") or []), version=entry.get("version"),
            parameters=dict(entry.get("parameters") or {}), schedules=schedules,
            concurrency_limit=limit.get("limit") if isinstance(limit, dict) else limit,
        ))
    if only:
        unknown = sorted(set(only) - {s.name for s in specs})
        if unknown:
            raise ConfigurationError(f"{path}: no deployment named {', '.join(unknown)} "
                                     f"(there are: {', '.join(s.name for s in specs)})")
        specs = [s for s in specs if s.name in only]
    return specs


def schedule_of(spec: dict[str, Any]):
    """A prefect.yaml schedule entry as a Prefect Schedule (interval in seconds, like prefect.yaml)."""
    from prefect.schedules import Schedule

    values = dict(spec)
    if values.get("interval") is not None:
        values["interval"] = datetime.timedelta(seconds=float(values["interval"]))
    if values.get("parameters") is None:
        values.pop("parameters", None)
    return Schedule(**values)


def serve(
    file: Path = typer.Option(None, "--file", help="The prefect.yaml to serve (default: ./prefect.yaml, else the "
                                                   "repository's)."),
    only: list[str] = typer.Option(None, "--only", help="Serve only this deployment (repeatable)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Most flow runs at once (default: no limit)."),
) -> None:
    """Serve every prefect.yaml deployment, with its schedules, from this one process (no work pool needed)."""
    with reported_errors(False):
        path = (file or default_prefect_yaml()).resolve()
        specs = read_deployments(path, only)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.chdir(path.parent)  # entrypoints are relative to prefect.yaml, and runs start here
        import prefect
        from prefect.flows import load_flow_from_entrypoint

        deployments = []
        for spec in specs:
            flow = load_flow_from_entrypoint(spec.entrypoint, use_placeholder_flow=False)
            deployments.append(flow.to_deployment(
                name=spec.name, description=spec.description, tags=spec.tags, version=spec.version,
                parameters=spec.parameters, schedules=[schedule_of(s) for s in spec.schedules],
                concurrency_limit=spec.concurrency_limit,
            ))
        err.print(f"serving {len(deployments)} deployment(s) from {path}: "
                  + ", ".join(s.name for s in specs))
        prefect.serve(*deployments, limit=limit)
