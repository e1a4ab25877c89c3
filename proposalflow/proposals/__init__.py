"""Proposal generation: the content model, the status machine, the LangGraph workflow, conversation.

- `schema`   — `ProposalContent` (what `proposals.content` holds), citations, metadata
- `status`   — the status machine: `transition`, `mark_sent` (delivery's hook)
- `service`  — `generate`, `revise`, `get`, `list_versions`, `conversation`: what CLI, API and flows call
"""
