from django.urls import re_path

from repos import smart_http

# `/<owner>/<repo>.git/...` and the same without `.git`, as git clients use both.
REPO = r"^(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?"

urlpatterns = [
    re_path(REPO + r"/info/refs$", smart_http.info_refs, name="git_info_refs"),
    re_path(
        REPO + r"/git-upload-pack$", smart_http.service_rpc, {"service": "git-upload-pack"}, name="git_upload_pack"
    ),
    re_path(
        REPO + r"/git-receive-pack$", smart_http.service_rpc, {"service": "git-receive-pack"}, name="git_receive_pack"
    ),
]
