"""The code pages: /<owner>/<repo>/<page>/..., where <page> is a word no other route of a repository takes.

portal/urls.py tries these right after the routes with a prefix of their own, before every other app's routes
of a repository: the pages read most need not be matched against a few hundred others first."""

from django.urls import path, re_path

from repos import browse_views

app_name = "browse"

# Refs may contain '/', so the views read the ref and path from the raw request path.
urlpatterns = [
    path("<str:owner>/<str:name>/tree/<path:rest>", browse_views.tree, name="tree"),
    path("<str:owner>/<str:name>/blob/<path:rest>", browse_views.blob, name="blob"),
    path("<str:owner>/<str:name>/raw/<path:rest>", browse_views.raw, name="raw"),
    path("<str:owner>/<str:name>/blame/<path:rest>", browse_views.blame, name="blame"),
    re_path(r"^(?P<owner>[^/]+)/(?P<name>[^/]+)/commits(?:/(?P<rest>.+))?$", browse_views.commits, name="commits"),
    path("<str:owner>/<str:name>/commit/<str:sha>", browse_views.commit, name="commit"),
    path("<str:owner>/<str:name>/compare", browse_views.compare_pick, name="compare_pick"),
    path("<str:owner>/<str:name>/compare/<path:spec>", browse_views.compare, name="compare"),
    path("<str:owner>/<str:name>/refs", browse_views.ref_menu, name="ref_menu"),
    path("<str:owner>/<str:name>/branches", browse_views.branches, name="branches"),
    path("<str:owner>/<str:name>/tags", browse_views.tags, name="tags"),
    path("<str:owner>/<str:name>/archive/<path:rest>", browse_views.archive, name="archive"),
]
