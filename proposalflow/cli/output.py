"""How commands report: a Rich table for people, or exactly one JSON document with --json.

Progress and logs go to stderr, results to stdout; any failure exits non-zero.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ProposalflowError

out = Console()
err = Console(stderr=True)


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")
    sys.stdout.flush()


def summary_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


@contextmanager
def reported_errors(as_json: bool) -> Iterator[None]:
    """Turn the core's errors into a message (or a JSON error document) and exit code 1."""
    try:
        yield
    except ProposalflowError as exc:
        _fail(as_json, exc.kind, str(exc), getattr(exc, "errors", None))
    except KeyboardInterrupt:
        _fail(as_json, "interrupted", "interrupted")


def _fail(as_json: bool, kind: str, message: str, errors: list | None = None) -> None:
    logging.getLogger("proposalflow.cli").warning("command failed: %s", message, extra={"error_type": kind})
    if as_json:
        emit_json({"error": {"type": kind, "message": message, "errors": errors or []}})
    else:
        err.print(f"[bold red]error[/] ({kind}): {message}", highlight=False)
    raise typer.Exit(1)


JsonOption = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")
