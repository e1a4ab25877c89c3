"""The base of every model that takes input from a person or a caller (API bodies, flow parameters).

PostgreSQL cannot store a NUL character in text or jsonb, so a value carrying one would fail at the
database — after a run was started, or half-way through a request. It is refused here instead,
naming the field, with every other validation error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


def without_nul(value: Any) -> Any:
    """The value with each NUL shown as the text `\\u0000` (to keep a rejected record storable)."""
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value
