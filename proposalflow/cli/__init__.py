"""The `proposalflow` command. An edge, like api/: it translates core errors once, here.

Commands that run no flow never import Prefect; commands that run one import it lazily
(see `proposalflow.cli.running`).
"""

from __future__ import annotations

import typer

from . import db, demo, ingest
from . import kb
from . import serve
from . import api, auth
from . import enrich
from . import proposals
from . import deliver, google

app = typer.Typer(
    name="proposalflow",
    help="An agency's proposal back office: clients, enrichment, knowledge, proposals, delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(ingest.app, name="ingest")
app.add_typer(kb.app, name="kb")
app.command("enrich")(enrich.enrich)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
proposals.register(app)  # propose, proposal show|revise|status|list
app.command("token")(auth.token)
app.command("api")(api.serve_api)
app.command("deliver")(deliver.deliver)
app.add_typer(google.app, name="google")


@app.callback()
def _settings_from_prefect_blocks() -> None:
    # PROPOSALFLOW_BLOCK / PROPOSALFLOW_<KIND>_BLOCK apply to every command (db, kb, proposal … too),
    # not only to those that run a flow; Prefect is imported only when one of them is set.
    import sys

    from blocks.resolve import apply_configured_blocks

    from .output import reported_errors

    if "--help" in sys.argv[1:]:
        return  # help needs no settings; a broken block setting must not hide it
    with reported_errors("--json" in sys.argv[1:]):
        apply_configured_blocks()


def main() -> None:
    import sys

    from ..logging import cli_invocation

    with cli_invocation(sys.argv[1:]):  # JSON log lines in PROPOSALFLOW_HOME/logs/cli.log
        app()
