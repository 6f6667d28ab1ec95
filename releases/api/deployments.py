"""Environments and deployments in GitHub's REST shapes, with the portal's own settings and fields beside them.

Environments: GitHub's `reviewers`, `prevent_self_review`, `wait_timer` and `deployment_branch_policy`, plus
`required_approvals` (N of the reviewers, where GitHub asks one of them), `deployment_config` (CodeDeploy's),
`targets` and `freeze_windows`. GitHub keeps custom branch policies behind their own endpoints; here they are the
`patterns` (branch:…, tag:…, pull:…) and `default_branch` of `deployment_branch_policy`, which apply when
`custom_branch_policies` is true. Every setting is checked by releases.environments, which names the field it
refuses ("targets.1.host_key").

Deployments: a deployment deploys the artifact of a successful build of its commit, never a rebuild; each carries
the artifact's digest, the build's run id (as the Actions endpoints number it) and the deployment it rolls back.
Statuses are the portal's own record of how a deployment went: they cannot be posted. Reviews, stops and rollbacks
are the portal's own endpoints (GitHub reviews pending deployments per workflow run)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, Query, Schema, Status
from ninja.errors import HttpError

from portal.api import InputSchema, Message, UserOut, api_url, current_user, gitea_unsupported, principal, user_out
from portal.api_pages import MAX_PAGE_SIZE, PageParams, link_header, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import Team, User
from portal.validators import field_error
from releases import access, deployments, environments, ssh_target
from releases.api.router import router
from releases.models import Deployment, DeploymentStatus, Environment, EnvironmentTarget
from repos import git
from repos.access import get_repo_for_principal
from repos.models import Repository

TAGS = ["deployments"]
# GitHub's page size when a list does not name one.
DEFAULT_PER_PAGE = 30
ENVIRONMENTS = "/repos/{owner}/{repo}/environments"
ENVIRONMENT = ENVIRONMENTS + "/{environment_name}"
DEPLOYMENTS = "/repos/{owner}/{repo}/deployments"
DEPLOYMENT = DEPLOYMENTS + "/{deployment_id}"


# Requests.


class Pages(Schema):
    page: int = Field(1, ge=1, description="Page number, from 1; a page past the end is empty.")
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")


class ReviewerIn(InputSchema):
    type: Literal["User", "Team"]
    id: int


class BranchPolicyIn(InputSchema):
    """GitHub's deployment_branch_policy, with the custom policies inline."""

    protected_branches: bool = Field(description="Branches that a branch protection names may deploy.")
    custom_branch_policies: bool = Field(description="The refs that `patterns` and `default_branch` name may deploy.")
    default_branch: bool = Field(False, description="The repository's default branch may deploy (a custom policy).")
    patterns: list[str] = Field([], description="Custom policies: branch:<glob>, tag:<glob> or pull:<glob>.")


class DeploymentConfigIn(InputSchema):
    """A predefined configuration by name, or a minimum of healthy hosts."""

    name: str | None = Field(None, description="CodeDeployDefault's AllAtOnce, HalfAtATime or OneAtATime.")
    type: str | None = Field(None, description="HOST_COUNT or FLEET_PERCENT.")
    value: int | None = None


class TargetIn(InputSchema):
    name: str
    type: Literal["local", "ssh"] = "local"
    host: str | None = Field(None, description="ssh only.")
    port: int | None = Field(None, description="ssh only.")
    user: str | None = Field(None, description="ssh only.")
    host_key: str | None = Field(None, description="ssh only: the host's public key line, pinned.")
    health_check: str | None = Field(None, description="A command run on the target, or an http(s) URL.")


class FreezeWindowIn(InputSchema):
    """A dated window (start, end) or a repeating one (cron, duration_minutes), in a time zone."""

    name: str | None = None
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    duration_minutes: int | None = None
    timezone: str | None = None


class EnvironmentIn(InputSchema):
    """Settings left out keep their value (or their default when the environment is new)."""

    wait_timer: int | None = Field(None, description="Minutes a deployment waits before it starts (0-43200).")
    prevent_self_review: bool | None = None
    reviewers: list[ReviewerIn] | None = None
    deployment_branch_policy: BranchPolicyIn | None = Field(None, description="null: any branch may deploy.")
    required_approvals: int | None = Field(None, description="How many of the reviewers must approve.")
    deployment_config: DeploymentConfigIn | None = None
    targets: list[TargetIn] | None = None
    freeze_windows: list[FreezeWindowIn] | None = None


def _off(why: str) -> Any:
    return gitea_unsupported(Any, why)


class DeploymentIn(InputSchema):
    environment: str = Field(description="The environment's name.")
    ref: str | None = Field(None, description="A branch, tag or commit; its commit's successful build is deployed.")
    sha: str | None = Field(None, description="The commit whose successful build is deployed (instead of ref).")
    description: str = ""
    task: Literal["deploy"] = "deploy"
    # GitHub's fields that the portal has no use for: their off values only.
    auto_merge: _off("a deployment never merges") = None
    required_contexts: _off("a deployment checks the build's provenance, not commit statuses") = None
    payload: _off("hooks get the environment's variables") = None
    transient_environment: _off("environments are named and kept") = None
    production_environment: _off("environments have no production flag") = None


class ReviewIn(InputSchema):
    state: Literal["approved", "rejected"]
    comment: str = ""


class DeploymentFilters(Schema):
    environment: str = Field("", description="Only deployments to this environment.")
    sha: str = Field("", description="Only deployments of this commit.")
    ref: str = Field("", description="Only deployments of builds of this branch or tag (name or full ref).")
    task: str = Field("", description="Only deployments of this task: deploy.")


# Answers.


class TeamOut(Schema):
    id: int
    name: str
    slug: str
    description: str
    html_url: str


class UserReviewerOut(Schema):
    type: Literal["User"]
    reviewer: UserOut


class TeamReviewerOut(Schema):
    type: Literal["Team"]
    reviewer: TeamOut


class RequiredReviewersRule(Schema):
    type: Literal["required_reviewers"]
    prevent_self_review: bool
    reviewers: list[Annotated[UserReviewerOut | TeamReviewerOut, Field(discriminator="type")]]


class WaitTimerRule(Schema):
    type: Literal["wait_timer"]
    wait_timer: int


class BranchPolicyRule(Schema):
    type: Literal["branch_policy"]


ProtectionRule = Annotated[RequiredReviewersRule | WaitTimerRule | BranchPolicyRule, Field(discriminator="type")]


class BranchPolicyOut(Schema):
    protected_branches: bool
    custom_branch_policies: bool
    default_branch: bool
    patterns: list[str]


class DeploymentConfigOut(Schema):
    name: str
    type: str
    value: int


class TargetOut(Schema):
    name: str
    type: Literal["local", "ssh"]
    host: str | None
    port: int | None
    user: str | None
    host_key: str | None
    host_key_fingerprint: str | None
    deploy_key: str | None = Field(description="ssh: the public line to put in the host's authorized_keys.")
    health_check: str | None
    artifact_digest: str | None = Field(description="What the target runs now: sha256:…, null before any.")
    health: str = Field(description="CodeDeploy's bookkeeping after the last deployment: healthy or unhealthy.")
    last_deployment_id: int | None


class EnvironmentOut(Schema):
    id: int
    name: str
    url: str
    html_url: str
    created_at: datetime
    updated_at: datetime
    protection_rules: list[ProtectionRule]
    deployment_branch_policy: BranchPolicyOut | None
    required_approvals: int
    prevent_self_review: bool
    wait_timer: int
    deployment_config: DeploymentConfigOut
    freeze_windows: list[dict[str, Any]]
    targets: list[TargetOut]


class EnvironmentPutOut(EnvironmentOut):
    new_deploy_keys: dict[str, str] = Field(
        description="The deploy key's public line of each ssh target this request added, by target name."
    )


class EnvironmentsOut(Schema):
    total_count: int
    environments: list[EnvironmentOut]


class DeploymentOut(Schema):
    id: int
    url: str
    sha: str
    ref: str
    task: str
    environment: str
    original_environment: str
    description: str
    creator: UserOut | None
    created_at: datetime
    updated_at: datetime
    statuses_url: str
    repository_url: str
    html_url: str
    # The portal's own.
    artifact_digest: str
    build_id: int
    rollback_of: int | None
    automatic_rollback: bool
    status: str = Field(description="Waiting, Queued, InProgress, Succeeded, Failed or Stopped.")
    message: str = Field(description="Why it waits, failed or stopped.")


class DeploymentStatusOut(Schema):
    id: int
    url: str
    state: str
    description: str
    environment: str
    creator: UserOut | None
    created_at: datetime
    updated_at: datetime
    deployment_url: str
    repository_url: str
    log_url: str
    target_url: str


# Shapes.


def _team_out(team: Team) -> dict:
    url = reverse("orgs:team", kwargs={"org": team.organization.username, "team": team.name})
    return {
        "id": team.pk,
        "name": team.name,
        "slug": team.name,
        "description": team.description,
        "html_url": f"{settings.PORTAL_BASE_URL}{url}",
    }


def _branch_policy_out(environment: Environment) -> dict | None:
    policy = environment.ref_policy or {}
    patterns = list(policy.get("patterns", []))
    default_branch, protected = bool(policy.get("default_branch")), bool(policy.get("protected_branches"))
    if not (default_branch or protected or patterns):
        return None
    return {
        "protected_branches": protected,
        "custom_branch_policies": default_branch or bool(patterns),
        "default_branch": default_branch,
        "patterns": patterns,
    }


def _target_out(state: dict) -> dict:
    target: EnvironmentTarget = state["target"]
    ssh = target.kind == EnvironmentTarget.Kind.SSH
    return {
        "name": target.name,
        "type": target.kind,
        "host": target.host if ssh else None,
        "port": target.port if ssh else None,
        "user": target.user if ssh else None,
        "host_key": target.host_key if ssh else None,
        "host_key_fingerprint": ssh_target.fingerprint(target.host_key) if ssh else None,
        "deploy_key": target.deploy_key_public if ssh else None,
        "health_check": target.health_command or target.health_url or None,
        "artifact_digest": state["artifact_digest"],
        "health": state["health"],
        "last_deployment_id": state["last_deployment"].pk if state["last_deployment"] else None,
    }


def environment_out(environment: Environment, viewer: User) -> dict:
    """An environment as GitHub shows one, with its settings and each target's current artifact and health."""
    repository = environment.repository
    users = list(environment.reviewer_users.order_by("username"))
    teams = list(environment.reviewer_teams.select_related("organization").order_by("organization__username", "name"))
    rules: list[dict] = []
    if users or teams:
        rules.append(
            {
                "type": "required_reviewers",
                "prevent_self_review": environment.prevent_self_review,
                "reviewers": [{"type": "User", "reviewer": user_out(user, viewer)} for user in users]
                + [{"type": "Team", "reviewer": _team_out(team)} for team in teams],
            }
        )
    if environment.wait_timer:
        rules.append({"type": "wait_timer", "wait_timer": environment.wait_timer})
    branch_policy = _branch_policy_out(environment)
    if branch_policy is not None:
        rules.append({"type": "branch_policy"})
    return {
        "id": environment.pk,
        "name": environment.name,
        "url": api_url(f"/repos/{repository.full_name}/environments/{environment.name}"),
        "html_url": f"{repository.web_url}/environments/{environment.name}",
        "created_at": environment.created,
        "updated_at": environment.updated,
        "protection_rules": rules,
        "deployment_branch_policy": branch_policy,
        "required_approvals": environment.required_approvals,
        "prevent_self_review": environment.prevent_self_review,
        "wait_timer": environment.wait_timer,
        "deployment_config": environment.deployment_config,
        "freeze_windows": environment.freeze_windows,
        "targets": [_target_out(state) for state in deployments.environment_state(environment)],
    }


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def deployment_out(deployment: Deployment, viewer: User) -> dict:
    """A deployment in GitHub's shape, with its artifact, build, rollback link and the portal's status."""
    repository = deployment.repository
    url = api_url(f"/repos/{repository.full_name}/deployments/{deployment.pk}")
    # The newest of its moments, its last status's included when the query annotated it (_deployments).
    moments = [deployment.created, deployment.deploy_started, deployment.deploy_ended]
    moments.append(getattr(deployment, "last_status", None))
    return {
        "id": deployment.pk,
        "url": url,
        "sha": deployment.sha,
        "ref": _short_ref(deployment.ref) or deployment.sha,
        "task": "deploy",
        "environment": deployment.environment.name,
        "original_environment": deployment.environment.name,
        "description": deployment.description,
        "creator": user_out(deployment.creator, viewer) if deployment.creator_id else None,
        "created_at": deployment.created,
        "updated_at": max(moment for moment in moments if moment is not None),
        "statuses_url": f"{url}/statuses",
        "repository_url": api_url(f"/repos/{repository.full_name}"),
        "html_url": deployment.web_url,
        "artifact_digest": f"sha256:{deployment.artifact.sha256}",
        "build_id": deployment.artifact.build_id,
        "rollback_of": deployment.rollback_of_id,
        "automatic_rollback": deployment.automatic,
        "status": deployment.deployment_status,
        "message": deployment.message,
    }


def status_out(status: DeploymentStatus, deployment: Deployment, viewer: User) -> dict:
    repository = deployment.repository
    deployment_url = api_url(f"/repos/{repository.full_name}/deployments/{deployment.pk}")
    return {
        "id": status.pk,
        "url": f"{deployment_url}/statuses/{status.pk}",
        "state": status.state,
        "description": status.description,
        "environment": deployment.environment.name,
        "creator": user_out(status.creator, viewer) if status.creator_id else None,
        "created_at": status.created,
        "updated_at": status.created,
        "deployment_url": deployment_url,
        "repository_url": api_url(f"/repos/{repository.full_name}"),
        "log_url": deployment.web_url,
        "target_url": deployment.web_url,
    }


# Lookups.


def _repo(request: HttpRequest, owner: str, repo: str) -> Repository:
    """The repository if the caller may read it (404 otherwise); the services decide who may change what."""
    return get_repo_for_principal(principal(request), owner, repo)


def _environment(repository: Repository, name: str) -> Environment:
    environment = environments.find_environment(repository, name)
    if environment is None:
        raise Http404(f"No environment {name!r} in {repository.full_name}.")
    return environment


def _deployments(repository: Repository) -> QuerySet[Deployment]:
    return (
        deployments.deployments_of(repository)
        .select_related("repository__owner", "artifact")
        .annotate(last_status=Max("statuses__created"))
        .order_by("-created", "-id")
    )


def _deployment(repository: Repository, deployment_id: int) -> Deployment:
    deployment = _deployments(repository).filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404(f"No deployment {deployment_id} in {repository.full_name}.")
    return deployment


def _page(request: HttpRequest, response: HttpResponse, items: QuerySet, pages: Pages) -> tuple[list, int]:
    """One page of items with GitHub's Link header; and the total, which GitHub gives in the body."""
    found = paginate(items, response, PageParams(page=pages.page, limit=pages.per_page))
    total = int(response["X-Total-Count"])
    link = link_header(request, pages.page, pages.per_page, total, size_param="per_page")
    if link:
        response["Link"] = link
    return found, total


def _commit(repository: Repository, name: str, field: str) -> str:
    """The commit that a branch, tag, full ref name or (abbreviated) sha names; 422 naming field otherwise."""
    given = name.strip()
    try:
        if given.startswith("refs/"):
            # A full ref name means that ref, even when a branch and a tag share the short name.
            target = git.ref_target(repository.path, given)
            if target is not None:
                return git.resolve_commit(repository.path, target).sha
        elif given:
            return git.resolve_commit(repository.path, given).sha
    except git.GitError:
        pass
    raise field_error(f"{name!r} is not a branch, tag or commit of {repository.full_name}.", field)


def _branch_policy(policy: BranchPolicyIn | None) -> dict | None:
    """GitHub's deployment_branch_policy as releases.environments takes it (None: any branch)."""
    if policy is None:
        return None
    field = "deployment_branch_policy"
    custom = policy.default_branch or bool(policy.patterns)
    if custom and not policy.custom_branch_policies:
        raise field_error(
            "default_branch and patterns are custom branch policies: set custom_branch_policies to true.",
            f"{field}.custom_branch_policies",
        )
    if policy.custom_branch_policies and not custom:
        raise field_error(
            "Custom branch policies need patterns (such as branch:release/* or tag:v*) or default_branch.",
            f"{field}.patterns",
        )
    if not (policy.protected_branches or policy.custom_branch_policies):
        raise field_error(
            "Choose protected_branches or custom_branch_policies, or send null to let any branch deploy.", field
        )
    return {
        "default_branch": policy.default_branch,
        "protected_branches": policy.protected_branches,
        "patterns": policy.patterns,
    }


def _settings(payload: EnvironmentIn) -> dict:
    """The settings the request names, as releases.environments.set_environment takes them."""
    given = payload.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("wait_timer", "prevent_self_review", "required_approvals"):
        if name in given:
            changes[name] = getattr(payload, name)
    if "reviewers" in given:
        changes["reviewers"] = [r.model_dump() for r in payload.reviewers] if payload.reviewers is not None else None
    if "deployment_branch_policy" in given:
        changes["deployment_branch_policy"] = _branch_policy(payload.deployment_branch_policy)
    if "deployment_config" in given:
        config = payload.deployment_config
        changes["deployment_config"] = config.model_dump(exclude_unset=True, exclude_none=True) if config else None
    for name in ("targets", "freeze_windows"):
        if name in given:
            rows = getattr(payload, name)
            changes[name] = [row.model_dump(exclude_unset=True) for row in rows] if rows is not None else None
    return changes


# Environments.


@router.get(
    ENVIRONMENTS,
    scope=READ_REPO,
    response=EnvironmentsOut,
    tags=TAGS,
    summary="List a repository's environments, in promotion order",
    description="GitHub's shape, with each environment's settings and targets. Pages follow `page` and `per_page`.",
)
def list_environments(request: HttpRequest, response: HttpResponse, pages: Query[Pages], owner: str, repo: str):
    repository = _repo(request, owner, repo)
    found, total = _page(request, response, environments.environments_of(repository), pages)
    viewer = current_user(request)
    return {"total_count": total, "environments": [environment_out(env, viewer) for env in found]}


@router.get(
    ENVIRONMENT,
    scope=READ_REPO,
    response=EnvironmentOut,
    tags=TAGS,
    summary="Get an environment",
    description="Each target with the digest of the artifact it runs, its health and its last deployment.",
)
def get_environment(request: HttpRequest, owner: str, repo: str, environment_name: str):
    repository = _repo(request, owner, repo)
    return environment_out(_environment(repository, environment_name), current_user(request))


@router.put(
    ENVIRONMENT,
    scope=WRITE_REPO,
    response=EnvironmentPutOut,
    tags=TAGS,
    summary="Create or update an environment",
    description=(
        "The repository's admins only. Settings left out keep their value. `deployment_branch_policy` is GitHub's"
        " (null: any branch), its custom policies given inline as `patterns` and `default_branch`; `targets`"
        " replaces the environment's targets (a target that keeps its name keeps its deploy key). The answer"
        " gives, once, the deploy key's public line of each ssh target this request added (`new_deploy_keys`)."
        " 422 naming the field a setting is refused for."
    ),
)
def put_environment(request: HttpRequest, owner: str, repo: str, environment_name: str, payload: EnvironmentIn):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    # Whether the caller may change environments is answered before whether these settings are good.
    access.require(
        access.can_configure_environments, actor, repository, "Only the repository's admins change its environments."
    )
    environment, _created, new_keys = environments.set_environment(
        repository, environment_name, actor=actor, **_settings(payload)
    )
    return {**environment_out(environment, actor), "new_deploy_keys": new_keys}


@router.delete(
    ENVIRONMENT,
    scope=WRITE_REPO,
    response={204: None},
    tags=TAGS,
    summary="Delete an environment",
    description="The repository's admins only. Its targets, variables, secrets and deployments go with it.",
)
def delete_environment(request: HttpRequest, owner: str, repo: str, environment_name: str):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    access.require(
        access.can_configure_environments, actor, repository, "Only the repository's admins change its environments."
    )
    environments.delete_environment(_environment(repository, environment_name), actor=actor)
    return Status(204, None)


# Deployments.


@router.get(
    DEPLOYMENTS,
    scope=READ_REPO,
    response=list[DeploymentOut],
    tags=TAGS,
    summary="List a repository's deployments, newest first",
    description=(
        "GitHub's shape (a list, with a `Link` header), with each deployment's artifact digest, build and rollback"
        " link. `ref` matches a branch or tag by name or full ref."
    ),
)
def list_deployments(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[Pages],
    filters: Query[DeploymentFilters],
    owner: str,
    repo: str,
):
    repository = _repo(request, owner, repo)
    found = _deployments(repository)
    if filters.environment:
        found = found.filter(environment__name__iexact=filters.environment)
    if filters.sha:
        found = found.filter(sha=filters.sha.strip().lower())
    if ref := filters.ref.strip():
        found = found.filter(Q(ref=ref) | Q(ref=f"refs/heads/{ref}") | Q(ref=f"refs/tags/{ref}"))
    if filters.task and filters.task != "deploy":
        found = found.none()
    page, _total = _page(request, response, found, pages)
    viewer = current_user(request)
    return [deployment_out(deployment, viewer) for deployment in page]


@router.post(
    DEPLOYMENTS,
    scope=WRITE_REPO,
    response={201: DeploymentOut},
    tags=TAGS,
    summary="Deploy a commit's build to an environment",
    description=(
        "Writers only. `ref` (a branch, tag or commit) or `sha` names the commit; the primary artifact of its"
        " newest successful build is deployed, never a rebuild. The deployment waits while the environment's"
        " approvals, wait timer or a change freeze hold it, else is queued. 422 naming `environment` when there is"
        " no such environment or it has no targets, naming `ref` or `sha` when the commit is unknown or has no"
        " successful build."
    ),
)
def create_deployment(request: HttpRequest, owner: str, repo: str, payload: DeploymentIn):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    # Whether the caller may deploy at all is answered before whether this request could.
    access.require(access.can_deploy, actor, repository, "Only the repository's writers deploy.")
    environment = environments.find_environment(repository, payload.environment)
    if environment is None:
        names = ", ".join(environments.environments_of(repository).values_list("name", flat=True)) or "none"
        raise field_error(
            f"{repository.full_name} has no environment {payload.environment!r} (it has {names}).", "environment"
        )
    if (payload.ref is None) == (payload.sha is None):
        raise field_error("Name the commit to deploy with ref or sha, one of the two.", "ref")
    field = "ref" if payload.ref is not None else "sha"
    sha = _commit(repository, payload.ref if payload.ref is not None else payload.sha, field)
    artifact = deployments.artifact_of(repository, sha, field=field)
    deployment = deployments.request_deployment(
        repository, environment, actor=actor, artifact=artifact, description=payload.description
    )
    return Status(201, deployment_out(_deployment(repository, deployment.pk), actor))


@router.get(DEPLOYMENT, scope=READ_REPO, response=DeploymentOut, tags=TAGS, summary="Get a deployment")
def get_deployment(request: HttpRequest, owner: str, repo: str, deployment_id: int):
    return deployment_out(_deployment(_repo(request, owner, repo), deployment_id), current_user(request))


@router.get(
    DEPLOYMENT + "/statuses",
    scope=READ_REPO,
    response=list[DeploymentStatusOut],
    tags=TAGS,
    summary="List a deployment's statuses, newest first",
    description=(
        "GitHub's states: waiting, queued, in_progress, success, failure, error (stopped), inactive. All of them in"
        " one answer: a deployment has a handful."
    ),
)
def list_deployment_statuses(request: HttpRequest, owner: str, repo: str, deployment_id: int):
    deployment = _deployment(_repo(request, owner, repo), deployment_id)
    found = deployment.statuses.select_related("creator").order_by("-created", "-id")
    viewer = current_user(request)
    return [status_out(status, deployment, viewer) for status in found]


@router.post(
    DEPLOYMENT + "/statuses",
    scope=WRITE_REPO,
    response={405: Message},
    tags=TAGS,
    summary="Not supported: statuses are the portal's own",
    description=(
        "Always 405: a deployment's statuses record what the portal's deployment job did, so no client sets them"
        " (GitHub lets any deployer post them)."
    ),
)
def create_deployment_status(request: HttpRequest, owner: str, repo: str, deployment_id: int):
    _deployment(_repo(request, owner, repo), deployment_id)
    raise HttpError(
        405,
        "Deployment statuses are the portal's own record of what its deployment job did: they cannot be posted."
        " Stop a deployment with POST …/stop, roll it back with POST …/rollback.",
    )


@router.get(
    DEPLOYMENT + "/statuses/{status_id}",
    scope=READ_REPO,
    response=DeploymentStatusOut,
    tags=TAGS,
    summary="Get a deployment status",
)
def get_deployment_status(request: HttpRequest, owner: str, repo: str, deployment_id: int, status_id: int):
    deployment = _deployment(_repo(request, owner, repo), deployment_id)
    status = deployment.statuses.select_related("creator").filter(pk=status_id).first()
    if status is None:
        raise Http404(f"No status {status_id} of deployment {deployment_id}.")
    return status_out(status, deployment, current_user(request))


@router.post(
    DEPLOYMENT + "/reviews",
    scope=WRITE_REPO,
    response=DeploymentOut,
    tags=TAGS,
    summary="Approve or reject a waiting deployment",
    description=(
        "The portal's own (GitHub reviews the pending deployments of a workflow run): one of the environment's"
        " reviewers approves or rejects a deployment that waits for review. A rejection ends it; enough approvals"
        " let it start. The person who requested it does not count while the environment prevents self-review."
        " 422 naming `state` when the deployment is not waiting."
    ),
)
def review_deployment(request: HttpRequest, owner: str, repo: str, deployment_id: int, payload: ReviewIn):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    deployment = _deployment(repository, deployment_id)
    deployments.review(deployment, actor=actor, state=payload.state, comment=payload.comment)
    return deployment_out(_deployment(repository, deployment_id), actor)


@router.post(
    DEPLOYMENT + "/stop",
    scope=WRITE_REPO,
    response={202: DeploymentOut},
    tags=TAGS,
    summary="Stop a deployment",
    description=(
        "Writers only. A waiting or queued deployment ends Stopped at once; a running one stops after the batch"
        " under way (what it deployed stays). 409 when it has already ended."
    ),
)
def stop_deployment(request: HttpRequest, owner: str, repo: str, deployment_id: int):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    access.require(access.can_deploy, actor, repository, "Only the repository's writers stop deployments.")
    deployment = _deployment(repository, deployment_id)
    if deployment.is_ended:
        raise HttpError(409, f"Deployment {deployment_id} has already ended ({deployment.deployment_status}).")
    deployments.stop(deployment, actor=actor)
    return Status(202, deployment_out(_deployment(repository, deployment_id), actor))


@router.post(
    DEPLOYMENT + "/rollback",
    scope=WRITE_REPO,
    response={201: DeploymentOut},
    tags=TAGS,
    summary="Roll a deployment back",
    description=(
        "Writers only. A new deployment, with a new id, of the artifact of the environment's last successful"
        " deployment before this one, marked as its rollback (`rollback_of`). Never a rebuild; what hooks did is"
        " not undone. 422 when the environment had no successful deployment before it."
    ),
)
def roll_back_deployment(request: HttpRequest, owner: str, repo: str, deployment_id: int):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    access.require(access.can_deploy, actor, repository, "Only the repository's writers roll back.")
    deployment = _deployment(repository, deployment_id)
    rollback = deployments.roll_back(deployment, actor=actor)
    if rollback is None:
        raise HttpError(
            422,
            f"Deployment {deployment_id} has nothing to roll back to: {deployment.environment.name} had no successful"
            " deployment before it.",
        )
    return Status(201, deployment_out(_deployment(repository, rollback.pk), actor))
