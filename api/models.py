"""Response shapes the API adds around the core's models."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    limit: int
    sort: str


class Deleted(BaseModel):
    id: str
    deleted: bool = True
    proposals_deleted: int = 0
