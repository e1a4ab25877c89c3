"""The direction of imports is the architecture (DESIGN.md): the core knows no Prefect or web framework."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CORE = {"prefect", "fastapi", "starlette", "flows", "tasks", "api", "blocks"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_no_prefect_or_web_framework():
    offenders = {}
    for path in (REPO / "proposalflow").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "proposalflow").parts:
            continue  # the CLI is an edge, like api/: it starts flows
        bad = imported_roots(path) & FORBIDDEN_IN_CORE
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert offenders == {}


def test_api_does_not_import_flow_internals():
    for path in (REPO / "api").rglob("*.py"):
        assert not imported_roots(path) & {"tasks"}, path
