"""Paging through the API's lists: one pair of query parameters and one function that picks the page.

Every list operation takes `pages: Query[PageParams]` and returns `paginate(items, response, pages)`. A page
number of 0, a negative or non-numeric one, or a limit outside 1..MAX_PAGE_SIZE is refused with a 422 naming
the parameter; a page past the end is an empty list, as Gitea answers it.
"""

from collections.abc import Sequence
from typing import TypeVar

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
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


def link_header(request: HttpRequest, page: int, size: int, total: int, *, size_param: str = "limit") -> str:
    """GitHub's Link header for a page of a list: the first, previous, next and last pages' addresses (the
    request's own query with another page), or "" when one page holds everything."""
    last = max(1, -(-total // size))
    if last == 1 and page == 1:
        return ""
    query = request.GET.copy()
    query[size_param] = str(size)

    def address(number: int) -> str:
        query["page"] = str(number)
        return f"{settings.PORTAL_BASE_URL}{request.path_info}?{query.urlencode()}"

    links = []
    if page < last:
        links.append(f'<{address(page + 1)}>; rel="next"')
        links.append(f'<{address(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{address(1)}>; rel="first"')
        links.append(f'<{address(min(page - 1, last))}>; rel="prev"')
    return ", ".join(links)
