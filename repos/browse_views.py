"""Code browsing pages: home, tree, blob, raw, commits, commit, compare, blame, branches, tags, archives.

HTTP only: the access door decides who sees what, repos.code renders and caches, repos.git reads git.
Paths arrive as the raw bytes of the request path, so file names that are not UTF-8 still resolve."""

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render

from repos import code, git, page_cache
from repos.access import can_administer, get_repo_for_user
from repos.models import Repository

COMMITS_PER_PAGE = 50
TAGS_PER_PAGE = 50
# The pages with a branch and tag menu, which switches to the same page and path at another ref.
SWITCHER_PAGES = ("tree", "blob", "commits", "blame")
IMMUTABLE = "max-age=31536000, immutable"


_BROKEN_BYTE = re.compile(rb"%([89A-F][0-9A-F])")


def _tail(request: HttpRequest, skip: int = 4) -> list[str]:
    """The path segments after /<owner>/<repo>/<page>/, as git's bytes.

    Django re-percent-encodes the bytes of a request path that are not UTF-8 (a Latin-1 file name, say), so those
    are turned back into bytes here."""
    raw = _BROKEN_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), request.path_info.encode("utf-8"))
    # No ref or path in git holds a NUL byte, and a lookup that stopped at one would name another file.
    if b"\x00" in raw:
        raise Http404("No such file or directory.")
    return [git.decode_path(part) for part in raw.split(b"/")[skip:] if part]


def _resolve(request: HttpRequest, repo: Repository, segments: list[str]) -> tuple[git.Ref, str]:
    if not segments:
        raise Http404("No ref given.")
    try:
        ref, rest = page_cache.lookup(request, repo, "resolve", segments)
    except git.RefNotFound:
        raise Http404("No such branch, tag or commit.") from None
    return ref, "/".join(rest)


def _entry(repo: Repository, ref: git.Ref, path: str) -> git.TreeEntry:
    try:
        return git.entry(repo.path, ref.sha, path)
    except git.PathNotFound:
        raise Http404("No such file or directory at this ref.") from None


def _sha_etag(request: HttpRequest, ref: git.Ref, *parts: str) -> str | None:
    """An ETag for a page named by a full sha, which never changes (per user, since the page greets them)."""
    if not (ref.is_sha and git.is_sha(ref.name)):
        return None
    user = request.user.pk if request.user.is_authenticated else 0
    return '"' + "-".join([ref.sha, *parts, str(user)]).replace('"', "") + '"'


def _not_modified(request: HttpRequest, etag: str | None) -> bool:
    return etag is not None and etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]


def _immutable(response: HttpResponse, etag: str | None) -> HttpResponse:
    if etag is not None:
        response["ETag"] = etag
        response["Cache-Control"] = f"private, {IMMUTABLE}"
    return response


def _page(request: HttpRequest, repo: Repository, template: str, context: Callable[[], dict]) -> HttpResponse:
    """Render a code page, which a visitor without a session gets whole from the cache next time (repos.page_cache)."""
    page_cache.keep_for_visitors(request, repo)
    return render(request, template, context())


def _context(request: HttpRequest, repo: Repository, ref: git.Ref, path: str, page: str, **extra) -> dict:
    prefix = repo.get_absolute_url()
    crumbs, so_far = [], ""
    for part in path.split("/") if path else []:
        so_far = f"{so_far}/{part}" if so_far else part
        crumbs.append((git.label(part), f"{prefix}/tree/{code.quote_ref(ref.name)}/{code.quote_path(so_far)}"))
    menu_url = f"{prefix}/refs?page={page}&path={code.quote_path(path)}"
    return {
        "repo": repo,
        "prefix": prefix,
        "ref": ref,
        "path": path,
        "path_label": git.label(path),
        "crumbs": crumbs,
        "root_url": f"{prefix}/tree/{code.quote_ref(ref.name)}",
        "quoted_ref": code.quote_ref(ref.name),
        "quoted_path": code.quote_path(path),
        "page": page,
        "tab": "code" if page in ("tree", "blob", "blame") else page,
        "switcher": code.ref_switcher(menu_url=menu_url, ref=ref) if page in SWITCHER_PAGES else "",
        "is_admin": can_administer(request.user, repo),
        **extra,
    }


def home(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    try:
        ref = page_cache.lookup(request, repo, "resolve_commit", repo.default_branch)
    except git.RefNotFound:
        if page_cache.lookup(request, repo, "is_empty"):
            is_admin = can_administer(request.user, repo)
            return render(request, "repos/detail.html", {"repo": repo, "is_admin": is_admin})
        # The default branch is gone: show another branch, or a tag when there are only tags.
        name = min(page_cache.lookup(request, repo, "ref_names")).removeprefix("refs/heads/").removeprefix("refs/tags/")
        ref = page_cache.lookup(request, repo, "resolve_commit", name)
    return _tree_page(request, repo, ref, "", home=True)


def tree(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    ref, path = _resolve(request, repo, _tail(request))
    return _tree_page(request, repo, ref, path)


def _tree_page(request: HttpRequest, repo: Repository, ref: git.Ref, path: str, home: bool = False) -> HttpResponse:
    entry = _entry(repo, ref, path)
    prefix = repo.get_absolute_url()
    if entry.kind != "tree":
        return redirect(f"{prefix}/blob/{code.quote_ref(ref.name)}/{code.quote_path(path)}")
    if request.GET.get("fragment") == "commits":
        try:
            found, complete = code.last_commits(repo.path, ref.sha, path)
        except code.Busy:
            response = JsonResponse({"error": "Busy finding other folders' last commits; try again."}, status=503)
            response["Retry-After"] = "2"
            return response
        return JsonResponse({"entries": found, "complete": complete, "prefix": prefix})
    etag = _sha_etag(request, ref, "tree", code.quote_path(path))
    if _not_modified(request, etag):
        return HttpResponseNotModified()

    def context() -> dict:
        rows, readme = code.directory(repo.path, entry.sha, path, prefix=prefix, ref=ref.name)
        # By name: the template engine reaches a tuple's items only after a failed attribute lookup each.
        readme_name, readme_view = readme or (None, None)
        return _context(
            request,
            repo,
            ref,
            path,
            "tree",
            rows=code.safe(rows),
            readme_name=readme_name,
            readme=readme_view,
            head=git.commit(repo.path, ref.sha),
            home=home,
            commits_url=f"{request.path}?fragment=commits",
        )

    return _immutable(_page(request, repo, "repos/tree.html", context), etag)


def blob(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    ref, path = _resolve(request, repo, _tail(request))
    entry = _entry(repo, ref, path)
    prefix = repo.get_absolute_url()
    if entry.kind == "tree":
        return redirect(f"{prefix}/tree/{code.quote_ref(ref.name)}/{code.quote_path(path)}")
    etag = _sha_etag(request, ref, "blob", code.quote_path(path), request.GET.get("plain", ""))
    if _not_modified(request, etag):
        return HttpResponseNotModified()

    def context() -> dict:
        parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        base = f"{code.quote_ref(ref.name)}/{code.quote_path(parent)}"
        show_source = request.GET.get("plain") == "1"
        extra = {"entry": entry, "show_source": show_source}
        if entry.kind == "symlink":
            target, _size = git.read_blob(repo.path, entry.sha)
            extra["symlink_target"] = git.label(git.decode_path(target))
        elif entry.kind == "blob":
            extra["view"] = code.blob_view(
                repo.path,
                entry.sha,
                path,
                link_base=f"{prefix}/blob/{base}",
                image_base=f"{prefix}/raw/{base}",
                source=show_source,
            )
        return _context(request, repo, ref, path, "blob", **extra)

    return _immutable(_page(request, repo, "repos/blob.html", context), etag)


def raw(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    ref, path = _resolve(request, repo, _tail(request))
    entry = _entry(repo, ref, path)
    if entry.kind not in ("blob", "symlink"):
        raise Http404("Not a file.")
    etag = f'"{entry.sha}"'
    if _not_modified(request, etag):
        response = HttpResponseNotModified()
    else:
        data, _size = git.read_blob(repo.path, entry.sha)
        content_type = code.render.raw_content_type(code.render_filename(path), data)
        response = HttpResponse(data, content_type=content_type)
        disposition = "attachment" if content_type == "application/octet-stream" else "inline"
        response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{code.quote_path(entry.name)}"
    response["ETag"] = etag
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser rendered it, the file gets no script, no plugins and an origin of its own.
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = f"private, {IMMUTABLE}" if ref.is_sha else "private, no-cache"
    return response


def commits(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    segments = _tail(request) or [repo.default_branch]
    ref, path = _resolve(request, repo, segments)
    is_file = bool(path) and _entry(repo, ref, path).kind != "tree"
    page = _page_number(request)
    etag = _sha_etag(request, ref, "commits", code.quote_path(path), str(page))
    if _not_modified(request, etag):
        return HttpResponseNotModified()

    def context() -> dict:
        skip = (page - 1) * COMMITS_PER_PAGE
        found = git.log(repo.path, ref.sha, file_path=path, skip=skip, limit=COMMITS_PER_PAGE + 1)
        if page > 1 and not found:
            raise Http404("No commits on this page.")
        prefix = repo.get_absolute_url()
        rows = code.commit_rows(found[:COMMITS_PER_PAGE], prefix=prefix)
        has_next = len(found) > COMMITS_PER_PAGE
        # The last page of a file's history ends at the commit that created it: if that commit renamed it, the
        # history goes on under the old name, from the commit before (as GitHub links to it).
        renamed = None
        if is_file and found and not has_next:
            created = found[-1]
            old_path = git.renamed_from(repo.path, created.sha, path)
            if old_path is not None:
                renamed = {
                    "old_label": git.label(old_path),
                    "commit": created,
                    "url": f"{prefix}/commits/{created.parents[0]}/{code.quote_path(old_path)}",
                }
        return _context(
            request,
            repo,
            ref,
            path,
            "commits",
            rows=code.safe(rows),
            page_number=page,
            has_next=has_next,
            renamed=renamed,
        )

    return _immutable(_page(request, repo, "repos/commits.html", context), etag)


def _page_number(request: HttpRequest) -> int:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        raise Http404("Bad page number.") from None
    if page < 1 or page > 100_000:
        raise Http404("Bad page number.")
    return page


def commit(request: HttpRequest, owner: str, name: str, sha: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    ref, rest = _resolve(request, repo, [sha])
    if rest or ref.kind != "commit":
        raise Http404("Not a commit.")
    options = code.DiffOptions.from_query(request.GET)
    etag = _sha_etag(request, ref, "commit", options.view, str(int(options.ignore_whitespace)))
    if _not_modified(request, etag):
        return HttpResponseNotModified()
    if (wanted := code.fragment_range(request.GET)) is not None:
        return _diff_fragment(request, repo, git.parent_for_diff(repo.path, ref.sha), ref.sha, options, *wanted)

    def context() -> dict:
        old = git.parent_for_diff(repo.path, ref.sha)
        diff = code.diff_page(
            repo.path, old, ref.sha, options, prefix=repo.get_absolute_url(), page_url=_page_url(request, options)
        )
        return _context(
            request, repo, ref, "", "commit", commit=git.commit(repo.path, ref.sha), diff=diff, options=options
        )

    return _immutable(_page(request, repo, "repos/commit.html", context), etag)


def _page_url(request: HttpRequest, options: code.DiffOptions) -> str:
    """The page's URL with its options, ready for one more query parameter."""
    query = ("view=split&" if options.view == "split" else "") + ("w=1&" if options.ignore_whitespace else "")
    return f"{request.path}?{query}"


def _diff_fragment(
    request: HttpRequest,
    repo: Repository,
    old: str,
    new: str,
    options: code.DiffOptions,
    indexes: range,
    expand: bool,
) -> HttpResponse:
    html = code.diff_fragment(
        repo.path,
        old,
        new,
        options,
        indexes,
        prefix=repo.get_absolute_url(),
        page_url=_page_url(request, options),
        expand=expand,
    )
    return HttpResponse(html)


def compare(request: HttpRequest, owner: str, name: str, spec: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    base_name, dots, head_name = "/".join(_tail(request)).partition("...")
    if not dots:
        raise Http404("Compare two refs as base...head.")
    try:
        base = page_cache.lookup(request, repo, "resolve_commit", base_name)
        head = page_cache.lookup(request, repo, "resolve_commit", head_name)
    except git.RefNotFound:
        raise Http404("No such branch, tag or commit.") from None
    options = code.DiffOptions.from_query(request.GET)
    if (wanted := code.fragment_range(request.GET)) is not None:
        merge_base = git.merge_base(repo.path, base.sha, head.sha)
        if merge_base is None:
            raise Http404("Unrelated histories.")
        return _diff_fragment(request, repo, merge_base, head.sha, options, *wanted)
    ref_names = sorted(page_cache.lookup(request, repo, "ref_names"))

    def context() -> dict:
        merge_base = git.merge_base(repo.path, base.sha, head.sha)
        extra = {
            "base": base,
            "head": head,
            "merge_base": merge_base,
            "options": options,
            **_pickers(ref_names, base.name, head.name),
        }
        if merge_base is None:
            return _context(request, repo, head, "", "compare", unrelated=True, **extra)
        prefix = repo.get_absolute_url()
        # Only branches can be merged; signing in is needed to open a pull request (the form itself checks access).
        if request.user.is_authenticated and base.kind == head.kind == "branch" and base.name != head.name:
            extra["pull_url"] = f"{prefix}/pulls/new?{urlencode({'base': base.name, 'head': head.name})}"
        extra["commits"] = code.compare_commits(repo.path, merge_base, head.sha, prefix=prefix)
        extra["diff"] = code.diff_page(
            repo.path, merge_base, head.sha, options, prefix=prefix, page_url=_page_url(request, options)
        )
        return _context(request, repo, head, "", "compare", **extra)

    return _page(request, repo, "repos/compare.html", context)


def compare_pick(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """The compare page before two refs are chosen; its pickers' form (?base=&head=) lands on base...head."""
    repo = get_repo_for_user(request.user, owner, name)
    prefix = repo.get_absolute_url()
    base_name, head_name = request.GET.get("base", "").strip(), request.GET.get("head", "").strip()
    if base_name and head_name:
        return redirect(f"{prefix}/compare/{code.quote_ref(base_name)}...{code.quote_ref(head_name)}")
    context = {
        "repo": repo,
        "prefix": prefix,
        "tab": "compare",
        "is_admin": can_administer(request.user, repo),
        **_pickers(sorted(git.ref_names(repo.path)), base_name or repo.default_branch, head_name),
    }
    return render(request, "repos/compare.html", context)


def _pickers(ref_names: list[str], base_name: str, head_name: str) -> dict:
    """The base and head menus of the compare page: every branch, the newest tags, and a sha the URL named."""
    branches = [name.removeprefix("refs/heads/") for name in ref_names if name.startswith("refs/heads/")]
    tags = sorted(
        (name.removeprefix("refs/tags/") for name in ref_names if name.startswith("refs/tags/")), key=git.version_key
    )
    tags = tags[::-1][: code.SWITCHER_TAGS]
    others = [name for name in dict.fromkeys((base_name, head_name)) if name and name not in branches + tags]
    return {
        "picker_branches": branches,
        "picker_tags": tags,
        "picker_others": others,
        "base_name": base_name,
        "head_name": head_name,
    }


def blame(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    ref, path = _resolve(request, repo, _tail(request))
    entry = _entry(repo, ref, path)
    if entry.kind != "blob":
        raise Http404("Blame needs a file.")
    etag = _sha_etag(request, ref, "blame", code.quote_path(path))
    if _not_modified(request, etag):
        return HttpResponseNotModified()

    def context() -> dict:
        table, line_count = code.blame_html(repo.path, ref.sha, path, entry.sha, prefix=repo.get_absolute_url())
        return _context(request, repo, ref, path, "blame", entry=entry, table=code.safe(table), line_count=line_count)

    return _immutable(_page(request, repo, "repos/blame.html", context), etag)


def ref_menu(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """The branch and tag menu of a page (?page=tree|blob|commits|blame&path=), fetched when it is opened."""
    repo = get_repo_for_user(request.user, owner, name)
    page = request.GET.get("page", "tree")
    if page not in SWITCHER_PAGES:
        raise Http404("No such page.")
    # From the raw query string, so that a path that is not UTF-8 keeps its bytes.
    query = dict(parse_qsl(request.META.get("QUERY_STRING", ""), errors="surrogateescape"))
    path = query.get("path", "")
    if "\x00" in path:
        raise Http404("No such file or directory.")
    return HttpResponse(code.ref_menu(repo.path, prefix=repo.get_absolute_url(), page=page, file_path=path))


def branches(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    heads = git.branch_heads(repo.path)
    context = {
        "repo": repo,
        "prefix": repo.get_absolute_url(),
        "heads": heads,
        "tab": "branches",
        "is_admin": can_administer(request.user, repo),
    }
    return render(request, "repos/branches.html", context)


def tags(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    page = _page_number(request)
    found = git.tags(repo.path)
    shown = found[(page - 1) * TAGS_PER_PAGE : page * TAGS_PER_PAGE]
    if page > 1 and not shown:
        raise Http404("No tags on this page.")
    context = {
        "repo": repo,
        "prefix": repo.get_absolute_url(),
        "tags": shown,
        "page_number": page,
        "has_next": len(found) > page * TAGS_PER_PAGE,
        "tab": "tags",
        "is_admin": can_administer(request.user, repo),
    }
    return render(request, "repos/tags.html", context)


def archive(request: HttpRequest, owner: str, name: str, rest: str = "") -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    spec = "/".join(_tail(request))
    fmt = next((f for f in git.ARCHIVE_FORMATS if spec.endswith(f".{f}")), None)
    if fmt is None:
        raise Http404("Archives are .tar.gz or .zip.")
    ref_name = spec.removesuffix(f".{fmt}")
    try:
        ref = git.resolve_commit(repo.path, ref_name)
    except git.RefNotFound:
        raise Http404("No such branch, tag or commit.") from None
    stem = f"{repo.name}-{ref_name.replace('/', '-')}"
    content_type = "application/gzip" if fmt == "tar.gz" else "application/zip"
    response = StreamingHttpResponse(git.archive(repo.path, ref.sha, fmt, f"{stem}/"), content_type=content_type)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{code.quote_path(stem)}.{fmt}"
    response["X-Content-Type-Options"] = "nosniff"
    return response
