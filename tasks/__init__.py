"""Prefect tasks: thin wrappers that give a core function retries, timeouts, caching and logging."""

import os

# Before Prefect is imported anywhere: no telemetry from an offline machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# PROPOSALFLOW_BLOCK / PROPOSALFLOW_<KIND>_BLOCK: settings from Prefect blocks, once per process (blocks/resolve.py)
from blocks.resolve import apply_configured_blocks  # noqa: E402

apply_configured_blocks()
