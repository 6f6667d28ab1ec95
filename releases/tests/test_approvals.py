"""A pipeline approval's people side end to end: real pushes, builds and deployments on real workers, the approvers'
emails sent by the real notification job, their signed links, the approval page and its form, and reminders."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from releases import approvals, pipelines
from releases.models import Deployment, PipelineApproval, PipelineApprovalLink
from releases.tests.deploying import deployed_version, latest, release_files, uat_runs_v1_and_bobs_v2_waits
from releases.tests.test_builds import push_files
from repos import git
from reviews.models import Notification

pytestmark = pytest.mark.usefixtures("transactional_db", "email_backend")

# The pipelines' fixtures: run what the pipelines ask for; dev, and uat guarded by alice's approval.

LINK = re.compile(r"https://git\.example\.com(/alice/project/pipelines/release/executions/\d+/approval/link/\S+)")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def links_in(outbox, user) -> list[str]:
    return [path for message in outbox if message.to == [user.email] for path in LINK.findall(message.body)]


@pytest.fixture
def release_waiting(private_repo, alice, bob, environments_of_release, drive, run_worker):
    """uat runs v1 (approved by alice); bob's pull request (v2, approved by alice) is merged by bob and its
    execution waits at the approval. The mail sent so far is gone; the approval's is sent."""
    from reviews import services as review_services

    uat_sha, _change, pr = uat_runs_v1_and_bobs_v2_waits(private_repo, alice, bob, drive)
    run_worker()
    mail.outbox.clear()
    review_services.merge_pull_request(pr, actor=bob, strategy="merge", head_sha=pr.head_sha)
    drive()
    run_worker()
    execution = latest(private_repo)
    assert execution.number == 2 and execution.approvals.get().is_pending
    pr.refresh_from_db()
    return {"execution": execution, "pr": pr, "uat_sha": uat_sha}


def test_the_approver_is_emailed_a_link_that_needs_signing_in_and_opens_the_page(
    private_repo, alice, bob, carol, release_waiting, drive
):
    execution = release_waiting["execution"]
    # alice reviews uat; bob asked (merged), carol only reads: only alice hears of it.
    asking = [message for message in mail.outbox if "approval" in message.subject]
    assert [message.to for message in asking] == [[alice.email]]
    message = asking[0]
    assert message.subject == "[portal] A release waits for your approval"
    assert "bob asks to release alice/project" in message.body and "to uat" in message.body
    notice = Notification.objects.filter(user=alice, kind="approval_requested", in_portal=True).first()
    assert not Notification.objects.filter(kind="approval_requested").exclude(user=alice).exists()
    [link] = links_in(mail.outbox, alice)
    # The portal's notice opens the approval page itself, so reading it there does not use up the emailed link.
    assert notice.url == approvals.approval_path(execution) and notice.email_url == link
    assert signed_in(alice).get(notice.url).status_code == 200

    # Signed out, the link asks to sign in first and comes back to itself.
    response = Client().get(link)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert PipelineApprovalLink.objects.get(approval__execution=execution).used_at is None

    alice_client = signed_in(alice)
    response = alice_client.get(link)
    page = approvals.approval_path(execution)
    assert response.status_code == 302 and response["Location"] == page
    # Opening it answered nothing.
    assert execution.approvals.get().is_pending and not execution.approvals.get().answers.exists()

    html = alice_client.get(page).content.decode()
    assert f"{release_waiting['uat_sha'][:7]}</a> now" in html
    pr = release_waiting["pr"]
    # The commits the release brings: v2's change and the merge; the pull request with its approver.
    commits = git.commits_between(private_repo.path, release_waiting["uat_sha"], execution.source_sha)
    assert len(commits) == 2
    for commit in commits:
        assert commit.sha[:7] in html
    assert f"#{pr.number} Release v2" in html
    assert re.search(r'approved by <span class="approver">alice</span>', html)
    # The diff of version.txt, v1 to v2, and the artifact.
    assert "version.txt" in html and "v2" in html
    assert f"sha256:{execution.artifact_sha256}" in html
    assert "Provenance (JSON)" in html
    assert 'class="box stack approval-form"' in html

    # Used once, the link is refused the second time.
    response = alice_client.get(link)
    assert response.status_code == 403
    assert "This approval link was already used" in response.content.decode()


def test_approving_with_a_comment_through_the_page_deploys_uat(private_repo, alice, release_waiting, drive):
    execution = release_waiting["execution"]
    page = approvals.approval_path(execution)
    response = signed_in(alice).post(page, {"status": "Approved", "summary": "v2 notes read."}, follow=True)
    assert "Your answer (approved) is recorded." in response.content.decode()
    approval = execution.approvals.get()
    assert approval.status == "Approved"
    assert list(approval.answers.values_list("user__username", "summary")) == [("alice", "v2 notes read.")]
    drive()
    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    assert deployed_version(private_repo, "uat") == "v2"
    assert Deployment.objects.filter(environment__name="uat", sha=execution.source_sha).get().deployment_status == (
        "Succeeded"
    )


def test_a_link_is_refused_expired_by_another_user_or_on_another_execution(
    private_repo, alice, bob, carol, release_waiting
):
    execution = release_waiting["execution"]
    [link] = links_in(mail.outbox, alice)

    # Another signed-in person (even a reviewer of the repository) cannot use alice's link, nor use it up.
    response = signed_in(bob).get(link)
    assert "This approval link was sent to someone else" in response.content.decode()
    assert 'class="box stack approval-form"' not in response.content.decode()

    # The same token on execution 1's address is refused.
    other = link.replace("/executions/2/", "/executions/1/")
    response = signed_in(alice).get(other)
    assert "This approval link is for another execution" in response.content.decode()

    # A forged token.
    response = signed_in(alice).get(link[:-3] + "xyz")
    assert "This approval link is not valid" in response.content.decode()

    # Past the approval's deadline.
    PipelineApproval.objects.filter(pk=execution.approvals.get().pk).update(deadline=timezone.now())
    response = signed_in(alice).get(link)
    assert "This approval link expired" in response.content.decode()
    assert PipelineApprovalLink.objects.get(approval__execution=execution).used_at is None


def test_the_requester_cannot_approve_and_a_reader_sees_the_page_without_the_form(
    private_repo, alice, bob, carol, release_waiting
):
    execution = release_waiting["execution"]
    page = approvals.approval_path(execution)

    response = signed_in(bob).post(page, {"status": "Approved"}, follow=True)
    assert "Only the reviewers of uat answer this approval." in response.content.decode()
    assert execution.approvals.get().is_pending

    html = signed_in(carol).get(page).content.decode()
    assert f"sha256:{execution.artifact_sha256}" in html
    assert 'class="box stack approval-form"' not in html
    response = signed_in(carol).post(page, {"status": "Approved"}, follow=True)
    assert "Only the reviewers of uat answer this approval." in response.content.decode()
    assert not execution.approvals.get().answers.exists()


def test_the_requester_who_is_a_reviewer_is_not_asked_and_cannot_approve(private_repo, alice, bob, drive, run_worker):
    from releases.tests.deploying import set_targets

    set_targets(private_repo, "dev", ["a"], alice)
    reviewers = [{"type": "User", "id": person.pk} for person in (alice, bob)]
    set_targets(private_repo, "uat", ["a"], alice, required_approvals=1, reviewers=reviewers)
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    run_worker()
    execution = latest(private_repo)
    assert links_in(mail.outbox, bob) == [] and len(links_in(mail.outbox, alice)) == 1

    page = approvals.approval_path(execution)
    response = signed_in(bob).post(page, {"status": "Approved"}, follow=True)
    assert "You requested this release: another reviewer approves it." in response.content.decode()
    assert execution.approvals.get().is_pending


def test_the_sweep_reminds_each_approver_once_after_the_remind_hours(
    private_repo, alice, release_waiting, run_worker, settings
):
    from releases import pipeline_job

    settings.PORTAL_APPROVAL_REMIND_HOURS = 2
    mail.outbox.clear()
    assert pipeline_job.run_sweep()["reminded"] == 0
    approval = release_waiting["execution"].approvals.get()
    PipelineApproval.objects.filter(pk=approval.pk).update(created=timezone.now() - timedelta(hours=2, minutes=1))
    assert pipeline_job.run_sweep()["reminded"] == 1
    assert pipeline_job.run_sweep()["reminded"] == 0
    run_worker()
    assert [message.to for message in mail.outbox] == [[alice.email]]
    assert mail.outbox[0].body.startswith("Reminder: bob asks to release")
    # The reminder's link works on its own, once.
    [link] = links_in(mail.outbox, alice)
    assert signed_in(alice).get(link)["Location"] == approvals.approval_path(release_waiting["execution"])


def test_pipeline_yml_sets_when_an_approval_reminds(
    private_repo, alice, bob, environments_of_release, drive, run_worker
):
    from releases import pipeline_job
    from releases.pipelinespec import default_pipeline_yaml

    spec = default_pipeline_yaml("main", ("dev", "uat")).replace(
        "type: approval\n", "type: approval\n        remind_hours: 1\n"
    )
    assert "remind_hours: 1" in spec
    push_files(private_repo, bob, "main", release_files("v1") | {"pipeline.yml": spec.encode()})
    drive()
    approval = latest(private_repo).approvals.get()
    assert approval.remind_hours == 1
    PipelineApproval.objects.filter(pk=approval.pk).update(created=timezone.now() - timedelta(minutes=59))
    assert pipeline_job.run_sweep()["reminded"] == 0
    PipelineApproval.objects.filter(pk=approval.pk).update(created=timezone.now() - timedelta(minutes=61))
    assert pipeline_job.run_sweep()["reminded"] == 1
    run_worker()
    assert [m.to for m in mail.outbox if m.body.startswith("Reminder:")] == [[alice.email]]


def test_a_retried_approval_is_answered_on_the_page_which_keeps_the_earlier_answer(
    private_repo, alice, bob, release_waiting, drive
):
    execution = release_waiting["execution"]
    page = approvals.approval_path(execution)
    signed_in(alice).post(page, {"status": "Rejected", "summary": "Not this week."})
    execution.refresh_from_db()
    assert execution.status == "Failed"
    pipelines.retry(execution, actor=bob, stage="Approval")
    first, second = execution.approvals.order_by("created", "id")
    assert (first.status, second.status, second.attempt) == ("Rejected", "Pending", 2)

    html = signed_in(alice).get(page).content.decode()
    # The page is about the pending approval: its form, and the earlier answer below.
    assert '<span class="badge approval-status">Pending</span>' in html
    assert 'class="box stack approval-form"' in html
    earlier = html[html.index('class="box approval-earlier"') :]
    assert f'data-approval="{first.pk}"' in earlier and "(attempt 1)" in earlier
    assert "alice: Rejected: Not this week." in earlier

    signed_in(alice).post(page, {"status": "Approved", "summary": "Now."})
    second.refresh_from_db()
    assert second.status == "Approved"
    drive()
    assert deployed_version(private_repo, "uat") == "v2"
