"""The REST API under /api/v1/: ninja's routes, the docs' bundled assets, and JSON for every miss."""

from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from portal.api import api, docs_asset
from portal.api_orgs import router as organizations_router
from releases.api import router as releases_router
from repos.api import router as repos_router
from reviews.api import router as reviews_router

api.add_router("", organizations_router)
api.add_router("", repos_router)
api.add_router("", reviews_router)
api.add_router("", releases_router)


def _json_method_not_allowed(view):
    """ninja answers a wrong method with a plain-text 405; API clients get JSON like every other error."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            response = JsonResponse(
                {"message": f"Method {request.method} is not allowed here; use {allowed}."}, status=405
            )
            response["Allow"] = allowed
        return response

    return wrapper


# Any method: a POST to an unknown route must say "not found", not fail the CSRF check as if access were denied.
@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """The JSON 404 for every route under /api/v1/ that does not exist."""
    return JsonResponse({"message": "No such API endpoint."}, status=404)


ninja_patterns, ninja_app, ninja_namespace = api.urls
for pattern in ninja_patterns:
    pattern.callback = _json_method_not_allowed(pattern.callback)

urlpatterns = [
    path("", (ninja_patterns, ninja_app, ninja_namespace)),
    path("docs/assets/<str:name>", docs_asset, name="api-docs-asset"),
    re_path(r"^(?P<rest>.*)$", not_found),
]
