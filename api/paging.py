"""Turning a core `Page` into the API's page, with a `Link: <…>; rel="next"` header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from proposalflow.pagination import Page as CorePage

from .models import Page

LimitParam = Annotated[int | None, Query(ge=1, le=10_000, description="Items per page (capped by PROPOSALFLOW_API_PAGE_MAX)")]
CursorParam = Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")]


def page_response(request: Request, response: Response, page: CorePage) -> Page:
    if page.next_cursor:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return Page(items=page.items, next_cursor=page.next_cursor, limit=page.limit, sort=page.sort)
