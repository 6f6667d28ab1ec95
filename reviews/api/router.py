"""The one Router that every topic module of reviews.api adds its endpoints to."""

from collections.abc import Callable
from typing import Any

from portal.api_scopes import ScopedRouter


class ReviewsRouter(ScopedRouter):
    def add_api_operation(self, path: str, methods: list[str], view_func: Callable, **kwargs: Any) -> None:
        # ninja names an operation after its view's module; clients know these as reviews_api_<view> from when the
        # views shared one module, so the ids stay that way whichever submodule holds the view now.
        kwargs["operation_id"] = kwargs.get("operation_id") or f"reviews_api_{view_func.__name__}"
        super().add_api_operation(path, methods, view_func, **kwargs)


router = ReviewsRouter(tags=["pull request"])
