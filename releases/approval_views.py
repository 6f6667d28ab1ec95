"""A pipeline approval's page: what the release changes compared with what the environment runs now, the build's
tests, the artifact, and the form its approvers answer with; and the signed links emailed to them.

HTTP only: the repository's door (repos.access) decides who reads, releases.pipelines who answers and how,
releases.approvals what the page shows and whether a link opens it."""

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from releases import approvals, pipelines
from releases.models import Pipeline, PipelineApproval, PipelineApprovalAnswer, PipelineExecution
from repos import code, git
from repos.access import can_administer, get_repo_for_user

SHOWN_COMMITS = 250


def _execution(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> PipelineExecution:
    repo = get_repo_for_user(request.user, owner, name)
    found = get_object_or_404(Pipeline, repository=repo, name=pipeline)
    return get_object_or_404(
        PipelineExecution.objects.select_related("pipeline__repository__owner", "requester", "build", "artifact"),
        pipeline=found,
        number=number,
    )


def _approvals(execution: PipelineExecution) -> tuple[PipelineApproval, list[PipelineApproval]]:
    """The approval the page is about (the pending one, else the latest) and the execution's others, newest first:
    a retried stage or a second approval action asks again."""
    found = list(
        execution.approvals.select_related("environment", "execution__pipeline__repository__owner")
        .prefetch_related("answers__user")
        .order_by("-created", "-id")
    )
    if not found:
        raise Http404(f"Execution {execution.number} has not reached an approval.")
    current = next((approval for approval in found if approval.is_pending), found[0])
    return current, [approval for approval in found if approval is not current]


def _context(
    request: HttpRequest, execution: PipelineExecution, approval: PipelineApproval, earlier: list[PipelineApproval]
) -> dict:
    repo = execution.pipeline.repository
    prefix = f"/{repo.owner.username}/{repo.name}"
    base = approvals.current_sha(approval)
    commits = approvals.changed_commits(execution, base)[:SHOWN_COMMITS]
    diff = None
    options = code.DiffOptions.from_query(request.GET)
    if base is not None and (merge_base := git.merge_base(repo.path, base, execution.source_sha)) is not None:
        # Further files of a long diff load from the compare page, which answers the same fragments.
        compare_url = f"{prefix}/compare/{merge_base}...{execution.source_sha}?"
        diff = code.diff_page(repo.path, merge_base, execution.source_sha, options, prefix=prefix, page_url=compare_url)
    build = execution.build
    reports = []
    for report in build.reports if build else []:
        counts: dict[str, int] = {}
        for case in report["cases"]:
            counts[case["status"]] = counts.get(case["status"], 0) + 1
        reports.append({"group": report["group"], "counts": sorted(counts.items()), "errors": report.get("errors")})
    artifact = execution.artifact
    provenance_url = ""
    if artifact is not None and build is not None and artifact.provenance is not None:
        provenance_url = f"{prefix}/builds/{build.number}/artifacts/{artifact.pk}/provenance.json"
    return {
        "repo": repo,
        "prefix": prefix,
        "tab": "builds",
        "is_admin": can_administer(request.user, repo),
        "execution": execution,
        "approval": approval,
        "answers": list(approval.answers.all()),
        "earlier": earlier,
        "missing": approvals_missing(approval),
        "base_sha": base,
        "commits": commits,
        "pull_requests": approvals.merged_pull_requests(execution, [commit.sha for commit in commits]),
        "diff": diff,
        "options": options,
        "reports": reports,
        "artifact": artifact,
        "provenance_url": provenance_url,
        "can_answer": approval.is_pending and pipelines.can_answer_approval(request.user, approval),
        "is_requester": request.user.is_authenticated and request.user.pk == execution.requester_id,
    }


def approvals_missing(approval: PipelineApproval) -> str | None:
    return pipelines.approvals_missing(approval) if approval.is_pending else None


@require_http_methods(["GET", "POST"])
def approval_page(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> HttpResponse:
    execution = _execution(request, owner, name, pipeline, number)
    approval, earlier = _approvals(execution)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={quote(request.path)}")
        status = request.POST.get("status", "")
        if status not in PipelineApprovalAnswer.Status.values:
            messages.error(request, "Choose Approved or Rejected.")
        else:
            try:
                pipelines.answer_approval(
                    execution,
                    approval.stage,
                    approval.action,
                    user=request.user,
                    status=status,
                    summary=request.POST.get("summary", "").strip(),
                )
            except (PermissionDenied, ValidationError) as error:
                words = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
                messages.error(request, words or "You may not answer this approval.")
            else:
                messages.success(request, f"Your answer ({status.lower()}) is recorded.")
        return redirect(request.path)
    return render(request, "releases/approval.html", _context(request, execution, approval, earlier))


@require_GET
@login_required
def approval_link(request: HttpRequest, owner: str, name: str, pipeline: str, number: int, token: str) -> HttpResponse:
    """An emailed link: used once by the approver it was sent to, it lands on the approval page (answering there)."""
    execution = _execution(request, owner, name, pipeline, number)
    try:
        approvals.open_link(token, user=request.user, execution=execution)
    except approvals.LinkRefused as refused:
        return render(
            request,
            "releases/approval_link_refused.html",
            {"reason": str(refused), "page_url": approvals.approval_path(execution)},
            status=403,
        )
    return redirect(approvals.approval_path(execution))
