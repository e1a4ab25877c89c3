"""`proposalflow kb add|search|reembed|status`: the knowledge base."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer
from rich.table import Table

from .output import JsonOption, emit_json, err, out, reported_errors, summary_table
from .running import run_flow

app = typer.Typer(help="The knowledge base: add documents, search, re-embed.", no_args_is_help=True)

FAILURES_SHOWN = 10


@app.command("add")
def add(
    sources: list[str] = typer.Argument(..., help="Folders (recursively: .md .txt .html .pdf .docx), files or http(s) URLs."),
    category: str = typer.Option(None, "--category", help="Category for every document (default: sub-folder or front-matter)."),
    prune: bool = typer.Option(False, "--prune", help="Delete documents under the folder whose file is gone."),
    as_json: bool = JsonOption,
) -> None:
    """Embed documents into the knowledge base; unchanged ones are skipped."""
    from ..knowledge.documents import is_url

    folders = [s for s in sources if not is_url(s) and Path(s).expanduser().is_dir()]
    urls = [s for s in sources if is_url(s)]
    files = [s for s in sources if s not in folders and s not in urls]
    with reported_errors(as_json):
        if prune and len(folders) != 1:
            from ..errors import ValidationFailed

            raise ValidationFailed("--prune needs exactly one folder")
        summary = _add(folders, files, urls, category, prune, as_json)
    report(summary, as_json)
    if summary.get("failed"):
        raise typer.Exit(1)  # any source not embedded is a failure; the others were embedded and are kept


def _add(folders: list[str], files: list[str], urls: list[str], category: str | None, prune: bool,
         as_json: bool) -> dict:
    total: dict | None = None
    with _progress_bar(not as_json):
        # one flow run per folder (each folder is what --prune looks at); files and URLs go with the first
        for i, folder in enumerate(folders or [None]):
            part = run_flow("embed_knowledge", "embed_knowledge", folder=folder,
                            files=(files or None) if i == 0 else None, urls=(urls or None) if i == 0 else None,
                            category=category, prune=prune)
            total = part if total is None else _merge(total, part)
    return total or {}


def _merge(a: dict, b: dict) -> dict:
    merged = dict(a)
    for key, value in b.items():
        if isinstance(value, int) and isinstance(a.get(key), int):
            merged[key] = a[key] + value
        elif isinstance(value, list):
            merged[key] = a.get(key, []) + value
        else:
            merged[key] = value
    return merged


@contextmanager
def _progress_bar(show: bool) -> Iterator[None]:
    if not show:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..knowledge import progress

    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task_id = bar.add_task("documents", total=None)

        def listener(kind: str, n: int) -> None:
            if kind == "total":
                bar.update(task_id, total=(bar.tasks[0].total or 0) + n)
            else:
                bar.advance(task_id, n)

        with progress.listening(listener):
            yield


def report(summary: dict, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    out.print(summary_table("Knowledge base", {
        "documents": summary.get("documents", 0), "embedded": summary.get("embedded", 0),
        "chunks written": summary.get("chunks", 0), "unchanged": summary.get("unchanged", 0),
        "failed": summary.get("failed", 0), "pruned": summary.get("pruned", 0),
    }))
    failures = summary.get("failures") or []
    if failures:
        shown = failures[:FAILURES_SHOWN]
        out.print(f"[bold]Not embedded[/] (first {len(shown)} of {len(failures)}; all: select * from knowledge_failures)")
        for failure in shown:  # the reason names the file or URL
            out.print(f"  {failure['reason']}", soft_wrap=True, highlight=False, markup=False)


@app.command("search")
def search(
    query: str = typer.Argument(..., help="A question or keywords."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="How many passages."),
    category: str = typer.Option(None, "--category", help="Only this category."),
    as_json: bool = JsonOption,
) -> None:
    """Hybrid (vector + full-text) search of the knowledge base. Runs no flow."""
    with reported_errors(as_json):
        from ..database import connect
        from ..knowledge.embedders import make_embedder
        from ..knowledge.search import search as run_search

        embedder = make_embedder()
        with connect(autocommit=True) as conn:
            passages = run_search(conn, embedder, query, k=k, category=category)
    if as_json:
        emit_json({"query": query, "k": k, "category": category,
                   "results": [p.__dict__ for p in passages]})
        return
    if not passages:
        out.print("no passages found" + (f" in category {category!r}" if category else ""))
        return
    table = Table(title=f"Top {len(passages)} for {query!r}", title_justify="left", show_lines=True, expand=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document", ratio=2)
    table.add_column("category")
    table.add_column("chunk", justify="right")
    table.add_column("passage", ratio=5)
    for i, p in enumerate(passages, 1):
        body = p.text.split("\n\n", 1)[-1]
        table.add_row(str(i), f"{p.score:.4f}", p.title, p.category or "", str(p.chunk_id),
                      body[:300] + ("…" if len(body) > 300 else ""))
    out.print(table)


@app.command("reembed")
def reembed(as_json: bool = JsonOption) -> None:
    """Re-embed every stored document with the configured model (after changing
    PROPOSALFLOW_EMBEDDINGS / PROPOSALFLOW_EMBEDDING_MODEL or the chunk settings)."""
    with reported_errors(as_json):
        with _progress_bar(not as_json):
            summary = run_flow("embed_knowledge", "embed_knowledge", reembed=True)
    report(summary, as_json)


@app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """Documents, chunks, the recorded embedding model, categories and recent failures. Runs no flow."""
    with reported_errors(as_json):
        from ..database import connect
        from ..knowledge import store

        with connect(autocommit=True) as conn:
            model = store.recorded_model(conn)
            report_doc = {**store.counts(conn), "model": str(model) if model else None,
                          "categories": dict(conn.execute(
                              "SELECT coalesce(category, '(none)'), count(*) FROM knowledge_base GROUP BY 1 ORDER BY 1"
                          ).fetchall()),
                          "failures": store.failures(conn, FAILURES_SHOWN)}
    if as_json:
        emit_json(report_doc)
        return
    out.print(summary_table("Knowledge base", {"documents": report_doc["documents"], "chunks": report_doc["chunks"],
                                               "model": report_doc["model"] or "(nothing embedded yet)",
                                               **{f"category {k}": v for k, v in report_doc["categories"].items()}}))
    for failure in report_doc["failures"]:
        err.print(f"[yellow]not embedded[/]: {failure['reason']}", highlight=False)
