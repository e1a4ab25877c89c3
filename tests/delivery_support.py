"""Test data for delivery: a client and a proposal written straight from the content model
(what the generator would have saved), moved through the status machine."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from proposalflow.proposals import status
from proposalflow.proposals.schema import (ChunkCitation, ClientRef, FactCitation, GenerationMetadata, Paragraph,
                                           ProposalContent, Section)

HEADINGS = ["Our understanding", "Approach", "Pricing and timeline"]


def make_content(client_id: str, client_name: str, title: str = "Route optimisation for Northwind") -> ProposalContent:
    site = "https://northwind.example"
    return ProposalContent(
        title=title,
        client=ClientRef(id=client_id, name=client_name, website=site),
        executive_summary="We propose a **twelve-week** programme to cut empty miles by 15%.",
        sections=[
            Section(id="understanding", heading=HEADINGS[0], paragraphs=[
                Paragraph(text="Northwind runs 140 trucks across the Pacific Northwest.",
                          citations=[FactCitation(field="fleet_size", url=f"{site}/about")]),
                Paragraph(text="- Seasonal peaks\n- Manual dispatch\n- *Ageing* telematics"),
            ]),
            Section(id="approach", heading=HEADINGS[1], paragraphs=[
                Paragraph(text="### Phase 1\n\nDiscovery workshops, then a [pilot](https://agency.example/pilot).",
                          citations=[ChunkCitation(chunk_id=7, title="Logistics case study",
                                                   source_uri="https://agency.example/cases/logistics")]),
            ]),
            Section(id="pricing", heading=HEADINGS[2], kind="pricing", paragraphs=[
                Paragraph(text="1. Discovery: $18,000\n2. Pilot: $42,000",
                          citations=[ChunkCitation(chunk_id=9, title="Rate card",
                                                   source_uri="file:///srv/knowledge/rate-card.md")]),
            ]),
        ],
        metadata=GenerationMetadata(model="offline composer — no language model wrote this", offline=True,
                                    template="standard"),
    )


def make_client(db, name: str = "Northwind Logistics", email: str | None = "maria@northwind.example",
                contact_name: str | None = "Maria Anders") -> str:
    contact = {k: v for k, v in (("email", email), ("contact_name", contact_name)) if v}
    key = "name:" + name.lower()
    return str(db.execute("INSERT INTO clients (name, natural_key, contact_info) VALUES (%s, %s, %s) RETURNING id",
                          (name, key, Jsonb(contact))).fetchone()[0])


def make_proposal(db, client_id: str | None = None, *, state: str = "approved", title: str | None = None,
                  client_name: str = "Northwind Logistics") -> str:
    """A proposal with version 1 saved, moved draft → in_review → approved (as far as `state` says)."""
    client_id = str(client_id or make_client(db, client_name))
    name = db.execute("SELECT name FROM clients WHERE id = %s", (client_id,)).fetchone()[0]
    content = make_content(client_id, name, **({"title": title} if title else {}))
    pid = str(db.execute(
        """INSERT INTO proposals (client_id, status, version, title, content) VALUES (%s, 'draft', 1, %s, %s)
           RETURNING id""", (client_id, content.title, Jsonb(content.model_dump(mode="json")))).fetchone()[0])
    db.execute("INSERT INTO proposal_versions (proposal_id, version, title, content, kind) VALUES (%s, 1, %s, %s, "
               "'generated')", (pid, content.title, Jsonb(content.model_dump(mode="json"))))
    path = {"draft": [], "in_review": ["in_review"], "approved": ["in_review", "approved"],
            "archived": ["archived"], "rejected": ["in_review", "rejected"]}[state]
    for step in path:
        status.transition(db, pid, step, actor="test")
    return pid


def save_revision(db, proposal_id: str, title: str) -> int:
    """Save a new version of a proposal the way a revision does (proposals.store: a run, then save_version,
    which moves the proposal back to draft); returns the new version."""
    import uuid

    import psycopg

    from proposalflow.proposals import store

    client_id, name = db.execute("SELECT c.id, c.name FROM proposals p JOIN clients c ON c.id = p.client_id "
                                 "WHERE p.id = %s", (proposal_id,)).fetchone()
    with psycopg.connect(db.info.dsn, password=db.info.password, autocommit=True) as lock_conn:
        run = store.start_run(db, lock_conn, kind="revise", key=f"test-revision:{uuid.uuid4()}",
                              client_id=str(client_id), proposal_id=proposal_id, instruction=f"retitle: {title}")
        saved = store.save_version(db, run_id=run.id, proposal_id=proposal_id, kind="revised", flow_run_id=None,
                                   content=make_content(str(client_id), name, title=title).model_dump(mode="json"),
                                   instruction=f"retitle: {title}", diff_summary="title")
    return saved["version"]


def approve(db, proposal_id: str) -> None:
    for step in ("in_review", "approved"):
        status.transition(db, proposal_id, step, actor="test")
