"""Settings from Prefect blocks, resolved at the edge (tasks, flows, CLI) — the core never imports Prefect.

Configure with `PROPOSALFLOW_BLOCK=<name>` (every kind saved under that name; kinds without such a
block are skipped) or per kind with `PROPOSALFLOW_DATABASE_BLOCK`, `PROPOSALFLOW_LLM_BLOCK`,
`PROPOSALFLOW_READER_BLOCK`, `PROPOSALFLOW_GOOGLE_BLOCK` (a missing block is then an error).
With none of them set nothing is loaded and the settings come from the environment and `.env`.

A block's non-empty fields override the environment variables of the same meaning; the
settings cache is then cleared so the next `get_settings()` sees them. It happens at every edge:
`tasks/__init__.py` when the first task module is imported (a worker's flow-run process,
`proposalflow serve` runs), the CLI before any command (`proposalflow.cli`'s callback), and the
API when it builds its app (`api.main`). Prefect is imported only when a block is configured.
"""

from __future__ import annotations

import os
import warnings

from proposalflow.errors import ConfigurationError
from proposalflow.settings import Settings, get_settings

KINDS = ("database", "llm", "reader", "google")


def block_type(kind: str):
    """The Block class of a kind (imports Prefect)."""
    from . import connections

    return {
        "database": connections.ProposalflowDatabase,
        "llm": connections.ProposalflowLLM,
        "reader": connections.ProposalflowReader,
        "google": connections.ProposalflowGoogle,
    }[kind]


def configured_names(settings: Settings) -> dict[str, tuple[str, bool]]:
    """kind → (block name, named explicitly for this kind)."""
    names = {}
    for kind in KINDS:
        explicit = getattr(settings, f"{kind}_block")
        if explicit:
            names[kind] = (explicit, True)
        elif settings.block:
            names[kind] = (settings.block, False)
    return names


def block_environment(settings: Settings) -> tuple[dict[str, str], list[str]]:
    """The environment variables the configured blocks stand for, and the blocks loaded ("slug/name")."""
    import httpx
    from prefect.exceptions import ObjectNotFound

    env: dict[str, str] = {}
    loaded: list[str] = []
    for kind, (name, explicit) in configured_names(settings).items():
        kind_type = block_type(kind)
        slug = kind_type.get_block_type_slug()
        try:
            block = kind_type.load(name, _sync=True)
        except (httpx.HTTPError, OSError) as exc:
            api_url = os.environ.get("PREFECT_API_URL") or "PREFECT_API_URL (not set)"
            variable = f"PROPOSALFLOW_{kind.upper()}_BLOCK" if explicit else "PROPOSALFLOW_BLOCK"
            raise ConfigurationError(
                f"{variable}={name}: cannot load the {slug} block {name!r} from the Prefect server at "
                f"{api_url}: {exc}"
            ) from exc
        except (ValueError, ObjectNotFound) as exc:
            if explicit:
                raise ConfigurationError(
                    f"PROPOSALFLOW_{kind.upper()}_BLOCK={name}: there is no {slug} block named {name!r} "
                    f"(create it in the Prefect UI under Blocks, after `prefect block register -m blocks`)"
                ) from exc
            continue
        try:
            env.update(block.environment(name, settings.home_dir))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        loaded.append(f"{slug}/{name}")
    return env, loaded


def apply_configured_blocks() -> list[str]:
    """Put the configured blocks' settings into os.environ (no-op, no Prefect call, when none is configured)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the settings warn again, where they are used
            settings = Settings()
    except ValueError:
        return []  # settings that do not validate are reported where they are used
    names = configured_names(settings)
    if not names:
        return []
    key = tuple(sorted(names.items()))
    if key in _applied:  # the CLI's callback, then tasks/__init__ in the same process: load once
        return _applied[key]
    env, loaded = block_environment(settings)
    os.environ.update(env)
    get_settings.cache_clear()
    _applied[key] = loaded
    return loaded


_applied: dict[tuple, list[str]] = {}  # per process: the block names applied, and what they loaded
