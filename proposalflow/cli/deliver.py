"""`proposalflow deliver PROPOSAL_ID [--send]`: run the deliver-proposal flow and say what it made."""

from __future__ import annotations

import typer

from .output import JsonOption, emit_json, err, out, reported_errors


def deliver(
    proposal_id: str = typer.Argument(..., help="The approved proposal's id."),
    send: bool = typer.Option(False, "--send", help="Send the email too (needs PROPOSALFLOW_ALLOW_SEND=true; "
                                                    "otherwise it stays a Gmail draft / an .eml in the outbox)."),
    target: str = typer.Option(None, "--target", help="google or local (default: PROPOSALFLOW_DELIVERY, else "
                                                      "Google when it has credentials, else local)."),
    as_json: bool = JsonOption,
) -> None:
    """Deliver an approved proposal: a Google Doc + Gmail draft, or a .docx/.html + .eml — exactly once."""
    with reported_errors(as_json):
        from .running import run_flow

        err.print(f"delivering proposal {proposal_id}{' (and sending)' if send else ''} …", highlight=False)
        report = run_flow("deliver_proposal", "deliver_proposal", proposal_id=proposal_id, send=send, target=target)
    if as_json:
        emit_json(report)
        return
    report_delivery(report)


def report_delivery(report: dict) -> None:
    title = f"proposal {report['proposal_id']} v{report['version']}"
    if report["already_delivered"]:
        out.print(f"[bold]already delivered[/]: {title} ({report['target']}, email {report['mail_state']}) — "
                  "nothing new made", highlight=False)
    else:
        made = ", ".join(report["made"]) or "nothing new"
        out.print(f"[bold]Delivered[/] {title} to {report['client']['name']} via {report['target']} "
                  f"(made: {made})", highlight=False)
    rows = [("status", report["status"]), ("document", report["doc_link"]),
            ("email", f"{report['mail_state']} to {report['recipient']}: {report.get('subject') or ''}")]
    if report["target"] == "google":
        rows.append(("draft id", str(report["message"].get("draft_id"))))
    rows += [("file", path) for path in report.get("files") or []]
    for label, value in rows:  # whole lines, never truncated: paths and links are meant to be copied
        out.print(f"  [bold]{label:<9}[/] {value}", highlight=False, soft_wrap=True)


def report_batch_delivery(summary: dict) -> None:
    """The demo's (and a batch run's) report: counts, then every delivery with ALL its files (or its
    document's link), one whole line each — paths are meant to be copied — then every failure."""
    deliveries = summary["deliveries"]
    out.print(f"[bold]Delivered[/]: {summary['delivered']} new, {summary['already_delivered']} already delivered, "
              f"{summary['failed']} failed", highlight=False)
    for report in deliveries:
        again = " (already delivered)" if report.get("already_delivered") else ""
        out.print(f"[bold]{report['client']['name']}[/] — proposal {report['proposal_id']} v{report['version']}, "
                  f"email {report['mail_state']} to {report['recipient']}{again}", highlight=False, soft_wrap=True)
        for path in report.get("files") or [report["doc_link"]]:
            out.print(f"  {path}", highlight=False, soft_wrap=True)
    for failure in summary["failures"]:
        out.print(f"[red]failed[/] proposal {failure['proposal_id']}: {failure['error']}", highlight=False,
                  soft_wrap=True)
