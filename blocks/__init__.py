"""Prefect Block types for connection settings and credentials: database, LLM, reader, Google.

Register them with the Prefect server once: `prefect block register -m blocks`. Then create
blocks in the UI (Blocks → + → "Proposalflow Database" …) or in code, and point a worker (or the
CLI, or the API) at them with PROPOSALFLOW_BLOCK=<name> or PROPOSALFLOW_<KIND>_BLOCK=<name>; see
`blocks.resolve`.

The types are imported on first use (PEP 562), so `blocks.resolve` can tell whether any block is
configured without importing Prefect — the CLI commands that need no Prefect stay without it.
"""

from __future__ import annotations

__all__ = ["ProposalflowDatabase", "ProposalflowGoogle", "ProposalflowLLM", "ProposalflowReader"]


def __getattr__(name: str):
    if name in __all__:
        from . import connections

        return getattr(connections, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:  # `prefect block register -m blocks` finds the types through dir()
    return sorted({*globals(), *__all__})
