"""Helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROPOSALFLOW = str(Path(sys.executable).parent / "proposalflow")


def run_cli(args: list[str], env: dict, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([PROPOSALFLOW, *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"proposalflow {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}")
    return result
