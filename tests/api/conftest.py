"""Fixtures for the API layer: an app on the test database, and tokens for each role."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from proposalflow.security import mint_token
from proposalflow.settings import Settings

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def make_settings(**overrides) -> Settings:
    """Settings from the test environment (DATABASE_URL, PROPOSALFLOW_HOME), plus the test secret."""
    values = {"PROPOSALFLOW_JWT_SECRET": SECRET, **overrides}
    return Settings(**values)


def token_for(role: str, email: str | None = None, **kwargs) -> str:
    return mint_token(SECRET, email=email or f"{role}@agency.test", role=role, **kwargs)


def auth(role: str, email: str | None = None) -> dict:
    return {"Authorization": f"Bearer {token_for(role, email)}"}


@pytest.fixture
def api_settings(db_url) -> Settings:
    return make_settings()


@pytest.fixture
def api(api_settings):
    """A TestClient on a fresh app (lifespan run: the pool is open) against the test database."""
    from api.main import create_app

    with TestClient(create_app(api_settings)) as client:
        yield client


@pytest.fixture
def viewer() -> dict:
    return auth("viewer")


@pytest.fixture
def editor() -> dict:
    return auth("editor")


@pytest.fixture
def admin() -> dict:
    return auth("admin")
