"""A repository's code through the API in Gitea's shapes: branches, files (read, raw, create), commits and tags.

Writes (a new branch, a new file) go through the same rules as a push: write access, the repository's own rules and
branch protection, which refuses with the rule named."""

import base64
import binascii
from datetime import datetime
from urllib.parse import quote

from allauth.account.models import EmailAddress
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, Query, Schema, Status
from ninja.errors import HttpError

from portal.api import InputSchema, UserOut, api_url, current_user, gitea_unsupported, principal, user_out
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from repos import git, signals
from repos import services as repo_services
from repos.access import Principal, role_for_principal
from repos.api.repositories import _repo
from repos.api.router import router
from repos.models import Repository, Role
from repos.services import RefUpdate, push_blocker

# Branches (Gitea's Branch, with PayloadCommit).


class PayloadUser(Schema):
    name: str
    email: str
    username: str


class PayloadCommitVerification(Schema):
    verified: bool
    reason: str
    signature: str
    signer: UserOut | None
    payload: str


class PayloadCommit(Schema):
    id: str
    message: str
    url: str
    author: PayloadUser
    committer: PayloadUser
    verification: PayloadCommitVerification | None
    timestamp: datetime
    added: list[str]
    removed: list[str]
    modified: list[str]


class BranchOut(Schema):
    """Gitea's Branch: its protection and what the caller may do come from the rules, not from guesses."""

    name: str
    commit: PayloadCommit
    protected: bool
    required_approvals: int
    enable_status_check: bool
    status_check_contexts: list[str]
    user_can_push: bool
    user_can_merge: bool
    effective_branch_protection_name: str


class BranchCreateIn(InputSchema):
    new_branch_name: str
    old_ref_name: str = ""
    # Deprecated in Gitea for old_ref_name; still sent by its clients.
    old_branch_name: str = ""


# Commits are not signed-checked: Gitea's answer for a commit whose signature nobody verified.
UNVERIFIED = {
    "verified": False,
    "reason": "gpg.error.not_signed_commit",
    "signature": "",
    "signer": None,
    "payload": "",
}


def _payload_user(signature: git.Signature, people: dict[str, User]) -> dict:
    person = people.get(signature.email.lower())
    return {"name": signature.name, "email": signature.email, "username": person.username if person else ""}


def _payload_commit(repo: Repository, commit: git.Commit) -> dict:
    people = _people_by_email({commit.author.email, commit.committer.email})
    return {
        "id": commit.sha,
        "message": commit.message,
        "url": f"{repo.web_url}/commit/{commit.sha}",
        "author": _payload_user(commit.author, people),
        "committer": _payload_user(commit.committer, people),
        "verification": UNVERIFIED,
        "timestamp": commit.committer.when,
        "added": [],
        "removed": [],
        "modified": [],
    }


def can_push_directly(who: Principal, repo: Repository, branch: str, sha: str) -> bool:
    """Whether a push moving the branch forward would be accepted: the push rules asked as for a real push."""
    update = RefUpdate(ref=f"refs/heads/{branch}", old_sha=sha, new_sha=sha)
    return push_blocker(who, repo, [update]) is None


def branch_out(who: Principal, repo: Repository, name: str, commit: git.Commit) -> dict:
    out = {
        "name": name,
        "commit": _payload_commit(repo, commit),
        "protected": False,
        "required_approvals": 0,
        "enable_status_check": False,
        "status_check_contexts": [],
        "user_can_push": can_push_directly(who, repo, name, commit.sha),
        "user_can_merge": role_for_principal(who, repo) >= Role.WRITE,
        "effective_branch_protection_name": "",
    }
    answers = signals.branch_described.send(Repository, repository=repo, principal=who, branch=name)
    for _receiver, answer in answers:
        out |= {key: value for key, value in (answer or {}).items() if key in out and key != "user_can_push"}
    return out


@router.get("/repos/{owner}/{repo}/branches", scope=READ_REPO, response=list[BranchOut], summary="List branches")
def list_branches(request: HttpRequest, response: HttpResponse, owner: str, repo: str, pages: Query[PageParams]):
    repository = _repo(request, owner, repo)
    who = principal(request)
    heads = paginate(git.branch_heads(repository.path), response, pages)
    return [branch_out(who, repository, branch.name, commit) for branch, commit in heads]


def _branch_head(repo: Repository, branch: str) -> git.Commit:
    commit = git.head_commit(repo.path, branch) if git.ref_target(repo.path, f"refs/heads/{branch}") else None
    if commit is None:
        raise Http404(f"There is no branch {branch!r}.")
    return commit


@router.get("/repos/{owner}/{repo}/branches/{path:branch}", scope=READ_REPO, response=BranchOut, summary="Get a branch")
def get_branch(request: HttpRequest, owner: str, repo: str, branch: str):
    repository = _repo(request, owner, repo)
    return branch_out(principal(request), repository, branch, _branch_head(repository, branch))


@router.post(
    "/repos/{owner}/{repo}/branches",
    scope=WRITE_REPO,
    response={201: BranchOut},
    summary="Create a branch",
    description="From `old_ref_name` (a branch, tag or commit; `old_branch_name` is Gitea's older name for it), or "
    "from the default branch. Refused like a push of the branch would be: branch protection names its rule.",
)
def create_branch(request: HttpRequest, owner: str, repo: str, payload: BranchCreateIn):
    repository = _repo(request, owner, repo, Role.WRITE)
    start = payload.old_ref_name or payload.old_branch_name or repository.default_branch
    try:
        ref = git.resolve_commit(repository.path, start)
    except git.RefNotFound:
        raise Http404(f"There is no branch, tag or commit {start!r}.") from None
    who = principal(request)
    repo_services.create_branch(repository, actor=who, name=payload.new_branch_name, start_sha=ref.sha)
    return Status(201, branch_out(who, repository, payload.new_branch_name, git.commit(repository.path, ref.sha)))


# Files: Gitea's ContentsResponse.


class ContentsLinks(Schema):
    self: str = Field(..., alias="self")
    git: str
    html: str


class ContentsOut(Schema):
    name: str
    path: str
    sha: str
    last_commit_sha: str
    type: str
    size: int
    encoding: str | None
    content: str | None
    target: str | None
    url: str
    html_url: str
    git_url: str
    download_url: str | None
    submodule_git_url: str | None
    links: ContentsLinks = Field(..., alias="_links")


GITEA_TYPES = {"blob": "file", "tree": "dir", "symlink": "symlink", "submodule": "submodule"}


def _resolve_ref(repo: Repository, ref: str) -> git.Ref:
    try:
        return git.resolve_commit(repo.path, ref or repo.default_branch)
    except git.RefNotFound:
        raise Http404(f"There is no branch, tag or commit {ref or repo.default_branch!r}.") from None


def _contents(
    repo: Repository, ref: git.Ref, entry: git.TreeEntry, *, with_content: bool, last_sha: str | None = None
) -> dict:
    quoted = quote(entry.path)
    at = f"?ref={quote(ref.name)}"
    kind = GITEA_TYPES[entry.kind]
    size, content, target = 0, None, None
    if entry.kind in ("blob", "symlink"):
        data, size = git.read_blob(repo.path, entry.sha)
        if entry.kind == "symlink":
            target = data.decode("utf-8", "replace")
        elif with_content:
            content = base64.b64encode(data).decode()
    git_url = api_url(f"/repos/{repo.full_name}/git/{'trees' if kind == 'dir' else 'blobs'}/{entry.sha}")
    html_url = f"{repo.web_url}/{'tree' if kind == 'dir' else 'blob'}/{quote(ref.name)}/{quoted}"
    if last_sha is None:
        last = git.log(repo.path, ref.sha, file_path=entry.path, limit=1) if entry.path else []
        last_sha = last[0].sha if last else ref.sha
    return {
        "name": entry.name,
        "path": entry.path,
        "sha": entry.sha,
        "last_commit_sha": last_sha,
        "type": kind,
        "size": size,
        "encoding": "base64" if content is not None else None,
        "content": content,
        "target": target,
        "url": api_url(f"/repos/{repo.full_name}/contents/{quoted}{at}"),
        "html_url": html_url,
        "git_url": git_url,
        "download_url": f"{repo.web_url}/raw/{quote(ref.name)}/{quoted}" if kind == "file" else None,
        "submodule_git_url": None,
        "_links": {"self": api_url(f"/repos/{repo.full_name}/contents/{quoted}{at}"), "git": git_url, "html": html_url},
    }


def _entry(repo: Repository, ref: git.Ref, file_path: str) -> git.TreeEntry:
    try:
        return git.entry(repo.path, ref.sha, file_path.strip("/"))
    except git.PathNotFound:
        raise Http404(f"There is no {file_path!r} at {ref.name}.") from None


def _read_contents(request: HttpRequest, owner: str, repo: str, filepath: str, ref: str):
    repository = _repo(request, owner, repo)
    if git.is_empty(repository.path):
        raise Http404("The repository is empty.")
    resolved = _resolve_ref(repository, ref)
    entry = _entry(repository, resolved, filepath)
    if entry.kind != "tree":
        return _contents(repository, resolved, entry, with_content=True)
    # One walk of the folder's history finds every entry's last commit (the ref's own when the walk runs out).
    last, _complete = git.last_commits(repository.path, resolved.sha, entry.path)
    return [
        _contents(
            repository,
            resolved,
            child,
            with_content=False,
            last_sha=last[child.name].sha if child.name in last else resolved.sha,
        )
        for child in git.tree_entries(repository.path, entry.sha, entry.path)
    ]


@router.get(
    "/repos/{owner}/{repo}/contents",
    scope=READ_REPO,
    response=list[ContentsOut],
    by_alias=True,
    summary="List the root folder's entries",
)
def list_root_contents(request: HttpRequest, owner: str, repo: str, ref: str = ""):
    return _read_contents(request, owner, repo, "", ref)


@router.get(
    "/repos/{owner}/{repo}/contents/{path:filepath}",
    scope=READ_REPO,
    response=ContentsOut | list[ContentsOut],
    by_alias=True,
    summary="Get a file (its content in base64) or a folder's entries",
    description="At `ref` (a branch, tag or commit; the default branch when not given).",
)
def get_contents(request: HttpRequest, owner: str, repo: str, filepath: str, ref: str = ""):
    return _read_contents(request, owner, repo, filepath, ref)


@router.get(
    "/repos/{owner}/{repo}/raw/{path:filepath}",
    scope=READ_REPO,
    response={200: None},
    summary="Get a file's bytes",
    description="At `ref` (a branch, tag or commit; the default branch when not given). Gitea's older form "
    "`raw/{ref}/{filepath}` works too when the path starts with a branch or tag name.",
)
def get_raw(request: HttpRequest, owner: str, repo: str, filepath: str, ref: str = ""):
    repository = _repo(request, owner, repo)
    if git.is_empty(repository.path):
        raise Http404("The repository is empty.")
    if ref:
        resolved, rest = _resolve_ref(repository, ref), filepath
    else:
        try:
            resolved, parts = git.resolve(repository.path, filepath.split("/"))
            rest = "/".join(parts)
        except git.RefNotFound:
            resolved, rest = _resolve_ref(repository, ""), filepath
        if not rest:
            resolved, rest = _resolve_ref(repository, ""), filepath
    entry = _entry(repository, resolved, rest)
    if entry.kind != "blob":
        raise Http404(f"{rest!r} is not a file.")
    data, _size = git.read_blob(repository.path, entry.sha)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class Identity(InputSchema):
    name: str = ""
    email: str = ""


class FileCreateIn(InputSchema):
    """Gitea's CreateFileOptions."""

    content: str
    branch: str = ""
    new_branch: str = ""
    message: str = ""
    author: Identity | None = None
    committer: Identity | None = None
    dates: gitea_unsupported(dict, "a new commit is dated when it is made") = None
    signoff: gitea_unsupported(bool, "commits are not signed off") = None


class FileCommitOut(Schema):
    url: str
    html_url: str
    sha: str
    created: datetime
    author: dict
    committer: dict
    parents: list[dict]
    message: str
    tree: dict


class FileResponseOut(Schema):
    content: ContentsOut
    commit: FileCommitOut
    verification: PayloadCommitVerification


def _person(identity: Identity | None, fallback: User) -> git.Person:
    name = (identity.name if identity else "") or fallback.display_name
    email = (identity.email if identity else "") or fallback.email or f"{fallback.username}@users.noreply"
    return git.Person(name=name, email=email)


def _signature_out(signature: git.Signature) -> dict:
    return {"name": signature.name, "email": signature.email, "date": signature.when}


def _file_commit(repo: Repository, commit: git.Commit) -> dict:
    return {
        "url": api_url(f"/repos/{repo.full_name}/git/commits/{commit.sha}"),
        "html_url": f"{repo.web_url}/commit/{commit.sha}",
        "sha": commit.sha,
        "created": commit.committer.when,
        "author": _signature_out(commit.author),
        "committer": _signature_out(commit.committer),
        "parents": [
            {"url": api_url(f"/repos/{repo.full_name}/git/commits/{sha}"), "sha": sha} for sha in commit.parents
        ],
        "message": commit.message,
        "tree": {"url": "", "sha": ""},
    }


@router.post(
    "/repos/{owner}/{repo}/contents/{path:filepath}",
    scope=WRITE_REPO,
    response={201: FileResponseOut},
    by_alias=True,
    summary="Create a file",
    description="`content` in base64, committed on `branch` (the default branch when not given), or on "
    "`new_branch` started from it. Refused like a push of that commit: without write access, or when branch "
    "protection refuses it (the rule is named); and when the file already exists.",
)
def create_file(request: HttpRequest, owner: str, repo: str, filepath: str, payload: FileCreateIn):
    repository = _repo(request, owner, repo, Role.WRITE)
    user = current_user(request)
    try:
        content = base64.b64decode(payload.content, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(422, "content: not valid base64") from None
    written = repo_services.create_file(
        repository,
        actor=principal(request),
        file_path=filepath,
        content=content,
        branch=payload.branch or repository.default_branch,
        new_branch=payload.new_branch,
        message=payload.message,
        author=_person(payload.author, user),
        committer=_person(payload.committer or payload.author, user),
    )
    ref = git.Ref(name=written.branch, kind="branch", sha=written.sha)
    commit = git.commit(repository.path, written.sha)
    entry = git.entry(repository.path, written.sha, filepath.strip("/"))
    return Status(
        201,
        {
            "content": _contents(repository, ref, entry, with_content=False),
            "commit": _file_commit(repository, commit),
            "verification": UNVERIFIED,
        },
    )


# Commits: Gitea's Commit.


class CommitOut(Schema):
    url: str
    sha: str
    created: datetime
    html_url: str
    commit: dict
    author: UserOut | None
    committer: UserOut | None
    parents: list[dict]
    files: list[dict] | None
    stats: dict | None


def _people_by_email(emails: set[str]) -> dict[str, User]:
    """The portal's people behind verified email addresses, as Gitea matches a commit's author to a user."""
    found = EmailAddress.objects.filter(email__in=emails, verified=True, user__is_active=True).select_related("user")
    return {address.email.lower(): address.user for address in found}


def commits_out(request: HttpRequest, repo: Repository, commits: list[git.Commit]) -> list[dict]:
    viewer = current_user(request)
    people = _people_by_email({c.author.email for c in commits} | {c.committer.email for c in commits})

    def account(signature: git.Signature) -> dict | None:
        person = people.get(signature.email.lower())
        return user_out(person, viewer) if person else None

    return [
        {
            "url": api_url(f"/repos/{repo.full_name}/git/commits/{commit.sha}"),
            "sha": commit.sha,
            "created": commit.committer.when,
            "html_url": f"{repo.web_url}/commit/{commit.sha}",
            "commit": {
                "url": api_url(f"/repos/{repo.full_name}/git/commits/{commit.sha}"),
                "author": _signature_out(commit.author),
                "committer": _signature_out(commit.committer),
                "message": commit.message,
                "tree": {"url": "", "sha": ""},
                "verification": UNVERIFIED,
            },
            "author": account(commit.author),
            "committer": account(commit.committer),
            "parents": [
                {"url": api_url(f"/repos/{repo.full_name}/git/commits/{sha}"), "sha": sha, "created": None}
                for sha in commit.parents
            ],
            "files": None,
            "stats": None,
        }
        for commit in commits
    ]


@router.get(
    "/repos/{owner}/{repo}/commits",
    scope=READ_REPO,
    response=list[CommitOut],
    summary="List commits, newest first",
    description="From `sha` (a branch, tag or commit; the default branch when not given), only those that touched "
    "`path` when given. An empty repository answers 409, as Gitea does.",
)
def list_commits(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    pages: Query[PageParams],
    sha: str = "",
    path: str = "",
):
    repository = _repo(request, owner, repo)
    if git.is_empty(repository.path):
        raise HttpError(409, "The repository is empty.")
    start = _resolve_ref(repository, sha)
    file_path = path.strip("/")
    try:
        total = git.commit_count(repository.path, start.sha, file_path=file_path)
    except git.PathNotFound:
        raise Http404(f"There is no {path!r} at {start.name}.") from None
    skip = (pages.page - 1) * pages.limit
    response["X-Total-Count"] = str(total)
    # Gitea's clients page until an empty page or X-HasMore says there is no more.
    response["X-HasMore"] = "true" if skip + pages.limit < total else "false"
    # A page past the end is not asked of git: an offset that large is more than its walk can skip.
    if skip >= total:
        return []
    commits = git.log(repository.path, start.sha, file_path=file_path, skip=skip, limit=pages.limit)
    return commits_out(request, repository, commits)


@router.get("/repos/{owner}/{repo}/git/commits/{sha}", scope=READ_REPO, response=CommitOut, summary="Get one commit")
def get_commit(request: HttpRequest, owner: str, repo: str, sha: str):
    repository = _repo(request, owner, repo)
    if not git.is_sha(sha.lower()):
        ref = _resolve_ref(repository, sha)
        sha = ref.sha
    try:
        commit = git.commit(repository.path, sha.lower())
    except git.RefNotFound:
        raise Http404(f"There is no commit {sha}.") from None
    return commits_out(request, repository, [commit])[0]


# Tags: Gitea's Tag.


class TagOut(Schema):
    name: str
    message: str
    id: str
    commit: dict
    zipball_url: str
    tarball_url: str


@router.get("/repos/{owner}/{repo}/tags", scope=READ_REPO, response=list[TagOut], summary="List tags, newest first")
def list_tags(request: HttpRequest, response: HttpResponse, owner: str, repo: str, pages: Query[PageParams]):
    repository = _repo(request, owner, repo)
    tags = paginate(git.tags(repository.path), response, pages)
    return [
        {
            "name": tag.name,
            "message": tag.message,
            "id": tag.object_sha or tag.sha,
            "commit": {
                "url": api_url(f"/repos/{repository.full_name}/git/commits/{tag.sha}"),
                "sha": tag.sha,
                "created": tag.commit.committer.when,
            },
            "zipball_url": f"{repository.web_url}/archive/{quote(tag.name)}.zip",
            "tarball_url": f"{repository.web_url}/archive/{quote(tag.name)}.tar.gz",
        }
        for tag in tags
    ]
