"""Prefect Block types for connection settings and credentials: database, LLM, reader, Google.

Register them with the Prefect server once: `prefect block register -m blocks`. Then create
blocks in the UI (Blocks → + → "Proposalflow Database" …) or in code, and point a worker (or the
CLI) at them with PROPOSALFLOW_BLOCK=<name> or PROPOSALFLOW_<KIND>_BLOCK=<name>; see
`blocks.resolve`.
"""

from .connections import ProposalflowDatabase, ProposalflowGoogle, ProposalflowLLM, ProposalflowReader

__all__ = ["ProposalflowDatabase", "ProposalflowGoogle", "ProposalflowLLM", "ProposalflowReader"]
