"""Paging through the API's lists: one pair of query parameters and one function that picks the page.

Every list operation takes `pages: Query[PageParams]` and returns `paginate(items, response, pages)`. A page
number of 0, a negative or non-numeric one, or a limit outside 1..MAX_PAGE_SIZE is refused with a 422 naming
the parameter; a page past the end is an empty list, as Gitea answers it.
"""

from collections.abc import Sequence
from typing import TypeVar

from django.db.models import QuerySet
from django.http import HttpResponse
from ninja import Field, Schema

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

Item = TypeVar("Item")


class PageParams(Schema):
    page: int = Field(1, ge=1, description="Page number, from 1; a page past the end is empty.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")


def paginate(items: QuerySet | Sequence[Item], response: HttpResponse, pages: PageParams) -> list[Item]:
    """One page of a queryset or a list; the total goes in X-Total-Count as Gitea does."""
    total = items.count() if isinstance(items, QuerySet) else len(items)
    response["X-Total-Count"] = str(total)
    start = (pages.page - 1) * pages.limit
    # A page past the end is not asked of the database: an offset beyond its integers would fail there.
    if start >= total:
        return []
    return list(items[start : start + pages.limit])
