"""`proposalflow propose` and `proposalflow proposal show|revise|status|list`.

`propose` runs the generate-proposal flow; the `proposal` commands call the core directly and never
import Prefect (a revision is one conversation turn, answered in this process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markdown import Markdown
from rich.table import Table

from .output import JsonOption, emit_json, err, out, reported_errors

app = typer.Typer(help="Proposals: show, revise by conversation, move through review.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.command("propose")(propose)
    root.add_typer(app, name="proposal")


def propose(
    client: str = typer.Argument(..., help="The client: its id, its name (or a unique part of it), or its website domain."),
    brief: Path = typer.Option(None, "--brief", help="A text or Markdown file with the brief or an RFP excerpt ('-': stdin)."),
    template: str = typer.Option("standard", "--template", help="Proposal template: standard, short or rfp."),
    proposal: str = typer.Option(None, "--proposal", help="Write a new version of this proposal instead of a new one."),
    new: bool = typer.Option(False, "--new", help="Write another proposal even if this same request was answered."),
    as_json: bool = JsonOption,
) -> None:
    """Write a grounded proposal for a client (generate-proposal flow) and print it with its id."""
    with reported_errors(as_json):
        from ..database import connect
        from ..proposals.facts import find_client
        from ..proposals.templates import get_template
        from ..settings import get_settings

        template_name = get_template(template).name
        text = _read_brief(brief)
        with connect(autocommit=True) as conn:
            client_id, name = find_client(conn, client)
        provider = get_settings().llm_provider
        err.print(f"writing a proposal for {name} (template {template_name}, "
                  f"{'offline composer' if provider == 'offline' else 'language model'}) …", highlight=False)
        from .running import run_flow

        result = run_flow("generate_proposal", "generate_proposal", client_id=client_id, brief=text,
                          template=template_name, proposal_id=proposal, new=new)
        with connect(autocommit=True) as conn:
            from ..proposals.service import get

            record = get(conn, result["proposal_id"])
    if as_json:
        emit_json({**result, "status": record.status, "content": record.content.model_dump(mode="json"),
                   "markdown": record.content.to_markdown()})
        return
    _print_proposal(record)
    if result.get("reused"):
        err.print("this request was already answered: that proposal is shown (--new writes another)")
    if result.get("resumed"):
        err.print("an interrupted run of this request was resumed from its checkpoints")


@app.command("show")
def show(
    proposal_id: str = typer.Argument(..., help="The proposal's id."),
    version: int = typer.Option(None, "--version", min=1, help="Show this version (default: the current one)."),
    history: bool = typer.Option(False, "--history", help="Also list the versions and the conversation."),
    as_json: bool = JsonOption,
) -> None:
    """Print a proposal (Markdown, with its references), its status and its deliveries."""
    with reported_errors(as_json):
        from ..database import connect
        from ..delivery.service import delivery_status
        from ..proposals import service

        with connect(autocommit=True) as conn:
            record = service.get(conn, proposal_id, version)
            versions = service.versions(conn, proposal_id) if history or as_json else []
            messages = service.conversation(conn, proposal_id) if history or as_json else []
            deliveries = delivery_status(conn, record.id)
    if as_json:
        emit_json({**record.model_dump(mode="json"), "markdown": record.content.to_markdown() if record.content else None,
                   "version_history": versions, "conversation": messages, "deliveries": deliveries})
        return
    _print_proposal(record)
    _print_deliveries(record, deliveries)
    if history:
        table = Table(title="Versions", title_justify="left")
        for column in ("version", "kind", "when", "instruction / changes"):
            table.add_column(column)
        for v in versions:
            table.add_row(str(v["version"]), v["kind"], f"{v['created_at']:%Y-%m-%d %H:%M}",
                          (v["instruction"] or "") + (f" → {v['diff_summary']}" if v["diff_summary"] else ""))
        out.print(table)
        for m in messages:
            out.print(f"[bold]{m['role']}[/] (v{m['version']}): {m['content']}", highlight=False)


@app.command("revise")
def revise(
    proposal_id: str = typer.Argument(..., help="The proposal's id."),
    instruction: str = typer.Argument(..., help='What to change, e.g. "make the pricing section shorter".'),
    as_json: bool = JsonOption,
) -> None:
    """One turn of the conversation: rewrite what the instruction concerns and save a new version."""
    with reported_errors(as_json):
        from ..database import connect
        from ..proposals import service

        with connect(autocommit=True) as conn:
            result = service.revise(conn, proposal_id, instruction,
                                    on_progress=lambda m: err.print(m, highlight=False))
            record = service.get(conn, proposal_id)
    if as_json:
        emit_json({**result.as_dict(), "status": record.status, "content": record.content.model_dump(mode="json")})
        return
    if result.reply:
        out.print(result.reply, highlight=False)
    out.print(f"[bold]version {result.version}[/] saved: {result.diff_summary}", highlight=False)
    if result.offline:
        out.print("[yellow]Revised by the offline composer — no language model wrote this.[/]")
    out.print(f"Show it: proposalflow proposal show {proposal_id}", highlight=False)


@app.command("status")
def status(
    proposal_id: str = typer.Argument(..., help="The proposal's id."),
    new_status: str = typer.Argument(..., metavar="STATUS", help="in_review, approved, rejected, draft or archived."),
    note: str = typer.Option(None, "--note", help="Why (kept in the status history)."),
    as_json: bool = JsonOption,
) -> None:
    """Move a proposal through review: draft → in_review → approved (→ sent by delivery); rejected; archived."""
    with reported_errors(as_json):
        import getpass

        from ..database import connect
        from ..proposals.status import allowed_next, transition

        with connect(autocommit=True) as conn:
            change = transition(conn, proposal_id, new_status, actor=f"cli:{getpass.getuser()}", note=note)
    document = {**change.as_dict(), "next": allowed_next(change.to_status)}
    if as_json:
        emit_json(document)
        return
    moved = change.from_status != change.to_status
    out.print(f"proposal {proposal_id}: {change.from_status} → {change.to_status}" if moved else
              f"proposal {proposal_id} is already {change.to_status}", highlight=False)


@app.command("list")
def list_(
    client: str = typer.Option(None, "--client", help="Only this client's proposals (id, name or domain)."),
    status_filter: str = typer.Option(None, "--status", help="Only proposals in this status."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
) -> None:
    """List proposals, most recently changed first."""
    with reported_errors(as_json):
        from ..database import connect
        from ..proposals import service
        from ..proposals.facts import find_client
        from ..proposals.status import parse_status

        with connect(autocommit=True) as conn:
            client_id = find_client(conn, client)[0] if client else None
            rows = service.list_proposals(conn, client_id=client_id, limit=limit,
                                          status=parse_status(status_filter).value if status_filter else None)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"Proposals ({len(rows)})", title_justify="left")
    for column in ("id", "client", "status", "v", "title"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["id"], r["client_name"], r["status"], str(r["version"]), r["title"] or "")
    out.print(table)


def report_batch(summary: dict, shown: int = 10) -> None:
    """The demo's (and a batch run's) report: counts, the first proposals, how to see one."""
    proposals = summary["proposals"]
    out.print(f"[bold]Proposals[/]: {summary['generated']} written, {summary['reused']} already there, "
              f"{summary['failed']} failed", highlight=False)
    table = Table(title=f"First {min(shown, len(proposals))} of {len(proposals)}", title_justify="left")
    table.add_column("proposal", no_wrap=True, min_width=36)
    for column in ("title", "sections", "sources", "warnings"):
        table.add_column(column)
    for p in proposals[:shown]:
        table.add_row(p["proposal_id"], p["title"], str(p["sections"]), str(p["citations"]), str(len(p["warnings"])))
    out.print(table)
    if any(p["offline"] for p in proposals):
        out.print("[yellow]Written by the offline composer — no language model wrote these.[/]")
    for failure in summary["failures"][:shown]:
        out.print(f"[red]failed[/] client {failure['client_id']}: {failure['error']}", highlight=False)
    if proposals:
        out.print(f"Read one: proposalflow proposal show {proposals[0]['proposal_id']}", highlight=False)


def _print_deliveries(record, deliveries: list[dict]) -> None:
    """The deliveries table (version, target, state, the email: draft or sent), then the document's link,
    the files and the draft id as whole lines — meant to be copied, never cut short."""
    if not deliveries:
        hint = f" (deliver it: proposalflow deliver {record.id})" if record.status == "approved" else ""
        out.print(f"delivery: not delivered yet{hint}", highlight=False, soft_wrap=True)
        return
    current = max(record.versions or [record.version])
    table = Table(title="Deliveries", title_justify="left")
    for column in ("version", "target", "status", "email", "when"):
        table.add_column(column, no_wrap=True)
    for d in deliveries:
        when = (d["completed_at"] or d["started_at"] or "")[:16].replace("T", " ")
        table.add_row(f"v{d['version']}" + ("" if d["version"] == current else " (older)"), d["target"],
                      d["status"], d["mail_state"] or "—", when)
    out.print(table)
    for d in deliveries:
        rows = [("document", d["doc_link"])] + [("file", f) for f in d["files"]]
        rows += [("draft id", d["draft_id"])] if d["target"] == "google" and d["draft_id"] else []
        rows += [("error", d["error"])] if d["error"] and d["status"] != "completed" else []
        for label, value in rows:
            if value:
                out.print(f"  [bold]v{d['version']} {d['target']:<6} {label:<8}[/] {value}", highlight=False,
                          soft_wrap=True)


def _print_proposal(record) -> None:
    if record.content is None:
        out.print(f"proposal {record.id} ({record.client_name}) is {record.status}: no version saved yet",
                  highlight=False)
        return
    content = record.content
    out.print(Markdown(content.to_markdown()))
    meta = content.metadata
    out.print(f"[bold]proposal {record.id}[/] · version {record.version} of {len(record.versions)} · "
              f"status {record.status} · {len(content.sections)} sections · {len(content.references)} sources",
              highlight=False)
    if meta.offline:
        out.print("[yellow]Written by the offline composer — no language model wrote this.[/]")
    else:
        usage = meta.token_usage
        out.print(f"model {meta.model} · prompts {meta.prompt_version} · {usage.total_tokens:,} tokens in "
                  f"{usage.calls} calls · {meta.generation_seconds:.1f} s", highlight=False)
    if not meta.client_enriched:
        out.print(f"{record.client_name} is not enriched yet: run `proposalflow enrich` for more client specifics.",
                  highlight=False)
    for warning in meta.check_warnings:
        out.print(f"[yellow]check:[/] {warning}", highlight=False)


def _read_brief(path: Path | None) -> str | None:
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdin.read()
    from ..errors import ValidationFailed

    try:
        return path.expanduser().read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationFailed(f"{path}: no such file (--brief)", [{"field": "brief", "message": "not found"}]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"{path}: cannot read the brief: {exc}", [{"field": "brief", "message": str(exc)}]) from None
