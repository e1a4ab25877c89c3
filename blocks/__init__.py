"""Prefect Block types for connection settings and credentials (see the operations issue)."""
