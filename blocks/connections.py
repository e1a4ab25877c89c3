"""The block types: one per kind of settings, each field named after the setting it carries.

A block's `environment()` is the set of environment variables (the same names as in `.env`, see
README "Configuration") that its non-empty fields stand for; `blocks.resolve` puts them in the
process environment before the settings are read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

_DOCS = "https://github.com/proposalflow/proposalflow#prefect-blocks"


class _SettingsBlock(Block):
    """Fields map to environment variables through ENV; empty fields leave the environment alone."""

    ENV: ClassVar[dict[str, str]] = {}
    _documentation_url = _DOCS

    def environment(self, block_name: str = "default", home: Path | None = None) -> dict[str, str]:
        env: dict[str, str] = {}
        for field_name, variable in self.ENV.items():
            value = getattr(self, field_name)
            if value is None or value == "":
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[variable] = str(value)
        return env


class ProposalflowDatabase(_SettingsBlock):
    """The product database: any PostgreSQL with pgvector, e.g. Supabase's connection string (URI)."""

    _block_type_name = "Proposalflow Database"
    _block_type_slug = "proposalflow-database"
    ENV: ClassVar[dict[str, str]] = {"database_url": "DATABASE_URL"}

    database_url: SecretStr = Field(
        ..., title="DATABASE_URL",
        description="postgresql://user:password@host:5432/postgres?sslmode=require (Supabase: Project Settings → "
                    "Database → Connection string → URI; direct or session pooler)")


class ProposalflowLLM(_SettingsBlock):
    """The chat model and the embeddings: OpenAI or any OpenAI-compatible server."""

    _block_type_name = "Proposalflow LLM"
    _block_type_slug = "proposalflow-llm"
    ENV: ClassVar[dict[str, str]] = {
        "llm": "PROPOSALFLOW_LLM", "openai_api_key": "OPENAI_API_KEY", "openai_base_url": "OPENAI_BASE_URL",
        "llm_model": "PROPOSALFLOW_LLM_MODEL", "llm_fallback_model": "PROPOSALFLOW_LLM_FALLBACK_MODEL",
        "embeddings": "PROPOSALFLOW_EMBEDDINGS", "embedding_model": "PROPOSALFLOW_EMBEDDING_MODEL",
    }

    llm: Literal["openai", "offline"] | None = Field(None, title="PROPOSALFLOW_LLM",
                                                     description="openai, or offline (the template composer)")
    openai_api_key: SecretStr | None = Field(None, title="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, title="OPENAI_BASE_URL",
                                        description="for an OpenAI-compatible server; empty = api.openai.com")
    llm_model: str | None = Field(None, title="PROPOSALFLOW_LLM_MODEL", description="e.g. gpt-4o")
    llm_fallback_model: str | None = Field(None, title="PROPOSALFLOW_LLM_FALLBACK_MODEL")
    embeddings: Literal["openai", "local"] | None = Field(None, title="PROPOSALFLOW_EMBEDDINGS")
    embedding_model: str | None = Field(None, title="PROPOSALFLOW_EMBEDDING_MODEL")


class ProposalflowReader(_SettingsBlock):
    """The web reader used for enrichment: Jina Reader, or direct HTTP."""

    _block_type_name = "Proposalflow Reader"
    _block_type_slug = "proposalflow-reader"
    ENV: ClassVar[dict[str, str]] = {
        "reader": "PROPOSALFLOW_READER", "jina_api_key": "JINA_API_KEY", "jina_reader_url": "JINA_READER_URL",
        "allow_private_urls": "PROPOSALFLOW_ALLOW_PRIVATE_URLS",
    }

    reader: Literal["jina", "direct"] | None = Field(None, title="PROPOSALFLOW_READER")
    jina_api_key: SecretStr | None = Field(None, title="JINA_API_KEY")
    jina_reader_url: str | None = Field(None, title="JINA_READER_URL", description="default https://r.jina.ai")
    allow_private_urls: bool | None = Field(None, title="PROPOSALFLOW_ALLOW_PRIVATE_URLS",
                                            description="let the reader fetch loopback/private addresses (intranets)")


class ProposalflowGoogle(_SettingsBlock):
    """Google Workspace delivery: a service account key (JSON) and where documents go."""

    _block_type_name = "Proposalflow Google"
    _block_type_slug = "proposalflow-google"
    ENV: ClassVar[dict[str, str]] = {
        "subject": "PROPOSALFLOW_GOOGLE_SUBJECT", "drive_parent": "PROPOSALFLOW_GOOGLE_DRIVE_PARENT",
        "share_with": "PROPOSALFLOW_GOOGLE_SHARE_WITH", "fernet_key": "PROPOSALFLOW_FERNET_KEY",
    }

    service_account_info: SecretStr | None = Field(
        None, title="Service account key (JSON)",
        description="the whole JSON key file of the service account; written to a 0600 file under "
                    "PROPOSALFLOW_HOME/secrets and used as GOOGLE_APPLICATION_CREDENTIALS")
    subject: str | None = Field(None, title="PROPOSALFLOW_GOOGLE_SUBJECT",
                                description="domain-wide delegation: the Workspace user to act as (needed for Gmail)")
    drive_parent: str | None = Field(None, title="PROPOSALFLOW_GOOGLE_DRIVE_PARENT",
                                     description="Drive folder id under which client folders are made")
    share_with: str | None = Field(None, title="PROPOSALFLOW_GOOGLE_SHARE_WITH",
                                   description="comma-separated addresses the documents are shared with")
    fernet_key: SecretStr | None = Field(None, title="PROPOSALFLOW_FERNET_KEY",
                                         description="encrypts OAuth tokens stored by `proposalflow google auth`")

    def environment(self, block_name: str = "default", home: Path | None = None) -> dict[str, str]:
        env = super().environment(block_name, home)
        if self.service_account_info is not None:
            info = self.service_account_info.get_secret_value()
            try:
                json.loads(info)
            except ValueError as exc:
                raise ValueError(f"block proposalflow-google/{block_name}: the service account key is not JSON") from exc
            folder = (home or Path("~/.proposalflow").expanduser()) / "secrets"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / f"google-{block_name}.json"
            partial = path.with_suffix(".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(info)
            partial.replace(path)
            env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
        return env
