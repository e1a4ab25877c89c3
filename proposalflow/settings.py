"""The one settings object: environment variables and `.env`, names as in DESIGN.md's contract."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRETS = {"changethis", "secret", "change-me", "changeme", ""}


class Settings(BaseSettings):
    # Variables are read by their documented names (aliases) only: with populate_by_name, HOME
    # would set `home` and ENVIRONMENT `environment`.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # environment: "local" tolerates unsafe development values (with a warning), anything else refuses them
    environment: Literal["local", "staging", "production"] = Field("local", alias="PROPOSALFLOW_ENV")

    # database: unset → the embedded PostgreSQL under `home`
    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    home: Path = Field(Path("~/.proposalflow"), alias="PROPOSALFLOW_HOME")

    # language model
    llm: Literal["openai", "offline"] | None = Field(None, alias="PROPOSALFLOW_LLM")
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    llm_model: str = Field("gpt-4o", alias="PROPOSALFLOW_LLM_MODEL")
    llm_fallback_model: str | None = Field(None, alias="PROPOSALFLOW_LLM_FALLBACK_MODEL")

    # proposal generation
    proposal_concurrency: int = Field(8, alias="PROPOSALFLOW_PROPOSAL_CONCURRENCY", ge=1, le=64)  # sections drafted at once
    proposal_batch_concurrency: int = Field(10, alias="PROPOSALFLOW_PROPOSAL_BATCH_CONCURRENCY", ge=1, le=64)  # proposals at once
    proposal_passages: int = Field(5, alias="PROPOSALFLOW_PROPOSAL_PASSAGES", ge=1, le=20)  # passages retrieved per section
    proposal_retry_seconds: float = Field(1.0, alias="PROPOSALFLOW_PROPOSAL_RETRY_SECONDS", ge=0)  # first node retry delay
    llm_rpm: int = Field(3000, alias="PROPOSALFLOW_LLM_RPM", ge=1)  # chat requests per minute, per process (proposals)

    # embeddings
    embeddings: Literal["openai", "local"] | None = Field(None, alias="PROPOSALFLOW_EMBEDDINGS")
    embedding_model: str | None = Field(None, alias="PROPOSALFLOW_EMBEDDING_MODEL")

    # web reader
    reader: Literal["jina", "direct"] | None = Field(None, alias="PROPOSALFLOW_READER")
    jina_api_key: SecretStr | None = Field(None, alias="JINA_API_KEY")
    jina_reader_url: str = Field("https://r.jina.ai", alias="JINA_READER_URL")
    allow_private_urls: bool = Field(False, alias="PROPOSALFLOW_ALLOW_PRIVATE_URLS")
    reader_trusted_hosts: str = Field("", alias="PROPOSALFLOW_READER_TRUSTED_HOSTS")  # "host[:port],…" that may be private
    reader_timeout_seconds: float = Field(20.0, alias="PROPOSALFLOW_READER_TIMEOUT", gt=0)
    reader_max_bytes: int = Field(5_000_000, alias="PROPOSALFLOW_READER_MAX_BYTES", ge=1024)
    reader_max_redirects: int = Field(5, alias="PROPOSALFLOW_READER_MAX_REDIRECTS", ge=0)
    reader_attempts: int = Field(3, alias="PROPOSALFLOW_READER_ATTEMPTS", ge=1, le=10)
    reader_host_rate: float = Field(1.0, alias="PROPOSALFLOW_READER_HOST_RATE", gt=0)  # requests/s per site
    reader_host_burst: int = Field(2, alias="PROPOSALFLOW_READER_HOST_BURST", ge=1)
    reader_concurrency: int = Field(8, alias="PROPOSALFLOW_READER_CONCURRENCY", ge=1)
    reader_cache_ttl_hours: float = Field(168.0, alias="PROPOSALFLOW_READER_CACHE_TTL_HOURS", ge=0)
    jina_rpm: int | None = Field(None, alias="PROPOSALFLOW_JINA_RPM", ge=1)  # unset: 20 without a key, 200 with one

    # enrichment
    enrich_max_pages: int = Field(4, alias="PROPOSALFLOW_ENRICH_MAX_PAGES", ge=0, le=20)  # besides the home page
    enrich_batch_size: int = Field(25, alias="PROPOSALFLOW_ENRICH_BATCH_SIZE", ge=1)
    llm_structured_method: Literal["json_schema", "function_calling"] = Field(
        "json_schema", alias="PROPOSALFLOW_LLM_STRUCTURED_METHOD")

    # Google Workspace
    google_application_credentials: Path | None = Field(None, alias="GOOGLE_APPLICATION_CREDENTIALS")

    # delivery (deliver-proposal): Google Workspace or the local exporters
    delivery: Literal["google", "local"] | None = Field(None, alias="PROPOSALFLOW_DELIVERY")  # unset: see delivery_target
    google_subject: str | None = Field(None, alias="PROPOSALFLOW_GOOGLE_SUBJECT")  # domain-wide delegation: act as this user
    google_client_secrets: Path | None = Field(None, alias="PROPOSALFLOW_GOOGLE_CLIENT_SECRETS")  # OAuth client (google auth)
    fernet_key: SecretStr | None = Field(None, alias="PROPOSALFLOW_FERNET_KEY")  # encrypts stored OAuth tokens; "new,old" rotates
    google_drive_parent: str | None = Field(None, alias="PROPOSALFLOW_GOOGLE_DRIVE_PARENT")  # folder id for client folders
    google_share_with: str = Field("", alias="PROPOSALFLOW_GOOGLE_SHARE_WITH")  # comma-separated addresses
    google_share_role: Literal["reader", "commenter", "writer"] = Field("commenter", alias="PROPOSALFLOW_GOOGLE_SHARE_ROLE")
    google_timeout_seconds: float = Field(60.0, alias="PROPOSALFLOW_GOOGLE_TIMEOUT", gt=0)
    google_attempts: int = Field(5, alias="PROPOSALFLOW_GOOGLE_ATTEMPTS", ge=1, le=10)
    google_requests_per_second: float = Field(5.0, alias="PROPOSALFLOW_GOOGLE_RPS", gt=0)
    google_api_endpoint: str | None = Field(None, alias="PROPOSALFLOW_GOOGLE_API_ENDPOINT")  # Drive+Gmail origin (tests)
    allow_send: bool = Field(False, alias="PROPOSALFLOW_ALLOW_SEND")  # `deliver --send` sends only when this is true
    smtp_url: SecretStr | None = Field(None, alias="SMTP_URL")  # smtp://user:pass@host:587 (STARTTLS) or smtps://…:465
    mail_from: str | None = Field(None, alias="PROPOSALFLOW_MAIL_FROM")
    email_template: Path | None = Field(None, alias="PROPOSALFLOW_EMAIL_TEMPLATE")  # "Subject: …" line, blank line, body

    # API auth (Supabase-issued JWTs)
    jwt_secret: SecretStr | None = Field(None, alias="PROPOSALFLOW_JWT_SECRET")
    jwks_url: str | None = Field(None, alias="PROPOSALFLOW_JWKS_URL")
    jwt_audience: str = Field("authenticated", alias="PROPOSALFLOW_JWT_AUDIENCE")
    jwt_issuer: str | None = Field(None, alias="PROPOSALFLOW_JWT_ISSUER")  # e.g. https://<ref>.supabase.co/auth/v1
    # where the app role (admin/editor/viewer) sits in the token; comma-separated dot paths, first found wins
    jwt_role_claim: str = Field("app_metadata.role,user_role", alias="PROPOSALFLOW_JWT_ROLE_CLAIM")
    jwks_cache_seconds: int = Field(600, alias="PROPOSALFLOW_JWKS_CACHE_SECONDS", ge=0)

    # API service (proposalflow api)
    cors_origins: str = Field("", alias="PROPOSALFLOW_CORS_ORIGINS")  # comma-separated origins, "" = no CORS
    api_max_body_bytes: int = Field(1 << 20, alias="PROPOSALFLOW_API_MAX_BODY_BYTES", ge=1024)
    upload_max_bytes: int = Field(25 << 20, alias="PROPOSALFLOW_UPLOAD_MAX_BYTES", ge=1024)
    api_page_max: int = Field(200, alias="PROPOSALFLOW_API_PAGE_MAX", ge=1, le=10_000)
    api_pool_size: int = Field(10, alias="PROPOSALFLOW_API_POOL_SIZE", ge=1, le=1000)  # connections per API worker
    rate_limit: str = Field("600/minute", alias="PROPOSALFLOW_RATE_LIMIT")  # per user, every route
    rate_limit_triggers: str = Field("30/minute", alias="PROPOSALFLOW_RATE_LIMIT_TRIGGERS")  # flow runs
    rate_limit_uploads: str = Field("30/minute", alias="PROPOSALFLOW_RATE_LIMIT_UPLOADS")
    # how API triggers run flows: deployment runs via PREFECT_API_URL, or in the API process
    flow_runner: Literal["auto", "deployment", "in-process"] = Field("auto", alias="PROPOSALFLOW_FLOW_RUNNER")

    # file store for uploaded originals: Supabase Storage when both are set, else PROPOSALFLOW_HOME/files
    supabase_url: str | None = Field(None, alias="SUPABASE_URL")
    supabase_service_key: SecretStr | None = Field(
        None, alias="SUPABASE_SERVICE_ROLE_KEY",
        validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SERVICE_KEY"))
    storage_bucket: str = Field("proposalflow", alias="PROPOSALFLOW_STORAGE_BUCKET")

    # orchestration
    prefect_api_url: str | None = Field(None, alias="PREFECT_API_URL")
    # Prefect blocks to read settings from (flows, workers, CLI): one name for every kind, or one per kind
    block: str | None = Field(None, alias="PROPOSALFLOW_BLOCK")
    database_block: str | None = Field(None, alias="PROPOSALFLOW_DATABASE_BLOCK")
    llm_block: str | None = Field(None, alias="PROPOSALFLOW_LLM_BLOCK")
    reader_block: str | None = Field(None, alias="PROPOSALFLOW_READER_BLOCK")
    google_block: str | None = Field(None, alias="PROPOSALFLOW_GOOGLE_BLOCK")
    clients_source: str | None = Field(None, alias="PROPOSALFLOW_CLIENTS_SOURCE")  # what `nightly` ingests

    # operations: backups and logs
    backup_dir: Path | None = Field(None, alias="PROPOSALFLOW_BACKUP_DIR")  # unset → PROPOSALFLOW_HOME/backups
    backup_keep: int = Field(7, alias="PROPOSALFLOW_BACKUP_KEEP", ge=1)
    pg_bin_dir: Path | None = Field(None, alias="PROPOSALFLOW_PG_BIN")  # pg_dump/pg_restore matching the server
    log_dir: Path | None = Field(None, alias="PROPOSALFLOW_LOG_DIR")  # unset → PROPOSALFLOW_HOME/logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="PROPOSALFLOW_LOG_LEVEL")
    log_max_bytes: int = Field(10_000_000, alias="PROPOSALFLOW_LOG_MAX_BYTES", ge=10_000)
    log_backups: int = Field(5, alias="PROPOSALFLOW_LOG_BACKUPS", ge=0)

    # ingestion
    ingest_batch_rows: int = Field(20_000, alias="PROPOSALFLOW_INGEST_BATCH_ROWS", ge=100)

    # knowledge base
    kb_chunk_size: int = Field(1200, alias="PROPOSALFLOW_KB_CHUNK_SIZE", ge=100, le=8000)  # characters
    kb_chunk_overlap: int = Field(150, alias="PROPOSALFLOW_KB_CHUNK_OVERLAP", ge=0)
    kb_batch_documents: int = Field(32, alias="PROPOSALFLOW_KB_BATCH_DOCUMENTS", ge=1)  # documents per task
    kb_folder: Path | None = Field(None, alias="PROPOSALFLOW_KNOWLEDGE_DIR")  # what scheduled runs embed
    embedding_rpm: int = Field(3000, alias="PROPOSALFLOW_EMBEDDING_RPM", ge=1)  # OpenAI embedding requests/min

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> "Settings":
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if secret is not None and (secret.lower() in _PLACEHOLDER_SECRETS or len(secret) < 32):
            message = "PROPOSALFLOW_JWT_SECRET is a placeholder or shorter than 32 characters"
            if self.environment == "local":
                warnings.warn(message + " (tolerated because PROPOSALFLOW_ENV=local)", stacklevel=2)
            else:
                raise ValueError(message + f"; refused with PROPOSALFLOW_ENV={self.environment}")
        return self

    # derived values are properties, not copies
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def backup_folder(self) -> Path:
        return (self.backup_dir or self.home_dir / "backups").expanduser().resolve()

    @property
    def log_folder(self) -> Path:
        return (self.log_dir or self.home_dir / "logs").expanduser().resolve()

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def llm_provider(self) -> str:
        return self.llm or ("openai" if self.openai_api_key else "offline")

    @property
    def embeddings_provider(self) -> str:
        return self.embeddings or ("openai" if self.openai_api_key else "local")

    @property
    def reader_provider(self) -> str:
        return self.reader or ("jina" if self.jina_api_key else "direct")

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def runs_flows_in_process(self) -> bool:
        """API triggers: in this process unless a Prefect API is configured (or the choice is explicit)."""
        if self.flow_runner != "auto":
            return self.flow_runner == "in-process"
        return not self.prefect_api_url

    @property
    def jina_requests_per_minute(self) -> int:
        return self.jina_rpm or (200 if self.jina_api_key else 20)


@lru_cache
def get_settings() -> Settings:
    return Settings()
