"""proposalflow core: plain Python, no Prefect and no HTTP framework (see DESIGN.md)."""

__version__ = "0.1.0"
